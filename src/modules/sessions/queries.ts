import { and, count, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { executePrepared } from '../../db/prepared.js';
import { customers, floatingSessions, licenseKeys, products } from '../../db/schema/index.js';
import { type AuthContext, canSeeProduct } from '../../lib/scopes.js';

/**
 * Data access of floating sessions.
 *
 * Time: every lease is set and judged by the DATABASE's clock (`statement_timestamp()`), never
 * by the server process's, so that processes whose clocks differ agree on which sessions are
 * live — a seat counted free by one process cannot be renewed by another.
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

/**
 * What a heartbeat or checkin needs, in ONE statement: the key (of an active product of the
 * caller's account), its customer's state and the named session when it is not checked in
 * (null fields otherwise). `lapsed` is judged by the database's clock. With `lockKey` the key
 * row is held FOR KEY SHARE until the transaction ends: that conflicts with the FOR UPDATE of
 * checkout, PATCH /key and block (lockLicenseKey) but not with other heartbeats.
 */
export async function findSessionCall(
  tx: Db,
  auth: AuthContext,
  lookup: { productId: string; licenseKey: string; sessionId: string },
  options: { lockKey: boolean },
) {
  if (!canSeeProduct(auth, lookup.productId)) return undefined;
  const query = tx
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
        eq(floatingSessions.id, lookup.sessionId),
        eq(floatingSessions.licenseKeyId, licenseKeys.id),
        isNull(floatingSessions.checkedInAt),
      ),
    )
    .where(
      and(
        eq(licenseKeys.productId, lookup.productId),
        eq(licenseKeys.key, lookup.licenseKey),
        eq(licenseKeys.accountId, auth.accountId),
        eq(products.active, true),
      ),
    )
    .limit(1);
  const [row] = options.lockKey
    ? await executePrepared(query.for('key share', { of: licenseKeys }), 'floating_session_call_locked')
    : await executePrepared(query, 'floating_session_call');
  return row;
}

/** A session as a caller presented it: its ID and the nonce it signed (the current one when read). */
export interface PresentedSession {
  id: string;
  nonce: string;
}

/** The nonce can be consumed only while it is current and the session live. */
const consumable = (session: PresentedSession) =>
  and(eq(floatingSessions.id, session.id), eq(floatingSessions.nonce, session.nonce), isLive);

/**
 * Heartbeat: consumes the nonce by compare-and-swap and renews the lease. Of calls presenting
 * the same nonce exactly one gets the row; the others find the new nonce (PostgreSQL re-checks
 * the condition on the row a concurrent update left). The new lease end, or undefined when the
 * nonce was no longer current or the session no longer live.
 */
export async function renewSession(
  tx: Db,
  session: PresentedSession,
  next: { nonce: string; leaseSeconds: number },
): Promise<Date | undefined> {
  const query = tx
    .update(floatingSessions)
    .set({ nonce: next.nonce, expiresAt: leaseEnd(next.leaseSeconds) })
    .where(consumable(session))
    .returning({ expiresAt: floatingSessions.expiresAt });
  const [row] = await executePrepared(query, 'renew_floating_session');
  return row?.expiresAt;
}

/** Checkin, or a refused heartbeat: ends the session by the same compare-and-swap. Whether it did. */
export async function endSession(tx: Db, session: PresentedSession): Promise<boolean> {
  const query = tx
    .update(floatingSessions)
    .set(endNow)
    .where(consumable(session))
    .returning({ id: floatingSessions.id });
  return (await executePrepared(query, 'end_floating_session')).length > 0;
}

/** The session's state now, to tell why a compare-and-swap found nothing. */
export async function sessionState(tx: Db, sessionId: string) {
  const [row] = await tx
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
