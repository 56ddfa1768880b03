import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, type Registry } from 'prom-client';
import { matchesSecretDigest, sha256 } from '../lib/hashing.js';
import type { AuthContext } from '../lib/scopes.js';
import { ACCESS_TOKEN_CHANNEL, TokenCache } from '../modules/admin/token-cache.js';
import { createTokenResolver } from '../modules/admin/tokens.js';

/** Who sent a request, as far as its bearer credential tells. */
export type Caller =
  | { kind: 'access-token'; auth: AuthContext }
  | { kind: 'admin' }
  | { kind: 'metrics' }
  | { kind: 'anonymous' };

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Resolves the request's bearer credential once per request (memoized): the rate limiter
     * needs it before authentication runs, and authentication then reuses the answer instead
     * of a second database lookup.
     */
    callerOf(request: FastifyRequest): Promise<Caller>;
    /** Resolved access tokens (TOKEN_CACHE_TTL_MS; undefined when 0). */
    tokenCache: TokenCache | undefined;
  }
}

/** The token after `Bearer ` (scheme case-insensitive), as @fastify/bearer-auth reads it. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header || header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = header.slice(7).trim();
  return token === '' ? undefined : token;
}

export interface CallerPluginOptions {
  adminToken: string | undefined;
  metricsToken: string | undefined;
  /** How long a resolved access token is kept at most; 0: every request looks its token up. */
  tokenCacheTtlMs: number;
}

export const callerPlugin = fp<CallerPluginOptions>(
  async (app: FastifyInstance, options) => {
    const cache = options.tokenCacheTtlMs > 0 ? new TokenCache(options.tokenCacheTtlMs) : undefined;
    if (cache) {
      const stopListening = await app.database.listen(ACCESS_TOKEN_CHANNEL, cache);
      app.addHook('onClose', stopListening);
    }
    app.decorate('tokenCache', cache);
    if (cache) registerTokenCacheMetrics(app.metricsRegistry, cache);
    const resolveAccessToken = createTokenResolver(app.database.db, cache);
    const adminDigest = options.adminToken ? sha256(options.adminToken) : undefined;
    const metricsDigest = options.metricsToken ? sha256(options.metricsToken) : undefined;
    const callers = new WeakMap<FastifyRequest, Promise<Caller>>();

    const resolve = async (request: FastifyRequest): Promise<Caller> => {
      const token = bearerToken(request);
      if (token === undefined) return { kind: 'anonymous' };
      if (adminDigest && matchesSecretDigest(token, adminDigest)) return { kind: 'admin' };
      if (metricsDigest && matchesSecretDigest(token, metricsDigest)) return { kind: 'metrics' };
      const auth = await resolveAccessToken(token);
      return auth ? { kind: 'access-token', auth } : { kind: 'anonymous' };
    };

    app.decorate('callerOf', (request: FastifyRequest) => {
      let caller = callers.get(request);
      if (!caller) {
        caller = resolve(request);
        callers.set(request, caller);
      }
      return caller;
    });
  },
  { name: 'keymint-caller' },
);

/** The cache's counters, read when /metrics is scraped: nothing is counted per request here. */
function registerTokenCacheMetrics(registry: Registry, cache: TokenCache) {
  new Counter({
    name: 'keymint_token_cache_lookups_total',
    help: 'Access-token lookups answered from the in-process cache (hit) or the database (miss)',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'hit' }, cache.stats.hits);
      this.inc({ result: 'miss' }, cache.stats.misses);
    },
  });
  new Counter({
    name: 'keymint_token_cache_invalidations_total',
    help: 'Times the token cache was emptied: a token changed (NOTIFY) or its LISTEN connection came back',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(cache.stats.invalidations);
    },
  });
  new Gauge({
    name: 'keymint_token_cache_entries',
    help: 'Access tokens held in the in-process cache',
    registers: [registry],
    collect() {
      this.set(cache.size);
    },
  });
  new Gauge({
    name: 'keymint_token_cache_listening',
    help: '1 while the token cache listens for token changes (and is used), 0 while every lookup goes to the database',
    registers: [registry],
    collect() {
      this.set(cache.live ? 1 : 0);
    },
  });
}
