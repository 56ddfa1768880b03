import type { Db } from '../../db/client.js';
import type { Customer, LicenseKey, licenseKeys } from '../../db/schema/index.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { Errors } from '../../lib/errors.js';
import type { DomainEvent, Outcome } from '../../lib/events.js';
import { newId } from '../../lib/ids.js';
import { type KeyFormat, keySpaceSize, resolveKeyFormat } from '../../lib/key-format.js';
import { type AuthContext, canSeeProduct } from '../../lib/scopes.js';
import { findCustomer, findCustomerByEmail, insertCustomer } from '../customers/queries.js';
import { endLiveSessions } from '../sessions/queries.js';
import { licensePayload, type OutboxSettings, renderEvent } from '../webhooks/outbox.js';
import {
  assertActivatable,
  assertUsable,
  defaultExpiry,
  KEY_SETTING_DEFAULTS,
  normalizeAllowedHosts,
  resolveActivationLimit,
  resolveExpiry,
} from './policy.js';
import {
  deleteDevices,
  findKeyWithCustomerAndDevices,
  findUsableProduct,
  hasDevice,
  insertDeviceWithinLimit,
  insertUniqueKeys,
  lockKeyAndRecordDevice,
  lockLicenseKey,
  type NewDevice,
  type NewKeySettings,
  type SingleKeyAnswer,
  tryInsertSingleKey,
  updateLicenseKeyRow,
} from './queries.js';
import type {
  ActivateBody,
  Activation,
  CreateKeyBody,
  DeactivateBody,
  LicenseWithCustomer,
  UpdateKeyBody,
} from './schemas.js';
import { toLicenseView } from './views.js';

/**
 * License-key operations (docs/api.md, "Create license keys" to "Block and unblock"). Each takes
 * the request's open transaction (or, for reads, the database) and returns what it produced with
 * the events of the change; the caller owns the transaction and the HTTP envelope.
 */

export interface KeyLookup {
  productId: string;
  licenseKey: string;
}

async function lockKey(tx: Db, auth: AuthContext, lookup: KeyLookup): Promise<LicenseKey> {
  const key = await lockLicenseKey(tx, auth, lookup);
  if (!key) throw Errors.licenseKeyNotFound();
  return key;
}

/** A create-key request, checked and resolved to what will be inserted. */
export interface KeyCreation {
  auth: AuthContext;
  body: CreateKeyBody;
  settings: NewKeySettings;
  format: KeyFormat;
  amount: number;
}

/** Validates a create-key request beyond its schema and fills in the defaults. */
export function planKeyCreation(auth: AuthContext, body: CreateKeyBody): KeyCreation {
  if (body.customerId !== undefined && body.newCustomer !== undefined) throw Errors.bothCustomerFields();
  const maxActivations = resolveActivationLimit(body.usesPerKey, body.maxActivations) ?? null;
  const expiry = resolveExpiry(body.expiryDate);
  const format = resolveKeyFormat(body.format);
  if (!format) throw Errors.invalidField('format.charset');
  const amount = body.amountKeys === undefined ? 1 : Number(body.amountKeys);
  if (keySpaceSize(format) < amount) throw Errors.invalidField('format');
  const now = new Date();
  return {
    auth,
    body,
    format,
    amount,
    settings: {
      accountId: auth.accountId,
      productId: body.productId,
      maxActivations,
      expiresAt: expiry === undefined ? defaultExpiry(now) : expiry,
      metadata: body.metadata ?? null,
      allowedHosts: normalizeAllowedHosts(body.allowedHosts),
      licenseType: body.licenseType ?? KEY_SETTING_DEFAULTS.licenseType,
      maxConcurrentSessions: body.maxConcurrentSessions ?? null,
      heartbeatInterval: body.heartbeatInterval ?? KEY_SETTING_DEFAULTS.heartbeatInterval,
      sessionLeaseDuration: body.sessionLeaseDuration ?? KEY_SETTING_DEFAULTS.sessionLeaseDuration,
      createdAt: now,
      updatedAt: now,
    },
  };
}

const keysCreated = (keys: { id: string; key: string }[], events: DomainEvent[] = []): Outcome<{ keys: string[] }> => ({
  keys: keys.map((row) => row.key),
  events: [...events, ...keys.map((row) => ({ type: 'key.created' as const, licenseKeyId: row.id }))],
});

