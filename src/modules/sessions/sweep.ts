import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { type SweepOptions, startSweep, sweepInBatches } from '../../db/sweep.js';
import { DEAD_SESSION_RETENTION_HOURS } from './policy.js';
import { deleteDeadSessions } from './queries.js';

/**
 * Sessions are never deleted by the requests (a lapsed lease frees its seat because only live
 * sessions are counted), so every server process sweeps the rows that ended — checked in or
 * lapsed — more than DEAD_SESSION_RETENTION_HOURS ago, in bounded batches (db/sweep.ts).
 */

export const SWEEP_DEFAULTS: SweepOptions = { intervalMs: 5 * 60_000, batchSize: 1000, maxBatches: 10 };

/** One run: deletes old dead sessions in batches until none is left or the run's bound is hit. */
export function sweepDeadSessions(
  db: Db,
  options: Pick<SweepOptions, 'batchSize' | 'maxBatches'> = SWEEP_DEFAULTS,
  stopped: () => boolean = () => false,
): Promise<number> {
  return sweepInBatches((limit) => deleteDeadSessions(db, DEAD_SESSION_RETENTION_HOURS, limit), options, stopped);
}

/** Runs the sweep in this app's process from `onReady` until the app closes. */
export function startSessionSweep(app: FastifyInstance, options: SweepOptions = SWEEP_DEFAULTS) {
  startSweep(app, options, {
    run: (stopped) => sweepDeadSessions(app.database.db, options, stopped),
    deletedMessage: 'deleted old floating sessions',
    failedMessage: 'floating-session sweep failed',
  });
}
