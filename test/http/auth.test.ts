import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessTokens } from '../../src/db/schema/index.js';
import { sha256Hex } from '../../src/lib/hashing.js';
import { ADMIN_TOKEN, createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import {
  ALL_SCOPES,
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  ERRORS,
  expectError,
  type Tenant,
} from '../helpers/fixtures.js';

const t = useTestApp();

async function createKeyWith(authorization: string | undefined, productId: string) {
  const response = await t.app.inject({
    method: 'POST',
    url: '/create-key',
    headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
    payload: JSON.stringify({ productId }),
  });
  return { status: response.statusCode, body: response.json() };
}

async function tokenWithId(accountId: string, body: Record<string, unknown> = {}) {
  const response = await admin(t.app).post('/admin/tokens', { name: 'auth test', accountId, ...body });
  expect(response.status).toBe(201);
  return { id: response.body.id as string, token: response.body.token as string };
}

describe('401 Invalid access token', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app);
  });

  it.each([
    ['no Authorization header', undefined],
    ['an empty header', ''],
    ['the Basic scheme', 'Basic dXNlcjpwYXNz'],
    ['Bearer without a token', 'Bearer'],
    ['Bearer and blanks', 'Bearer    '],
    ['a token without scheme', 'at_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'],
    ['an unknown token', 'Bearer at_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'],
    ['a token that is not at_', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789'],
    ['a very long token', `Bearer at_${'x'.repeat(5000)}`],
    ['the scheme glued to the token', 'Bearerat_abcdefghijklmnopqrstuvwxyz0123456789'],
  ])('%s', async (_label, authorization) => {
    expect(await createKeyWith(authorization, tenant.productId)).toEqual(ERRORS.invalidToken);
  });

  it('two tokens after Bearer', async () => {
    expect(await createKeyWith(`Bearer ${tenant.token} ${tenant.token}`, tenant.productId)).toEqual(
      ERRORS.invalidToken,
    );
  });

  it('the stored hash instead of the token', async () => {
    expect(await createKeyWith(`Bearer ${sha256Hex(tenant.token)}`, tenant.productId)).toEqual(ERRORS.invalidToken);
  });

  it('the admin token on a public endpoint', async () => {
    expect(await createKeyWith(`Bearer ${ADMIN_TOKEN}`, tenant.productId)).toEqual(ERRORS.invalidToken);
    expectError(await client(t.app, ADMIN_TOKEN).get('/customer'), ERRORS.invalidToken);
  });

  it('an access token on an admin endpoint', async () => {
    const api = client(t.app, tenant.token);
    expectError(await api.post('/admin/accounts', { name: 'nope' }), ERRORS.invalidToken);
    expectError(await api.get('/admin/tokens'), ERRORS.invalidToken);
    expectError(await api.send('PATCH', `/admin/products/${tenant.productId}`, { active: false }), ERRORS.invalidToken);
    expect((await tenant.api.post('/key', { productId: tenant.productId })).status).toBe(200);
  });

  it('a wrong or missing admin token', async () => {
    expectError(await client(t.app, `${ADMIN_TOKEN}x`).post('/admin/accounts', { name: 'x' }), ERRORS.invalidToken);
    expectError(await client(t.app, ADMIN_TOKEN.slice(0, -1)).get('/admin/products'), ERRORS.invalidToken);
    expectError(await client(t.app).get('/admin/tokens'), ERRORS.invalidToken);
  });

  it('a revoked token is refused at once', async () => {
    const { id, token } = await tokenWithId(tenant.accountId);
    expect((await createKeyWith(`Bearer ${token}`, tenant.productId)).status).toBe(200);
    expect((await admin(t.app).send('DELETE', `/admin/tokens/${id}`)).body).toEqual({
      code: 0,
      message: 'Token revoked',
    });
    expect(await createKeyWith(`Bearer ${token}`, tenant.productId)).toEqual(ERRORS.invalidToken);
    expectError(await client(t.app, token).get('/customer'), ERRORS.invalidToken);
  });

  it('a token revoked in plain SQL is refused once its notification arrives, long before the cache TTL', async () => {
    const { id, token } = await tokenWithId(tenant.accountId);
    for (let i = 0; i < 2; i++) expect((await client(t.app, token).get('/customer')).status).toBe(200);
    expect(t.app.tokenCache?.size).toBeGreaterThan(0);
    await t.database.db.update(accessTokens).set({ revokedAt: new Date() }).where(eq(accessTokens.id, id));
    // PostgreSQL delivers the trigger's notification on the listening connection at the commit:
    // milliseconds (PGlite: before the UPDATE returns). The cache would keep the token 10 s.
    const deadline = Date.now() + 2000;
    let answer = await client(t.app, token).get('/customer');
    while (answer.status === 200 && Date.now() < deadline) answer = await client(t.app, token).get('/customer');
    expectError(answer, ERRORS.invalidToken);
  });

  it('an expired token is refused; one expiring later works', async () => {
    const { id, token } = await tokenWithId(tenant.accountId, { expiresAt: '2999-01-01T00:00:00Z' });
    expect((await createKeyWith(`Bearer ${token}`, tenant.productId)).status).toBe(200);
    await t.database.db
      .update(accessTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(accessTokens.id, id));
    // A change in plain SQL reaches the token cache with its notification (PostgreSQL: after the
    // commit, milliseconds); the cached expiry of the token is checked on every use.
    const deadline = Date.now() + 2000;
    let answer = await createKeyWith(`Bearer ${token}`, tenant.productId);
    while (answer.status === 200 && Date.now() < deadline) {
      answer = await createKeyWith(`Bearer ${token}`, tenant.productId);
    }
    expect(answer).toEqual(ERRORS.invalidToken);
  });
});

