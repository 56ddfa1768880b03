import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { executePrepared, preparedOnce } from '../../db/prepared.js';
import {
  type Customer,
  customers,
  devices,
  idempotencyKeys,
  type LicenseKey,
  licenseKeys,
  products,
  webhookDeliveries,
  webhookEvents,
  webhooks,
} from '../../db/schema/index.js';
import { pgErrorCode } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { generateLicenseKey, type KeyFormat } from '../../lib/key-format.js';
import { type AuthContext, canSeeProduct } from '../../lib/scopes.js';
import { answerUpdate } from '../idempotency/store.js';
import type { DeviceView } from './schemas.js';

/** Data access of license keys and their devices. */

export type NewKeySettings = Omit<typeof licenseKeys.$inferInsert, 'id' | 'key' | 'customerId'>;

/** Active product of the caller's account that the token may use, or undefined. */
export async function findUsableProduct(db: Db, auth: AuthContext, productId: string) {
  if (!canSeeProduct(auth, productId)) return undefined;
  const [product] = await db
    .select({ id: products.id })
    .from(products)
    .where(and(eq(products.id, productId), eq(products.accountId, auth.accountId), eq(products.active, true)))
    .limit(1);
  return product;
}

const MAX_DRAWS_PER_KEY = 10;

/**
 * Inserts `amount` keys drawn from `format`. A key already taken in the product (by anyone,
 * committed or concurrent) is skipped and drawn again; the unique index on (product, key) is the
 * arbiter. Returns the keys inserted, or fewer when the key space ran out of free keys.
 */
export async function insertUniqueKeys(
  db: Db,
  base: Omit<typeof licenseKeys.$inferInsert, 'id' | 'key'>,
  format: KeyFormat,
  amount: number,
): Promise<{ id: string; key: string }[]> {
  const created: { id: string; key: string }[] = [];
  const taken = new Set<string>();
  for (let round = 0; round < MAX_DRAWS_PER_KEY && created.length < amount; round++) {
    const wanted = new Set<string>();
    for (let i = 0; wanted.size < amount - created.length && i < (amount - created.length) * 4; i++) {
      const candidate = generateLicenseKey(format);
      if (!taken.has(candidate)) wanted.add(candidate);
    }
    if (wanted.size === 0) continue;
    // Sorted, so that two statements racing for the same keys lock them in the same order.
    const inserted = await db
      .insert(licenseKeys)
      .values([...wanted].sort().map((key) => ({ ...base, id: newId(), key })))
      .onConflictDoNothing({ target: [licenseKeys.productId, licenseKeys.key] })
      .returning({ id: licenseKeys.id, key: licenseKeys.key });
    const byKey = new Map(inserted.map((row) => [row.key, row]));
    // In draw order, as the keys are answered.
    for (const key of wanted) {
      const row = byKey.get(key);
      if (row) {
        created.push(row);
        taken.add(key);
      }
    }
  }
  return created;
}

/** A typed statement parameter (the select list of INSERT … SELECT gives PostgreSQL no type). */
const param = (name: string, type: string) => sql`cast(${sql.placeholder(name)} as ${sql.raw(type)})`;

/**
 * One key for an existing (or no) customer as ONE statement: the product check, the customer
 * check, the insert and the key's webhook outbox rows happen in `WITH … INSERT … SELECT`, atomic
 * on its own, so the request costs a single round trip instead of BEGIN, two reads, the insert,
 * the outbox and COMMIT. The `key.created` event (its payload rendered by the caller) is written
 * only when the key was inserted and a webhook of the account wants it, with one delivery per
 * such webhook. No row back means "product or customer missing, or the key was taken".
 */
