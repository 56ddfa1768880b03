import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { preparedOnce } from '../db/prepared.js';
import { customers, devices, licenseKeys, products, type LicenseKey } from '../db/schema/index.js';
import { addOneCalendarMonth, parseIsoDate, toIso } from '../lib/dates.js';
import { Errors, pgErrorCode } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { recordKeysCreated } from '../lib/metrics.js';
import { generateLicenseKey, keySpaceSize, resolveKeyFormat, type KeyFormat } from '../lib/key-format.js';
import { canSeeProduct, type AuthContext } from '../lib/scopes.js';
import type { CreateKeyBody, GetKeyResponse, License } from '../schemas/keys.js';
import { resolveKeyCustomer } from './customers.js';

const MAX_DRAWS_PER_KEY = 10;

type ActivationLimitInput = string | number | null | undefined;

const toLimit = (value: ActivationLimitInput): number | null | undefined =>
  value === undefined ? undefined : value === null ? null : Number(value);

/**
 * usesPerKey and maxActivations are synonyms (D2): both non-null and different is an error;
 * otherwise the non-null one wins; both absent = unlimited.
 */
export function resolveActivationLimit(usesPerKey: ActivationLimitInput, maxActivations: ActivationLimitInput) {
  const a = toLimit(usesPerKey);
  const b = toLimit(maxActivations);
  if (a != null && b != null && a !== b) throw Errors.activationLimitMismatch();
  if (a === undefined && b === undefined) return undefined;
  return a ?? b ?? null;
}

/** Parses `expiryDate`: undefined = not given, null = never expires. */
export function resolveExpiry(expiryDate: string | null | undefined): Date | null | undefined {
  if (expiryDate === undefined || expiryDate === null) return expiryDate;
  const date = parseIsoDate(expiryDate);
  if (!date) throw Errors.invalidField('expiryDate');
  return date;
}

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

async function insertUniqueKeys(
  db: Db,
  base: Omit<typeof licenseKeys.$inferInsert, 'id' | 'key'>,
  format: KeyFormat,
  amount: number,
): Promise<string[]> {
  const created: string[] = [];
  for (let round = 0; round < MAX_DRAWS_PER_KEY && created.length < amount; round++) {
    const wanted = new Set<string>();
    for (let i = 0; wanted.size < amount - created.length && i < (amount - created.length) * 4; i++) {
      const candidate = generateLicenseKey(format);
      if (!created.includes(candidate)) wanted.add(candidate);
    }
    if (wanted.size === 0) continue;
    // A key already taken in the product (by anyone, committed or concurrent) is skipped and
    // drawn again; the unique index on (product, key) is the arbiter. Sorted, so that two
    // statements racing for the same keys lock them in the same order.
    const inserted = await db
      .insert(licenseKeys)
      .values([...wanted].sort().map((key) => ({ ...base, id: newId(), key })))
      .onConflictDoNothing({ target: [licenseKeys.productId, licenseKeys.key] })
      .returning({ key: licenseKeys.key });
    const insertedKeys = new Set(inserted.map((row) => row.key));
    for (const key of wanted) if (insertedKeys.has(key)) created.push(key);
  }
  if (created.length < amount) throw Errors.invalidField('format');
  return created;
}

const MAX_TRANSACTION_ATTEMPTS = 5;

/**
 * Transactions drawing from a small key space can each wait on a key the other one inserted in
 * an earlier round; PostgreSQL then aborts one of them (40P01). Nothing of it was kept, so the
 * request runs again with fresh draws instead of answering 500.
 */
async function retryOnDeadlock<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= MAX_TRANSACTION_ATTEMPTS || pgErrorCode(err) !== '40P01') throw err;
    }
  }
}

/** A typed statement parameter (the select list of INSERT … SELECT gives PostgreSQL no type). */
const param = (name: string, type: string) => sql`cast(${sql.placeholder(name)} as ${sql.raw(type)})`;

/**
 * The common create-key request (one key, no new customer) as ONE statement: the product check,
 * the customer check and the insert happen in `INSERT … SELECT`, atomic on its own, so the
 * request costs a single round trip instead of BEGIN, two reads, the insert and COMMIT. It is
 * prepared once per database. No row back means "product or customer missing, or the key was
 * taken": the transactional path then answers with the exact error or draws again.
 */
function prepareSingleKeyInsert(db: Db) {
  return db
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
    .returning({ key: licenseKeys.key })
    .prepare('insert_single_license_key');
}

const singleKeyInsert = preparedOnce(prepareSingleKeyInsert);

type KeySettings = Omit<typeof licenseKeys.$inferInsert, 'id' | 'key' | 'customerId'>;

async function tryInsertSingleKey(
  db: Db,
  settings: KeySettings,
  customerId: string | null,
  format: KeyFormat,
): Promise<string | undefined> {
  const statement = singleKeyInsert(db);
  const now = (settings.createdAt ?? new Date()).toISOString();
  try {
    const [row] = await statement.execute({
      id: newId(),
      key: generateLicenseKey(format),
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
    });
    return row?.key;
  } catch (err) {
    // The customer was deleted between the statement's snapshot and its foreign-key check.
    if (pgErrorCode(err) === '23503') return undefined;
    throw err;
  }
}

