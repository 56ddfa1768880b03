import type { Db } from '../../db/client.js';
import { type AppError, Errors } from '../../lib/errors.js';
import type { Outcome } from '../../lib/events.js';
import { newId } from '../../lib/ids.js';
import type { AuthContext } from '../../lib/scopes.js';
import { findCustomer } from '../customers/queries.js';
import { assertUsable } from '../licenses/policy.js';
import { lockLicenseKey } from '../licenses/queries.js';
import { assertFloating, assertSeatAvailable, continuationRefusal } from './policy.js';
import {
  countLiveSessions,
  endLiveSessionOfHost,
  endSession,
  findSessionCall,
  insertSession,
  type PresentedSession,
  renewSession,
  sessionState,
} from './queries.js';
import type { Checkout, CheckoutBody, SessionCallBody } from './schemas.js';
import { isSessionSignature, newNonce, newSessionSecret, presentedNonce } from './signature.js';

/**
 * Floating-license sessions (docs/api.md, "Floating licenses"): checkout, heartbeat, checkin.
 * Each takes the request's open transaction and returns what it did; the caller owns the
 * transaction and the HTTP envelope. Sessions raise no webhook events (the contract defines none).
 */

/**
 * `POST /key/checkout`. Every check runs on the key row locked FOR UPDATE until commit, so the
 * checkouts of one key are serialized across all processes and seats are never over-allocated;
 * heartbeats hold the same row FOR KEY SHARE, so no lease is renewed between the count and the
 * commit either.
 */
export async function checkoutSession(
  tx: Db,
  auth: AuthContext,
  body: CheckoutBody,
): Promise<Outcome<{ checkout: Checkout }>> {
  const key = await lockLicenseKey(tx, auth, body);
  if (!key) throw Errors.licenseKeyNotFound();
  assertFloating(key);
  const customer = key.customerId === null ? undefined : await findCustomer(tx, auth.accountId, key.customerId);
  assertUsable(key, { customer, hostId: body.hostId });

  // The host's own live session is ended and replaced: it takes no extra seat. On a refusal
  // below the transaction rolls back and the old session stays.
  await endLiveSessionOfHost(tx, key.id, body.hostId);
  const live = await countLiveSessions(tx, key.id);
  assertSeatAvailable(live, key.maxConcurrentSessions);

  const session = { id: newId(), secret: newSessionSecret(), nonce: newNonce() };
  const expiresAt = await insertSession(
    tx,
    {
      ...session,
      licenseKeyId: key.id,
      hostId: body.hostId,
      deviceTag: body.deviceTag ?? null,
      userIdentifier: body.userIdentifier ?? null,
    },
    key.sessionLeaseDuration,
  );
  return {
    checkout: {
      sessionId: session.id,
      sessionSecret: session.secret,
      nextNonce: session.nonce,
      expiresAt: expiresAt.toISOString(),
      heartbeatInterval: key.heartbeatInterval,
      currentSessions: live + 1,
      maxSessions: key.maxConcurrentSessions,
      metadata: key.metadata ?? null,
      licenseeName: customer?.name ?? null,
      licenseeEmail: customer?.email ?? null,
    },
    events: [],
  };
}

/**
 * The checks heartbeat and checkin share, in the contract's order: the key (404/1), the session
 * — unknown for this key or checked in — (404/1), the nonce and signature (403/2), the lease
 * (403/2). Returns the verified call.
 */
async function verifySessionCall(tx: Db, auth: AuthContext, body: SessionCallBody, options: { lockKey: boolean }) {
  const call = await findSessionCall(tx, auth, body, options);
  if (!call) throw Errors.licenseKeyNotFound();
  if (call.sessionId === null || call.secret === null || call.nonce === null) throw Errors.sessionNotFound();
  // The signature is computed over the CURRENT nonce: a stale or replayed one never verifies.
  const signed =
    isSessionSignature(body.signature, call.secret, call.sessionId, call.nonce) &&
    presentedNonce(body.timestamp) === call.nonce;
  if (!signed) throw Errors.invalidSessionSignature();
  if (call.lapsed) throw Errors.sessionExpired();
  return { ...call, session: { id: call.sessionId, nonce: call.nonce } satisfies PresentedSession };
}

/**
 * Why a compare-and-swap on a verified session found nothing: a concurrent call consumed the
 * nonce (403/2), ended the session (404/1), or the lease lapsed meanwhile (403/2).
 */
async function lostSession(tx: Db, session: PresentedSession): Promise<AppError> {
  const state = await sessionState(tx, session.id);
  if (!state || state.checkedIn) return Errors.sessionNotFound();
  if (state.nonce !== session.nonce) return Errors.invalidSessionSignature();
  if (state.lapsed) return Errors.sessionExpired();
  return Errors.invalidSessionSignature();
}

/** A heartbeat either renews the lease or is refused after ending the session. */
export type Heartbeat =
  | { renewed: { expiresAt: Date; nextNonce: string }; refusal?: undefined }
  | { renewed?: undefined; refusal: AppError };

/**
 * `POST /key/heartbeat`. Statements in the transaction: BEGIN, the read of key, customer and
 * session (one prepared statement, the key row FOR KEY SHARE), the compare-and-swap (one
 * prepared UPDATE), COMMIT — four round trips after the token lookup.
 *
 * Why the key row is locked (shared): the heartbeat reads blocked / expired / customer, but those
 * alone would not need it — a block committing meanwhile is simply ordered after this heartbeat,
 * and the next one is refused. The seat count needs it: checkout counts a lapsed session as free
 * and may give its seat away; a heartbeat that judged the same lease live a moment earlier
 * (another statement, another snapshot) must not renew it afterwards. Holding the row FOR KEY
 * SHARE orders every heartbeat entirely before or after a checkout's FOR UPDATE, and the swap
 * judges the lease by the database's clock after the lock was granted. Heartbeats do not block
 * one another (shared lock), only checkouts and key changes of the same key.
 *
 * A refusal by the key's state (blocked, expired, customer disabled) ENDS the session, and that
 * must commit although the request answers 403: the unit of work rolls back on a throw, so the
 * refusal is returned, not thrown, and the route throws it once the transaction has committed.
 */
export async function heartbeatSession(tx: Db, auth: AuthContext, body: SessionCallBody): Promise<Outcome<Heartbeat>> {
  const call = await verifySessionCall(tx, auth, body, { lockKey: true });
  const customer = call.customerActive === null ? undefined : { active: call.customerActive };
  const refusal = continuationRefusal(call, customer);
  if (refusal) {
    if (!(await endSession(tx, call.session))) throw await lostSession(tx, call.session);
    return { refusal, events: [] };
  }
  const nextNonce = newNonce();
  const expiresAt = await renewSession(tx, call.session, { nonce: nextNonce, leaseSeconds: call.sessionLeaseDuration });
  if (!expiresAt) throw await lostSession(tx, call.session);
  return { renewed: { expiresAt, nextNonce }, events: [] };
}

/**
 * `POST /key/checkin`: ends the session (its seat is free at once) by the same compare-and-swap.
 * Works on blocked and expired keys. Without the key lock: ending a session can never
 * over-allocate a seat.
 */
export async function checkinSession(tx: Db, auth: AuthContext, body: SessionCallBody): Promise<Outcome<object>> {
  const call = await verifySessionCall(tx, auth, body, { lockKey: false });
  if (!(await endSession(tx, call.session))) throw await lostSession(tx, call.session);
  return { events: [] };
}
