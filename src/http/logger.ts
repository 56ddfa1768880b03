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