/** `POST /key`, `POST /create-key` (§2.1): customer and keys written atomically. */
export async function createLicenseKeys(db: Db, auth: AuthContext, body: CreateKeyBody) {
  if (body.customerId !== undefined && body.newCustomer !== undefined) throw Errors.bothCustomerFields();
  const maxActivations = resolveActivationLimit(body.usesPerKey, body.maxActivations) ?? null;
  const now = new Date();
  const expiry = resolveExpiry(body.expiryDate);
  const format = resolveKeyFormat(body.format);
  if (!format) throw Errors.invalidField('format.charset');
  const amount = body.amountKeys === undefined ? 1 : Number(body.amountKeys);
  if (keySpaceSize(format) < amount) throw Errors.invalidField('format');
  const settings: KeySettings = {
    accountId: auth.accountId,
    productId: body.productId,
    maxActivations,
    expiresAt: expiry === undefined ? addOneCalendarMonth(now) : expiry,
    metadata: body.metadata ?? null,
    allowedHosts: body.allowedHosts && body.allowedHosts.length > 0 ? body.allowedHosts : null,
    licenseType: body.licenseType ?? 'node-locked',
    maxConcurrentSessions: body.maxConcurrentSessions ?? null,
    heartbeatInterval: body.heartbeatInterval ?? 300,
    sessionLeaseDuration: body.sessionLeaseDuration ?? 900,
    createdAt: now,
    updatedAt: now,
  };
  const respond = (keys: string[]) => {
    recordKeysCreated(keys.length);
    return { key: keys[0]!, keys: body.amountKeys === undefined ? undefined : keys };
  };

  if (amount === 1 && body.newCustomer === undefined && canSeeProduct(auth, body.productId)) {
    const key = await tryInsertSingleKey(db, settings, body.customerId ?? null, format);
    if (key !== undefined) return respond([key]);
  }

  const keys = await retryOnDeadlock(() =>
    db.transaction(async (tx) => {
      if (!(await findUsableProduct(tx, auth, body.productId))) throw Errors.productNotFoundOrInactive();
      const customer = await resolveKeyCustomer(tx, auth.accountId, body);
      const customerId = customer?.id ?? null;
      return insertUniqueKeys(tx, { ...settings, customerId }, format, amount);
    }),
  );
  return respond(keys);
}

export const isExpired = (key: Pick<LicenseKey, 'expiresAt'>, now = Date.now()): boolean =>
  key.expiresAt !== null && key.expiresAt.getTime() <= now;

/**
 * Finds a key by product and key text within the caller's account and token, optionally
 * locking the row (`FOR UPDATE`) for a check-then-act sequence.
 */
export async function findLicenseKey(
  db: Db,
  auth: AuthContext,
  productId: string,
  licenseKey: string,
  options: { forUpdate?: boolean } = {},
): Promise<LicenseKey | undefined> {
  if (!canSeeProduct(auth, productId)) return undefined;
  const query = db
    .select({ key: licenseKeys })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .where(
      and(
        eq(licenseKeys.productId, productId),
        eq(licenseKeys.key, licenseKey),
        eq(licenseKeys.accountId, auth.accountId),
        eq(products.active, true),
      ),
    )
    .limit(1);
  const [row] = options.forUpdate ? await query.for('update', { of: licenseKeys }) : await query;
  return row?.key;
}

type LicenseWithoutDevices = Omit<License, 'devices'>;

export function toLicenseView(key: LicenseKey, activations: number, now = Date.now()): LicenseWithoutDevices {
  return {
    id: key.id,
    key: key.key,
    productId: key.productId,
    maxActivations: key.maxActivations,
    activations,
    activated: !key.blocked && !isExpired(key, now),
    expirationDate: toIso(key.expiresAt),
    metadata: key.metadata ?? null,
    allowedHosts: key.allowedHosts ?? null,
    licenseType: key.licenseType,
    blocked: key.blocked,
  };
}

const keyWithCustomer = preparedOnce((db) =>
  db
    .select({
      key: licenseKeys,
      customer: { id: customers.id, name: customers.name, email: customers.email, active: customers.active },
    })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(
      and(
        eq(licenseKeys.productId, sql.placeholder('productId')),
        eq(licenseKeys.key, sql.placeholder('licenseKey')),
        eq(licenseKeys.accountId, sql.placeholder('accountId')),
        eq(products.active, true),
      ),
    )
    .limit(1)
    .prepare('license_key_with_customer'),
);

const devicesOfKey = preparedOnce((db) =>
  db
    .select()
    .from(devices)
    .where(eq(devices.licenseKeyId, sql.placeholder('licenseKeyId')))
    .orderBy(asc(devices.activatedAt), asc(devices.id))
    .prepare('devices_of_license_key'),
);

/** `GET /key`, `POST /get-key` (§2.2): no state check, blocked and expired keys are returned. */
export async function getLicenseKey(
  db: Db,
  auth: AuthContext,
  productId: string,
  licenseKey: string,
): Promise<GetKeyResponse> {
  if (!canSeeProduct(auth, productId)) throw Errors.licenseKeyNotFound();
  const [row] = await keyWithCustomer(db).execute({ productId, licenseKey, accountId: auth.accountId });
  if (!row) throw Errors.licenseKeyNotFound();
  const keyDevices = await devicesOfKey(db).execute({ licenseKeyId: row.key.id });
  return {
    code: 0,
    data: {
      license: {
        ...toLicenseView(row.key, keyDevices.length),
        devices: keyDevices.map((device) => ({
          hostId: device.hostId,
          deviceTag: device.deviceTag,
          ipAddress: device.ipAddress,
          activationTime: device.activatedAt.toISOString(),
        })),
      },
      customer: row.customer,
    },
  };
}
