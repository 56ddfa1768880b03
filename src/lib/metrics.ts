import { Counter, type Registry } from 'prom-client';
import { AppError } from './errors.js';

/**
 * Licensing counters. Services call the record functions without access to the app, so the
 * counters belong to the process (one server process runs one app); every app's metrics
 * registry exposes them. Call them after the transaction commits, so a rolled-back request
 * is not counted.
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

export function recordKeysCreated(count: number) {
  if (count > 0) keysCreated.inc(count);
}

export function recordActivation(outcome: ActivationOutcome) {
  activations.inc({ outcome });
}

export function registerLicensingMetrics(registry: Registry) {
  registry.registerMetric(keysCreated);
  registry.registerMetric(activations);
}

/** The contract's refusal messages (§1.5) for an activation, by outcome label. */
const REFUSALS_BY_MESSAGE: ReadonlyMap<string, ActivationOutcome> = new Map([
  ['Activation limit reached', 'limit_reached'],
  ['License key is blocked', 'blocked'],
  ['License key has expired', 'expired'],
  ['Customer is inactive', 'customer_inactive'],
  ['Host not allowed for this license', 'host_not_allowed'],
  ['Floating licenses must use checkout', 'floating'],
  ['License key not found', 'not_found'],
]);

/**
 * Records the refusal an activation threw, if it is a licensing decision (bad input and server
 * errors are not): `catch (err) { recordActivationRefusal(err); throw err; }`.
 */
export function recordActivationRefusal(error: unknown) {
  const outcome = error instanceof AppError ? REFUSALS_BY_MESSAGE.get(error.message) : undefined;
  if (outcome) recordActivation(outcome);
}
