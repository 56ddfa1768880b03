import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { deleteExpiredIdempotencyKeys } from './store.js';

/**
 * Idempotency records are kept 24 hours. An expired record no longer counts (the next claim of
 * its key starts over), so pruning only keeps the table small; every server process prunes:
 * - bounded: at most `maxBatches` deletes of `batchSize` rows per run, each its own statement;
 *   a run that hit that bound is followed by the next one after `catchUpDelayMs` instead of a
 *   whole interval, so a backlog is worked off however many records a day brings;
 * - safe with several processes: a delete skips rows another transaction holds (SKIP LOCKED),
 *   and runs are spread out (a random first delay, then the interval ± 50 %);
 * - stopped by the app's close (Fastify onClose), which waits for a run in progress.
 */

export interface PruneOptions {
  /** Average time between runs of one process. */
  intervalMs: number;
  /** Delay before the next run when a run stopped at its bound with rows left. */
  catchUpDelayMs: number;
  batchSize: number;
  maxBatches: number;
}

export const PRUNE_DEFAULTS: PruneOptions = {
  intervalMs: 5 * 60_000,
  catchUpDelayMs: 1000,
  batchSize: 1000,
  maxBatches: 10,
};

/** One run: deletes expired records in batches until none is left or the run's bound is hit. */
export async function pruneIdempotencyKeys(
  db: Db,
  options: Pick<PruneOptions, 'batchSize' | 'maxBatches'> = PRUNE_DEFAULTS,
  stopped: () => boolean = () => false,
): Promise<{ deleted: number; more: boolean }> {
  let deleted = 0;
  for (let batch = 0; batch < options.maxBatches && !stopped(); batch++) {
    const count = await deleteExpiredIdempotencyKeys(db, options.batchSize);
    deleted += count;
    if (count < options.batchSize) return { deleted, more: false };
  }
  return { deleted, more: true };
}

/** Runs the pruning in this app's process from `onReady` until the app closes. */
export function startIdempotencyPrune(app: FastifyInstance, options: PruneOptions = PRUNE_DEFAULTS) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const schedule = (delayMs: number) => {
    if (closed) return;
    timer = setTimeout(run, delayMs);
    // A pending run never keeps the process alive.
    timer.unref();
  };

  const run = () => {
    let more = false;
    running = pruneIdempotencyKeys(app.database.db, options, () => closed)
      .then(
        (result) => {
          more = result.more;
          if (result.deleted > 0) app.log.info({ deleted: result.deleted }, 'deleted expired idempotency records');
        },
        (err: unknown) => {
          // The next run tries again; an outage is reported by /readyz, not here.
          if (!closed) app.log.warn({ err }, 'idempotency record pruning failed');
        },
      )
      .finally(() => {
        running = undefined;
        schedule(more ? options.catchUpDelayMs : options.intervalMs * (0.5 + Math.random()));
      });
  };

  app.addHook('onReady', async () => {
    schedule(options.intervalMs * Math.random());
  });
  app.addHook('onClose', async () => {
    closed = true;
    clearTimeout(timer);
    await running;
  });
}
