import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { type SweepOptions, startSweep, sweepInBatches } from '../../db/sweep.js';
import { deleteExpiredIdempotencyKeys } from './store.js';

/**
 * Idempotency records are kept 24 hours. An expired record no longer counts (the next claim of
 * its key starts over), so pruning only keeps the table small. Every server process prunes, in
 * bounded batches with SKIP LOCKED (db/sweep.ts); a run that hit its bound is followed by the
 * next after a second, so a backlog is worked off however many records a day brings.
 */

export const PRUNE_DEFAULTS: SweepOptions = {
  intervalMs: 5 * 60_000,
  catchUpDelayMs: 1000,
  batchSize: 1000,
  maxBatches: 10,
};

/** One run: deletes expired records in batches until none is left or the run's bound is hit. */
export function pruneIdempotencyKeys(
  db: Db,
  options: Pick<SweepOptions, 'batchSize' | 'maxBatches'> = PRUNE_DEFAULTS,
  stopped: () => boolean = () => false,
): Promise<number> {
  return sweepInBatches((limit) => deleteExpiredIdempotencyKeys(db, limit), options, stopped);
}

/** Runs the pruning in this app's process from `onReady` until the app closes. */
export function startIdempotencyPrune(app: FastifyInstance, options: SweepOptions = PRUNE_DEFAULTS) {
  startSweep(app, options, {
    run: (stopped) => pruneIdempotencyKeys(app.database.db, options, stopped),
    deletedMessage: 'deleted expired idempotency records',
    failedMessage: 'idempotency record pruning failed',
  });
}
