import { Counter, type Registry } from 'prom-client';
import { AppError, type ErrorReason } from '../../lib/errors.js';

/**
 * Floating-license counters, by outcome: `accepted`, or the reason (AppError.reason) of a
 * licensing refusal. Like the licensing counters (licenses/metrics.ts) they belong to the process
 * and are recorded once the request's transaction has ended; bad input (400) never reaches them.
 */

const CHECKOUT_OUTCOMES = [
  'accepted',
  'license_key_not_found',
  'not_floating',
  'blocked',
  'expired',
  'customer_inactive',
  'host_not_allowed',
  'no_floating_seats',
] as const satisfies readonly ('accepted' | ErrorReason)[];

const SESSION_CALL_OUTCOMES = [
  'accepted',
  'license_key_not_found',
  'session_not_found',
  'invalid_session_signature',
  'session_expired',
] as const satisfies readonly ('accepted' | ErrorReason)[];

const HEARTBEAT_OUTCOMES = [...SESSION_CALL_OUTCOMES, 'blocked', 'expired', 'customer_inactive'] as const;

function outcomeCounter(name: string, help: string, outcomes: readonly string[]) {
  const counter = new Counter({ name, help, labelNames: ['outcome'] as const, registers: [] });
  // Every outcome is exported from the start, so a rate() over a series that has not moved yet is 0, not absent.
  for (const outcome of outcomes) counter.inc({ outcome }, 0);
  return { counter, outcomes: new Set(outcomes) };
}

const checkouts = outcomeCounter(
  'keymint_floating_checkouts_total',
  'Floating checkouts by outcome: accepted, or the reason for the refusal',
  CHECKOUT_OUTCOMES,
);
const heartbeats = outcomeCounter(
  'keymint_floating_heartbeats_total',
  'Floating heartbeats by outcome: accepted, or the reason for the refusal',
  HEARTBEAT_OUTCOMES,
);
const checkins = outcomeCounter(
  'keymint_floating_checkins_total',
  'Floating checkins by outcome: accepted, or the reason for the refusal',
  SESSION_CALL_OUTCOMES,
);

export function registerSessionMetrics(registry: Registry) {
  for (const { counter } of [checkouts, heartbeats, checkins]) registry.registerMetric(counter);
}

type OutcomeCounter = ReturnType<typeof outcomeCounter>;

/** Counts how a call ended — accepted, or refused for a licensing reason — and passes its result on. */
async function recordOutcome<T>(metric: OutcomeCounter, call: Promise<T>): Promise<T> {
  try {
    const result = await call;
    metric.counter.inc({ outcome: 'accepted' });
    return result;
  } catch (err) {
    if (err instanceof AppError && metric.outcomes.has(err.reason)) metric.counter.inc({ outcome: err.reason });
    throw err;
  }
}

export const recordCheckoutOutcome = <T>(call: Promise<T>) => recordOutcome(checkouts, call);
export const recordHeartbeatOutcome = <T>(call: Promise<T>) => recordOutcome(heartbeats, call);
export const recordCheckinOutcome = <T>(call: Promise<T>) => recordOutcome(checkins, call);
