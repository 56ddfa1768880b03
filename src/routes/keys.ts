import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { toV1, toV1Schema } from '../lib/v1-names.js';
import { ErrorResponses } from '../schemas/common.js';
import {
  CreateKeyBodySchema,
  CreateKeyResponseSchema,
  GetKeyResponseSchema,
  KeyLookupSchema,
} from '../schemas/keys.js';
import { createLicenseKeys, getLicenseKey } from '../services/keys.js';
import { lifecycleRoutes } from './lifecycle.js';


/** License-key endpoints; v1 and v2 paths share every service call (D1). */
export async function keyRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;
  await app.register(lifecycleRoutes);

  for (const url of ['/key', '/create-key']) {
    app.post(
      url,
      {
        config: { scope: 'licenses:write' },
        schema: {
          tags: ['License keys'],
          summary: 'Create license keys',
          body: CreateKeyBodySchema,
          response: { 200: CreateKeyResponseSchema, ...ErrorResponses },
        },
      },
      async (request) => ({ code: 0 as const, ...(await createLicenseKeys(db, request.auth, request.body)) }),
    );
  }

  app.get(
    '/key',
    {
      config: { scope: 'licenses:read' },
      schema: {
        tags: ['License keys'],
        summary: 'Get a license key',
        querystring: KeyLookupSchema,
        response: { 200: GetKeyResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => getLicenseKey(db, request.auth, request.query.productId, request.query.licenseKey),
  );

  app.post(
    '/get-key',
    {
      config: { scope: 'licenses:read' },
      schema: {
        tags: ['License keys (v1)'],
        summary: 'Get a license key (v1 names)',
        body: KeyLookupSchema,
        response: { 200: toV1Schema(GetKeyResponseSchema), ...ErrorResponses },
      },
    },
    async (request) => toV1(await getLicenseKey(db, request.auth, request.body.productId, request.body.licenseKey)),
  );
}
