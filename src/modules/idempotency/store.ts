import { and, eq, lte, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { preparedOnce } from '../../db/prepared.js';
import { idempotencyKeys } from '../../db/schema/index.js';

/**
 * Data access of the idempotency records (table idempotency_keys, migration 0004). Time is the
 * DATABASE's clock (`statement_timestamp()`) in every statement, so several server processes
 * agree on when a record expires or was abandoned, and tests move a record in time by updating
 * its timestamps.
 */

/** How long a record (and its stored answer) is kept after the first request. */
export const RECORD_TTL_HOURS = 24;
/** An in-flight record older than this is considered abandoned and may be taken over. */
export const ABANDONED_AFTER_MINUTES = 5;

export interface IdempotencyClaim {
  /** `token:<access token id>` or `admin`. */
  scope: string;
  key: string;
  /** Names this request as the record's holder; a takeover replaces it. */
  lockToken: string;
  /**
   * Set by an endpoint that stored its answer on the record itself, in the statement of its
   * change (the one-key create-key): the answer's exact text. Such a record is settled; the
   * plugin neither stores it again nor drops it.
   */
  answered?: string;
}

export interface ExistingRecord {
  fingerprint: string;
  /** The stored answer; null while the request holding the record is still running. */
  response: { status: number; body: string } | null;
}

const t = idempotencyKeys;
const dbNow = sql`statement_timestamp()`;
const placeholder = (name: string) => sql.placeholder(name);

const claim = preparedOnce((db) =>
  db
    .insert(t)
    .values({
      scope: placeholder('scope'),
      key: placeholder('key'),
      fingerprint: placeholder('fingerprint'),
      lockToken: placeholder('lockToken'),
      lockedAt: dbNow,
      createdAt: dbNow,
      expiresAt: sql`statement_timestamp() + interval '${sql.raw(String(RECORD_TTL_HOURS))} hours'`,
    })
    .onConflictDoUpdate({
      target: [t.scope, t.key],
      set: {
        fingerprint: sql`excluded.fingerprint`,
        lockToken: sql`excluded.lock_token`,
        lockedAt: sql`excluded.locked_at`,
        createdAt: sql`excluded.created_at`,
        expiresAt: sql`excluded.expires_at`,
        responseStatus: sql`null`,
        responseBody: sql`null`,
      },
      // An expired record starts over whatever it held; an abandoned in-flight one is taken over
      // only by the same request (another one is answered 422, like for a live record).
      setWhere: sql`${t.expiresAt} <= statement_timestamp() or (${t.responseStatus} is null and ${t.lockedAt} < statement_timestamp() - interval '${sql.raw(String(ABANDONED_AFTER_MINUTES))} minutes' and ${t.fingerprint} = excluded.fingerprint)`,
    })
    .returning({ lockToken: t.lockToken })
    .prepare('claim_idempotency_key'),
);

/**
 * Makes this request the holder of (scope, key) in one statement: inserts an in-flight record,
 * or takes over an expired or abandoned one. True when the record is now ours; false when
 * another request's record stands (read it with `findIdempotencyRecord`). Concurrent claims of
 * one key are serialized by the primary key: exactly one of them gets the record.
 */
export async function claimIdempotencyKey(
  db: Db,
  request: IdempotencyClaim & { fingerprint: string },
): Promise<boolean> {
  const { scope, key, lockToken, fingerprint } = request;
  const rows = await claim(db).execute({ scope, key, lockToken, fingerprint });
  return rows.length > 0;
}

const recordByKey = preparedOnce((db) =>
  db
    .select({ fingerprint: t.fingerprint, responseStatus: t.responseStatus, responseBody: t.responseBody })
    .from(t)
    .where(and(eq(t.scope, placeholder('scope')), eq(t.key, placeholder('key'))))
    .prepare('idempotency_record'),
);

/** The record another request holds (or held), or undefined if it is gone meanwhile. */
export async function findIdempotencyRecord(db: Db, scope: string, key: string): Promise<ExistingRecord | undefined> {
  const [row] = await recordByKey(db).execute({ scope, key });
  if (!row) return undefined;
  const response =
    row.responseStatus === null || row.responseBody === null
      ? null
      : { status: row.responseStatus, body: row.responseBody };
  return { fingerprint: row.fingerprint, response };
}

/** Placeholder names of `answerUpdate`: a statement that embeds it may have its own `key`. */
export interface AnswerPlaceholders {
  scope: string;
  key: string;
  lockToken: string;
  status: string;
  body: string;
}

const ANSWER_PLACEHOLDERS: AnswerPlaceholders = {
  scope: 'scope',
  key: 'key',
  lockToken: 'lockToken',
  status: 'status',
  body: 'body',
};

const ours = (names: Pick<AnswerPlaceholders, 'scope' | 'key' | 'lockToken'> = ANSWER_PLACEHOLDERS) =>
  and(
    eq(t.scope, placeholder(names.scope)),
    eq(t.key, placeholder(names.key)),
    eq(t.lockToken, placeholder(names.lockToken)),
  );

/**
 * The update that stores an answer on the record, only while the request still holds it (its
 * lock token); `when` narrows it further. Run alone after the change, or embedded in the
 * change's own statement (the one-key create-key).
 */
export const answerUpdate = (db: Db, names: AnswerPlaceholders = ANSWER_PLACEHOLDERS, when?: SQL) =>
  db
    .update(t)
    .set({
      responseStatus: sql`cast(${placeholder(names.status)} as integer)`,
      responseBody: sql`${placeholder(names.body)}`,
    })
    .where(and(ours(names), when));

const storeResponse = preparedOnce((db) => answerUpdate(db).prepare('store_idempotent_response'));

/**
 * Stores the answer on the record, only while this request still holds it: a request that ran
 * past the takeover delay must not overwrite the record of the request that took it over.
 */
export async function storeIdempotentResponse(db: Db, claim: IdempotencyClaim, status: number, body: string) {
  await storeResponse(db).execute({ scope: claim.scope, key: claim.key, lockToken: claim.lockToken, status, body });
}

const releaseClaim = preparedOnce((db) => db.delete(t).where(ours()).prepare('release_idempotency_key'));

/** Drops the record this request holds (a 5xx is not stored), so a retry runs again. */
export async function releaseIdempotencyKey(db: Db, claim: IdempotencyClaim) {
  await releaseClaim(db).execute({ scope: claim.scope, key: claim.key, lockToken: claim.lockToken });
}

/**
 * Deletes up to `limit` expired records, oldest first through the index on `expires_at`; how
 * many. Rows another transaction holds (a claim taking an expired record over) are skipped.
 */
export async function deleteExpiredIdempotencyKeys(db: Db, limit: number): Promise<number> {
  const expired = db
    .select({ scope: t.scope, key: t.key })
    .from(t)
    .where(lte(t.expiresAt, dbNow))
    .orderBy(t.expiresAt)
    .limit(limit)
    .for('update', { skipLocked: true });
  const deleted = await db.delete(t).where(sql`(${t.scope}, ${t.key}) in ${expired}`).returning({ key: t.key });
  return deleted.length;
}