/**
 * The common request — one key, no new customer — as one statement that is atomic on its own
 * (no transaction needed). undefined when the request is not of that kind, or the statement
 * inserted nothing (product or customer missing, key taken): `createLicenseKeys` then answers
 * with the exact error or draws again.
 */
export async function createSingleLicenseKey(
  db: Db,
  creation: KeyCreation,
  outbox: OutboxSettings,
  answer?: SingleKeyAnswer,
): Promise<(Outcome<{ keys: string[] }> & { deliveries: number; answered: boolean }) | undefined> {
  const { auth, body, amount, settings } = creation;
  if (amount !== 1 || body.newCustomer !== undefined || !canSeeProduct(auth, body.productId)) return undefined;
  const customerId = body.customerId ?? null;
  const createdAt = settings.createdAt ?? new Date();
  const render = (id: string, key: string, eventId: string) => {
    const row: LicenseKey = {
      id,
      key,
      customerId,
      accountId: settings.accountId,
      productId: settings.productId,
      maxActivations: settings.maxActivations ?? null,
      expiresAt: settings.expiresAt ?? null,
      metadata: settings.metadata ?? null,
      allowedHosts: settings.allowedHosts ?? null,
      licenseType: settings.licenseType ?? KEY_SETTING_DEFAULTS.licenseType,
      maxConcurrentSessions: settings.maxConcurrentSessions ?? null,
      heartbeatInterval: settings.heartbeatInterval ?? KEY_SETTING_DEFAULTS.heartbeatInterval,
      sessionLeaseDuration: settings.sessionLeaseDuration ?? KEY_SETTING_DEFAULTS.sessionLeaseDuration,
      blocked: false,
      createdAt,
      updatedAt: createdAt,
    };
    return renderEvent(eventId, 'key.created', createdAt, { license: licensePayload(row, 0, createdAt.getTime()) });
  };
  const row = await tryInsertSingleKey(
    db,
    settings,
    customerId,
    creation.format,
    {
      render,
      deliveryExpiresAt: new Date(createdAt.getTime() + outbox.retryWindowMs),
    },
    answer,
  );
  // Written by the statement itself: the events are not the unit of work's to write.
  return row ? { keys: [row.key], events: [], deliveries: row.deliveries, answered: row.answered } : undefined;
}

/** Creates the keys, and the new customer when asked, in the caller's transaction. */
export async function createLicenseKeys(tx: Db, creation: KeyCreation): Promise<Outcome<{ keys: string[] }>> {
  const { auth, body } = creation;
  if (!(await findUsableProduct(tx, auth, body.productId))) throw Errors.productNotFoundOrInactive();
  const assigned = await resolveKeyCustomer(tx, auth.accountId, body);
  const keys = await insertUniqueKeys(
    tx,
    { ...creation.settings, customerId: assigned?.customer.id ?? null },
    creation.format,
    creation.amount,
  );
  if (keys.length < creation.amount) throw Errors.invalidField('format');
  return keysCreated(keys, assigned?.events);
}

/**
 * The customer a key is assigned to on create and update: an existing one by ID (404/2 when
 * unknown; key-share locked, so a concurrent delete waits instead of breaking the key's foreign
 * key) or a new one (409/2 when its email is taken). undefined when neither is given.
 */
async function resolveKeyCustomer(
  tx: Db,
  accountId: string,
  input: { customerId?: string | null; newCustomer?: { name: string; email?: string } },
): Promise<{ customer: Customer; events: DomainEvent[] } | undefined> {
  if (input.customerId !== undefined && input.customerId !== null) {
    const customer = await findCustomer(tx, accountId, input.customerId, { lock: 'key share' });
    if (!customer) throw Errors.customerIdNotFound(input.customerId);
    return { customer, events: [] };
  }
  if (input.newCustomer !== undefined) {
    const email = input.newCustomer.email ?? '';
    const customer = await insertCustomer(tx, accountId, input.newCustomer, () =>
      Errors.newCustomerEmailConflict(email),
    );
    return { customer, events: [{ type: 'customer.created', customerId: customer.id }] };
  }
  return undefined;
}

/** `GET /key`, `POST /get-key`: no state check, blocked and expired keys are returned. */
export async function getLicenseKey(db: Db, auth: AuthContext, lookup: KeyLookup): Promise<LicenseWithCustomer> {
  if (!canSeeProduct(auth, lookup.productId)) throw Errors.licenseKeyNotFound();
  const row = await findKeyWithCustomerAndDevices(db, auth.accountId, lookup);
  if (!row) throw Errors.licenseKeyNotFound();
  return { license: { ...toLicenseView(row.key, row.devices.length), devices: row.devices }, customer: row.customer };
}

