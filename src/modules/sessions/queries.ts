import { and, count, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { executePrepared, preparedOnce } from '../../db/prepared.js';
import { customers, floatingSessions, licenseKeys, products } from '../../db/schema/index.js';
import { type AuthContext, canSeeProduct } from '../../lib/scopes.js';

/**
 * Data access of floating sessions.
 *
 * Time: every lease is set and judged by the DATABASE's clock (`statement_timestamp()`, or
 * `clock_timestamp()` after a lock wait), never by the server process's, so that processes whose
 * clocks differ agree on which sessions are live — a seat counted free by one process cannot be
 * renewed by another.
 *
 * Ending a session sets `checked_in_at` and pulls `expires_at` back to the same instant when it
 * lay in the future: `expires_at` is then the end of every session, live or dead, and the sweep
 * finds old rows through the one index on it.
 */

const dbNow = sql`statement_timestamp()`;
const leaseEnd = (seconds: number) => sql`statement_timestamp() + cast(${seconds} as integer) * interval '1 second'`;
const isLive = and(isNull(floatingSessions.checkedInAt), gt(floatingSessions.expiresAt, dbNow));
const endNow = {
  checkedInAt: dbNow,
  expiresAt: sql`least(${floatingSessions.expiresAt}, statement_timestamp())`,
};

/** Ends the host's live session on the key, if it has one (checkout replaces it). */
export async function endLiveSessionOfHost(tx: Db, licenseKeyId: string, hostId: string): Promise<void> {
  const query = tx
    .update(floatingSessions)
    .set(endNow)
    .where(and(eq(floatingSessions.licenseKeyId, licenseKeyId), eq(floatingSessions.hostId, hostId), isLive));
  await executePrepared(query, 'end_live_floating_session_of_host');
}

/** The key's live sessions. */
export async function countLiveSessions(tx: Db, licenseKeyId: string): Promise<number> {
  const query = tx
    .select({ live: count() })
    .from(floatingSessions)
    .where(and(eq(floatingSessions.licenseKeyId, licenseKeyId), isLive));
  const [row] = await executePrepared(query, 'count_live_floating_sessions');
  return row?.live ?? 0;
}

export interface NewSession {
  id: string;
  licenseKeyId: string;
  hostId: string;
  deviceTag: string | null;
  userIdentifier: string | null;
  secret: string;
  nonce: string;
}

/** Inserts a session whose lease ends `leaseSeconds` from now; its lease end. */
export async function insertSession(tx: Db, session: NewSession, leaseSeconds: number): Promise<Date> {
  const query = tx
    .insert(floatingSessions)
    .values({ ...session, expiresAt: leaseEnd(leaseSeconds), createdAt: dbNow })
    .returning({ expiresAt: floatingSessions.expiresAt });
  const [row] = await executePrepared(query, 'insert_floating_session');
  return row!.expiresAt;
}

// Heartbeat and checkin run outside any transaction (sessions/service.ts), so their statements
// are built once per database (`preparedOnce`, placeholders for every value): the hot path
// skips drizzle's query building as well as PostgreSQL's parse and plan.

const placeholder = (name: string) => sql.placeholder(name);

const sessionCall = preparedOnce((db) =>
  db
    .select({
      keyId: licenseKeys.id,
      blocked: licenseKeys.blocked,
      expiresAt: licenseKeys.expiresAt,
      sessionLeaseDuration: licenseKeys.sessionLeaseDuration,
      customerActive: customers.active,
      sessionId: floatingSessions.id,
      secret: floatingSessions.secret,
      nonce: floatingSessions.nonce,
      lapsed: sql<boolean | null>`${floatingSessions.expiresAt} <= statement_timestamp()`,
    })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .leftJoin(
      floatingSessions,
      and(
        eq(floatingSessions.id, placeholder('sessionId')),
        eq(floatingSessions.licenseKeyId, licenseKeys.id),
        isNull(floatingSessions.checkedInAt),
      ),
    )
    .where(
      and(
        eq(licenseKeys.productId, placeholder('productId')),
        eq(licenseKeys.key, placeholder('licenseKey')),
        eq(licenseKeys.accountId, placeholder('accountId')),
        eq(products.active, true),
      ),
    )
    .limit(1)
    .prepare('floating_session_call'),
);

/**
 * What a heartbeat or checkin needs, in ONE statement that locks nothing: the key (of an active
 * product of the caller's account), its customer's state and the named session when it is not
 * checked in (null fields otherwise). `lapsed` is judged by the database's clock.
 */
export async function findSessionCall(
  db: Db,
  auth: AuthContext,
  lookup: { productId: string; licenseKey: string; sessionId: string },
) {
  if (!canSeeProduct(auth, lookup.productId)) return undefined;
  const [row] = await sessionCall(db).execute({
    productId: lookup.productId,
    licenseKey: lookup.licenseKey,
    sessionId: lookup.sessionId,
    accountId: auth.accountId,
  });
  return row;
}

/** A session as a caller presented it: its ID and the nonce it signed (the current one when read). */
export interface PresentedSession {
  id: string;
  nonce: string;
}

/** The nonce can be consumed only while it is current and the session live. */
const consumable = and(
  eq(floatingSessions.id, placeholder('id')),
  eq(floatingSessions.nonce, placeholder('nonce')),
  isLive,
);

const renewal = preparedOnce((db) => {
  const lockedKey = db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(eq(licenseKeys.id, placeholder('licenseKeyId')))
    .for('key share')
    .as('locked_key');
  // A subquery with a row lock is never merged into its parent: its select list is computed
  // after LockRows granted the lock.
  const lockClock = db
    .select({ lockedAt: sql<Date>`clock_timestamp()`.as('locked_at') })
    .from(lockedKey)
    .as('lock_clock');
  return db
    .update(floatingSessions)
    .set({
      nonce: sql`${placeholder('nextNonce')}`,
      expiresAt: sql`${lockClock.lockedAt} + cast(${placeholder('leaseSeconds')} as integer) * interval '1 second'`,
    })
    .from(lockClock)
    .where(
      and(
        eq(floatingSessions.id, placeholder('id')),
        eq(floatingSessions.nonce, placeholder('nonce')),
        isNull(floatingSessions.checkedInAt),
        gt(floatingSessions.expiresAt, lockClock.lockedAt),
      ),
    )
    .returning({ expiresAt: floatingSessions.expiresAt })
    .prepare('renew_floating_session');
});

/**
 * Heartbeat, in ONE statement (atomic on its own, no transaction): takes the key row FOR KEY
 * SHARE, then consumes the nonce by compare-and-swap and renews the lease.
 *
 * - Nonce: of calls presenting the same nonce exactly one gets the row; the others find the new
 *   nonce (PostgreSQL re-checks the condition on the row a concurrent update left).
 * - Seats: checkout counts a lapsed session as free under the key's FOR UPDATE lock and may give
 *   its seat away; a renewal must never land after that. The key-share lock conflicts with that
 *   FOR UPDATE (not with other heartbeats), so the statement runs wholly before a checkout (which
 *   then sees the renewal) or after it; and the lease is judged by `clock_timestamp()` read
 *   ABOVE the lock (`lock_clock`), i.e. once the lock is granted — a lease the checkout counted
 *   as lapsed is lapsed by then too. (The statement's own start time would not do: it precedes
 *   the wait.) test/race/floating-race.test.ts races renewals against checkouts at that boundary.
 *
 * The new lease end, or undefined when the nonce was no longer current, the session no longer
 * live, or the key gone.
 */
export async function renewSession(
  db: Db,
  licenseKeyId: string,
  session: PresentedSession,
  next: { nonce: string; leaseSeconds: number },
): Promise<Date | undefined> {
  const [row] = await renewal(db).execute({
    licenseKeyId,
    id: session.id,
    nonce: session.nonce,
    nextNonce: next.nonce,
    leaseSeconds: next.leaseSeconds,
  });
  return row?.expiresAt;
}

const ending = preparedOnce((db) =>
  db
    .update(floatingSessions)
    .set(endNow)
    .where(consumable)
    .returning({ id: floatingSessions.id })
    .prepare('end_floating_session'),
);

/**
 * Checkin, or a refused heartbeat: ends the session by compare-and-swap on its nonce, in one
 * statement. No key lock: ending a session can never over-allocate a seat. Whether it did.
 */
export async function endSession(db: Db, session: PresentedSession): Promise<boolean> {
  return (await ending(db).execute({ id: session.id, nonce: session.nonce })).length > 0;
}

/** The session's state now, to tell why a compare-and-swap found nothing (rare: no prepared statement). */
export async function sessionState(db: Db, sessionId: string) {
  const [row] = await db
    .select({
      nonce: floatingSessions.nonce,
      checkedIn: sql<boolean>`${floatingSessions.checkedInAt} is not null`,
      lapsed: sql<boolean>`${floatingSessions.expiresAt} <= statement_timestamp()`,
    })
    .from(floatingSessions)
    .where(eq(floatingSessions.id, sessionId));
  return row;
}

/** Ends every live session of the key (it became node-locked); how many. */
export async function endLiveSessions(tx: Db, licenseKeyId: string): Promise<number> {
  const ended = await tx
    .update(floatingSessions)
    .set(endNow)
    .where(and(eq(floatingSessions.licenseKeyId, licenseKeyId), isLive))
    .returning({ id: floatingSessions.id });
  return ended.length;
}

/**
 * Deletes up to `limit` sessions that ended (checked in or lapsed) more than `retentionHours`
 * ago, oldest first through the index on `expires_at`; how many. Rows another transaction holds
 * are skipped (SKIP LOCKED), so sweeps of several processes never wait on each other or on a
 * request.
 */
export async function deleteDeadSessions(db: Db, retentionHours: number, limit: number): Promise<number> {
  const cutoff = sql`statement_timestamp() - cast(${retentionHours} as integer) * interval '1 hour'`;
  const dead = db
    .select({ id: floatingSessions.id })
    .from(floatingSessions)
    .where(lt(floatingSessions.expiresAt, cutoff))
    .orderBy(floatingSessions.expiresAt)
    .limit(limit)
    .for('update', { skipLocked: true });
  const deleted = await db
    .delete(floatingSessions)
    .where(inArray(floatingSessions.id, dead))
    .returning({ id: floatingSessions.id });
  return deleted.length;
}
