import { randomBytes } from 'node:crypto';
import { and, count, eq } from 'drizzle-orm';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { customers, licenseKeys } from '../../src/db/schema/index.js';
import { ADMIN_TOKEN, type TestApp } from './app.js';

type Json = Record<string, unknown>;

export interface ApiResponse {
  status: number;
  body: any;
  headers: LightMyRequestResponse['headers'];
  raw: LightMyRequestResponse;
}

const wrap = (response: LightMyRequestResponse): ApiResponse => {
  let body: unknown;
  try {
    body = response.json();
  } catch {
    body = response.body;
  }
  return { status: response.statusCode, body, headers: response.headers, raw: response };
};

/** A small HTTP client over app.inject with a bearer token. */
export function client(app: FastifyInstance, token?: string) {
  const headers = (extra: Record<string, string> = {}) => ({
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  return {
    async post(url: string, body?: Json | string, extra?: Record<string, string>) {
      return wrap(
        await app.inject({
          method: 'POST',
          url,
          headers: headers({ 'content-type': 'application/json', ...extra }),
          payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        }),
      );
    },
    async send(method: 'PATCH' | 'PUT' | 'DELETE' | 'POST', url: string, body?: Json, extra?: Record<string, string>) {
      return wrap(
        await app.inject({
          method,
          url,
          headers: headers({ 'content-type': 'application/json', ...extra }),
          payload: body === undefined ? undefined : JSON.stringify(body),
        }),
      );
    },
    async get(url: string, query?: Record<string, string>, extra?: Record<string, string>) {
      return wrap(await app.inject({ method: 'GET', url, query, headers: headers(extra) }));
    },
  };
}

export const admin = (app: FastifyInstance) => client(app, ADMIN_TOKEN);

export interface Tenant {
  accountId: string;
  productId: string;
  token: string;
  api: ReturnType<typeof client>;
}

export interface TenantOptions {
  scopes?: string[];
  /** Restrict the token to these products; 'own' = the tenant's product only. */
  productIds?: string[] | 'own';
}

/** A fresh account with one active product and an access token: tests never share state. */
export async function createTenant(app: FastifyInstance, options: TenantOptions = {}): Promise<Tenant> {
  const adminApi = admin(app);
  const account = await adminApi.post('/admin/accounts', { name: 'Test account' });
  expect(account.status).toBe(201);
  const accountId = account.body.id as string;
  const product = await adminApi.post('/admin/products', { name: 'Test product', accountId });
  expect(product.status).toBe(201);
  const productId = product.body.id as string;
  const token = await createToken(app, accountId, {
    scopes: options.scopes,
    productIds: options.productIds === 'own' ? [productId] : options.productIds,
  });
  return { accountId, productId, token, api: client(app, token) };
}

export async function createProduct(app: FastifyInstance, accountId: string, active = true): Promise<string> {
  const product = await admin(app).post('/admin/products', { name: 'Another product', accountId, active });
  expect(product.status).toBe(201);
  return product.body.id as string;
}

export async function createToken(
  app: FastifyInstance,
  accountId: string,
  options: { scopes?: string[]; productIds?: string[]; expiresAt?: string } = {},
): Promise<string> {
  const response = await admin(app).post('/admin/tokens', { name: 'test', accountId, ...options });
  expect(response.status).toBe(201);
  return response.body.token as string;
}

/** Creates a key through the API and returns it. */
export async function createKey(tenant: Tenant, body: Json = {}): Promise<string> {
  const response = await tenant.api.post('/key', { productId: tenant.productId, ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.key as string;
}

/** Ids (accounts, products, keys, customers, tokens): 22 lowercase hex chars. */
export const HEX_ID = /^[0-9a-f]{22}$/;
/** Timestamps as the API writes them: ISO 8601, UTC, milliseconds. */
export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** A key of the default format: 4 sections of 5 upper-case letters or digits. */
export const DEFAULT_KEY = /^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/;

/** Every scope an access token can have; a token made without scopes has them all. */
export const ALL_SCOPES = [
  'customers:read',
  'customers:write',
  'customers:delete',
  'licenses:read',
  'licenses:write',
  'licenses:activate',
  'licenses:block',
];

/** An e-mail address no other test uses. */
export const uniqueEmail = (local = 'user') => `${local}.${randomBytes(5).toString('hex')}@example.com`;

/** An error answer: the HTTP status and the {message, code} body. */
export interface ExpectedError {
  status: number;
  body: { message: string; code: number };
}

const error = (status: number, code: number, message: string): ExpectedError => ({ status, body: { message, code } });

/** The error answers that many endpoints share. */
export const ERRORS = {
  missingParams: error(400, 1, 'Missing required params'),
  invalidJson: error(400, 1, 'Invalid JSON body'),
  invalidProductId: error(400, 1, 'Invalid productId'),
  invalidToken: error(401, 1, 'Invalid access token'),
  forbidden: error(403, 1, 'Insufficient permissions for this operation'),
  notFound: error(404, 1, 'Not found'),
  productNotFound: error(404, 1, 'Product not found or inactive'),
  keyNotFound: error(404, 1, 'License key not found'),
  customerNotFound: error(404, 1, 'Customer not found'),
  floatingLicense: error(403, 2, 'Floating licenses must use checkout'),
  keyBlocked: error(403, 2, 'License key is blocked'),
  keyExpired: error(403, 2, 'License key has expired'),
  customerInactive: error(403, 2, 'Customer is inactive'),
  hostNotAllowed: error(403, 2, 'Host not allowed for this license'),
  activationLimit: error(403, 2, 'Activation limit reached'),
  tooManyRequests: error(429, 3, 'Too many requests'),
  serverError: error(500, 1, 'Server error'),
} as const;

/** Expects exactly this status and error body: one of ERRORS, or the status, code and message. */
export function expectError(response: { status: number; body: unknown }, expected: ExpectedError): void;
export function expectError(
  response: { status: number; body: unknown },
  status: number,
  code: number,
  message: string,
): void;
export function expectError(
  response: { status: number; body: unknown },
  expected: ExpectedError | number,
  code?: number,
  message?: string,
): void {
  const { status, body } = typeof expected === 'number' ? error(expected, code!, message!) : expected;
  expect({ status: response.status, body: response.body }).toEqual({ status, body });
}

/** The `data` of GET /key for a key of the tenant's product; expects 200. */
export async function getLicense(tenant: Tenant, key: string): Promise<{ license: any; customer: any }> {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data;
}

/**
 * The license of GET /key (v2 names) as a fresh key with default settings shows it: no limit,
 * no devices, expiring at some instant, node-locked, not blocked. `fields` override the defaults.
 */
export const licenseView = (key: string, productId: string, fields: Record<string, unknown> = {}) => ({
  id: expect.stringMatching(HEX_ID),
  key,
  productId,
  maxActivations: null,
  activations: 0,
  devices: [],
  activated: true,
  expirationDate: expect.stringMatching(ISO_MS),
  metadata: null,
  allowedHosts: null,
  licenseType: 'node-locked',
  blocked: false,
  ...fields,
});

/** The short customer of GET /key and activation answers; the id is any 22-hex id unless given. */
export const customerView = (customer: { name: string; email: string | null; active?: boolean; id?: string }) => ({
  id: customer.id ?? expect.stringMatching(HEX_ID),
  name: customer.name,
  email: customer.email,
  active: customer.active ?? true,
});

/** The full customer of the customer endpoints; the id is any 22-hex id unless given. */
export const fullCustomerView = (
  tenant: Pick<Tenant, 'accountId'>,
  customer: { name: string; email: string | null; active?: boolean; id?: string },
) => ({
  ...customerView(customer),
  createdAt: expect.stringMatching(ISO_MS),
  updatedAt: expect.stringMatching(ISO_MS),
  createdBy: tenant.accountId,
});

/** POST /customer; expects 201 and returns the new customer's id. */
export async function addCustomer(tenant: Tenant, body: Record<string, unknown> = { name: 'Ada' }): Promise<string> {
  const response = await tenant.api.post('/customer', body);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.id as string;
}

/**
 * Key creation on one path (POST /create-key or POST /key) with the tenant's productId:
 * `create` returns the answer as it is, `createOk` expects 200.
 */
export function keyCreator(path: string) {
  const create = (tenant: Tenant, body: Record<string, unknown>) =>
    tenant.api.post(path, { productId: tenant.productId, ...body });
  async function createOk(tenant: Tenant, body: Record<string, unknown> = {}): Promise<ApiResponse> {
    const response = await create(tenant, body);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response;
  }
  return { create, createOk };
}

/** POST /key/activate (or `path`, e.g. /activate-key) for a key of the tenant's product. */
export const activate = (tenant: Tenant, key: string, body: Json = {}, path = '/key/activate') =>
  tenant.api.post(path, { productId: tenant.productId, licenseKey: key, ...body });

/** A key assigned to a new customer ("Ada Park", with `email` if given), whose id is returned too. */
export async function keyWithCustomer(tenant: Tenant, body: Json = {}, email?: string) {
  const key = await createKey(tenant, { newCustomer: { name: 'Ada Park', ...(email ? { email } : {}) }, ...body });
  const { customer } = await getLicense(tenant, key);
  return { key, customerId: customer.id as string };
}

/**
 * Reads straight from the database of a test app, for what the API does not show (or to check
 * that a refused request left nothing behind). The app is looked up at call time, so this can be
 * called at the top of a file, next to `useTestApp()`.
 */
export function storedRows(t: Pick<TestApp, 'database'>) {
  return {
    async customerCount(accountId: string) {
      const [row] = await t.database.db
        .select({ n: count() })
        .from(customers)
        .where(eq(customers.accountId, accountId));
      return row!.n;
    },
    async keyCount(accountId: string) {
      const [row] = await t.database.db
        .select({ n: count() })
        .from(licenseKeys)
        .where(eq(licenseKeys.accountId, accountId));
      return row!.n;
    },
    /** The stored row of a key of the tenant's product. */
    async keyRow(tenant: Tenant, key: string) {
      const [row] = await t.database.db
        .select()
        .from(licenseKeys)
        .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
      return row!;
    },
    async disableCustomer(customerId: string) {
      await t.database.db.update(customers).set({ active: false }).where(eq(customers.id, customerId));
    },
  };
}