/** Sockets on a dual-stack listener report IPv4 clients as IPv4-mapped IPv6 addresses. */
const plainIp = (ip: string): string => (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? ip.slice(7) : ip);

/**
 * Finds-or-creates the licensee. The insert runs in a savepoint so that losing a race against a
 * concurrent insert of the same email leaves the activation's transaction usable for re-reading
 * the winner; should the winner be gone too, that is an unexpected failure (500).
 */
async function findOrCreateLicensee(
  tx: Db,
  accountId: string,
  licensee: { name: string; email: string },
): Promise<{ customer: Customer; created: boolean }> {
  const raceLost = Errors.serverError();
  try {
    const customer = await tx.transaction((savepoint) =>
      insertCustomer(savepoint, accountId, licensee, () => raceLost),
    );
    return { customer, created: true };
  } catch (err) {
    if (err !== raceLost) throw err;
    const winner = await findCustomerByEmail(tx, accountId, licensee.email, { lock: 'key share' });
    if (!winner) throw err;
    return { customer: winner, created: false };
  }
}

/**
 * `POST /key/activate`, `POST /activate-key`. Every check runs on the key row locked until
 * commit, so concurrent activations from any number of processes are serialized per key and can
 * never exceed maxActivations.
 */
export async function activateLicenseKey(
  tx: Db,
  auth: AuthContext,
  body: ActivateBody,
  clientIp: string | undefined,
): Promise<Outcome<{ activation: Activation }>> {
  const device = {
    hostId: body.hostId ?? newId(),
    deviceTag: body.deviceTag ?? null,
    ipAddress: clientIp === undefined ? null : plainIp(clientIp),
  };
  if (!body.licensee) return activateForHost(tx, auth, body, device);
  const key = await lockKey(tx, auth, body);
  assertActivatable(key);

  let customer: Customer | undefined;
  if (key.customerId !== null) {
    customer = await findCustomer(tx, auth.accountId, key.customerId);
  } else if (body.licensee) {
    // Found by email, it may be assigned below: key-share makes a concurrent delete wait.
    customer = await findCustomerByEmail(tx, auth.accountId, body.licensee.email, { lock: 'key share' });
  }
  const { hostId } = device;
  assertUsable(key, { customer, hostId });

  const events: DomainEvent[] = [];
  const recorded = await insertDeviceWithinLimit(tx, key, device);
  if (recorded) {
    events.push({ type: 'key.activated', licenseKeyId: key.id, hostId });
  } else if (!(await hasDevice(tx, key.id, hostId))) {
    // Nothing inserted and the host is not active on the key: the key is full.
    throw Errors.activationLimitReached();
  }

  if (key.customerId === null && body.licensee) {
    if (!customer) {
      const licensee = await findOrCreateLicensee(tx, auth.accountId, body.licensee);
      customer = licensee.customer;
      if (licensee.created) events.push({ type: 'customer.created', customerId: customer.id });
    }
    await updateLicenseKeyRow(tx, key.id, { customerId: customer.id });
  }

  return { activation: activationOf(key, customer, hostId), events };
}

const activationOf = (key: LicenseKey, customer: Customer | undefined, hostId: string): Activation => ({
  licenseeName: customer?.name ?? null,
  licenseeEmail: customer?.email ?? null,
  hostId,
  expirationDate: key.expiresAt ? key.expiresAt.toISOString() : null,
  metadata: key.metadata ?? null,
  allowedHosts: key.allowedHosts ?? null,
});

/**
 * An activation without a licensee to assign (the hot path): the key locked and the device
 * recorded within the limit in one round trip (lockKeyAndRecordDevice), then the same rules as
 * above on the locked row. A rule that fails throws, and the transaction's rollback takes the
 * device back out.
 */
async function activateForHost(
  tx: Db,
  auth: AuthContext,
  lookup: KeyLookup,
  device: NewDevice,
): Promise<Outcome<{ activation: Activation }>> {
  const found = await lockKeyAndRecordDevice(tx, auth, lookup, device);
  if (!found) throw Errors.licenseKeyNotFound();
  const { key, customer, recorded, present } = found;
  assertActivatable(key);
  assertUsable(key, { customer, hostId: device.hostId });
  if (!recorded && !present) throw Errors.activationLimitReached();
  const events: DomainEvent[] = recorded
    ? [{ type: 'key.activated', licenseKeyId: key.id, hostId: device.hostId }]
    : [];
  return { activation: activationOf(key, customer, device.hostId), events };
}

