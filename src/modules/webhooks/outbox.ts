import { and, eq, inArray, sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Db } from '../../db/client.js';
import type { Deadline } from '../../db/deadline.js';
import { executePrepared } from '../../db/prepared.js';
import {
  type Customer,
  customers,
  type Device,
  devices,
  type LicenseKey,
  licenseKeys,
  webhookDeliveries,
  webhookEvents,
  webhooks,
} from '../../db/schema/index.js';
import { type Work, withTransaction } from '../../db/unit-of-work.js';
import type { DomainEvent, Outcome } from '../../lib/events.js';
import { newId } from '../../lib/ids.js';
import { toCustomerView } from '../customers/views.js';
import { toDeviceView, toLicenseView } from '../licenses/views.js';

/**
 * The webhook outbox (docs/api.md, "Webhooks"): the events of a change become rows of
 * webhook_events, with one webhook_deliveries row per webhook of the account that wants the
 * event's type, in the SAME transaction as the change. A rolled-back request therefore emits
 * nothing, and a committed event is never lost: the delivery worker sends what the rows say,
 * whichever process (or restart) picks them up.
 *
 * Events no webhook wants are not stored. The payload — the exact body every attempt sends and
 * signs — is rendered here, from the rows as the change left them.
 */

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Runs a change of `accountId` in one transaction together with its outbox rows (the
     * request's unit of work for every endpoint that raises events).
     */
    commitChange<T extends { events: DomainEvent[] }>(
      accountId: string,
      work: Work<T>,
      deadline?: Deadline,
    ): Promise<T>;
    webhookOutbox: WebhookOutbox;
  }
}

export interface WebhookOutbox {
  readonly settings: OutboxSettings;
  /** To be called after a commit that wrote deliveries outside `commitChange`. */
  deliveriesCommitted(): void;
  /** Subscribes to those commits (the delivery worker wakes up instead of waiting for its poll). */
  onDeliveriesCommitted(listener: () => void): void;
}

/** `data` of a key event: the License without devices, plus customerId (docs/api.md §8). */
export function licensePayload(key: LicenseKey, activations: number, now: number) {
  const { id, key: licenseKey, productId, ...rest } = toLicenseView(key, activations, now);
  return { id, key: licenseKey, productId, customerId: key.customerId, ...rest };
}

type EventData = Record<string, unknown>;

interface Subjects {
  licenses: Map<string, { key: LicenseKey; activations: number }>;
  customers: Map<string, Customer>;
  devices: Map<string, Device>;
}

const deviceKey = (licenseKeyId: string, hostId: string) => `${licenseKeyId}\u0000${hostId}`;

/** Loads, in the change's transaction, the rows the payloads show (as the change left them). */
async function loadSubjects(tx: Db, events: DomainEvent[]): Promise<Subjects> {
  const licenseIds = new Set<string>();
  const customerIds = new Set<string>();
  const activated: { licenseKeyId: string; hostId: string }[] = [];
  for (const event of events) {
    if ('licenseKeyId' in event) licenseIds.add(event.licenseKeyId);
    if (event.type === 'key.activated') activated.push(event);
    if ('customerId' in event) customerIds.add(event.customerId);
  }
  const [licenseRows, customerRows, deviceRows] = await Promise.all([
    licenseIds.size === 0
      ? []
      : tx
          .select({
            key: licenseKeys,
            // Qualified by hand: drizzle leaves the columns of a one-table select unqualified.
            activations: sql<number>`(select count(*)::int from ${devices} where ${devices.licenseKeyId} = "license_keys"."id")`,
          })
          .from(licenseKeys)
          .where(inArray(licenseKeys.id, [...licenseIds])),
    customerIds.size === 0
      ? []
      : tx
          .select()
          .from(customers)
          .where(inArray(customers.id, [...customerIds])),
    Promise.all(
      activated.map(async ({ licenseKeyId, hostId }) => {
        const [row] = await tx
          .select()
          .from(devices)
          .where(and(eq(devices.licenseKeyId, licenseKeyId), eq(devices.hostId, hostId)))
          .limit(1);
        return row;
      }),
    ),
  ]);
  return {
    licenses: new Map(licenseRows.map((row) => [row.key.id, row])),
    customers: new Map(customerRows.map((row) => [row.id, row])),
    devices: new Map(
      deviceRows.filter((row) => row !== undefined).map((row) => [deviceKey(row.licenseKeyId, row.hostId), row]),
    ),
  };
}

function missing(what: string): never {
  // The change just wrote or read these rows in this transaction: a gap is a bug, and the
  // request fails (and rolls back) rather than emitting a partial event.
  throw new Error(`outbox: ${what} of an event not found`);
}