const singleKeyInsert = preparedOnce((db) => {
  const created = db.$with('created_key').as(
    db
      .insert(licenseKeys)
      .select(
        db
          .select({
            id: param('id', 'text').as('id'),
            accountId: products.accountId,
            productId: products.id,
            key: param('key', 'text').as('key'),
            maxActivations: param('maxActivations', 'integer').as('maxActivations'),
            expiresAt: param('expiresAt', 'timestamptz').as('expiresAt'),
            customerId: sql`${customers.id}`.as('customerId'),
            metadata: param('metadata', 'jsonb').as('metadata'),
            allowedHosts: param('allowedHosts', 'text[]').as('allowedHosts'),
            licenseType: param('licenseType', 'text').as('licenseType'),
            maxConcurrentSessions: param('maxConcurrentSessions', 'integer').as('maxConcurrentSessions'),
            heartbeatInterval: param('heartbeatInterval', 'integer').as('heartbeatInterval'),
            sessionLeaseDuration: param('sessionLeaseDuration', 'integer').as('sessionLeaseDuration'),
            blocked: sql`false`.as('blocked'),
            createdAt: param('now', 'timestamptz').as('createdAt'),
            updatedAt: param('now', 'timestamptz').as('updatedAt'),
          })
          .from(products)
          .leftJoin(
            customers,
            and(eq(customers.id, sql.placeholder('customerId')), eq(customers.accountId, products.accountId)),
          )
          .where(
            and(
              eq(products.id, sql.placeholder('productId')),
              eq(products.accountId, sql.placeholder('accountId')),
              eq(products.active, true),
              sql`(${param('customerId', 'text')} is null or ${customers.id} is not null)`,
            ),
          ),
      )
      .onConflictDoNothing({ target: [licenseKeys.productId, licenseKeys.key] })
      .returning({ id: licenseKeys.id, key: licenseKeys.key }),
  );
  const hooks = db.$with('key_created_hooks').as(
    db
      .select({ webhookId: sql<string>`${webhooks.id}`.as('webhook_id') })
      .from(webhooks)
      .where(and(eq(webhooks.accountId, sql.placeholder('accountId')), sql`'key.created' = any(${webhooks.events})`)),
  );
  const event = db.$with('key_created_event').as(
    db
      .insert(webhookEvents)
      .select(
        db
          .select({
            id: param('eventId', 'text').as('id'),
            accountId: param('accountId', 'text').as('account_id'),
            type: sql`'key.created'`.as('type'),
            payload: param('payload', 'text').as('payload'),
            createdAt: param('now', 'timestamptz').as('created_at'),
          })
          .from(created)
          .where(sql`exists (select 1 from ${hooks})`),
      )
      .returning({ eventId: webhookEvents.id }),
  );
  const deliveries = db.$with('key_created_deliveries').as(
    db
      .insert(webhookDeliveries)
      .select(
        db
          .select({
            id: sql`keymint_new_id()`.as('id'),
            eventId: event.eventId,
            webhookId: hooks.webhookId,
            status: sql`'pending'`.as('status'),
            attempts: sql`0`.as('attempts'),
            nextAttemptAt: param('now', 'timestamptz').as('next_attempt_at'),
            expiresAt: param('deliveryExpiresAt', 'timestamptz').as('expires_at'),
            lease: sql`null`.as('lease'),
            lastStatusCode: sql`null::integer`.as('last_status_code'),
            lastError: sql`null`.as('last_error'),
            lastAttemptAt: sql`null::timestamptz`.as('last_attempt_at'),
            deliveredAt: sql`null::timestamptz`.as('delivered_at'),
            createdAt: param('now', 'timestamptz').as('created_at'),
          })
          .from(event)
          .crossJoin(hooks),
      )
      .returning({ id: webhookDeliveries.id }),
  );
  // The request's idempotency record gets its answer in this statement too, when it has one
  // (the placeholders are null otherwise and the update matches no row).
  const answered = db
    .$with('idempotent_answer')
    .as(
      answerUpdate(
        db,
        { scope: 'claimScope', key: 'claimKey', lockToken: 'claimLockToken', status: 'answerStatus', body: 'answer' },
        sql`exists (select 1 from ${created})`,
      ).returning({ scope: idempotencyKeys.scope }),
    );
  return db
    .with(created, hooks, event, deliveries, answered)
    .select({
      id: created.id,
      key: created.key,
      deliveries: sql<number>`(select count(*)::int from ${deliveries})`,
      answered: sql<boolean>`exists (select 1 from ${answered})`,
    })
    .from(created)
    .prepare('insert_single_license_key');
});

