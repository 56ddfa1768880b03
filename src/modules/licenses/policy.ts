import { addOneCalendarMonth, parseIsoDate } from '../../lib/dates.js';
import { Errors } from '../../lib/errors.js';

/**
 * The licensing rules, each stated once (docs/api.md, "Create license keys" and "Activate").
 * Pure functions: no database, no HTTP.
 */

/** A node-locked key is activated on devices; a floating one grants concurrent sessions. */
export const LICENSE_TYPES = ['node-locked', 'floating'] as const;
export type LicenseType = (typeof LICENSE_TYPES)[number];

/** The key fields the rules read (a license_keys row has them all). */
interface KeyState {
  licenseType: LicenseType;
  blocked: boolean;
  expiresAt: Date | null;
  allowedHosts: string[] | null;
}

/** Settings a new key gets when the request leaves them out. The table's defaults use these too. */
export const KEY_SETTING_DEFAULTS = {
  licenseType: 'node-locked' as LicenseType,
  heartbeatInterval: 300,
  sessionLeaseDuration: 900,
} as const;

/** A key created without `expiryDate` expires one calendar month after its creation. */
export const defaultExpiry = (createdAt: Date): Date => addOneCalendarMonth(createdAt);

type ActivationLimitInput = string | number | null | undefined;

const toLimit = (value: ActivationLimitInput): number | null | undefined =>
  value === undefined ? undefined : value === null ? null : Number(value);

/**
 * `usesPerKey` and `maxActivations` are two names for one activation limit: both given, not null
 * and different is an error; otherwise the non-null one wins. undefined = neither given;
 * null = unlimited.
 */
export function resolveActivationLimit(
  usesPerKey: ActivationLimitInput,
  maxActivations: ActivationLimitInput,
): number | null | undefined {
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

/** An empty `allowedHosts` list means "any host", stored as null. */
export const normalizeAllowedHosts = (hosts: string[] | null | undefined): string[] | null =>
  hosts && hosts.length > 0 ? hosts : null;

export const isExpired = (key: Pick<KeyState, 'expiresAt'>, now = Date.now()): boolean =>
  key.expiresAt !== null && key.expiresAt.getTime() <= now;

/** Whether a key counts as activated in its views: neither blocked nor expired. */
export const isActive = (key: Pick<KeyState, 'blocked' | 'expiresAt'>, now = Date.now()): boolean =>
  !key.blocked && !isExpired(key, now);

/**
 * The ordered checks every use of a key passes (activation, and floating checkout and offline
 * signing after it): not blocked, not expired, its customer active, the host allowed. Run on the
 * locked key row; `customer` is the key's customer, or the one the request would assign.
 */
export function assertUsable(
  key: Pick<KeyState, 'blocked' | 'expiresAt' | 'allowedHosts'>,
  use: { customer: { active: boolean } | undefined; hostId: string },
): void {
  if (key.blocked) throw Errors.blocked();
  if (isExpired(key)) throw Errors.expired();
  if (use.customer && !use.customer.active) throw Errors.customerInactive();
  if (key.allowedHosts !== null && !key.allowedHosts.includes(use.hostId)) throw Errors.hostNotAllowed();
}

/** A node-locked key is activated; a floating one grants sessions through checkout instead. */
export function assertActivatable(key: Pick<KeyState, 'licenseType'>): void {
  if (key.licenseType === 'floating') throw Errors.floatingMustCheckout();
}
