import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { withTransaction } from '../../db/unit-of-work.js';
import { ErrorResponses } from '../../http/schemas.js';
import { parseIsoDate } from '../../lib/dates.js';
import { createAccount } from './accounts.js';
import { createProduct, listProducts, updateProduct } from './products.js';
import {
  AccountQuerySchema,
  AccountResponseSchema,
  CreateAccountBodySchema,
  CreateProductBodySchema,
  CreateTokenBodySchema,
  CreateTokenResponseSchema,
  IdParamsSchema,
  MessageResponseSchema,
  ProductListResponseSchema,
  ProductResponseSchema,
  TokenListResponseSchema,
  UpdateProductBodySchema,
} from './schemas.js';
import { createAccessToken, listAccessTokens, revokeAccessToken } from './tokens.js';

const tags = ['Admin'];

/** Admin API (docs/api.md, "Admin API"): enabled only with ADMIN_TOKEN; registered under /admin. */
export async function adminRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;

  app.post(
    '/accounts',
    { schema: { tags, body: CreateAccountBodySchema, response: { 201: AccountResponseSchema, ...ErrorResponses } } },
    async (request, reply) =>
      reply.status(201).send({
        code: 0 as const,
        ...(await withTransaction(db, (tx) => createAccount(tx, request.body.name), request.deadline)),
      }),
  );

  app.post(
    '/products',
    { schema: { tags, body: CreateProductBodySchema, response: { 201: ProductResponseSchema, ...ErrorResponses } } },
    async (request, reply) =>
      reply.status(201).send({
        code: 0 as const,
        ...(await withTransaction(db, (tx) => createProduct(tx, request.body), request.deadline)),
      }),
  );

  app.patch(
    '/products/:id',
    {
      schema: {
        tags,
        params: IdParamsSchema,
        body: UpdateProductBodySchema,
        response: { 200: ProductResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => ({
      code: 0 as const,
      ...(await withTransaction(db, (tx) => updateProduct(tx, request.params.id, request.body), request.deadline)),
    }),
  );

  app.get(
    '/products',
    {
      schema: {
        tags,
        querystring: AccountQuerySchema,
        response: { 200: ProductListResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => ({ code: 0 as const, data: await listProducts(db, request.query.accountId) }),
  );

  app.post(
    '/tokens',
    {
      // The answer shows the token, which is stored only as a hash: never kept for a replay.
      config: { idempotentReplay: false },
      schema: { tags, body: CreateTokenBodySchema, response: { 201: CreateTokenResponseSchema, ...ErrorResponses } },
    },
    async (request, reply) => {
      const { expiresAt, ...rest } = request.body;
      const token = await withTransaction(
        db,
        (tx) =>
          createAccessToken(tx, { ...rest, expiresAt: expiresAt === undefined ? undefined : parseIsoDate(expiresAt) }),
        request.deadline,
      );
      return reply.status(201).send({ code: 0 as const, ...token });
    },
  );

  app.get(
    '/tokens',
    {
      schema: { tags, querystring: AccountQuerySchema, response: { 200: TokenListResponseSchema, ...ErrorResponses } },
    },
    async (request) => ({ code: 0 as const, data: await listAccessTokens(db, request.query.accountId) }),
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, params: IdParamsSchema, response: { 200: MessageResponseSchema, ...ErrorResponses } } },
    async (request) => {
      // Waiting for this process's copy of the revocation's notification (registered before the
      // commit, which sends it): once it answers, every process's token cache has been told.
      const notified = app.tokenCache?.notified(request.params.id, 1000);
      await withTransaction(db, (tx) => revokeAccessToken(tx, request.params.id), request.deadline);
      await notified;
      return { code: 0 as const, message: 'Token revoked' };
    },
  );
}
