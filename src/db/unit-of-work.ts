import { pgErrorCode } from '../lib/errors.js';
import type { Db } from './client.js';
import type { Deadline } from './deadline.js';

/**
 * A request's unit of work: its whole change runs in ONE transaction opened here, never inside
 * a service. Services take the open transaction (`tx`) and return what happened, so that
 * whatever must commit with the change (an idempotency record, outbox rows) can be written on
 * the same `tx` before the commit.
 */
export type Work<T> = (tx: Db) => Promise<T>;

const MAX_ATTEMPTS = 5;

/**
 * SQLSTATEs after which PostgreSQL has rolled the whole transaction back and running it again
 * is safe: deadlock detected (two transactions each waiting on a row the other inserted) and
 * serialization failure.
 */
const TRANSIENT_ABORTS = new Set(['40P01', '40001']);

/**
 * Runs `work` in one transaction and commits it; a thrown error rolls everything back. A
 * transaction that PostgreSQL aborted as transient runs again from the start (nothing of it was
 * kept), up to five attempts, instead of answering 500.
 *
 * With the request's `deadline`, a request that has run out of time neither begins nor commits:
 * its transaction rolls back (see Deadline).
 */
export async function withTransaction<T>(db: Db, work: Work<T>, deadline?: Deadline): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (!deadline) return await db.transaction(work);
      deadline.check();
      let committing = false;
      try {
        return await db.transaction(async (tx) => {
          const result = await work(tx);
          deadline.beginCommit();
          committing = true;
          return result;
        });
      } finally {
        if (committing) deadline.endCommit();
      }
    } catch (err) {
      const code = pgErrorCode(err);
      if (attempt >= MAX_ATTEMPTS || code === undefined || !TRANSIENT_ABORTS.has(code)) throw err;
    }
  }
}
