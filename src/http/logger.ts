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

const SECRET_FIELD_SET = new Set(SECRET_FIELDS);
const CENSOR = '[redacted]';

const isPlainObject = (value: object): boolean => {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
};

/**
 * Credentials are censored wherever a logged object carries them: any field named like a secret
 * (the Authorization header of a serialized request included), at any depth of plain objects and
 * arrays. The log line's object is copied only where it holds one: a request's line (five plain
 * fields) costs a few Set lookups, where pino's wildcard redaction walked every line's object.
 */
export function censorSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, index) => {
      const censored = censorSecrets(item, depth + 1);
      if (censored === item) return;
      copy ??= [...value];
      copy[index] = censored;
    });
    return copy ?? value;
  }
  if (!isPlainObject(value)) return value;
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    const field = record[key];
    const censored = SECRET_FIELD_SET.has(key) ? CENSOR : censorSecrets(field, depth + 1);
    if (censored === field) continue;
    copy ??= { ...record };
    copy[key] = censored;
  }
  return copy ?? value;
}

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
    formatters: { log: (object: Record<string, unknown>) => censorSecrets(object) as Record<string, unknown> },
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
