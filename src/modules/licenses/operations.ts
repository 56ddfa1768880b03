import type { FastifyInstance } from 'fastify';
import { withTransaction } from '../../db/unit-of-work.js';
import { defineOperation } from '../../http/operation.js';
import { recordActivationOutcome, recordKeysCreated } from './metrics.js';
import {
  ActivateBodySchema,
  ActivateResponseSchema,
  CreateKeyBodySchema,
  CreateKeyResponseSchema,
  DeactivateBodySchema,
  GetKeyResponseSchema,
  KeyLookupSchema,
  MessageResponseSchema,
  UpdateKeyBodySchema,
  UpdateKeyResponseSchema,
} from './schemas.js';
import {
  activateLicenseKey,
  createLicenseKeys,
  createSingleLicenseKey,
  deactivateLicenseKey,
  getLicenseKey,
  planKeyCreation,
  setLicenseKeyBlocked,
  updateLicenseKey,
} from './service.js';

const tag = 'License keys';

/**
 * The license-key operations, each described once: routes.ts registers them at their v2 paths,
 * v1.ts at their legacy (v1) paths.
 */
export function licenseOperations(app: FastifyInstance) {
  const db = app.database.db;

  const createKeys = defineOperation({
    method: 'POST',
    url: '/key',
    scope: 'licenses:write',
    tag,
    summary: 'Create license keys',
    input: CreateKeyBodySchema,
    response: CreateKeyResponseSchema,
    async run(request, body) {
      const creation = planKeyCreation(request.auth, body);
      const created =
        (await createSingleLicenseKey(db, creation)) ??
        (await withTransaction(db, (tx) => createLicenseKeys(tx, creation)));
      recordKeysCreated(created.keys.length);
      return {
        code: 0 as const,
        key: created.keys[0]!,
        keys: body.amountKeys === undefined ? undefined : created.keys,
      };
    },
  });

  const getKey = defineOperation({
    method: 'GET',
    url: '/key',
    scope: 'licenses:read',
    tag,
    summary: 'Get a license key',
    input: KeyLookupSchema,
    response: GetKeyResponseSchema,
    run: async (request, lookup) => ({ code: 0 as const, data: await getLicenseKey(db, request.auth, lookup) }),
  });

  const activate = defineOperation({
    method: 'POST',
    url: '/key/activate',
    scope: 'licenses:activate',
    tag,
    summary: 'Activate a license key on a device',
    input: ActivateBodySchema,
    response: ActivateResponseSchema,
    async run(request, body) {
      const { activation } = await recordActivationOutcome(
        // request.ip honours X-Forwarded-For only when TRUST_PROXY is set (see app.ts).
        withTransaction(db, (tx) => activateLicenseKey(tx, request.auth, body, request.ip)),
      );
      return { code: 0 as const, message: 'License valid', ...activation };
    },
  });

  const deactivate = defineOperation({
    method: 'POST',
    url: '/key/deactivate',
    scope: 'licenses:activate',
    tag,
    summary: 'Deactivate one device, or every device of a key',
    input: DeactivateBodySchema,
    response: MessageResponseSchema,
    async run(request, body) {
      await withTransaction(db, (tx) => deactivateLicenseKey(tx, request.auth, body));
      return { message: 'Device deactivated', code: 0 as const };
    },
  });

  const setBlocked = (blocked: boolean) =>
    defineOperation({
      method: 'POST',
      url: blocked ? '/key/block' : '/key/unblock',
      scope: 'licenses:block',
      tag,
      summary: blocked ? 'Block a license key' : 'Unblock a license key',
      input: KeyLookupSchema,
      response: MessageResponseSchema,
      async run(request, lookup) {
        await withTransaction(db, (tx) => setLicenseKeyBlocked(tx, request.auth, lookup, blocked));
        return { message: blocked ? 'Key blocked' : 'Key unblocked', code: 0 as const };
      },
    });

  const update = defineOperation({
    method: 'PATCH',
    url: '/key',
    scope: 'licenses:write',
    tag,
    summary: 'Update a license key',
    input: UpdateKeyBodySchema,
    response: UpdateKeyResponseSchema,
    async run(request, body) {
      await withTransaction(db, (tx) => updateLicenseKey(tx, request.auth, body));
      return { code: 0 as const, message: 'License key updated', affectedCount: 1 };
    },
  });

  return { createKeys, getKey, activate, deactivate, block: setBlocked(true), unblock: setBlocked(false), update };
}

export type LicenseOperations = ReturnType<typeof licenseOperations>;