/** What the single-statement insert needs besides the key's settings. */
export interface SingleKeyOutbox {
  /** The `key.created` body of the key with this id and value (stored only when a webhook wants it). */
  render(id: string, key: string, eventId: string): string;
  /** When retries of its deliveries stop. */
  deliveryExpiresAt: Date;
}

/** The request's idempotency record, and the answer (its exact text) for a key value. */
export interface SingleKeyAnswer {
  scope: string;
  key: string;
  lockToken: string;
  render(key: string): string;
}

/** The single-statement insert; undefined when it inserted nothing (see above). */
export async function tryInsertSingleKey(
  db: Db,
  settings: NewKeySettings,
  customerId: string | null,
  format: KeyFormat,
  outbox: SingleKeyOutbox,
  answer?: SingleKeyAnswer,
): Promise<{ id: string; key: string; deliveries: number; answered: boolean } | undefined> {
  const now = (settings.createdAt ?? new Date()).toISOString();
  const id = newId();
  const key = generateLicenseKey(format);
  const eventId = newId();
  try {
    const [row] = await singleKeyInsert(db).execute({
      id,
      key,
      maxActivations: settings.maxActivations ?? null,
      expiresAt: settings.expiresAt ? settings.expiresAt.toISOString() : null,
      metadata: settings.metadata == null ? null : JSON.stringify(settings.metadata),
      allowedHosts: settings.allowedHosts ?? null,
      licenseType: settings.licenseType,
      maxConcurrentSessions: settings.maxConcurrentSessions ?? null,
      heartbeatInterval: settings.heartbeatInterval,
      sessionLeaseDuration: settings.sessionLeaseDuration,
      now,
      customerId,
      productId: settings.productId,
      accountId: settings.accountId,
      eventId,
      payload: outbox.render(id, key, eventId),
      deliveryExpiresAt: outbox.deliveryExpiresAt.toISOString(),
      claimScope: answer?.scope ?? null,
      claimKey: answer?.key ?? null,
      claimLockToken: answer?.lockToken ?? null,
      answerStatus: 200,
      answer: answer ? answer.render(key) : null,
    });
    return row;
  } catch (err) {
    // The customer was deleted between the statement's snapshot and its foreign-key check.
    if (pgErrorCode(err) === '23503') return undefined;
    throw err;
  }
}

/**
 * The key of a product in the caller's account (and token), locked (`FOR UPDATE`) until the
 * transaction ends: every check-then-act on a key runs on this row.
 */
export async function lockLicenseKey(
  tx: Db,
  auth: AuthContext,
  lookup: { productId: string; licenseKey: string },
): Promise<LicenseKey | undefined> {
  if (!canSeeProduct(auth, lookup.productId)) return undefined;
  const query = tx
    .select({ key: licenseKeys })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .where(
      and(
        eq(licenseKeys.productId, lookup.productId),
        eq(licenseKeys.key, lookup.licenseKey),
        eq(licenseKeys.accountId, auth.accountId),
        eq(products.active, true),
      ),
    )
    .limit(1)
    .for('update', { of: licenseKeys });
  const [row] = await executePrepared(query, 'lock_license_key');
  return row?.key;
}

/** What `lockKeyAndRecordDevice` found and did. */
export interface LockedActivation {
  key: LicenseKey;
  /** The key's customer (none: the key has none). */
  customer: Customer | undefined;
  /** A device was inserted for the host. */
  recorded: boolean;
  /** The host was already active on the key (nothing inserted). */
  present: boolean;
}

/**
 * An activation's two statements, sent together (pipelined: one round trip, the key row's lock
 * held only inside PostgreSQL meanwhile):
 * 1. the key with its customer, the key row locked `FOR UPDATE` until the transaction ends;
 * 2. the device, inserted unless the host is already active on the key or the key holds
 *    `maxActivations` devices, and whether the host was there. PostgreSQL runs it once the lock
 *    is granted, on a snapshot taken then: it counts every device the previous holder committed.
 * The insert does not apply the licensing rules (blocked, expired, ...): the caller checks them
 * on the locked row and rolls the transaction back when one fails.
 */
