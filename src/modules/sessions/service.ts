import type { Db } from '../../db/client.js';
import { type AppError, Errors } from '../../lib/errors.js';
import type { Outcome } from '../../lib/events.js';
import { matchesSecretDigest, sha256 } from '../../lib/hashing.js';
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
 * Checkout takes the request's open transaction; heartbeat and checkin run single statements that
 * are atomic on their own (see heartbeatSession). Each returns what it did; the caller owns the
 * HTTP envelope. Sessions raise no webhook events (the contract defines none).
 */

/**
 * `POST /key/checkout`. Every check runs on the key row locked FOR UPDATE until commit, so the
 * checkouts of one key are serialized across all processes and seats are never over-allocated;
 * a heartbeat's renewal takes the same row FOR KEY SHARE, so no lease is renewed between the
 * count and the commit either.
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
async function verifySessionCall(db: Db, auth: AuthContext, body: SessionCallBody) {
  const call = await findSessionCall(db, auth, body);
  if (!call) throw Errors.licenseKeyNotFound();
  if (call.sessionId === null || call.secret === null || call.nonce === null) throw Errors.sessionNotFound();
  // The signature is computed over the CURRENT nonce: a stale or replayed one never verifies.
  // Both are compared in constant time, and both always (no early exit on the first).
  const signatureMatches = isSessionSignature(body.signature, call.secret, call.sessionId, call.nonce);
  const nonceMatches = matchesSecretDigest(presentedNonce(body.timestamp), sha256(call.nonce));
  if (!(signatureMatches && nonceMatches)) throw Errors.invalidSessionSignature();
  if (call.lapsed) throw Errors.sessionExpired();
  return { ...call, session: { id: call.sessionId, nonce: call.nonce } satisfies PresentedSession };
}

/**
 * Why a compare-and-swap on a verified session found nothing: a concurrent call consumed the
 * nonce (403/2), ended the session or deleted the key with it (404/1), or the lease lapsed
 * meanwhile (403/2).
 */
async function lostSession(db: Db, session: PresentedSession): Promise<AppError> {
  const state = await sessionState(db, session.id);
  if (!state || state.checkedIn) return Errors.sessionNotFound();
  if (state.nonce !== session.nonce) return Errors.invalidSessionSignature();
  if (state.lapsed) return Errors.sessionExpired();
  return Errors.invalidSessionSignature();
}

/**
 * `POST /key/heartbeat` — the hot path: after the token lookup it runs TWO statements, both
 * prepared, and no transaction (no BEGIN/COMMIT round trips): the read of key, customer and
 * session, then the swap that renews the lease (one UPDATE, atomic on its own, which takes the
 * key row FOR KEY SHARE for the seat rule — see `renewSession`). Nothing here has to roll back
 * with anything else.
 *
 * Does the heartbeat need the key row lock for what it READS (blocked, expired, customer)? No:
 * a block committing between the read and the swap is ordered after this heartbeat, which was
 * under way when the block came; every heartbeat that starts after the block has committed reads
 * it and is refused. The lock is taken for the seat count only, and only by the swap.
 *
 * A refusal by the key's state (blocked, expired, customer disabled) ENDS the session, and that
 * must be kept although the request answers 403. A request's unit of work would roll the end
 * back with the throw; here the end is its own statement, committed when it returns, and the
 * refusal is thrown only afterwards.
 */
export async function heartbeatSession(
  db: Db,
  auth: AuthContext,
  body: SessionCallBody,
): Promise<Outcome<{ renewed: { expiresAt: Date; nextNonce: string } }>> {
  const call = await verifySessionCall(db, auth, body);
  const customer = call.customerActive === null ? undefined : { active: call.customerActive };
  // `call.blocked` and `call.expiresAt` are the key's.
  const refusal = continuationRefusal(call, customer);
  if (refusal) {
    if (!(await endSession(db, call.session))) throw await lostSession(db, call.session);
    throw refusal;
  }
  const nextNonce = newNonce();
  const expiresAt = await renewSession(db, call.keyId, call.session, {
    nonce: nextNonce,
    leaseSeconds: call.sessionLeaseDuration,
  });
  if (!expiresAt) throw await lostSession(db, call.session);
  return { renewed: { expiresAt, nextNonce }, events: [] };
}

/**
 * `POST /key/checkin`: ends the session (its seat is free at once) by the same compare-and-swap,
 * in its own statement like the heartbeat. Works on blocked and expired keys.
 */
export async function checkinSession(db: Db, auth: AuthContext, body: SessionCallBody): Promise<Outcome<object>> {
  const call = await verifySessionCall(db, auth, body);
  if (!(await endSession(db, call.session))) throw await lostSession(db, call.session);
  return { events: [] };
}
