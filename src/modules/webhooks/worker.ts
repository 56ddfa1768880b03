import { setMaxListeners } from 'node:events';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { WebhookSettings } from '../../config.js';
import type { Db } from '../../db/client.js';
import { newId } from '../../lib/ids.js';
import { type AttemptResult, sendAttempt } from './delivery.js';
import {
  type AttemptRecord,
  type ClaimedDelivery,
  claimDueDeliveries,
  recordAttempts,
  releaseDeliveries,
} from './delivery-queries.js';
import { recordAttempt, registerWebhookMetrics } from './metrics.js';
import { startWebhookRetention } from './retention.js';

declare module 'fastify' {
  interface FastifyInstance {
    webhookWorker: WebhookWorkerHandle;
  }
}

export interface WebhookWorkerHandle {
  /**
   * Looks for due deliveries now instead of at the next poll. The outbox calls it after a commit
   * that wrote deliveries; a no-op when this process runs no worker (WEBHOOKS_WORKER=false).
   */
  wake(): void;
}

// A claim's lease: the attempt's timeout plus time to write its outcome. A claim whose process
// died is due again when it ends.
const LEASE_MARGIN_MS = 5_000;
// Shutdown lets attempts in flight finish for at most this (and half the timeout), inside
// close-with-grace's 10 s; the others are aborted and given back.
const MAX_SHUTDOWN_GRACE_MS = 5_000;
// While the database is unreachable, one warning per this interval.
const OUTAGE_LOG_INTERVAL_MS = 60_000;

interface FinishedAttempt {
  delivery: ClaimedDelivery;
  lease: string;
  result: AttemptResult;
}

/**
 * The webhook delivery worker of one process (docs/api.md, "Webhooks"). Up to `batchSize`
 * attempts are in flight at once: it claims as many due deliveries as it has free slots (one
 * statement, see claimDueDeliveries), sends them concurrently, and writes their outcomes as they
 * finish, batched into one statement per write. After a claim that filled every free slot it
 * claims again as soon as half the slots are free (a slow receiver holds only its own slot);
 * otherwise it sleeps until the poll interval, a wake(), or a retry it scheduled itself that
 * falls sooner. A database error is logged and retried after the poll interval: it never stops
 * the worker nor the process.
 */
