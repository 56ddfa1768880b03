import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { ConfigError } from '../config.js';
import { Errors } from '../lib/errors.js';

export interface RateLimitPluginOptions {
  /** Requests per client per one-minute window. */
  max: number;
  /** Shared counters for every replica; omitted = counters in this process. */
  redisUrl: string | undefined;
  redisKeyPrefix: string;
}

const WINDOW_MS = 60_000;

/** Probes must keep answering however busy a client is. */
const EXEMPT_ROUTES = new Set(['/healthz', '/readyz']);

/**
 * The client a request counts against (docs/api.md, "Rate limits"): a valid access token by its ID, the admin or the
 * metrics token, and everything else — no credential, or one that is not valid — by client IP
 * (IPv6 clients by their /64, as one host usually owns the whole prefix). Keying invalid
 * credentials by IP means rotating made-up tokens does not escape the limit. No key holds a secret.
 */
export async function rateLimitKey(app: FastifyInstance, request: FastifyRequest): Promise<string> {
  const caller = await app.callerOf(request);
  if (caller.kind === 'access-token') return `token:${caller.auth.tokenId}`;
  if (caller.kind === 'admin' || caller.kind === 'metrics') return caller.kind;
  return `ip:${normalizeIP(request.ip)}`;
}

async function connectRedis(url: string, log: FastifyBaseLogger): Promise<Redis> {
  // Loaded only when REDIS_URL is set (~20 MB a process that keeps its counters does not need).
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
    lazyConnect: true,
    // A request never waits for a reconnect: a command fails fast and the request goes on.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 1000,
    connectTimeout: 5000,
  });
  // ioredis reconnects by itself; an error event without a listener would crash the process.
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new ConfigError(`Cannot connect to Redis (REDIS_URL): ${(err as Error).message}`);
  }
  return redis;
}

/**
 * Fixed one-minute windows per client, checked before authentication: the hook is
 * added to the root instance ahead of every route plugin, so it runs before bearer-auth's hook
 * and unauthenticated requests are counted too. Every counted response carries the X-RateLimit
 * headers; the probes are not counted.
 */
export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app: FastifyInstance, options) => {
    const redis = options.redisUrl ? await connectRedis(options.redisUrl, app.log) : undefined;
    if (redis) {
      app.addHook('onClose', async () => {
        await redis.quit().catch(() => redis.disconnect());
      });
    }

    await app.register(rateLimit, {
      global: false,
      max: options.max,
      timeWindow: WINDOW_MS,
      keyGenerator: (request: FastifyRequest) => rateLimitKey(app, request),
      ...(redis ? { redis, nameSpace: `${options.redisKeyPrefix}rate-limit:` } : { cache: 100_000 }),
    });
    const check = app.createRateLimit();

    app.addHook('onRequest', async (request, reply) => {
      const route = request.routeOptions.url;
      if (route !== undefined && EXEMPT_ROUTES.has(route)) return;
      let result: Awaited<ReturnType<typeof check>>;
      try {
        result = await check(request);
      } catch (err) {
        // Losing the shared counters must not take the API down with them.
        request.log.warn({ err }, 'rate limit unavailable, request let through');
        return;
      }
      if (result.isAllowed) return;
      const resetSeconds = Math.max(1, result.ttlInSeconds);
      reply.header('x-ratelimit-limit', result.max);
      reply.header('x-ratelimit-remaining', result.remaining);
      reply.header('x-ratelimit-reset', resetSeconds);
      // An unknown path is answered 404 before the limit is applied, but still counted.
      if (result.isExceeded && route !== undefined) {
        reply.header('retry-after', resetSeconds);
        throw Errors.tooManyRequests();
      }
    });
  },
  { name: 'keymint-rate-limit' },
);
