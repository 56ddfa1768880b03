import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { defineOperation, route } from '../../http/operation.js';
import { ErrorResponses } from '../../http/schemas.js';
import { recordSignOutcome, registerLicenseFileMetrics } from './metrics.js';
import { JwksResponseSchema, RotateResponseSchema, SignBodySchema, SignResponseSchema } from './schemas.js';
import { signLicenseFile } from './service.js';
import { SigningKeys } from './signing-keys.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The server-wide signing keys of offline license files. */
    signingKeys: SigningKeys;
  }
}

/** How long clients and caches may keep the JWKS (docs/api.md, "Offline licenses"). */
const JWKS_CACHE_CONTROL = 'public, max-age=300';

/**
 * Offline licenses, root part: the process's signing keys (decorated as `app.signingKeys` for the
 * sign and rotate routes), their start-up check, the metrics, and `GET /.well-known/jwks.json`,
 * which needs no credentials (still rate limited per IP by the root limiter).
 */
export const licenseFilesPlugin = fp(
  async (fastify: FastifyInstance) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const signingKeys = new SigningKeys(app.database.db, app.config.secretKey);
    app.decorate('signingKeys', signingKeys);
    registerLicenseFileMetrics(app.metricsRegistry);

    // Refuses to start when SECRET_KEY does not open the stored keys (app.ready() and listen() reject).
    app.addHook('onReady', async () => {
      const encrypted = await signingKeys.checkSecretKey();
      if (encrypted.length > 0) {
        app.log.info({ kids: encrypted }, 'signing keys stored in plain text are now encrypted with SECRET_KEY');
      }
    });

    app.get(
      '/.well-known/jwks.json',
      {
        schema: {
          tags: ['Offline licenses'],
          summary: 'Public keys that verify offline license files (JWKS)',
          response: { 200: JwksResponseSchema, ...ErrorResponses },
        },
      },
      async (_request, reply) => {
        const keys = await signingKeys.publicKeys();
        // Only a success may be cached: an error answer must not be served for five minutes.
        reply.header('cache-control', JWKS_CACHE_CONTROL);
        return { keys, code: 0 as const };
      },
    );
  },
  { name: 'keymint-license-files', dependencies: ['keymint-metrics'] },
);

/** `POST /key/sign`, registered in the access-token context. */
export async function licenseFileRoutes(app: FastifyInstance) {
  const db = app.database.db;
  const sign = defineOperation({
    method: 'POST',
    url: '/key/sign',
    scope: 'licenses:write',
    tag: 'Offline licenses',
    summary: 'Sign an offline license file for a machine',
    input: SignBodySchema,
    response: SignResponseSchema,
    run: async (request, body) => ({
      code: 0 as const,
      file: await recordSignOutcome(signLicenseFile(db, app.signingKeys, request.auth, body)),
    }),
  });
  app.route(route(sign));
}

/** `POST /admin/signing-keys/rotate`, registered in the admin context (under /admin). */
export async function signingKeyAdminRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/signing-keys/rotate',
    {
      schema: {
        tags: ['Admin'],
        summary: 'Rotate the signing key of offline license files',
        response: { 201: RotateResponseSchema, ...ErrorResponses },
      },
    },
    async (request, reply) => {
      const rotated = await app.signingKeys.rotate();
      request.log.info(rotated, 'signing key rotated');
      return reply.status(201).send({ code: 0 as const, ...rotated });
    },
  );
}
