/**
 * Why a request was refused: a stable, machine-readable name that metrics (and later webhooks)
 * use instead of matching message text. One reason per entry of the `Errors` factory below.
 */
export type ErrorReason =
  | 'missing_params'
  | 'invalid_field'
  | 'invalid_json'
  | 'bad_request'
  | 'both_customer_fields'
  | 'activation_limit_mismatch'
  | 'ttl_required'
  | 'invalid_token'
  | 'forbidden'
  | 'route_not_found'
  | 'product_not_found_or_inactive'
  | 'license_key_not_found'
  | 'customer_not_found'
  | 'account_not_found'
  | 'product_not_found'
  | 'token_not_found'
  | 'webhook_not_found'
  | 'delivery_not_found'
  | 'invalid_idempotency_key'
  | 'idempotency_in_progress'
  | 'idempotency_mismatch'
  | 'device_not_found'
  | 'floating'
  | 'blocked'
  | 'expired'
  | 'customer_inactive'
  | 'host_not_allowed'
  | 'limit_reached'
  | 'not_activated'
  | 'not_floating'
  | 'no_floating_seats'
  | 'invalid_session_signature'
  | 'session_expired'
  | 'session_not_found'
  | 'customer_email_conflict'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'service_unavailable'
  | 'backup_needs_pg_dump'
  | 'server_error';

/**
 * The one error type services throw. The error handler renders it as the contract's envelope
 * `{message, code}` with `statusCode`; anything else becomes 500 `Server error`.
 */
export class AppError extends Error {
  readonly statusCode: number;
  readonly code: number;
  readonly reason: ErrorReason;

  constructor(statusCode: number, code: number, message: string, reason: ErrorReason) {
    super(message);
    this.name = 'AppError';
    this.statusCode = statusCode;
    this.code = code;
    this.reason = reason;
  }
}

