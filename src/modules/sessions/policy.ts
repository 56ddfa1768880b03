import { type AppError, Errors } from '../../lib/errors.js';
import type { LicenseType } from '../licenses/policy.js';
import { isExpired } from '../licenses/policy.js';

/**
 * The floating-license rules (docs/api.md, "Floating licenses"). Pure functions: no database,
 * no HTTP. A session is live while it is not checked in and its lease has not lapsed; only live
 * sessions hold a seat. Leases are set and judged by the database's clock (sessions/queries.ts),
 * so that server processes whose clocks differ agree on which sessions are live.
 */

/** Checkout is for floating keys; node-locked keys are activated on devices instead. */
export function assertFloating(key: { licenseType: LicenseType }): void {
  if (key.licenseType !== 'floating') throw Errors.notFloating();
}

/** `maxConcurrentSessions` null = unlimited seats; `live` counts the key's other live sessions. */
export function assertSeatAvailable(live: number, maxConcurrentSessions: number | null): void {
  if (maxConcurrentSessions !== null && live >= maxConcurrentSessions) throw Errors.noFloatingSeats();
}

/**
 * Why a running session may not go on (heartbeat): the key blocked, the key expired, its
 * customer disabled — the order of licenses/policy.ts `assertUsable`, without the host check
 * (the host was judged when the session was checked out). undefined = it may go on.
 */
export function continuationRefusal(
  key: { blocked: boolean; expiresAt: Date | null },
  customer: { active: boolean } | undefined,
): AppError | undefined {
  if (key.blocked) return Errors.blocked();
  if (isExpired(key)) return Errors.expired();
  if (customer && !customer.active) return Errors.customerInactive();
  return undefined;
}

/**
 * Dead sessions (checked in, or lapsed) are kept this long after their end for inspection,
 * then deleted by the sweep (sessions/sweep.ts).
 */
export const DEAD_SESSION_RETENTION_HOURS = 24;