describe('scheme', () => {
  it.each(['bearer', 'BEARER', 'BeArEr'])('%s is accepted (case-insensitive)', async (scheme) => {
    const tenant = await createTenant(t.app);
    const response = await createKeyWith(`${scheme} ${tenant.token}`, tenant.productId);
    expect(response.status).toBe(200);
    expect(response.body.code).toBe(0);
  });

  it('the admin API accepts a lower-case scheme too', async () => {
    const response = await t.app.inject({
      method: 'GET',
      url: '/admin/products',
      headers: { authorization: `bearer ${ADMIN_TOKEN}` },
    });
    expect(response.statusCode).toBe(200);
  });
});

describe('403 scopes', () => {
  type Call = (api: Tenant['api'], productId: string) => ReturnType<Tenant['api']['get']>;
  const missingKey = 'AAAAA-AAAAA-AAAAA-AAAAA';
  it.each<[string, string, Call, number]>([
    ['POST /create-key', 'licenses:write', (api, productId) => api.post('/create-key', { productId }), 200],
    ['POST /key', 'licenses:write', (api, productId) => api.post('/key', { productId }), 200],
    ['GET /key', 'licenses:read', (api, productId) => api.get('/key', { productId, licenseKey: missingKey }), 404],
    [
      'POST /get-key',
      'licenses:read',
      (api, productId) => api.post('/get-key', { productId, licenseKey: missingKey }),
      404,
    ],
    ['GET /customer', 'customers:read', (api) => api.get('/customer'), 200],
  ])('%s needs %s', async (_label, scope, call, allowedStatus) => {
    const without = await createTenant(t.app, { scopes: ALL_SCOPES.filter((s) => s !== scope) });
    expectError(await call(without.api, without.productId), ERRORS.forbidden);
    const only = await createTenant(t.app, { scopes: [scope] });
    const allowed = await call(only.api, only.productId);
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(allowedStatus);
  });

  it('the scope check precedes validation and lookups', async () => {
    const tenant = await createTenant(t.app, { scopes: ['licenses:read'] });
    expectError(await tenant.api.post('/create-key', {}), ERRORS.forbidden);
    expectError(await tenant.api.post('/create-key', { productId: 'short' }), ERRORS.forbidden);
    expectError(await tenant.api.post('/create-key', { productId: 'f'.repeat(22) }), ERRORS.forbidden);
  });
});