/** Every refusal the server answers with, its status, code and message (docs/api.md, "Errors"). */
export const Errors = {
  missingParams: () => new AppError(400, 1, 'Missing required params', 'missing_params'),
  invalidField: (field: string) => new AppError(400, 1, `Invalid ${field}`, 'invalid_field'),
  invalidJson: () => new AppError(400, 1, 'Invalid JSON body', 'invalid_json'),
  badRequest: () => new AppError(400, 1, 'Bad request', 'bad_request'),
  bothCustomerFields: () =>
    new AppError(400, 1, 'Cannot specify both customerId and newCustomer', 'both_customer_fields'),
  activationLimitMismatch: () =>
    new AppError(400, 1, 'usesPerKey and maxActivations must match', 'activation_limit_mismatch'),
  ttlRequired: () => new AppError(400, 1, 'ttl is required for keys without an expiration date', 'ttl_required'),
  invalidToken: () => new AppError(401, 1, 'Invalid access token', 'invalid_token'),
  forbidden: () => new AppError(403, 1, 'Insufficient permissions for this operation', 'forbidden'),
  notFound: () => new AppError(404, 1, 'Not found', 'route_not_found'),
  productNotFoundOrInactive: () =>
    new AppError(404, 1, 'Product not found or inactive', 'product_not_found_or_inactive'),
  licenseKeyNotFound: () => new AppError(404, 1, 'License key not found', 'license_key_not_found'),
  customerNotFound: () => new AppError(404, 1, 'Customer not found', 'customer_not_found'),
  customerIdNotFound: (id: string) => new AppError(404, 2, `Customer with ID ${id} not found`, 'customer_not_found'),
  accountNotFound: () => new AppError(404, 1, 'Account not found', 'account_not_found'),
  productNotFound: () => new AppError(404, 1, 'Product not found', 'product_not_found'),
  tokenNotFound: () => new AppError(404, 1, 'Token not found', 'token_not_found'),
  webhookNotFound: () => new AppError(404, 1, 'Webhook not found', 'webhook_not_found'),
  deliveryNotFound: () => new AppError(404, 1, 'Delivery not found', 'delivery_not_found'),
  invalidIdempotencyKey: () => new AppError(400, 1, 'Invalid Idempotency-Key', 'invalid_idempotency_key'),
  idempotencyInProgress: () =>
    new AppError(409, 1, 'A request with this Idempotency-Key is in progress', 'idempotency_in_progress'),
  idempotencyMismatch: () =>
    new AppError(422, 1, 'Idempotency-Key reused with a different request', 'idempotency_mismatch'),
  floatingMustCheckout: () => new AppError(403, 2, 'Floating licenses must use checkout', 'floating'),
  blocked: () => new AppError(403, 2, 'License key is blocked', 'blocked'),
  expired: () => new AppError(403, 2, 'License key has expired', 'expired'),
  customerInactive: () => new AppError(403, 2, 'Customer is inactive', 'customer_inactive'),
  hostNotAllowed: () => new AppError(403, 2, 'Host not allowed for this license', 'host_not_allowed'),
  activationLimitReached: () => new AppError(403, 2, 'Activation limit reached', 'limit_reached'),
  notActivated: () => new AppError(403, 2, 'License not activated', 'not_activated'),
  deviceNotFound: () => new AppError(404, 1, 'Device not found', 'device_not_found'),
  notFloating: () => new AppError(403, 2, 'License is not a floating license', 'not_floating'),
  noFloatingSeats: () => new AppError(403, 2, 'No floating seats available', 'no_floating_seats'),
  invalidSessionSignature: () => new AppError(403, 2, 'Invalid session signature', 'invalid_session_signature'),
  sessionExpired: () => new AppError(403, 2, 'Session expired', 'session_expired'),
  sessionNotFound: () => new AppError(404, 1, 'Session not found', 'session_not_found'),
  customerEmailConflict: () =>
    new AppError(409, 1, 'Customer with this email already exists', 'customer_email_conflict'),
  newCustomerEmailConflict: (email: string) =>
    new AppError(409, 2, `CONFLICT: Customer email ${email} already exists.`, 'customer_email_conflict'),
  bodyTooLarge: () => new AppError(413, 1, 'Request body too large', 'body_too_large'),
  unsupportedMediaType: (expected = 'application/json') =>
    new AppError(415, 1, `Content-Type must be ${expected}`, 'unsupported_media_type'),
  tooManyRequests: () => new AppError(429, 3, 'Too many requests', 'rate_limited'),
  backupNeedsPgDump: () =>
    new AppError(409, 1, 'The database is PostgreSQL: back it up with pg_dump', 'backup_needs_pg_dump'),
  serverError: () => new AppError(500, 1, 'Server error', 'server_error'),
  /** The database is unreachable or too slow, the server is overloaded, or it is shutting down. */
  serviceUnavailable: () => new AppError(503, 1, 'Service unavailable', 'service_unavailable'),
} as const;

export const SERVER_ERROR_BODY = { message: 'Server error', code: 1 } as const;

/** SQLSTATE of a database error, looking through drizzle's query-error wrapper. */
export function pgErrorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Error codes of a database that cannot serve now, as opposed to a bad query: the connection
 * failed (socket errors, postgres.js's own; not CONNECTION_ENDED: this process closed its pool), SQLSTATE class 08 (connection exception), the server
 * shutting down or starting (57P01–57P03), out of connections or resources (53xxx), a statement
 * or lock timeout (57014, 55P03), a read-only standby after a failover (25006), and a
 * transaction still aborted as transient after its retries (40001, 40P01).
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
  '57P03',
  '57014',
  '55P03',
  '25006',
  '40001',
  '40P01',
]);

/** Whether `err` (or an error it wraps) says the database is unavailable now: answered 503. */
export function isDatabaseUnavailable(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || /^(08|53)[0-9A-Z]{3}$/.test(code))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

export const isUniqueViolation = (err: unknown): boolean => pgErrorCode(err) === '23505';
