import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorResponses } from '../../http/schemas.js';
import {
  CreateCustomerBodySchema,
  CreateCustomerResponseSchema,
  CustomerIdBodySchema,
  CustomerIdQuerySchema,
  CustomerKeysResponseSchema,
  DeleteCustomerResponseSchema,
  GetCustomerResponseSchema,
  ListCustomersQuerySchema,
  ListCustomersResponseSchema,
  OptionalCustomerIdQuerySchema,
  ToggleCustomerResponseSchema,
  UpdateCustomerBodySchema,
  UpdateCustomerResponseSchema,
} from './schemas.js';
import {
  createCustomer,
  deleteCustomer,
  getCustomer,
  getCustomerWithKeys,
  listCustomers,
  toggleCustomerActive,
  updateCustomer,
} from './service.js';
import { toCustomerView } from './views.js';

const tags = ['Customers'];
const MAX_PAGE_SIZE = 100;

const isGiven = (value: unknown) => value !== undefined && value !== null && value !== '';

/**
 * Endpoints that take `customerId` from the query string or the JSON body (update, delete and
 * toggle: the SDKs disagree on where they put it). Before validation the chosen value is placed
 * in the body, so one body schema judges it and the order of checks holds (docs/api.md, "Order
 * of checks").
 */
const customerIdFrom = (preferred: 'query' | 'body') => async (request: FastifyRequest) => {
  const fromQuery = (request.query as { customerId?: unknown }).customerId;
  const body = (request.body ?? {}) as Record<string, unknown>;
  if (isGiven(fromQuery) && (preferred === 'query' || !isGiven(body.customerId))) body.customerId = fromQuery;
  request.body = body;
};

/** Customer endpoints (docs/api.md, "Customers"): `{action, status, ..., code}` envelopes. */
export async function customerRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;

  app.post(
    '/customer',
    {
      config: { scope: 'customers:write' },
      schema: {
        tags,
        summary: 'Create a customer',
        body: CreateCustomerBodySchema,
        response: { 201: CreateCustomerResponseSchema, ...ErrorResponses },
      },
    },
    async (request, reply) => {
      const { customer } = await app.commitChange(
        request.auth.accountId,
        (tx) => createCustomer(tx, request.auth.accountId, request.body),
        request.deadline,
      );
      return reply.status(201).send({
        action: 'createCustomer' as const,
        status: true as const,
        message: 'Customer created successfully',
        id: customer.id,
        data: { id: customer.id, name: customer.name, email: customer.email },
        code: 0 as const,
      });
    },
  );

  app.get(
    '/customer',
    {
      config: { scope: 'customers:read' },
      schema: {
        tags,
        summary: 'List customers',
        querystring: ListCustomersQuerySchema,
        response: { 200: ListCustomersResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const { page, limit, email } = request.query;
      const result = await listCustomers(db, request.auth.accountId, {
        page: page === undefined ? 1 : Number(page),
        limit: limit === undefined ? 10 : Math.min(Number(limit), MAX_PAGE_SIZE),
        email,
      });
      return {
        action: 'getCustomers' as const,
        status: true as const,
        data: result.customers.map(toCustomerView),
        meta: result.meta,
        code: 0 as const,
      };
    },
  );

  app.get(
    '/customer/by-id',
    {
      config: { scope: 'customers:read' },
      schema: {
        tags,
        summary: 'Get a customer',
        querystring: CustomerIdQuerySchema,
        response: { 200: GetCustomerResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const customer = await getCustomer(db, request.auth.accountId, request.query.customerId);
      return {
        action: 'getCustomerById' as const,
        status: true as const,
        data: [toCustomerView(customer)],
        code: 0 as const,
      };
    },
  );

  app.put(
    '/customer/by-id',
    {
      config: { scope: 'customers:write' },
      preValidation: customerIdFrom('body'),
      schema: {
        tags,
        summary: 'Update a customer',
        querystring: OptionalCustomerIdQuerySchema,
        body: UpdateCustomerBodySchema,
        response: { 200: UpdateCustomerResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const { customer } = await app.commitChange(
        request.auth.accountId,
        (tx) => updateCustomer(tx, request.auth.accountId, request.body),
        request.deadline,
      );
      return {
        action: 'updateCustomer' as const,
        status: true as const,
        message: 'Customer updated successfully',
        data: toCustomerView(customer),
        code: 0 as const,
      };
    },
  );

  app.delete(
    '/customer/by-id',
    {
      config: { scope: 'customers:delete' },
      preValidation: customerIdFrom('query'),
      schema: {
        tags,
        summary: 'Delete a customer with its keys and devices',
        querystring: OptionalCustomerIdQuerySchema,
        body: CustomerIdBodySchema,
        response: { 200: DeleteCustomerResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      await app.commitChange(
        request.auth.accountId,
        (tx) => deleteCustomer(tx, request.auth, request.body.customerId),
        request.deadline,
      );
      return {
        action: 'removeCustomer' as const,
        status: true as const,
        message: 'Customer deleted successfully',
        code: 0 as const,
      };
    },
  );

  app.get(
    '/customer/keys',
    {
      config: { scope: 'customers:read' },
      schema: {
        tags,
        summary: 'A customer and the license keys the token may see',
        querystring: CustomerIdQuerySchema,
        response: { 200: CustomerKeysResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const { customer, licenseKeys } = await getCustomerWithKeys(db, request.auth, request.query.customerId);
      return {
        action: 'getCustomerLicenseKeys' as const,
        status: true as const,
        data: { customer: toCustomerView(customer), licenseKeys },
        code: 0 as const,
      };
    },
  );

  app.post(
    '/customer/disable',
    {
      config: { scope: 'customers:write' },
      preValidation: customerIdFrom('query'),
      schema: {
        tags,
        summary: 'Toggle a customer between active and disabled',
        querystring: OptionalCustomerIdQuerySchema,
        body: CustomerIdBodySchema,
        response: { 200: ToggleCustomerResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const { active } = await app.commitChange(
        request.auth.accountId,
        (tx) => toggleCustomerActive(tx, request.auth.accountId, request.body.customerId),
        request.deadline,
      );
      return {
        action: 'toggleActive' as const,
        status: true as const,
        message: active ? 'Customer enabled' : 'Customer disabled',
        code: 0 as const,
      };
    },
  );
}
