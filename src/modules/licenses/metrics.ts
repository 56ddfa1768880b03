import { Counter, type Registry } from 'prom-client';
import { AppError, type ErrorReason } from '../../lib/errors.js';

/**
 * Licensing counters. They belong to the process (one server process runs one app) and every
 * app's metrics registry exposes them. Routes record them when the request's transaction has
 * committed, so a rolled-back request is not counted.
 */

/** `accepted`, or why the activation was refused (a metric label). */
export const ACTIVATION_OUTCOMES = [
  'accepted',
  'limit_reached',
  'blocked',
  'expired',
  'customer_inactive',
  'host_not_allowed',
  'floating',
  'not_found',
] as const;

export type ActivationOutcome = (typeof ACTIVATION_OUTCOMES)[number];

/** The refusals that are licensing decisions, by error reason (bad input and server errors are not). */
const REFUSAL_OUTCOMES: Partial<Record<ErrorReason, ActivationOutcome>> = {
  limit_reached: 'limit_reached',
  blocked: 'blocked',
  expired: 'expired',
  customer_inactive: 'customer_inactive',
  host_not_allowed: 'host_not_allowed',
  floating: 'floating',
  license_key_not_found: 'not_found',
};

const keysCreated = new Counter({
  name: 'keymint_license_keys_created_total',
  help: 'License keys created',
  registers: [],
});

const activations = new Counter({
  name: 'keymint_activations_total',
  help: 'Activation attempts by outcome: accepted, or the reason for the refusal',
  labelNames: ['outcome'] as const,
  registers: [],
});
// Every outcome is exported from the start, so a rate() over a series that has not moved yet is 0, not absent.
for (const outcome of ACTIVATION_OUTCOMES) activations.inc({ outcome }, 0);

export function registerLicensingMetrics(registry: Registry) {
  registry.registerMetric(keysCreated);
  registry.registerMetric(activations);
}

export function recordKeysCreated(count: number) {
  if (count > 0) keysCreated.inc(count);
}

export function recordActivation(outcome: ActivationOutcome) {
  activations.inc({ outcome });
}

/** Counts the refusal an activation threw, if it is a licensing decision. */
export function recordActivationRefusal(error: unknown) {
  const outcome = error instanceof AppError ? REFUSAL_OUTCOMES[error.reason] : undefined;
  if (outcome) recordActivation(outcome);
}

/** Counts how a committed (or refused) activation ended, and passes its result on. */
export async function recordActivationOutcome<T>(activation: Promise<T>): Promise<T> {
  try {
    const result = await activation;
    recordActivation('accepted');
    return result;
  } catch (err) {
    recordActivationRefusal(err);
    throw err;
  }
}
