import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client.js';
import { defineOperation, type Operation } from '../../http/operation.js';
import type { Outcome } from '../../lib/events.js';
import type { AuthContext } from '../../lib/scopes.js';
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
    async run(request, body, reply) {
      const creation = planKeyCreation(request.auth, body);
      const answerOf = (keys: string[]) => ({
        code: 0 as const,
        key: keys[0]!,
        keys: body.amountKeys === undefined ? undefined : keys,
      });
      // With an Idempotency-Key, the one-statement path stores its answer on the record in that
      // same statement: atomic with the key, and one round trip fewer.
      const claim = request.idempotencyClaim;
      let rendered: string | undefined;
      const answer = claim && {
        ...claim,
        render: (key: string) => {
          // The route's own serializer (200), so the stored text is the text sent.
          const text = String(reply.serialize(answerOf([key])));
          rendered = text;
          return text;
        },
      };
      const single = await request.deadline.commit(() =>
        createSingleLicenseKey(db, creation, app.webhookOutbox.settings, answer ?? undefined),
      );
      if (single && single.deliveries > 0) app.webhookOutbox.deliveriesCommitted();
      if (claim && single?.answered) claim.answered = rendered;
      const created =
        single ??
        (await app.commitChange(request.auth.accountId, (tx) => createLicenseKeys(tx, creation), request.deadline));
      recordKeysCreated(created.keys.length);
      return answerOf(created.keys);
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
        app.commitChange(
          request.auth.accountId,
          (tx) => activateLicenseKey(tx, request.auth, body, request.ip),
          request.deadline,
        ),
      );
      return { code: 0 as const, message: 'License valid', ...activation };
    },
  });

  /** An operation that applies a change in the request's transaction and answers a fixed body. */
  const changeOperation = <Input extends TSchema, Output extends TSchema>(
    definition: Omit<Operation<Input, Output>, 'tag' | 'run'> & {
      apply(tx: Db, auth: AuthContext, input: Static<Input>): Promise<Outcome<object>>;
      answer: Static<Output>;
    },
  ) =>
    defineOperation({
      ...definition,
      tag,
      async run(request, input) {
        await app.commitChange(
          request.auth.accountId,
          (tx) => definition.apply(tx, request.auth, input),
          request.deadline,
        );
        return definition.answer;
      },
    });

  const deactivate = changeOperation({
    method: 'POST',
    url: '/key/deactivate',
    scope: 'licenses:activate',
    summary: 'Deactivate one device, or every device of a key',
    input: DeactivateBodySchema,
    response: MessageResponseSchema,
    apply: deactivateLicenseKey,
    answer: { message: 'Device deactivated', code: 0 },
  });

  const setBlocked = (blocked: boolean) =>
    changeOperation({
      method: 'POST',
      url: blocked ? '/key/block' : '/key/unblock',
      scope: 'licenses:block',
      summary: blocked ? 'Block a license key' : 'Unblock a license key',
      input: KeyLookupSchema,
      response: MessageResponseSchema,
      apply: (tx, auth, lookup) => setLicenseKeyBlocked(tx, auth, lookup, blocked),
      answer: { message: blocked ? 'Key blocked' : 'Key unblocked', code: 0 },
    });

  const update = changeOperation({
    method: 'PATCH',
    url: '/key',
    scope: 'licenses:write',
    summary: 'Update a license key',
    input: UpdateKeyBodySchema,
    response: UpdateKeyResponseSchema,
    apply: updateLicenseKey,
    answer: { code: 0, message: 'License key updated', affectedCount: 1 },
  });

  return { createKeys, getKey, activate, deactivate, block: setBlocked(true), unblock: setBlocked(false), update };
}

export type LicenseOperations = ReturnType<typeof licenseOperations>;
