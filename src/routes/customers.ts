import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ErrorSchema } from '../schemas/common.js';
import { ListCustomersQuerySchema, ListCustomersResponseSchema } from '../schemas/customers.js';
import { listCustomers } from '../services/customers.js';

const errors = { '4xx': ErrorSchema, '5xx': ErrorSchema };
const MAX_PAGE_SIZE = 100;

/** Customer endpoints (§5): `{action, status, ..., code}` envelopes. */
export async function customerRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;

  app.get(
    '/customer',
    {
      config: { scope: 'customers:read' },
      schema: {
        tags: ['Customers'],
        summary: 'List customers',
        querystring: ListCustomersQuerySchema,
        response: { 200: ListCustomersResponseSchema, ...errors },
      },
    },
    async (request) => {
      const { page, limit, email } = request.query;
      const result = await listCustomers(db, request.auth.accountId, {
        page: page === undefined ? 1 : Number(page),
        limit: limit === undefined ? 10 : Math.min(Number(limit), MAX_PAGE_SIZE),
        email,
      });
      return { action: 'getCustomers' as const, status: true as const, ...result, code: 0 as const };
    },
  );
}
