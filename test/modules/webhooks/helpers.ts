import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../../src/db/client.js';
import {
  accounts,
  type WebhookDelivery,
  webhookDeliveries,
  webhookEvents,
  webhooks,
} from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { newWebhookSecret } from '../../../src/modules/webhooks/signature.js';

/**
 * Webhook test helpers: a real HTTP receiver, and outbox rows seeded directly (the rows the outbox
 * writes in a change's transaction: one event, one delivery per webhook, due now, expiring 24 h
 * after the event).
 */

/**
 * The contract's event types, in its order (docs/api.md, "Webhooks"), written out here rather
 * than taken from the source: a webhook made without `events` gets them all.
 */
export const ALL_EVENTS = [
  'key.created',
  'key.activated',
  'key.deactivated',
  'key.blocked',
  'key.unblocked',
  'key.updated',
  'customer.created',
  'customer.updated',
  'customer.deleted',
  'customer.disabled',
  'customer.enabled',
];

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Date.now() when the request's body had arrived. */
  at: number;
}

/** How the receiver answers: a status, a status with a body, headers or a delay, or never ('hang'). */
export type Answer =
  | number
  | 'hang'
  | { status: number; body?: string; headers?: Record<string, string>; delayMs?: number };

/** Answers the `index`-th request (0-based) to one path. */
export type Answering = (index: number, request: ReceivedRequest) => Answer;

export interface Receiver {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Every request, in arrival order. */
  requests: ReceivedRequest[];
  /** The requests to one path. */
  to(path: string): ReceivedRequest[];
  /** How requests to `path` are answered from now on (default 200). */
  answer(path: string, answering: Answering): void;
  /** Ends the hanging answers and closes. */
  close(): Promise<void>;
}

/** A receiver on 127.0.0.1 that records method, path, headers and body of every request. */
export async function startReceiver(): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const answering = new Map<string, Answering>();
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      const request = {
        method: req.method ?? '',
        path,
        headers: req.headers,
        body: Buffer.concat(chunks),
        at: Date.now(),
      };
      const index = requests.filter((earlier) => earlier.path === path).length;
      requests.push(request);
      const answer = (answering.get(path) ?? (() => 200))(index, request);
      if (answer === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      const { status, body = '', headers = {}, delayMs = 0 } = typeof answer === 'number' ? { status: answer } : answer;
      setTimeout(() => res.writeHead(status, headers).end(body), delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    to: (path) => requests.filter((request) => request.path === path),
    answer: (path, how) => answering.set(path, how),
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The SDKs' `verifyWebhookSignature`: HMAC-SHA256 of `${t}.${rawBody}` keyed with the secret's UTF-8 bytes. */
export function verifySignature(secret: string, header: string, rawBody: string, toleranceSeconds = 300): boolean {
  const fields = new Map(
    header.split(',').map((part) => {
      const at = part.indexOf('=');
      return [part.slice(0, at), part.slice(at + 1)] as const;
    }),
  );
  const t = Number(fields.get('t'));
  const v1 = fields.get('v1') ?? '';
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${t}.${rawBody}`, 'utf8').digest('hex');
  return v1.length === expected.length && timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
}

/** `ms` from now on the database's clock (negative: in the past). */
const fromNow = (ms: number) =>
  sql`statement_timestamp() + cast(${Math.round(ms)} as double precision) * interval '1 millisecond'`;

export async function defaultAccountId(db: Db): Promise<string> {
  const [row] = await db.select({ id: accounts.id }).from(accounts).where(eq(accounts.isDefault, true));
  return row!.id;
}

export interface SeededWebhook {
  id: string;
  url: string;
  secret: string;
  accountId: string;
}

/** A webhook of the default account (or `accountId`) to `url`, wanting every event. */
export async function seedWebhook(db: Db, url: string, accountId?: string): Promise<SeededWebhook> {
  const webhook = {
    id: newId(),
    url,
    secret: newWebhookSecret(),
    accountId: accountId ?? (await defaultAccountId(db)),
  };
  await db.insert(webhooks).values({ ...webhook, events: ['key.created', 'customer.created'] });
  return webhook;
}

export interface SeedOptions {
  count?: number;
  type?: string;
  /** The stored body of each event (default: an outbox-like JSON text). */
  payload?: (eventId: string) => string;
  /** First attempt due this far from now (default 0: due now). */
  dueInMs?: number;
  /** Retries end this far from now (default: 24 h after the event). */
  expiresInMs?: number;
  /** The event happened this long ago (default 0). */
  createdAgoMs?: number;
  status?: 'pending' | 'delivered' | 'failed';
}

export interface SeededDelivery {
  eventId: string;
  deliveryId: string;
  type: string;
  payload: string;
}

// Not canonical JSON on purpose (spacing, key order, non-ASCII): the body is sent as stored.
const defaultPayload = (type: string) => (eventId: string) =>
  `{"id":"${eventId}", "type":"${type}","createdAt":"2025-11-05T10:15:03.120Z","data":{"customer":{"name":"Zoë 🚀 Ünïcode","email":"zoe@example.com"}}}`;

/** Outbox rows for `webhook`: `count` events with one delivery each, in two statements. */
export async function seedDeliveries(
  db: Db,
  webhook: SeededWebhook,
  options: SeedOptions = {},
): Promise<SeededDelivery[]> {
  const { count = 1, type = 'customer.created', dueInMs = 0, createdAgoMs = 0 } = options;
  const expiresInMs = options.expiresInMs ?? 24 * 3_600_000 - createdAgoMs;
  const status = options.status ?? 'pending';
  const payloadOf = options.payload ?? defaultPayload(type);
  const seeded = Array.from({ length: count }, () => {
    const eventId = newId();
    return { eventId, deliveryId: newId(), type, payload: payloadOf(eventId) };
  });
  await db.insert(webhookEvents).values(
    seeded.map((row) => ({
      id: row.eventId,
      accountId: webhook.accountId,
      type,
      payload: row.payload,
      createdAt: fromNow(-createdAgoMs),
    })),
  );
  await db.insert(webhookDeliveries).values(
    seeded.map((row) => ({
      id: row.deliveryId,
      eventId: row.eventId,
      webhookId: webhook.id,
      status,
      nextAttemptAt: status === 'pending' ? fromNow(dueInMs) : null,
      expiresAt: fromNow(expiresInMs),
      createdAt: fromNow(-createdAgoMs),
    })),
  );
  return seeded;
}

export async function deliveryRow(db: Db, deliveryId: string): Promise<WebhookDelivery> {
  const [row] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, deliveryId));
  if (!row) throw new Error(`no delivery ${deliveryId}`);
  return row;
}

export const deliveryRows = (db: Db, deliveryIds: string[]) =>
  db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.id, deliveryIds));

/** Whether the delivery is pending and due now, on the database's clock. */
export async function isDueNow(db: Db, deliveryId: string): Promise<boolean> {
  const [row] = await db
    .select({ due: sql<boolean>`${webhookDeliveries.nextAttemptAt} <= statement_timestamp()` })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, deliveryId));
  return row?.due === true;
}

/** Removes a webhook with its deliveries (a test's rows stop being retried). */
export const deleteWebhook = (db: Db, webhookId: string) => db.delete(webhooks).where(eq(webhooks.id, webhookId));
