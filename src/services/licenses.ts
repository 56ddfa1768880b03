import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { devices, licenseKeys, type Customer, type LicenseKey } from '../db/schema/index.js';
import { AppError, Errors } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { recordActivation, recordActivationRefusal } from '../lib/metrics.js';
import type { AuthContext } from '../lib/scopes.js';
import type { ActivateBody, ActivateResponse, DeactivateBody, UpdateKeyBody } from '../schemas/lifecycle.js';
import { findCustomer, findCustomerByEmail, insertCustomer, resolveKeyCustomer } from './customers.js';
import { findLicenseKey, isExpired, resolveActivationLimit, resolveExpiry } from './keys.js';

async function lockKey(tx: Db, auth: AuthContext, productId: string, licenseKey: string): Promise<LicenseKey> {
  const key = await findLicenseKey(tx, auth, productId, licenseKey, { forUpdate: true });
  if (!key) throw Errors.licenseKeyNotFound();
  return key;
}

/** Sockets on a dual-stack listener report IPv4 clients as IPv4-mapped IPv6 addresses. */
const plainIp = (ip: string): string => (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? ip.slice(7) : ip);

/**
 * Finds-or-creates the licensee. The insert runs in a savepoint so that losing a race against a
 * concurrent insert of the same email leaves the activation's transaction usable for re-reading
 * the winner; should the winner be gone too, that is an unexpected failure (500).
 */
async function createLicensee(tx: Db, accountId: string, licensee: { name: string; email: string }) {
  const raceLost = new AppError(500, 1, 'Server error');
  try {
    return await tx.transaction((savepoint) => insertCustomer(savepoint, accountId, licensee, () => raceLost));
  } catch (err) {
    if (err !== raceLost) throw err;
    const winner = await findCustomerByEmail(tx, accountId, licensee.email, { keyShare: true });
    if (!winner) throw err;
    return winner;
  }
}

/**
 * Steps 7–8 of §2.4 in one statement, run under the key's row lock: inserts the device unless
 * its host is already active on the key (unique index) or the key already holds
 * maxActivations devices. Returns whether a device was recorded.
 */
async function recordDevice(
  tx: Db,
  key: LicenseKey,
  device: { hostId: string; deviceTag: string | null; ipAddress: string | null },
): Promise<boolean> {
  const values = { id: newId(), licenseKeyId: key.id, ...device, activatedAt: new Date() };
  if (key.maxActivations === null) {
    const inserted = await tx
      .insert(devices)
      .values(values)
      .onConflictDoNothing({ target: [devices.licenseKeyId, devices.hostId] })
      .returning({ id: devices.id });
    return inserted.length > 0;
  }
  const text = (value: string | null) => sql`cast(${value} as text)`;
  const inserted = await tx
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
  return inserted.length > 0;
}

/**
 * `POST /key/activate`, `POST /activate-key` (§2.4). Every check runs on the key row locked
 * until commit, so concurrent activations from any number of processes are serialized per key
 * and can never exceed maxActivations.
 */
export async function activateLicenseKey(
  db: Db,
  auth: AuthContext,
  body: ActivateBody,
  clientIp: string | undefined,
): Promise<ActivateResponse> {
  try {
    const response = await activateInTransaction(db, auth, body, clientIp);
    recordActivation('accepted');
    return response;
  } catch (err) {
    recordActivationRefusal(err);
    throw err;
  }
}

function activateInTransaction(
  db: Db,
  auth: AuthContext,
  body: ActivateBody,
  clientIp: string | undefined,
): Promise<ActivateResponse> {
  return db.transaction(async (tx) => {
    const key = await lockKey(tx, auth, body.productId, body.licenseKey);
    if (key.licenseType === 'floating') throw Errors.floatingMustCheckout();
    if (key.blocked) throw Errors.blocked();
    if (isExpired(key)) throw Errors.expired();

    let customer: Customer | undefined;
    if (key.customerId !== null) {
      customer = await findCustomer(tx, auth.accountId, key.customerId);
    } else if (body.licensee) {
      // Found by email, it may be assigned below: key-share makes a concurrent delete wait.
      customer = await findCustomerByEmail(tx, auth.accountId, body.licensee.email, { keyShare: true });
    }
    if (customer && !customer.active) throw Errors.customerInactive();

    const hostId = body.hostId ?? newId();
    if (key.allowedHosts !== null && !key.allowedHosts.includes(hostId)) throw Errors.hostNotAllowed();

    const recorded = await recordDevice(tx, key, {
      hostId,
      deviceTag: body.deviceTag ?? null,
      ipAddress: clientIp === undefined ? null : plainIp(clientIp),
    });
    if (!recorded) {
      // Nothing inserted: the host is already active (step 7: 200, device unchanged) or the key is
      // full (step 9).
      const [active] = await tx
        .select({ id: devices.id })
        .from(devices)
        .where(and(eq(devices.licenseKeyId, key.id), eq(devices.hostId, hostId)))
        .limit(1);
      if (!active) throw Errors.activationLimitReached();
    }

    if (key.customerId === null && body.licensee) {
      customer ??= await createLicensee(tx, auth.accountId, body.licensee);
      await tx
        .update(licenseKeys)
        .set({ customerId: customer.id, updatedAt: new Date() })
        .where(eq(licenseKeys.id, key.id));
    }

    return {
      code: 0 as const,
      message: 'License valid',
      licenseeName: customer?.name ?? null,
      licenseeEmail: customer?.email ?? null,
      hostId,
      expirationDate: key.expiresAt ? key.expiresAt.toISOString() : null,
      metadata: key.metadata ?? null,
      allowedHosts: key.allowedHosts ?? null,
    };
  });
}