describe('tenancy and product restriction', () => {
  it('a token acts only inside its account', async () => {
    const mine = await createTenant(t.app);
    const theirs = await createTenant(t.app);
    const key = await createKey(theirs);
    expectError(await mine.api.post('/key', { productId: theirs.productId }), ERRORS.productNotFound);
    expectError(await mine.api.get('/key', { productId: theirs.productId, licenseKey: key }), ERRORS.keyNotFound);
    await theirs.api.post('/key', { productId: theirs.productId, newCustomer: { name: 'Theirs' } });
    const list = await mine.api.get('/customer');
    expect(list.body.data).toEqual([]);
  });

  it('a product-restricted token sees only its products; customers stay account-wide', async () => {
    const tenant = await createTenant(t.app);
    const other = await createProduct(t.app, tenant.accountId);
    const restricted = client(t.app, (await tokenWithId(tenant.accountId, { productIds: [tenant.productId] })).token);
    const otherKey = (await tenant.api.post('/key', { productId: other, newCustomer: { name: 'Shared' } })).body.key;
    expect((await restricted.post('/key', { productId: tenant.productId })).status).toBe(200);
    expectError(await restricted.post('/key', { productId: other }), ERRORS.productNotFound);
    expectError(await restricted.get('/key', { productId: other, licenseKey: otherKey }), ERRORS.keyNotFound);
    const customers = await restricted.get('/customer');
    expect(customers.body.data.map((c: { name: string }) => c.name)).toEqual(['Shared']);
  });
});

describe('order of checks (§1.6)', () => {
  const big = JSON.stringify({ productId: 'x'.repeat(22), pad: 'x'.repeat(1024 * 1024 + 10) });

  it('401 precedes 413, 415 and 400', async () => {
    const cases = [
      { payload: big, contentType: 'application/json' },
      { payload: 'productId=abc', contentType: 'application/x-www-form-urlencoded' },
      { payload: '{not json', contentType: 'application/json' },
      { payload: '{}', contentType: 'application/json' },
    ];
    for (const { payload, contentType } of cases) {
      const response = await t.app.inject({
        method: 'POST',
        url: '/create-key',
        headers: { 'content-type': contentType },
        payload,
      });
      expect({ status: response.statusCode, body: response.json() }).toEqual(ERRORS.invalidToken);
    }
  });

  it('403 precedes 413, 415 and 400', async () => {
    const tenant = await createTenant(t.app, { scopes: ['customers:read'] });
    for (const [payload, contentType] of [
      [big, 'application/json'],
      ['hello', 'text/plain'],
      ['{not json', 'application/json'],
    ] as const) {
      const response = await t.app.inject({
        method: 'POST',
        url: '/key',
        headers: { authorization: `Bearer ${tenant.token}`, 'content-type': contentType },
        payload,
      });
      expect({ status: response.statusCode, body: response.json() }).toEqual(ERRORS.forbidden);
    }
  });

  it('an unknown route is 404 before authentication', async () => {
    expectError(await client(t.app).post('/create-keys', {}), ERRORS.notFound);
    expectError(await client(t.app).get('/create-key'), ERRORS.notFound);
  });
});

describe('admin API disabled', () => {
  let disabled: TestApp;
  beforeAll(async () => {
    disabled = await createTestApp({ ADMIN_TOKEN: '' });
  });
  afterAll(async () => disabled.close());

  it('every /admin path answers 404 Not found, whatever the token', async () => {
    for (const token of [undefined, ADMIN_TOKEN, 'at_whatever']) {
      const api = client(disabled.app, token);
      expectError(await api.post('/admin/accounts', { name: 'x' }), ERRORS.notFound);
      expectError(await api.get('/admin/products'), ERRORS.notFound);
      expectError(await api.get('/admin/tokens'), ERRORS.notFound);
      expectError(await api.send('DELETE', '/admin/tokens/abc'), ERRORS.notFound);
    }
  });

  it('the public API still requires a token', async () => {
    expectError(await client(disabled.app).post('/create-key', {}), ERRORS.invalidToken);
  });
});
