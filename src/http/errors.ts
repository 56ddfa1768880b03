import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import secureJson from 'secure-json-parse';
import { AppError, Errors, isDatabaseUnavailable, SERVER_ERROR_BODY } from '../lib/errors.js';

const JSON_MEDIA_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.+-]+\+json)$/i;

/** Fastify's own error codes, mapped onto the contract's envelope. */
const FASTIFY_ERRORS: Record<string, () => AppError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: Errors.bodyTooLarge,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: Errors.unsupportedMediaType,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: Errors.badRequest,
  FST_ERR_CTP_EMPTY_JSON_BODY: Errors.invalidJson,
  FST_ERR_BAD_URL: Errors.badRequest,
  FST_ERR_ASYNC_CONSTRAINT: Errors.badRequest,
  FST_BEARER_AUTH_MISSING_AUTHORIZATION_HEADER: Errors.invalidToken,
  FST_BEARER_AUTH_INVALID_AUTHORIZATION_HEADER: Errors.invalidToken,
};

export function toAppError(error: FastifyError | Error): AppError | undefined {
  if (error instanceof AppError) return error;
  const code = (error as FastifyError).code;
  const mapped = typeof code === 'string' ? FASTIFY_ERRORS[code] : undefined;
  if (mapped) return mapped();
  // The database is down, unreachable or too slow: the client may retry (503, nothing written).
  if (isDatabaseUnavailable(error)) return Errors.serviceUnavailable();
  const status = (error as FastifyError).statusCode;
  // Any other client error Fastify raises (aborted body, bad encoding, ...) is a bad request.
  if (typeof status === 'number' && status >= 400 && status < 500) return Errors.badRequest();
  return undefined;
}

function parseJsonBody(request: FastifyRequest, body: Buffer): unknown {
  // An empty body means `{}` whatever the Content-Type: SDKs send bodiless POSTs.
  if (body.length === 0) return {};
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  if (!JSON_MEDIA_TYPE.test(mediaType)) throw Errors.unsupportedMediaType();
  let parsed: unknown;
  try {
    parsed = secureJson.parse(body.toString('utf8'), undefined, {
      protoAction: 'error',
      constructorAction: 'error',
    });
  } catch {
    throw Errors.invalidJson();
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw Errors.invalidJson();
  return parsed;
}

export function sendError(reply: FastifyReply, error: AppError) {
  return reply.status(error.statusCode).type('application/json; charset=utf-8').send({
    message: error.message,
    code: error.code,
  });
}

export interface ErrorsPluginOptions {
  bodyLimit: number;
}

/**
 * Body parsing, the 404 handler and the one error handler that renders every failure as
 * `{message, code}`. 5xx bodies never carry internals; the error is logged with the request id.
 */
export const errorsPlugin = fp<ErrorsPluginOptions>(
  async (app: FastifyInstance, options) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (request, body, done) => {
      try {
        done(null, parseJsonBody(request, body as Buffer));
      } catch (err) {
        done(err as Error, undefined);
      }
    });

    app.setNotFoundHandler((_request, reply) => sendError(reply, Errors.notFound()));

    // HTTP/1.1 requires Host (RFC 9112 §3.2). Node's own check answers with an empty body, so
    // the server disables it (`requireHostHeader: false`) and the envelope is sent from here.
    app.addHook('onRequest', async (request) => {
      if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) throw Errors.badRequest();
    });

    app.setErrorHandler((error: FastifyError, request, reply) => {
      const appError = toAppError(error);
      if (appError) {
        if (appError.reason === 'service_unavailable') {
          // Refusals (load shedding, shutdown, timeouts) are AppErrors and logged where raised.
          if (!(error instanceof AppError)) request.log.warn({ err: error }, 'database unavailable');
        } else if (appError.statusCode >= 500) {
          request.log.error({ err: error }, 'request failed');
        }
        return sendError(reply, appError);
      }
      request.log.error({ err: error }, 'unexpected error');
      return reply.status(500).type('application/json; charset=utf-8').send(SERVER_ERROR_BODY);
    });
  },
  { name: 'keymint-errors' },
);

/**
 * Fastify's `frameworkErrors` option: URL errors raised by the router before any hook runs (an
 * undecodable path, a path parameter over maxParamLength) get the envelope, not Fastify's shape.
 */
export function frameworkErrorHandler(_error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  return sendError(reply, Errors.badRequest());
}

/** A complete raw HTTP/1.1 400 response carrying the JSON envelope, for a bare socket. */
function rawBadRequest(message: string): string {
  const body = JSON.stringify({ message, code: 1 });
  return (
    'HTTP/1.1 400 Bad Request\r\n' +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

const BAD_REQUEST_RESPONSE = rawBadRequest('Bad request');
// Node counts the request line and the headers together, so an over-long URL lands here too;
// the contract answers both with 400/1.
const HEADERS_TOO_LARGE_RESPONSE = rawBadRequest('Request URL or headers too large');

/**
 * Node's HTTP parser rejects malformed requests (bad chunking, missing Host, garbage) before
 * Fastify sees them; answer those with the same JSON envelope instead of an empty 400.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: import('node:net').Socket) {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE_RESPONSE : BAD_REQUEST_RESPONSE);
}
