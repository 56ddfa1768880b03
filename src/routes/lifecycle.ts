import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { toV1, toV1Schema } from '../lib/v1-names.js';
import { ErrorResponses } from '../schemas/common.js';
import { KeyLookupSchema } from '../schemas/keys.js';
import {
  ActivateBodySchema,
  ActivateResponseSchema,
  DeactivateBodySchema,
  LifecycleMessageResponseSchema,
  UpdateKeyBodySchema,
  UpdateKeyResponseSchema,
} from '../schemas/lifecycle.js';
import {
  activateLicenseKey,
  deactivateLicenseKey,
  setLicenseKeyBlocked,
  updateLicenseKey,
} from '../services/licenses.js';


/** Activate, deactivate, block/unblock and update (§2.3–2.6); v1 and v2 paths share each service call (D1). */
export async function lifecycleRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;

  app.post(
    '/key/activate',
    {
      config: { scope: 'licenses:activate' },
      schema: {
        tags: ['License keys'],
        summary: 'Activate a license key on a device',
        body: ActivateBodySchema,
        response: { 200: ActivateResponseSchema, ...ErrorResponses },
      },
    },
    // request.ip honours X-Forwarded-For only when TRUST_PROXY is set (see app.ts).
    async (request) => activateLicenseKey(db, request.auth, request.body, request.ip),
  );

  app.post(
    '/activate-key',
    {
      config: { scope: 'licenses:activate' },
      schema: {
        tags: ['License keys (v1)'],
        summary: 'Activate a license key on a device (v1 names)',
        body: ActivateBodySchema,
        response: { 200: toV1Schema(ActivateResponseSchema), ...ErrorResponses },
      },
    },
    async (request) => toV1(await activateLicenseKey(db, request.auth, request.body, request.ip)),
  );

  for (const url of ['/key/deactivate', '/deactivate-key']) {
    app.post(
      url,
      {
        config: { scope: 'licenses:activate' },
        schema: {
          tags: [url.startsWith('/key') ? 'License keys' : 'License keys (v1)'],
          summary: 'Deactivate one device, or every device of a key',
          body: DeactivateBodySchema,
          response: { 200: LifecycleMessageResponseSchema, ...ErrorResponses },
        },
      },
      async (request) => {
        await deactivateLicenseKey(db, request.auth, request.body);
        return { message: 'Device deactivated', code: 0 as const };
      },
    );
  }

  const blockRoutes = [
    { urls: ['/key/block', '/block-key'], blocked: true, message: 'Key blocked' },
    { urls: ['/key/unblock', '/unblock-key'], blocked: false, message: 'Key unblocked' },
  ];
  for (const { urls, blocked, message } of blockRoutes) {
    for (const url of urls) {
      app.post(
        url,
        {
          config: { scope: 'licenses:block' },
          schema: {
            tags: [url.startsWith('/key') ? 'License keys' : 'License keys (v1)'],
            summary: blocked ? 'Block a license key' : 'Unblock a license key',
            body: KeyLookupSchema,
            response: { 200: LifecycleMessageResponseSchema, ...ErrorResponses },
          },
        },
        async (request) => {
          await setLicenseKeyBlocked(db, request.auth, request.body, blocked);
          return { message, code: 0 as const };
        },
      );
    }
  }

  app.patch(
    '/key',
    {
      config: { scope: 'licenses:write' },
      schema: {
        tags: ['License keys'],
        summary: 'Update a license key',
        body: UpdateKeyBodySchema,
        response: { 200: UpdateKeyResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      await updateLicenseKey(db, request.auth, request.body);
      return { code: 0 as const, message: 'License key updated', affectedCount: 1 };
    },
  );
}
