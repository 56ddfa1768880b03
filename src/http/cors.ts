import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER } from './idempotency.js';

export interface CorsPluginOptions {
  /** Exact origins, or `['*']` (CORS_ORIGINS). */
  origins: string[];
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', IDEMPOTENCY_KEY_HEADER, 'X-Request-Id'];
// What a browser app may read beyond the CORS-safelisted headers: the replay flag, the request
// id to quote in a support ticket, and the rate limit with its Retry-After.
const EXPOSED_HEADERS = [
  IDEMPOTENT_REPLAYED_HEADER,
  'X-Request-Id',
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
  'Retry-After',
];
/** How long a browser may cache a preflight answer, in seconds. */
export const CORS_MAX_AGE_SECONDS = 600;

/**
 * Paths that take the operator's credentials (ADMIN_TOKEN, METRICS_TOKEN), which must never be
 * used from a browser: no CORS there, so no browser page of another origin can send them a
 * request with an Authorization header (the preflight fails) or read an answer. Judged on the
 * decoded path, as the router matches it (`/ad%6din/tokens` is `/admin/tokens`); a path that
 * does not decode counts as an operator path.
 */
function isOperatorPath(url: string): boolean {
  const end = url.indexOf('?');
  let path: string;
  try {
    path = decodeURIComponent(end === -1 ? url : url.slice(0, end));
  } catch {
    return true;
  }
  return path === '/admin' || path.startsWith('/admin/') || path === '/metrics';
}

/**
 * CORS for vendors who call the public API from browser apps (CORS_ORIGINS). An allowed origin
 * gets `Access-Control-Allow-Origin` (its own, or `*`) on every answer, errors included, and
 * preflights are answered 204 with the methods and headers the API takes. Anything else — no
 * Origin, another origin, an operator path, an OPTIONS that is no preflight — gets no CORS header
 * at all and is answered as without CORS (an OPTIONS: 404). Registered before the rate limiter,
 * so a 429 still carries the headers a browser needs to read it; preflights are not counted.
 */
export const corsPlugin = fp<CorsPluginOptions>(
  async (app: FastifyInstance, options) => {
    const anyOrigin = options.origins.includes('*');
    const origins = new Set(options.origins);
    const allowed: FastifyCorsOptions = {
      methods: METHODS,
      allowedHeaders: ALLOWED_HEADERS,
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: CORS_MAX_AGE_SECONDS,
      credentials: false, // bearer tokens, no cookies
      strictPreflight: false, // an OPTIONS without Access-Control-Request-Method never gets here
    };
    const refused: FastifyCorsOptions = { origin: false };

    const delegator = (
      request: FastifyRequest,
      callback: (error: Error | null, options: FastifyCorsOptions) => void,
    ) => {
      const origin = request.headers.origin;
      const preflightLike = request.method === 'OPTIONS';
      if (
        origin === undefined ||
        !(anyOrigin || origins.has(origin)) ||
        (preflightLike && request.headers['access-control-request-method'] === undefined) ||
        isOperatorPath(request.url)
      ) {
        return callback(null, refused);
      }
      callback(null, { ...allowed, origin: anyOrigin ? '*' : origin });
    };

    await app.register(cors, { delegator });
  },
  { name: 'keymint-cors' },
);
