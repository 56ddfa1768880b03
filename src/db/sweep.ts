import type { FastifyInstance } from 'fastify';

/**
 * Periodic deletes of rows that outlived their retention, run by every server process:
 * - bounded: at most `maxBatches` deletes of `batchSize` rows per run, each its own statement;
 * - safe with several processes: a delete skips rows another transaction holds (SKIP LOCKED),
 *   and runs are spread out (a random first delay, then the interval ± 50 %);
 * - stopped by the app's close (Fastify onClose), which waits for a run in progress, so SIGTERM
 *   shuts down cleanly and the database closes after the sweep.
 */

export interface SweepOptions {
  /** Average time between runs of one process. */
  intervalMs: number;
  /**
   * When set, a run that stopped at its bound (maxBatches full batches: rows may be left) is
   * followed by the next one after this delay instead of a whole interval, so a backlog is
   * worked off however many rows an interval brings.
   */
  catchUpDelayMs?: number;
  batchSize: number;
  maxBatches: number;
}

/** Deletes at most `limit` rows; how many it deleted. */
export type DeleteBatch = (limit: number) => Promise<number>;

/** One run: deletes batches until none is left, the run's bound is hit or the app closes. */
export async function sweepInBatches(
  deleteBatch: DeleteBatch,
  options: Pick<SweepOptions, 'batchSize' | 'maxBatches'>,
  stopped: () => boolean = () => false,
): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < options.maxBatches && !stopped(); batch++) {
    const deleted = await deleteBatch(options.batchSize);
    total += deleted;
    if (deleted < options.batchSize) break;
  }
  return total;
}

export interface SweepJob {
  /** One run (see sweepInBatches); `stopped` turns true when the app closes. */
  run(stopped: () => boolean): Promise<number>;
  /** Logged (info) after a run that deleted rows. */
  deletedMessage: string;
  /** Logged (warn) after a run that failed. */
  failedMessage: string;
}

/** Runs a sweep in this app's process from `onReady` until the app closes. */
export function startSweep(app: FastifyInstance, options: SweepOptions, job: SweepJob): void {
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
    let more = false;
    running = job
      .run(() => closed)
      .then(
        (deleted) => {
          more = deleted >= options.batchSize * options.maxBatches;
          if (deleted > 0) app.log.info({ deleted }, job.deletedMessage);
        },
        (err: unknown) => {
          // The next run tries again; an outage is reported by /readyz, not here.
          if (!closed) app.log.warn({ err }, job.failedMessage);
        },
      )
      .finally(() => {
        running = undefined;
        const catchUp = more && options.catchUpDelayMs !== undefined;
        schedule(catchUp ? options.catchUpDelayMs! : options.intervalMs * (0.5 + Math.random()));
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