class DeliveryWorker {
  /** Claimed attempts whose outcome is not written yet: the slots in use. */
  private busy = 0;
  private readonly sending = new Set<Promise<void>>();
  private finished: FinishedAttempt[] = [];
  private writing: Promise<void> | undefined;
  private readonly shutdown = new AbortController();
  private stopping = false;
  private woken = false;
  /** Re-checks the loop's current wait (a wake, a slot freed, a retry scheduled, the stop). */
  private notify: (() => void) | undefined;
  /** When this process's own retries that fall before the next poll are due. */
  private retryTimes: number[] = [];
  private loop: Promise<void> | undefined;
  private lastOutageLog = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: Db,
    private readonly settings: WebhookSettings,
    private readonly log: FastifyBaseLogger,
  ) {
    // Every attempt in flight listens for the shutdown (and stops listening when it ends).
    setMaxListeners(0, this.shutdown.signal);
  }

  start() {
    this.loop = this.run().catch((err: unknown) => this.log.error({ err }, 'webhook delivery worker stopped'));
  }

  wake() {
    if (this.stopping) return;
    this.woken = true;
    this.notify?.();
  }

  /** Stops claiming, lets attempts in flight finish (bounded), gives the rest back. */
  async stop() {
    this.stopping = true;
    this.notify?.();
    await this.loop;
    const sent = Promise.all(this.sending);
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, Math.min(this.settings.timeoutMs / 2, MAX_SHUTDOWN_GRACE_MS));
    });
    await Promise.race([sent, grace]);
    clearTimeout(graceTimer);
    this.shutdown.abort();
    await sent;
    while (this.writing) await this.writing;
  }

  private async run() {
    const { batchSize, pollIntervalMs } = this.settings;
    while (!this.stopping) {
      this.woken = false;
      const free = batchSize - this.busy;
      let saturated = free <= 0;
      if (!saturated) {
        try {
          saturated = (await this.claim(free)) === free;
        } catch (err) {
          this.outage(err);
          const retryAt = Date.now() + pollIntervalMs;
          await this.wait(
            () => retryAt,
            () => false,
          );
          continue;
        }
      }
      const pollAt = Date.now() + pollIntervalMs;
      if (saturated) {
        await this.wait(
          () => pollAt,
          () => batchSize - this.busy >= Math.ceil(batchSize / 2),
        );
      } else if (!this.woken) {
        await this.wait(
          () => Math.min(pollAt, ...this.retryTimes),
          () => this.woken,
        );
      }
    }
  }

  /** Claims up to `limit` due deliveries and starts their attempts; how many it claimed. */
  private async claim(limit: number): Promise<number> {
    const now = Date.now();
    this.retryTimes = this.retryTimes.filter((at) => at > now);
    const lease = newId();
    const claimed = await claimDueDeliveries(this.db, {
      lease,
      leaseMs: this.settings.timeoutMs + LEASE_MARGIN_MS,
      limit,
    });
    for (const delivery of claimed) this.send(delivery, lease);
    return claimed.length;
  }

  private send(delivery: ClaimedDelivery, lease: string) {
    this.busy++;
    const attempt = sendAttempt(delivery, {
      timeoutMs: this.settings.timeoutMs,
      allowPrivate: this.settings.allowPrivate,
      signal: this.shutdown.signal,
    }).then((result) => {
      this.sending.delete(attempt);
      this.finished.push({ delivery, lease, result });
      this.writing ??= this.writeFinished();
    });
    this.sending.add(attempt);
  }

  /** Writes finished attempts until none is left; what finishes meanwhile goes in the next write. */
  private async writeFinished() {
    while (this.finished.length > 0) {
      const batch = this.finished.splice(0);
      try {
        await this.write(batch);
      } catch (err) {
        this.log.warn(
          { err, attempts: batch.length },
          'could not record webhook attempts; they are sent again when their lease ends',
        );
      }
      this.busy -= batch.length;
      this.notify?.();
    }
    this.writing = undefined;
  }

  private async write(batch: FinishedAttempt[]) {
    const records: AttemptRecord[] = [];
    const released: { id: string; lease: string }[] = [];
    for (const { delivery, lease, result } of batch) {
      if (result.outcome === 'aborted') {
        released.push({ id: delivery.id, lease });
        continue;
      }
      recordAttempt(result.outcome, result.durationMs);
      const delivered = result.outcome === 'delivered';
      records.push({
        id: delivery.id,
        lease,
        delivered,
        statusCode: result.statusCode,
        error: result.error,
        retryMs: delivered ? null : this.retryDelay(delivery.attempts + 1),
      });
      // Never the secret nor the signature.
      this.log.debug(
        {
          deliveryId: delivery.id,
          eventId: delivery.eventId,
          webhookId: delivery.webhookId,
          outcome: result.outcome,
          statusCode: result.statusCode,
          error: result.error,
        },
        'webhook attempt',
      );
    }
    const failed = await recordAttempts(this.db, records);
    for (const id of failed) {
      const delivery = batch.find((attempt) => attempt.delivery.id === id)!.delivery;
      this.log.warn(
        { deliveryId: id, eventId: delivery.eventId, webhookId: delivery.webhookId, attempts: delivery.attempts + 1 },
        'webhook delivery failed: no retry left in its window',
      );
    }
    // Retries sooner than the next poll (a short WEBHOOKS_RETRY_BASE_MS) wake this worker when due.
    const recordedAt = Date.now();
    for (const { retryMs } of records) {
      if (retryMs !== null && retryMs < this.settings.pollIntervalMs) this.retryTimes.push(recordedAt + retryMs);
    }
    await releaseDeliveries(this.db, released);
  }

  /** The delay before attempt `attempts + 1`: retryBaseMs doubling, capped at retryMaxMs. */
  private retryDelay(attempts: number): number {
    return Math.min(this.settings.retryBaseMs * 2 ** (attempts - 1), this.settings.retryMaxMs);
  }

  private outage(err: unknown) {
    const now = Date.now();
    if (now - this.lastOutageLog < OUTAGE_LOG_INTERVAL_MS) return;
    this.lastOutageLog = now;
    this.log.warn({ err }, 'webhook delivery worker cannot reach the database; retrying');
  }

  /** Resolves at `deadline()` (re-read on every notify), once `done()` holds, or on stop. */
  private wait(deadline: () => number, done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        this.notify = undefined;
        resolve();
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(finish, Math.max(0, deadline() - Date.now()));
        timer.unref();
      };
      this.notify = () => (this.stopping || done() ? finish() : arm());
      this.notify();
    });
  }
}

/**
 * Webhook delivery: the backlog metrics in every process, and — when WEBHOOKS_WORKER is true —
 * the delivery worker from onReady until onClose (which waits for its shutdown) and the pruning
 * of old events. Register once, after metricsPlugin.
 */
export const webhookDeliveryPlugin = fp(
  async (app: FastifyInstance) => {
    registerWebhookMetrics(app.metricsRegistry, app.database, app.log);
    const settings = app.config.webhooks;
    if (!settings.worker) {
      app.decorate('webhookWorker', { wake() {} });
      return;
    }
    const worker = new DeliveryWorker(app.database.db, settings, app.log);
    app.decorate('webhookWorker', { wake: () => worker.wake() });
    // A commit of this process that wrote deliveries: claim them now, not at the next poll.
    app.webhookOutbox.onDeliveriesCommitted(() => worker.wake());
    app.addHook('onReady', async () => worker.start());
    app.addHook('onClose', async () => worker.stop());
    startWebhookRetention(app);
  },
  { name: 'keymint-webhook-delivery', dependencies: ['keymint-metrics', 'keymint-webhook-outbox'] },
);
