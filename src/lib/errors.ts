/**
 * The one error type services throw. The error handler renders it as the contract's envelope
 * `{message, code}` with `status`; anything else becomes 500 `Server error`.
 */
export class AppError extends Error {
  readonly statusCode: number;
  readonly code: number;

  constructor(statusCode: number, code: number, message: string) {
    super(message);
    this.name = 'AppError';
    this.statusCode = statusCode;
    this.code = code;
  }
}

export const Errors = {
  missingParams: () => new AppError(400, 1, 'Missing required params'),
  invalidField: (field: string) => new AppError(400, 1, `Invalid ${field}`),
  invalidJson: () => new AppError(400, 1, 'Invalid JSON body'),
  badRequest: () => new AppError(400, 1, 'Bad request'),
  bothCustomerFields: () => new AppError(400, 1, 'Cannot specify both customerId and newCustomer'),
  activationLimitMismatch: () => new AppError(400, 1, 'usesPerKey and maxActivations must match'),
  invalidToken: () => new AppError(401, 1, 'Invalid access token'),
  forbidden: () => new AppError(403, 1, 'Insufficient permissions for this operation'),
  notFound: () => new AppError(404, 1, 'Not found'),
  productNotFoundOrInactive: () => new AppError(404, 1, 'Product not found or inactive'),
  licenseKeyNotFound: () => new AppError(404, 1, 'License key not found'),
  customerNotFound: () => new AppError(404, 1, 'Customer not found'),
  customerIdNotFound: (id: string) => new AppError(404, 2, `Customer with ID ${id} not found`),
  accountNotFound: () => new AppError(404, 1, 'Account not found'),
  productNotFound: () => new AppError(404, 1, 'Product not found'),
  tokenNotFound: () => new AppError(404, 1, 'Token not found'),
  floatingMustCheckout: () => new AppError(403, 2, 'Floating licenses must use checkout'),
  blocked: () => new AppError(403, 2, 'License key is blocked'),
  expired: () => new AppError(403, 2, 'License key has expired'),
  customerInactive: () => new AppError(403, 2, 'Customer is inactive'),
  hostNotAllowed: () => new AppError(403, 2, 'Host not allowed for this license'),
  activationLimitReached: () => new AppError(403, 2, 'Activation limit reached'),
  notActivated: () => new AppError(403, 2, 'License not activated'),
  deviceNotFound: () => new AppError(404, 1, 'Device not found'),
  customerEmailConflict: () => new AppError(409, 1, 'Customer with this email already exists'),
  newCustomerEmailConflict: (email: string) =>
    new AppError(409, 2, `CONFLICT: Customer email ${email} already exists.`),
  bodyTooLarge: () => new AppError(413, 1, 'Request body too large'),
  unsupportedMediaType: () => new AppError(415, 1, 'Content-Type must be application/json'),
  tooManyRequests: () => new AppError(429, 3, 'Too many requests'),
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

export const isUniqueViolation = (err: unknown): boolean => pgErrorCode(err) === '23505';
