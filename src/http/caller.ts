import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { matchesSecretDigest, sha256 } from '../lib/hashing.js';
import type { AuthContext } from '../lib/scopes.js';
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
}

export const callerPlugin = fp<CallerPluginOptions>(
  async (app: FastifyInstance, options) => {
    const resolveAccessToken = createTokenResolver(app.database.db);
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
