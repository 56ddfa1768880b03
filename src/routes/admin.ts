import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { parseIsoDate } from '../lib/dates.js';
import { ErrorResponses } from '../schemas/common.js';
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
} from '../schemas/admin.js';
import {
  createAccessToken,
  createAccount,
  createProduct,
  listAccessTokens,
  listProducts,
  revokeAccessToken,
  updateProduct,
} from '../services/admin.js';

const tags = ['Admin'];
const security = [{ adminToken: [] }];

/** Admin API (§9): enabled only with ADMIN_TOKEN; registered under /admin. */
export async function adminRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;

  app.post(
    '/accounts',
    { schema: { tags, security, body: CreateAccountBodySchema, response: { 201: AccountResponseSchema, ...ErrorResponses } } },
    async (request, reply) => reply.status(201).send({ code: 0 as const, ...(await createAccount(db, request.body.name)) }),
  );

  app.post(
    '/products',
    { schema: { tags, security, body: CreateProductBodySchema, response: { 201: ProductResponseSchema, ...ErrorResponses } } },
    async (request, reply) => reply.status(201).send({ code: 0 as const, ...(await createProduct(db, request.body)) }),
  );

  app.patch(
    '/products/:id',
    {
      schema: {
        tags,
        security,
        params: IdParamsSchema,
        body: UpdateProductBodySchema,
        response: { 200: ProductResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => ({ code: 0 as const, ...(await updateProduct(db, request.params.id, request.body)) }),
  );

  app.get(
    '/products',
    { schema: { tags, security, querystring: AccountQuerySchema, response: { 200: ProductListResponseSchema, ...ErrorResponses } } },
    async (request) => ({ code: 0 as const, data: await listProducts(db, request.query.accountId) }),
  );

  app.post(
    '/tokens',
    { schema: { tags, security, body: CreateTokenBodySchema, response: { 201: CreateTokenResponseSchema, ...ErrorResponses } } },
    async (request, reply) => {
      const { expiresAt, ...rest } = request.body;
      const token = await createAccessToken(db, {
        ...rest,
        expiresAt: expiresAt === undefined ? undefined : parseIsoDate(expiresAt),
      });
      return reply.status(201).send({ code: 0 as const, ...token });
    },
  );

  app.get(
    '/tokens',
    { schema: { tags, security, querystring: AccountQuerySchema, response: { 200: TokenListResponseSchema, ...ErrorResponses } } },
    async (request) => ({ code: 0 as const, data: await listAccessTokens(db, request.query.accountId) }),
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, security, params: IdParamsSchema, response: { 200: MessageResponseSchema, ...ErrorResponses } } },
    async (request) => {
      await revokeAccessToken(db, request.params.id);
      return { code: 0 as const, message: 'Token revoked' };
    },
  );
}
