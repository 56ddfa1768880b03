import { and, eq, inArray, lt, notExists, sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { webhookDeliveries, webhookEvents } from '../../db/schema/index.js';
import { type SweepOptions, startSweep, sweepInBatches } from '../../db/sweep.js';

/**
 * Events are kept WEBHOOK_EVENT_RETENTION_DAYS after they happened (the delivery log of the
 * admin API shows them), then deleted with their deliveries (ON DELETE CASCADE) — once none of
 * those is still pending. Run by the processes that run the delivery worker.
 */

export const WEBHOOK_EVENT_RETENTION_DAYS = 30;

export const RETENTION_DEFAULTS: SweepOptions = { intervalMs: 15 * 60_000, batchSize: 500, maxBatches: 10 };

/** Deletes up to `limit` old events whose deliveries all ended, oldest first; how many. */
export async function deleteOldWebhookEvents(db: Db, retentionDays: number, limit: number): Promise<number> {
  const cutoff = sql`statement_timestamp() - cast(${retentionDays} as integer) * interval '1 day'`;
  const stillPending = db
    .select({ one: sql`1` })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.eventId, webhookEvents.id), eq(webhookDeliveries.status, 'pending')));
  const old = db
    .select({ id: webhookEvents.id })
    .from(webhookEvents)
    .where(and(lt(webhookEvents.createdAt, cutoff), notExists(stillPending)))
    .orderBy(webhookEvents.createdAt)
    .limit(limit)
    .for('update', { skipLocked: true });
  const deleted = await db
    .delete(webhookEvents)
    .where(inArray(webhookEvents.id, old))
    .returning({ id: webhookEvents.id });
  return deleted.length;
}

export function pruneWebhookEvents(
  db: Db,
  options: Pick<SweepOptions, 'batchSize' | 'maxBatches'> = RETENTION_DEFAULTS,
  stopped: () => boolean = () => false,
): Promise<number> {
  return sweepInBatches((limit) => deleteOldWebhookEvents(db, WEBHOOK_EVENT_RETENTION_DAYS, limit), options, stopped);
}

/** Runs the pruning in this app's process from `onReady` until the app closes. */
export function startWebhookRetention(app: FastifyInstance, options: SweepOptions = RETENTION_DEFAULTS) {
  startSweep(app, options, {
    run: (stopped) => pruneWebhookEvents(app.database.db, options, stopped),
    deletedMessage: 'deleted old webhook events',
    failedMessage: 'webhook event pruning failed',
  });
}
