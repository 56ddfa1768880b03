import { Counter, type Registry } from 'prom-client';
import { AppError, type ErrorReason } from '../../lib/errors.js';

/**
 * `keymint_license_files_signed_total{outcome}`: offline license files signed, or the reason a
 * sign was refused (the AppError reason). Process-wide like the licensing counters; bad input and
 * authentication failures never reach the service and are not counted here.
 */

/** The refusals of `POST /key/sign`, in the order they are checked. */
export const SIGN_REFUSALS = [
  'license_key_not_found',
  'blocked',
  'expired',
  'customer_inactive',
  'host_not_allowed',
  'ttl_required',
] as const satisfies readonly ErrorReason[];

export type SignOutcome = 'signed' | (typeof SIGN_REFUSALS)[number];

const signed = new Counter({
  name: 'keymint_license_files_signed_total',
  help: 'POST /key/sign by outcome: signed, or the reason for the refusal',
  labelNames: ['outcome'] as const,
  registers: [],
});
// Every outcome exists from the start, so rate() over one that has not happened yet is 0, not absent.
for (const outcome of ['signed', ...SIGN_REFUSALS]) signed.inc({ outcome }, 0);

export function registerLicenseFileMetrics(registry: Registry) {
  registry.registerMetric(signed);
}

const isSignRefusal = (reason: ErrorReason): reason is (typeof SIGN_REFUSALS)[number] =>
  (SIGN_REFUSALS as readonly ErrorReason[]).includes(reason);

/** Counts how a sign ended (a server error is not a licensing outcome), and passes its result on. */
export async function recordSignOutcome<T>(signing: Promise<T>): Promise<T> {
  try {
    const result = await signing;
    signed.inc({ outcome: 'signed' });
    return result;
  } catch (err) {
    if (err instanceof AppError && isSignRefusal(err.reason)) signed.inc({ outcome: err.reason });
    throw err;
  }
}