/** `POST /key/deactivate`, `POST /deactivate-key`: one device, or all of them. */
export async function deactivateLicenseKey(tx: Db, auth: AuthContext, body: DeactivateBody): Promise<Outcome<object>> {
  const key = await lockKey(tx, auth, body);
  const hostIds = await deleteDevices(tx, key.id, body.hostId);
  if (hostIds.length === 0) throw body.hostId === undefined ? Errors.notActivated() : Errors.deviceNotFound();
  return { events: [{ type: 'key.deactivated', licenseKeyId: key.id, hostIds }] };
}

/** Block / unblock: idempotent; the row is written only on an actual change. */
export async function setLicenseKeyBlocked(
  tx: Db,
  auth: AuthContext,
  lookup: KeyLookup,
  blocked: boolean,
): Promise<Outcome<object>> {
  const key = await lockKey(tx, auth, lookup);
  if (key.blocked === blocked) return { events: [] };
  await updateLicenseKeyRow(tx, key.id, { blocked });
  return { events: [{ type: blocked ? 'key.blocked' : 'key.unblocked', licenseKeyId: key.id }] };
}

const sameHosts = (a: string[] | null, b: string[] | null): boolean =>
  a === null || b === null ? a === b : a.length === b.length && a.every((host, i) => host === b[i]);

type KeyChanges = Partial<typeof licenseKeys.$inferInsert>;

/** The floating settings that differ from the stored ones. */
function floatingChanges(key: LicenseKey, body: UpdateKeyBody): KeyChanges {
  const changes: KeyChanges = {};
  for (const field of ['licenseType', 'maxConcurrentSessions', 'heartbeatInterval', 'sessionLeaseDuration'] as const) {
    const value = body[field];
    if (value !== undefined && value !== key[field]) Object.assign(changes, { [field]: value });
  }
  return changes;
}

/**
 * `PATCH /key`: only fields present change, on the locked row; values equal to the stored ones
 * are no change, and an update without changes writes nothing.
 */
export async function updateLicenseKey(tx: Db, auth: AuthContext, body: UpdateKeyBody): Promise<Outcome<object>> {
  if (body.customerId !== undefined && body.newCustomer !== undefined) throw Errors.bothCustomerFields();
  const maxActivations = resolveActivationLimit(body.usesPerKey, body.maxActivations);
  const expiresAt = resolveExpiry(body.expiryDate);

  const key = await lockKey(tx, auth, body);
  const changes: KeyChanges = {};
  const events: DomainEvent[] = [];

  if (body.customerId === null) {
    if (key.customerId !== null) changes.customerId = null;
  } else {
    const assigned = await resolveKeyCustomer(tx, auth.accountId, body);
    if (assigned) {
      events.push(...assigned.events);
      if (assigned.customer.id !== key.customerId) changes.customerId = assigned.customer.id;
    }
  }
  if (maxActivations !== undefined && maxActivations !== key.maxActivations) changes.maxActivations = maxActivations;
  if (expiresAt !== undefined && expiresAt?.getTime() !== key.expiresAt?.getTime()) changes.expiresAt = expiresAt;
  if (body.metadata !== undefined && canonicalJson(body.metadata) !== canonicalJson(key.metadata)) {
    changes.metadata = body.metadata;
  }
  if (body.allowedHosts !== undefined) {
    const allowedHosts = normalizeAllowedHosts(body.allowedHosts);
    if (!sameHosts(allowedHosts, key.allowedHosts)) changes.allowedHosts = allowedHosts;
  }
  Object.assign(changes, floatingChanges(key, body));

  if (Object.keys(changes).length === 0) return { events };
  // A floating key grants sessions, never device slots; a node-locked key holds no sessions.
  if (changes.licenseType === 'floating') await deleteDevices(tx, key.id, undefined);
  if (changes.licenseType === 'node-locked') await endLiveSessions(tx, key.id);
  await updateLicenseKeyRow(tx, key.id, changes);
  events.push({ type: 'key.updated', licenseKeyId: key.id });
  return { events };
}
