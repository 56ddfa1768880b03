import { type FastifyReply, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify';

/** Where log lines go instead of stdout (tests capture them). */
export interface LogDestination {
  write(line: string): void;
}

export interface LoggerSettings {
  level: string;
  stream?: LogDestination;
}

const SECRET_FIELDS = [
  'token',
  'accessToken',
  'adminToken',
  'metricsToken',
  'secretKey',
  'secret',
  'sessionSecret',
  'password',
  'authorization',
  'databaseUrl',
  'redisUrl',
];

/**
 * Credentials are censored wherever a logged object carries them: the Authorization header of
 * a serialized request, and any field named like a secret at the top level or up to two levels
 * down (pino's redaction has no recursive wildcard).
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

// A database error's fields that hold the statement's values (the bound parameters, PostgreSQL's
// "Failing row contains (…)" / "Key (…)=(…)" detail): a failed INSERT of a session or a webhook,
// or of an idempotency record's answer, would otherwise log the secret it was writing.
const STATEMENT_VALUE_FIELDS = new Set(['params', 'parameters', 'args', 'queryOptions', 'detail']);

type ErrorLike = Error & Record<string, unknown>;

interface SerializedError {
  type: string;
  message: string;
  stack: string;
  [field: string]: unknown;
}

const isErrorLike = (value: unknown): value is ErrorLike =>
  value instanceof Error ||
  (typeof value === 'object' && value !== null && typeof (value as Error).message === 'string' && 'stack' in value);

/**
 * drizzle's DrizzleQueryError says `Failed query: <sql>\nparams: <values>`: the values go, the SQL
 * (placeholders only) stays. Any other message is kept as it is.
 */
function withoutStatementValues(error: ErrorLike, text: string): string {
  if (typeof error.query !== 'string' || !Array.isArray(error.params)) return text;
  const full = `Failed query: ${error.query}\nparams: ${error.params}`;
  return text.includes(full) ? text.replace(full, `Failed query: ${error.query}`) : text;
}

/**
 * Pino's standard error serializer (type, message and stack with their causes, the error's own
 * fields), less what a database error carries of the statement's values.
 */
export function serializeError(value: unknown, seen: Set<unknown> = new Set()): SerializedError {
  // Not an error (pino passes such values through as they are).
  if (!isErrorLike(value) || seen.has(value)) return value as SerializedError;
  seen.add(value);
  const chain: ErrorLike[] = [];
  for (let error: unknown = value; isErrorLike(error) && !chain.includes(error); error = error.cause) {
    chain.push(error);
  }
  const serialized: SerializedError = {
    type: value.constructor?.name ?? value.name,
    message: chain.map((error) => withoutStatementValues(error, error.message)).join(': '),
    stack: chain.map((error) => withoutStatementValues(error, String(error.stack ?? ''))).join('\ncaused by: '),
  };
  if (Array.isArray(value.errors))
    serialized.aggregateErrors = value.errors.map((error) => serializeError(error, seen));
  for (const key in value) {
    if (key === 'cause' || STATEMENT_VALUE_FIELDS.has(key) || key in serialized) continue;
    const field = value[key];
    serialized[key] = isErrorLike(field) ? serializeError(field, seen) : field;
  }
  return serialized;
}

/** The path without its query string: queries carry license keys, emails and customer IDs. */
const pathOf = (url: string): string => {
  const end = url.indexOf('?');
  return end === -1 ? url : url.slice(0, end);
};

/** Pino options for Fastify: JSON lines, secrets redacted, pretty output only on a terminal. */
export function loggerOptions(settings: LoggerSettings): NonNullable<Exclude<FastifyServerOptions['logger'], boolean>> {
  const options = {
    level: settings.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: {
      err: (value: unknown) => serializeError(value),
      // Anything logged as `req` that is not a request passes through (and is still redacted).
      req: (request: { method?: unknown; url?: unknown; ip?: unknown }): Record<string, unknown> =>
        typeof request?.url === 'string' && typeof request.method === 'string'
          ? { method: request.method, url: pathOf(request.url), remoteAddress: request.ip }
          : (request as Record<string, unknown>),
    },
  };
  if (settings.stream) return { ...options, stream: settings.stream };
  if (process.stdout.isTTY && settings.level !== 'silent') {
    return {
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:standard', ignore: 'pid,hostname' } },
    };
  }
  return options;
}

/**
 * One line per request, written when it completes: request id (the child logger's `reqId`),
 * method, path, route pattern, status and latency in milliseconds. No separate "incoming" line.
 */
export class RequestLogController extends LogController {
  override incomingRequest() {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply) {
    if (this.isLogDisabled(request)) return;
    const fields = {
      method: request.method,
      url: pathOf(request.url),
      route: request.routeOptions.url ?? null,
      statusCode: reply.statusCode,
      responseTime: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log.info(fields, 'request completed');
  }
}
