import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { ADMIN_TOKEN } from './app.js';

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

export const expectError = (response: ApiResponse, status: number, code: number, message: string) => {
  expect({ status: response.status, body: response.body }).toEqual({ status, body: { message, code } });
};
