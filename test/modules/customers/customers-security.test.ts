import { describe, expect, it } from 'vitest';
import { SCOPES } from '../../../src/lib/scopes.js';
import { ADMIN_TOKEN, useTestApp } from '../../helpers/app.js';
import { client, createTenant, createToken, ERRORS, expectError, type Tenant } from '../../helpers/fixtures.js';

const t = useTestApp();

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Endpoint {
  method: Method;
  path: string;
  scope: (typeof SCOPES)[number];
  /** A request that succeeds for an authorized caller of the customer's own account. */
  request: (customerId: string) => { url: string; body?: Record<string, unknown> };
  /** Addresses one customer: another account's customer answers 404. */
  byId: boolean;
}

const ENDPOINTS: Endpoint[] = [
  {
    method: 'POST',
    path: '/customer',
    scope: 'customers:write',
    byId: false,
    request: () => ({ url: '/customer', body: { name: 'New' } }),
  },
  { method: 'GET', path: '/customer', scope: 'customers:read', byId: false, request: () => ({ url: '/customer' }) },
  {
    method: 'GET',
    path: '/customer/by-id',
    scope: 'customers:read',
    byId: true,
    request: (id) => ({ url: `/customer/by-id?customerId=${id}` }),
  },
  {
    method: 'PUT',
    path: '/customer/by-id',
    scope: 'customers:write',
    byId: true,
    request: (id) => ({ url: '/customer/by-id', body: { customerId: id, name: 'Renamed' } }),
  },
  {
    method: 'DELETE',
    path: '/customer/by-id',
    scope: 'customers:delete',
    byId: true,
    request: (id) => ({ url: `/customer/by-id?customerId=${id}` }),
  },
  {
    method: 'GET',
    path: '/customer/keys',
    scope: 'customers:read',
    byId: true,
    request: (id) => ({ url: `/customer/keys?customerId=${id}` }),
  },
  {
    method: 'POST',
    path: '/customer/disable',
    scope: 'customers:write',
    byId: true,
    request: (id) => ({ url: `/customer/disable?customerId=${id}`, body: {} }),
  },
];

const send = async (method: Method, url: string, token?: string, body?: Record<string, unknown>) => {
  const raw = await t.app.inject({
    method,
    url,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    payload: body ? JSON.stringify(body) : undefined,
  });
  return { status: raw.statusCode, body: raw.json(), headers: raw.headers, raw };
};

const call = (endpoint: Endpoint, customerId: string, token?: string) => {
  const { url, body } = endpoint.request(customerId);
  return send(endpoint.method, url, token, body);
};

async function addCustomer(tenant: Tenant): Promise<string> {
  const response = await tenant.api.post('/customer', { name: 'Ada', email: 'ada@example.com' });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

async function customerCount(tenant: Tenant): Promise<number> {
  return (await tenant.api.get('/customer')).body.meta.total as number;
}

describe.each(ENDPOINTS)('$method $path security', (endpoint) => {
  it('answers 401/1 without a token, with an unknown token and with the admin token', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    for (const token of [undefined, 'at_unknown-token-0000000000000000000000000000', ADMIN_TOKEN]) {
      expectError(await call(endpoint, customerId, token), ERRORS.invalidToken);
    }
    expect(await customerCount(tenant)).toBe(1);
    expect((await tenant.api.get('/customer/by-id', { customerId })).body.data[0].name).toBe('Ada');
  });

  it('answers 401/1 before validating the request', async () => {
    expectError(await send(endpoint.method, endpoint.path), ERRORS.invalidToken);
  });

  it(`answers 403/1 to a token without ${endpoint.scope}, changing nothing`, async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const token = await createToken(t.app, tenant.accountId, {
      scopes: SCOPES.filter((scope) => scope !== endpoint.scope),
    });
    expectError(await call(endpoint, customerId, token), ERRORS.forbidden);
    const unvalidated = await send(endpoint.method, endpoint.path, token);
    expectError(unvalidated, ERRORS.forbidden);
    expect(await customerCount(tenant)).toBe(1);
    const stored = (await tenant.api.get('/customer/by-id', { customerId })).body.data[0];
    expect(stored).toMatchObject({ name: 'Ada', active: true });
  });

  it(`succeeds with a token holding only ${endpoint.scope}`, async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const token = await createToken(t.app, tenant.accountId, { scopes: [endpoint.scope] });
    const response = await call(endpoint, customerId, token);
    expect(response.status).toBe(endpoint.method === 'POST' && endpoint.path === '/customer' ? 201 : 200);
    expect(response.body).toMatchObject({ status: true, code: 0 });
  });
});

describe.each(ENDPOINTS.filter((endpoint) => endpoint.byId))('$method $path tenancy', (endpoint) => {
  it('answers 404/1 Customer not found for another account customer, changing nothing', async () => {
    const owner = await createTenant(t.app);
    const stranger = await createTenant(t.app);
    const customerId = await addCustomer(owner);
    expectError(await call(endpoint, customerId, stranger.token), ERRORS.customerNotFound);
    const stored = (await client(t.app, owner.token).get('/customer/by-id', { customerId })).body.data[0];
    expect(stored).toMatchObject({ name: 'Ada', active: true });
  });
});