export async function lockKeyAndRecordDevice(
  tx: Db,
  auth: AuthContext,
  lookup: { productId: string; licenseKey: string },
  device: NewDevice,
): Promise<LockedActivation | undefined> {
  if (!canSeeProduct(auth, lookup.productId)) return undefined;
  const theKey = and(
    eq(licenseKeys.productId, lookup.productId),
    eq(licenseKeys.key, lookup.licenseKey),
    eq(licenseKeys.accountId, auth.accountId),
  );
  const lock = tx
    .select({ key: licenseKeys, customer: customers })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, and(eq(customers.id, licenseKeys.customerId), eq(customers.accountId, licenseKeys.accountId)))
    .where(and(theKey, eq(products.active, true)))
    .limit(1)
    .for('update', { of: licenseKeys });
  const text = (value: string | null) => sql`cast(${value} as text)`;
  const inserted = tx.$with('inserted').as(
    tx
      .insert(devices)
      .select(
        tx
          .select({
            id: text(newId()).as('id'),
            licenseKeyId: licenseKeys.id,
            hostId: text(device.hostId).as('host_id'),
            deviceTag: text(device.deviceTag).as('device_tag'),
            ipAddress: text(device.ipAddress).as('ip_address'),
            activatedAt: sql`cast(${new Date().toISOString()} as timestamptz)`.as('activated_at'),
          })
          .from(licenseKeys)
          .where(
            and(
              theKey,
              sql`(${licenseKeys.maxActivations} is null or (select count(*) from ${devices} where ${devices.licenseKeyId} = ${licenseKeys.id}) < ${licenseKeys.maxActivations})`,
            ),
          ),
      )
      .onConflictDoNothing({ target: [devices.licenseKeyId, devices.hostId] })
      .returning({ id: devices.id }),
  );
  const record = tx
    .with(inserted)
    .select({
      recorded: sql<boolean>`exists (select 1 from ${inserted})`,
      // Qualified by hand: drizzle leaves the columns in an sql template of a select unqualified.
      present: sql<boolean>`exists (select 1 from "devices" inner join "license_keys" on "license_keys"."id" = "devices"."license_key_id" where "license_keys"."product_id" = ${lookup.productId} and "license_keys"."key" = ${lookup.licenseKey} and "license_keys"."account_id" = ${auth.accountId} and "devices"."host_id" = ${device.hostId})`,
    })
    .from(sql`(select 1) as one`);
  const [locked, recorded] = await Promise.all([
    executePrepared(lock, 'lock_license_key_with_customer'),
    executePrepared(record, 'record_device_within_limit'),
  ]);
  const row = locked[0];
  if (!row) return undefined;
  const flags = recorded[0]!;
  return { key: row.key, customer: row.customer ?? undefined, recorded: flags.recorded, present: flags.present };
}

/** The customer of a key as the key's answers show it. */
const shortCustomer = { id: customers.id, name: customers.name, email: customers.email, active: customers.active };

/** The key (productId, licenseKey placeholders) of an active product of the account (accountId). */
const activeKeyOfAccount = () =>
  and(
    eq(licenseKeys.productId, sql.placeholder('productId')),
    eq(licenseKeys.key, sql.placeholder('licenseKey')),
    eq(licenseKeys.accountId, sql.placeholder('accountId')),
    eq(products.active, true),
  );

const keyWithCustomer = preparedOnce((db) =>
  db
    .select({ key: licenseKeys, customer: shortCustomer })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(activeKeyOfAccount())
    .limit(1)
    .prepare('license_key_with_customer'),
);

/** A key (of an active product of the account) with its customer's short record. */
export async function findKeyWithCustomer(
  db: Db,
  accountId: string,
  lookup: { productId: string; licenseKey: string },
) {
  const [row] = await keyWithCustomer(db).execute({ ...lookup, accountId });
  return row;
}

/** A key's devices as the contract shows them (DeviceView), oldest activation first, in JSON. */
const deviceViewsOf = (licenseKeyId: typeof licenseKeys.id) =>
  sql<DeviceView[]>`coalesce((
    select json_agg(json_build_object(
      'hostId', ${devices.hostId}, 'deviceTag', ${devices.deviceTag}, 'ipAddress', ${devices.ipAddress},
      'activationTime', to_char(${devices.activatedAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ) order by ${devices.activatedAt}, ${devices.id})
    from ${devices} where ${devices.licenseKeyId} = ${licenseKeyId}
  ), '[]'::json)`.mapWith((value: unknown) => (typeof value === 'string' ? JSON.parse(value) : value));