/** `POST /key/deactivate`, `POST /deactivate-key` (§2.5): one device, or all of them. */
export async function deactivateLicenseKey(db: Db, auth: AuthContext, body: DeactivateBody): Promise<void> {
  await db.transaction(async (tx) => {
    const key = await lockKey(tx, auth, body.productId, body.licenseKey);
    const removed = await tx
      .delete(devices)
      .where(
        body.hostId === undefined
          ? eq(devices.licenseKeyId, key.id)
          : and(eq(devices.licenseKeyId, key.id), eq(devices.hostId, body.hostId)),
      )
      .returning({ id: devices.id });
    if (removed.length > 0) return;
    throw body.hostId === undefined ? Errors.notActivated() : Errors.deviceNotFound();
  });
}

/** Block / unblock (§2.6): idempotent; the row is written only on an actual change. */
export async function setLicenseKeyBlocked(
  db: Db,
  auth: AuthContext,
  lookup: { productId: string; licenseKey: string },
  blocked: boolean,
): Promise<void> {
  await db.transaction(async (tx) => {
    const key = await lockKey(tx, auth, lookup.productId, lookup.licenseKey);
    if (key.blocked === blocked) return;
    await tx.update(licenseKeys).set({ blocked, updatedAt: new Date() }).where(eq(licenseKeys.id, key.id));
  });
}

/** Key-order independent JSON text, to compare jsonb values (PostgreSQL reorders their keys). */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, child]) => `${JSON.stringify(name)}:${canonicalJson(child)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const sameHosts = (a: string[] | null, b: string[] | null): boolean =>
  a === null || b === null ? a === b : a.length === b.length && a.every((host, i) => host === b[i]);

/**
 * `PATCH /key` (§2.3): only fields present change, on the locked row, in one transaction;
 * values equal to the stored ones are no change, and an update without changes writes nothing.
 */
export async function updateLicenseKey(db: Db, auth: AuthContext, body: UpdateKeyBody): Promise<void> {
  if (body.customerId !== undefined && body.newCustomer !== undefined) throw Errors.bothCustomerFields();
  const maxActivations = resolveActivationLimit(body.usesPerKey, body.maxActivations);
  const expiresAt = resolveExpiry(body.expiryDate);

  await db.transaction(async (tx) => {
    const key = await lockKey(tx, auth, body.productId, body.licenseKey);
    const changes: Partial<typeof licenseKeys.$inferInsert> = {};

    if (body.customerId === null) {
      if (key.customerId !== null) changes.customerId = null;
    } else {
      const customer = await resolveKeyCustomer(tx, auth.accountId, {
        customerId: body.customerId,
        newCustomer: body.newCustomer,
      });
      if (customer && customer.id !== key.customerId) changes.customerId = customer.id;
    }

    if (maxActivations !== undefined && maxActivations !== key.maxActivations) changes.maxActivations = maxActivations;
    if (expiresAt !== undefined && expiresAt?.getTime() !== key.expiresAt?.getTime()) changes.expiresAt = expiresAt;
    if (body.metadata !== undefined && canonicalJson(body.metadata) !== canonicalJson(key.metadata)) {
      changes.metadata = body.metadata;
    }
    if (body.allowedHosts !== undefined) {
      const allowedHosts = body.allowedHosts && body.allowedHosts.length > 0 ? body.allowedHosts : null;
      if (!sameHosts(allowedHosts, key.allowedHosts)) changes.allowedHosts = allowedHosts;
    }
    if (body.licenseType !== undefined && body.licenseType !== key.licenseType) changes.licenseType = body.licenseType;
    if (body.maxConcurrentSessions !== undefined && body.maxConcurrentSessions !== key.maxConcurrentSessions) {
      changes.maxConcurrentSessions = body.maxConcurrentSessions;
    }
    if (body.heartbeatInterval !== undefined && body.heartbeatInterval !== key.heartbeatInterval) {
      changes.heartbeatInterval = body.heartbeatInterval;
    }
    if (body.sessionLeaseDuration !== undefined && body.sessionLeaseDuration !== key.sessionLeaseDuration) {
      changes.sessionLeaseDuration = body.sessionLeaseDuration;
    }

    if (Object.keys(changes).length === 0) return;
    // A floating key grants sessions, never device slots (§3).
    if (changes.licenseType === 'floating') await tx.delete(devices).where(eq(devices.licenseKeyId, key.id));
    await tx
      .update(licenseKeys)
      .set({ ...changes, updatedAt: new Date() })
      .where(eq(licenseKeys.id, key.id));
  });
}
