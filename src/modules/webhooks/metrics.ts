import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Database } from '../../db/client.js';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from './delivery.js';
import { deliveryBacklog } from './delivery-queries.js';

/**
 * Webhook delivery metrics. The attempt counter and histogram belong to the process (like the
 * licensing counters); the backlog gauge reads the database at scrape time, so every process
 * reports the same, shared backlog.
 */

const attempts = new Counter({
  name: 'keymint_webhook_attempts_total',
  help: 'Webhook delivery attempts by outcome: delivered, http_error (non-2xx, 3xx included), timeout, network_error, blocked (non-public address)',
  labelNames: ['outcome'] as const,
  registers: [],
});
// Every outcome is exported from the start, so a rate() over a series that has not moved yet is 0, not absent.
for (const outcome of ATTEMPT_OUTCOMES) attempts.inc({ outcome }, 0);

const attemptDuration = new Histogram({
  name: 'keymint_webhook_attempt_duration_seconds',
  help: 'Duration of webhook delivery attempts, from connecting to the end of the answer (or the failure)',
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [],
});

export const BACKLOG_STATES = ['due', 'pending', 'failed'] as const;

export function registerWebhookMetrics(registry: Registry, database: Database, log: FastifyBaseLogger) {
  registry.registerMetric(attempts);
  registry.registerMetric(attemptDuration);
  new Gauge({
    name: 'keymint_webhook_deliveries',
    help: 'Webhook deliveries by state: due (waiting for a worker now), pending (not yet delivered or failed; due included), failed (given up, kept until pruned)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      try {
        const backlog = await deliveryBacklog(database.db);
        for (const state of BACKLOG_STATES) this.set({ state }, backlog[state]);
      } catch (err) {
        // The scrape still answers (the last values); /readyz reports the outage.
        log.warn({ err }, 'could not count webhook deliveries for /metrics');
      }
    },
  });
}

export function recordAttempt(outcome: AttemptOutcome, durationMs: number) {
  attempts.inc({ outcome });
  attemptDuration.observe(durationMs / 1000);
}
