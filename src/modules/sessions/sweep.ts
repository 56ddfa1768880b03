import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { DEAD_SESSION_RETENTION_HOURS } from './policy.js';
import { deleteDeadSessions } from './queries.js';

/**
 * Sessions are never deleted by the requests (a lapsed lease frees its seat because only live
 * sessions are counted), so every server process sweeps the rows that ended — checked in or
 * lapsed — more than DEAD_SESSION_RETENTION_HOURS ago:
 * - bounded: at most `maxBatches` deletes of `batchSize` rows per run, each its own statement;
 * - safe with several processes: a delete skips rows another transaction holds (SKIP LOCKED),
 *   and runs are spread out (a random first delay, then the interval ± 50 %);
 * - stopped by the app's close (Fastify onClose), which waits for a run in progress, so SIGTERM
 *   shuts down cleanly and the database closes after the sweep.
 */

export interface SweepOptions {
  /** Average time between runs of one process. */
  intervalMs: number;
  batchSize: number;
  maxBatches: number;
}

export const SWEEP_DEFAULTS: SweepOptions = { intervalMs: 5 * 60_000, batchSize: 1000, maxBatches: 10 };

/** One run: deletes old dead sessions in batches until none is left or the run's bound is hit. */
export async function sweepDeadSessions(
  db: Db,
  options: Pick<SweepOptions, 'batchSize' | 'maxBatches'> = SWEEP_DEFAULTS,
  stopped: () => boolean = () => false,
): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < options.maxBatches && !stopped(); batch++) {
    const deleted = await deleteDeadSessions(db, DEAD_SESSION_RETENTION_HOURS, options.batchSize);
    total += deleted;
    if (deleted < options.batchSize) break;
  }
  return total;
}

/** Runs the sweep in this app's process from `onReady` until the app closes. */
export function startSessionSweep(app: FastifyInstance, options: SweepOptions = SWEEP_DEFAULTS) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const schedule = (delayMs: number) => {
    if (closed) return;
    timer = setTimeout(run, delayMs);
    // A pending sweep never keeps the process alive.
    timer.unref();
  };

  const run = () => {
    running = sweepDeadSessions(app.database.db, options, () => closed)
      .then(
        (deleted) => {
          if (deleted > 0) app.log.info({ deleted }, 'deleted old floating sessions');
        },
        (err: unknown) => {
          // The next run tries again; an outage is reported by /readyz, not here.
          if (!closed) app.log.warn({ err }, 'floating-session sweep failed');
        },
      )
      .finally(() => {
        running = undefined;
        schedule(options.intervalMs * (0.5 + Math.random()));
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