function eventData(event: DomainEvent, subjects: Subjects, now: number): EventData {
  if (event.type === 'customer.deleted') {
    return { customer: toCustomerView(event.customer), deletedKeyIds: event.deletedKeyIds };
  }
  if ('customerId' in event) {
    const customer = subjects.customers.get(event.customerId) ?? missing('customer');
    return { customer: toCustomerView(customer) };
  }
  const row = subjects.licenses.get(event.licenseKeyId) ?? missing('license key');
  const license = licensePayload(row.key, row.activations, now);
  if (event.type === 'key.activated') {
    const device = subjects.devices.get(deviceKey(event.licenseKeyId, event.hostId)) ?? missing('device');
    return { license, device: toDeviceView(device) };
  }
  if (event.type === 'key.deactivated') return { license, hostIds: event.hostIds };
  return { license };
}

/** The body of an event as sent: `{id, type, createdAt, data}`. */
export const renderEvent = (id: string, type: string, createdAt: Date, data: EventData): string =>
  JSON.stringify({ id, type, createdAt: createdAt.toISOString(), data });

export interface OutboxSettings {
  /** Retries of a delivery stop this long after its event. */
  retryWindowMs: number;
}

/**
 * Writes the outbox rows of `events` (all of `accountId`) on the open transaction. Returns the
 * number of deliveries written. The common case — no webhook of the account wants any of the
 * events — costs one indexed read.
 */
export async function writeOutbox(
  tx: Db,
  accountId: string,
  events: DomainEvent[],
  settings: OutboxSettings,
  accountHooks?: Promise<AccountHook[]>,
): Promise<number> {
  if (events.length === 0) return 0;
  const hooks = await (accountHooks ?? webhooksOfAccount(tx, accountId));
  if (hooks.length === 0) return 0;
  const wanted = events
    .map((event) => ({
      event,
      hookIds: hooks.filter((hook) => hook.events.includes(event.type)).map((hook) => hook.id),
    }))
    .filter((entry) => entry.hookIds.length > 0);
  if (wanted.length === 0) return 0;

  const subjects = await loadSubjects(
    tx,
    wanted.map((entry) => entry.event),
  );
  const createdAt = new Date();
  const expiresAt = new Date(createdAt.getTime() + settings.retryWindowMs);
  const eventRows = wanted.map(({ event }) => {
    const id = newId();
    return {
      id,
      accountId,
      type: event.type,
      payload: renderEvent(id, event.type, createdAt, eventData(event, subjects, createdAt.getTime())),
      createdAt,
    };
  });
  const deliveryRows = wanted.flatMap(({ hookIds }, i) =>
    hookIds.map((webhookId) => ({
      id: newId(),
      eventId: eventRows[i]!.id,
      webhookId,
      nextAttemptAt: createdAt,
      expiresAt,
      createdAt,
    })),
  );
  await tx.insert(webhookEvents).values(eventRows);
  await tx.insert(webhookDeliveries).values(deliveryRows);
  return deliveryRows.length;
}

interface AccountHook {
  id: string;
  events: string[];
}

/** The account's webhooks and the events each wants. */
const webhooksOfAccount = (tx: Db, accountId: string): Promise<AccountHook[]> =>
  executePrepared(
    tx.select({ id: webhooks.id, events: webhooks.events }).from(webhooks).where(eq(webhooks.accountId, accountId)),
    'webhooks_of_account',
  );

/** Decorates the app with `commitChange` (the unit of work with its outbox). */
export const webhookOutboxPlugin = fp(
  async (app: FastifyInstance) => {
    const settings: OutboxSettings = { retryWindowMs: app.config.webhooks.retryWindowMs };
    const listeners: (() => void)[] = [];
    const outbox: WebhookOutbox = {
      settings,
      deliveriesCommitted() {
        for (const listener of listeners) listener();
      },
      onDeliveriesCommitted(listener) {
        listeners.push(listener);
      },
    };
    app.decorate('webhookOutbox', outbox);
    app.decorate('commitChange', async function commitChange<
      T extends Outcome<object>,
    >(accountId: string, work: Work<T>, deadline?: Deadline): Promise<T> {
      let deliveries = 0;
      const result = await withTransaction(
        app.database.db,
        async (tx) => {
          // Sent with the change's first statement (pipelined on the transaction's connection):
          // the outbox's read of the account's webhooks costs no round trip of its own.
          const hooks = webhooksOfAccount(tx, accountId);
          hooks.catch(() => {}); // a failed change rejects it too; the change's error is the one
          const outcome = await work(tx);
          deliveries = await writeOutbox(tx, accountId, outcome.events, settings, hooks);
          return outcome;
        },
        deadline,
      );
      if (deliveries > 0) outbox.deliveriesCommitted();
      return result;
    });
  },
  { name: 'keymint-webhook-outbox' },
);
