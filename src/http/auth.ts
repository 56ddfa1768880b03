import bearerAuth from '@fastify/bearer-auth';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Errors } from '../lib/errors.js';
import type { AuthContext, Scope } from '../lib/scopes.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthContext;
  }
  interface FastifyContextConfig {
    /** The scope a public route requires (docs/api.md, "Conventions"). */
    scope?: Scope;
  }
}

/**
 * Public-API authentication for the routes registered in the same (encapsulated) context:
 * `Authorization: Bearer at_...` looked up by hash, then the route's scope.
 */
export const accessTokenAuth = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('auth', null as unknown as AuthContext);
    await app.register(bearerAuth, {
      keys: [],
      addHook: false,
      specCompliance: 'rfc6749', // the scheme word is case-insensitive
      verifyErrorLogLevel: 'debug',
      // The token was already resolved for the rate limiter (same parsing as bearer-auth's).
      auth: async (_token: string, request: FastifyRequest) => {
        const caller = await app.callerOf(request);
        if (caller.kind !== 'access-token') return false;
        request.auth = caller.auth;
        return true;
      },
    });
    app.addHook('onRequest', app.verifyBearerAuth!);
    app.addHook('onRequest', async (request: FastifyRequest, _reply: FastifyReply) => {
      const scope = request.routeOptions.config.scope;
      if (scope && !request.auth.scopes.has(scope)) throw Errors.forbidden();
    });
  },
  { name: 'keymint-access-token-auth' },
);

/** Admin-API authentication: the ADMIN_TOKEN (compared in constant time by callerOf). */
export const adminTokenAuth = fp(
  async (app: FastifyInstance) => {
    await app.register(bearerAuth, {
      keys: [],
      addHook: false,
      specCompliance: 'rfc6749',
      verifyErrorLogLevel: 'debug',
      auth: async (_token: string, request: FastifyRequest) => (await app.callerOf(request)).kind === 'admin',
    });
    app.addHook('onRequest', app.verifyBearerAuth!);
  },
  { name: 'keymint-admin-token-auth' },
);