const keyWithCustomerAndDevices = preparedOnce((db) =>
  db
    .select({ key: licenseKeys, customer: shortCustomer, devices: deviceViewsOf(licenseKeys.id) })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(activeKeyOfAccount())
    .limit(1)
    .prepare('license_key_with_customer_and_devices'),
);

/** `findKeyWithCustomer` and the key's devices, in one statement (GET /key's one round trip). */
export async function findKeyWithCustomerAndDevices(
  db: Db,
  accountId: string,
  lookup: { productId: string; licenseKey: string },
) {
  const [row] = await keyWithCustomerAndDevices(db).execute({ ...lookup, accountId });
  return row;
}

export interface NewDevice {
  hostId: string;
  deviceTag: string | null;
  ipAddress: string | null;
}

/**
 * Records a device in one statement, run under the key's row lock: nothing is inserted when the
 * host is already active on the key (unique index) or the key already holds `maxActivations`
 * devices. Returns whether a device was recorded.
 */
export async function insertDeviceWithinLimit(tx: Db, key: LicenseKey, device: NewDevice): Promise<boolean> {
  const values = { id: newId(), licenseKeyId: key.id, ...device, activatedAt: new Date() };
  if (key.maxActivations === null) {
    const query = tx
      .insert(devices)
      .values(values)
      .onConflictDoNothing({ target: [devices.licenseKeyId, devices.hostId] })
      .returning({ id: devices.id });
    return (await executePrepared(query, 'insert_device')).length > 0;
  }
  const text = (value: string | null) => sql`cast(${value} as text)`;
  const query = tx
    .insert(devices)
    .select(
      tx
        .select({
          id: text(values.id).as('id'),
          licenseKeyId: licenseKeys.id,
          hostId: text(values.hostId).as('host_id'),
          deviceTag: text(values.deviceTag).as('device_tag'),
          ipAddress: text(values.ipAddress).as('ip_address'),
          activatedAt: sql`cast(${values.activatedAt.toISOString()} as timestamptz)`.as('activated_at'),
        })
        .from(licenseKeys)
        .where(
          and(
            eq(licenseKeys.id, key.id),
            sql`(select count(*) from ${devices} where ${devices.licenseKeyId} = ${key.id}) < ${key.maxActivations}`,
          ),
        ),
    )
    .onConflictDoNothing({ target: [devices.licenseKeyId, devices.hostId] })
    .returning({ id: devices.id });
  return (await executePrepared(query, 'insert_device_within_limit')).length > 0;
}

/** Whether `hostId` is active on the key. */
export async function hasDevice(tx: Db, licenseKeyId: string, hostId: string): Promise<boolean> {
  const query = tx
    .select({ id: devices.id })
    .from(devices)
    .where(and(eq(devices.licenseKeyId, licenseKeyId), eq(devices.hostId, hostId)))
    .limit(1);
  return (await executePrepared(query, 'device_of_key_by_host')).length > 0;
}

/** Deletes one device of the key, or every device when `hostId` is undefined; the hosts removed. */
export async function deleteDevices(tx: Db, licenseKeyId: string, hostId: string | undefined): Promise<string[]> {
  const removed = await tx
    .delete(devices)
    .where(
      hostId === undefined
        ? eq(devices.licenseKeyId, licenseKeyId)
        : and(eq(devices.licenseKeyId, licenseKeyId), eq(devices.hostId, hostId)),
    )
    .returning({ hostId: devices.hostId });
  return removed.map((row) => row.hostId);
}

export async function updateLicenseKeyRow(
  tx: Db,
  licenseKeyId: string,
  changes: Partial<typeof licenseKeys.$inferInsert>,
) {
  await tx
    .update(licenseKeys)
    .set({ ...changes, updatedAt: new Date() })
    .where(eq(licenseKeys.id, licenseKeyId));
}
