import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessTokens, accounts } from '../../../src/db/schema/index.js';
import { sha256Hex } from '../../../src/lib/hashing.js';
import { ADMIN_TOKEN, createTestApp, type TestApp } from '../../helpers/app.js';
import {
  ALL_SCOPES,
  admin,
  client,
  createTenant,
  ERRORS,
  expectError,
  HEX_ID,
  ISO_MS,
} from '../../helpers/fixtures.js';

let t: TestApp;
let api: ReturnType<typeof admin>;
beforeAll(async () => {
  t = await createTestApp();
  api = admin(t.app);
});
afterAll(async () => t.close());

async function newAccount(name = 'Acme') {
  const response = await api.post('/admin/accounts', { name });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

async function newProduct(accountId: string, body: Record<string, unknown> = {}) {
  const response = await api.post('/admin/products', { name: 'Editor', accountId, ...body });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

async function defaultAccountId() {
  const rows = await t.database.db.select({ id: accounts.id }).from(accounts).where(eq(accounts.isDefault, true));
  expect(rows).toHaveLength(1);
  return rows[0]!.id;
}

describe('accounts (§9.1)', () => {
  it('POST /admin/accounts answers 201 {code, id, name}', async () => {
    const response = await api.post('/admin/accounts', { name: 'Acme' });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({ code: 0, id: expect.stringMatching(HEX_ID), name: 'Acme' });
  });

  it('validates name', async () => {
    for (const body of [{}, { name: null }, { name: '' }]) {
      expectError(await api.post('/admin/accounts', body), ERRORS.missingParams);
    }
    for (const name of ['n'.repeat(256), 5, ['Acme'], 'nul\u0000']) {
      expectError(await api.post('/admin/accounts', { name }), 400, 1, 'Invalid name');
    }
    expect((await api.post('/admin/accounts', { name: 'n'.repeat(255) })).status).toBe(201);
  });

  it('a default account exists (created by the first migration)', async () => {
    expect(await defaultAccountId()).toMatch(HEX_ID);
  });

  it('follows the public body rules', async () => {
    expectError(await api.post('/admin/accounts', '{'), ERRORS.invalidJson);
    expectError(
      await api.post('/admin/accounts', 'name=x', { 'content-type': 'text/plain' }),
      415,
      1,
      'Content-Type must be application/json',
    );
  });
});

describe('products (§9.2)', () => {
  it('creates an active product by default in the given account', async () => {
    const accountId = await newAccount();
    const response = await api.post('/admin/products', { name: 'Acme Editor', accountId });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      code: 0,
      id: expect.stringMatching(HEX_ID),
      name: 'Acme Editor',
      active: true,
      accountId,
    });
  });

  it('accountId omitted = the default account', async () => {
    const response = await api.post('/admin/products', { name: 'Default product' });
    expect(response.status).toBe(201);
    expect(response.body.accountId).toBe(await defaultAccountId());
    const list = await api.get('/admin/products');
    expect(list.body.data.map((p: { id: string }) => p.id)).toContain(response.body.id);
  });

  it('creates an inactive product with active: false', async () => {
    const accountId = await newAccount();
    const response = await api.post('/admin/products', { name: 'Off', accountId, active: false });
    expect(response.body.active).toBe(false);
  });

  it('validates the body', async () => {
    const accountId = await newAccount();
    expectError(await api.post('/admin/products', { accountId }), ERRORS.missingParams);
    expectError(await api.post('/admin/products', { name: 'n'.repeat(256), accountId }), 400, 1, 'Invalid name');
    expectError(await api.post('/admin/products', { name: 'x', accountId, active: 'yes' }), 400, 1, 'Invalid active');
    expectError(await api.post('/admin/products', { name: 'x', accountId: 42 }), 400, 1, 'Invalid accountId');
    expectError(
      await api.post('/admin/products', { name: 'x', accountId: 'f'.repeat(22) }),
      404,
      1,
      'Account not found',
    );
  });

  it('PATCH /admin/products/:id changes name and active, answers the product', async () => {
    const accountId = await newAccount();
    const id = await newProduct(accountId);
    const renamed = await api.send('PATCH', `/admin/products/${id}`, { name: 'Renamed' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toEqual({ code: 0, id, name: 'Renamed', active: true, accountId });
    const off = await api.send('PATCH', `/admin/products/${id}`, { active: false });
    expect(off.body).toEqual({ code: 0, id, name: 'Renamed', active: false, accountId });
    const unchanged = await api.send('PATCH', `/admin/products/${id}`, {});
    expect(unchanged.body).toEqual({ code: 0, id, name: 'Renamed', active: false, accountId });
    const bodiless = await t.app.inject({
      method: 'PATCH',
      url: `/admin/products/${id}`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(bodiless.statusCode).toBe(200);
  });

  it('PATCH validates and answers 404 for an unknown product', async () => {
    const accountId = await newAccount();
    const id = await newProduct(accountId);
    expectError(await api.send('PATCH', `/admin/products/${id}`, { active: 'false' }), 400, 1, 'Invalid active');
    expectError(await api.send('PATCH', `/admin/products/${id}`, { name: '' }), 400, 1, 'Invalid name');
    expectError(
      await api.send('PATCH', `/admin/products/${'f'.repeat(22)}`, { name: 'x' }),
      404,
      1,
      'Product not found',
    );
    expectError(await api.send('PATCH', '/admin/products/unknown', {}), 404, 1, 'Product not found');
  });

  it('GET /admin/products lists an account in creation order', async () => {
    const accountId = await newAccount();
    const ids = [
      await newProduct(accountId, { name: 'A' }),
      await newProduct(accountId, { name: 'B' }),
      await newProduct(accountId, { name: 'C', active: false }),
    ];
    const response = await api.get('/admin/products', { accountId });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: [
        { id: ids[0], name: 'A', active: true, accountId },
        { id: ids[1], name: 'B', active: true, accountId },
        { id: ids[2], name: 'C', active: false, accountId },
      ],
    });
    expect((await api.get('/admin/products', { accountId: await newAccount() })).body).toEqual({ code: 0, data: [] });
    expectError(await api.get('/admin/products', { accountId: 'f'.repeat(22) }), 404, 1, 'Account not found');
  });

  it('deactivating a product makes create-key answer 404; reactivating restores it', async () => {
    const tenant = await createTenant(t.app);
    expect((await tenant.api.post('/create-key', { productId: tenant.productId })).status).toBe(200);
    await api.send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expectError(await tenant.api.post('/create-key', { productId: tenant.productId }), ERRORS.productNotFound);
    expectError(await tenant.api.post('/key', { productId: tenant.productId }), ERRORS.productNotFound);
    await api.send('PATCH', `/admin/products/${tenant.productId}`, { active: true });
    expect((await tenant.api.post('/key', { productId: tenant.productId })).status).toBe(200);
  });
});

describe('access tokens (§9.3)', () => {
  it('creates a token with all seven scopes and all products by default; the secret is shown once', async () => {
    const accountId = await newAccount();
    const response = await api.post('/admin/tokens', { name: 'backend', accountId });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      code: 0,
      id: expect.stringMatching(HEX_ID),
      token: expect.stringMatching(/^at_[A-Za-z0-9_-]{40,}$/),
      name: 'backend',
      scopes: ALL_SCOPES,
      productIds: null,
      accountId,
      createdAt: expect.stringMatching(ISO_MS),
    });
    const { token, id } = response.body;
    const [row] = await t.database.db.select().from(accessTokens).where(eq(accessTokens.id, id));
    expect(row!.tokenHash).toBe(sha256Hex(token));
    expect(JSON.stringify(row)).not.toContain(token);
  });

  it('accountId omitted = the default account', async () => {
    const response = await api.post('/admin/tokens', { name: 'default' });
    expect(response.body.accountId).toBe(await defaultAccountId());
  });

  it('tokens are distinct and work on the public API at once', async () => {
    const accountId = await newAccount();
    const productId = await newProduct(accountId);
    const first = (await api.post('/admin/tokens', { name: 'a', accountId })).body.token;
    const second = (await api.post('/admin/tokens', { name: 'b', accountId })).body.token;
    expect(first).not.toBe(second);
    for (const token of [first, second]) {
      expect((await client(t.app, token).post('/create-key', { productId })).status).toBe(200);
    }
  });

  it('stores chosen scopes, products and expiry', async () => {
    const accountId = await newAccount();
    const productId = await newProduct(accountId);
    const response = await api.post('/admin/tokens', {
      name: 'narrow',
      accountId,
      scopes: ['licenses:read', 'licenses:read', 'licenses:write'],
      productIds: [productId],
      expiresAt: '2999-01-01T00:00:00+01:00',
    });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ scopes: ['licenses:read', 'licenses:write'], productIds: [productId] });
    const list = await api.get('/admin/tokens', { accountId });
    expect(list.body.data).toEqual([
      {
        id: response.body.id,
        name: 'narrow',
        scopes: ['licenses:read', 'licenses:write'],
        productIds: [productId],
        accountId,
        createdAt: response.body.createdAt,
        expiresAt: '2998-12-31T23:00:00.000Z',
      },
    ]);
    const narrow = client(t.app, response.body.token);
    expect((await narrow.post('/key', { productId })).status).toBe(200);
    expectError(await narrow.get('/customer'), ERRORS.forbidden);
  });

  it('validates scopes', async () => {
    const accountId = await newAccount();
    for (const scopes of [
      [],
      ['bogus'],
      ['licenses:read', 'licenses:admin'],
      'licenses:read',
      [1],
      ['LICENSES:READ'],
    ]) {
      expectError(await api.post('/admin/tokens', { name: 'x', accountId, scopes }), 400, 1, 'Invalid scopes');
    }
    const all = await api.post('/admin/tokens', { name: 'x', accountId, scopes: null });
    expect(all.body.scopes).toEqual(ALL_SCOPES);
  });

  it('validates productIds', async () => {
    const accountId = await newAccount();
    const own = await newProduct(accountId);
    const foreign = await newProduct(await newAccount());
    expectError(
      await api.post('/admin/tokens', { name: 'x', accountId, productIds: [] }),
      400,
      1,
      'Invalid productIds',
    );
    expectError(
      await api.post('/admin/tokens', { name: 'x', accountId, productIds: own }),
      400,
      1,
      'Invalid productIds',
    );
    expectError(
      await api.post('/admin/tokens', { name: 'x', accountId, productIds: ['f'.repeat(22)] }),
      404,
      1,
      'Product not found',
    );
    expectError(
      await api.post('/admin/tokens', { name: 'x', accountId, productIds: [own, foreign] }),
      404,
      1,
      'Product not found',
    );
    const everything = await api.post('/admin/tokens', { name: 'x', accountId, productIds: null });
    expect(everything.body.productIds).toBeNull();
    const deduped = await api.post('/admin/tokens', { name: 'x', accountId, productIds: [own, own] });
    expect(deduped.body.productIds).toEqual([own]);
  });

  it('validates expiresAt: a future ISO 8601 date', async () => {
    const accountId = await newAccount();
    for (const expiresAt of [
      '2020-01-01T00:00:00Z',
      new Date(Date.now() - 1000).toISOString(),
      'tomorrow',
      '2999-02-30',
      '2999-01-01T00:00:00',
      5,
    ]) {
      expectError(await api.post('/admin/tokens', { name: 'x', accountId, expiresAt }), 400, 1, 'Invalid expiresAt');
    }
    expect((await api.post('/admin/tokens', { name: 'x', accountId, expiresAt: '2999-01-01' })).status).toBe(201);
  });

  it('reports the first invalid field in table order, before any lookup', async () => {
    expectError(
      await api.post('/admin/tokens', { name: 'x', accountId: 'f'.repeat(22), scopes: ['bogus'], expiresAt: 'bad' }),
      400,
      1,
      'Invalid scopes',
    );
    expectError(
      await api.post('/admin/tokens', {
        name: 'x',
        accountId: 'f'.repeat(22),
        productIds: ['f'.repeat(22)],
        expiresAt: '2000-01-01',
      }),
      400,
      1,
      'Invalid expiresAt',
    );
    expectError(
      await api.post('/admin/tokens', { accountId: 'f'.repeat(22), scopes: ['bogus'] }),
      ERRORS.missingParams,
    );
  });

  it('an unknown accountId is 404 Account not found', async () => {
    expectError(await api.post('/admin/tokens', { name: 'x', accountId: 'f'.repeat(22) }), 404, 1, 'Account not found');
    expectError(await api.get('/admin/tokens', { accountId: 'f'.repeat(22) }), 404, 1, 'Account not found');
  });

  it('GET /admin/tokens lists the account in creation order without secrets or hashes', async () => {
    const accountId = await newAccount();
    const created = [];
    for (const name of ['one', 'two']) created.push((await api.post('/admin/tokens', { name, accountId })).body);
    const response = await api.get('/admin/tokens', { accountId });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: created.map((token) => ({
        id: token.id,
        name: token.name,
        scopes: ALL_SCOPES,
        productIds: null,
        accountId,
        createdAt: token.createdAt,
        expiresAt: null,
      })),
    });
    const text = JSON.stringify(response.body);
    for (const token of created) {
      expect(text).not.toContain(token.token);
      expect(text).not.toContain(sha256Hex(token.token));
    }
    const other = await api.get('/admin/tokens', { accountId: await newAccount() });
    expect(other.body.data).toEqual([]);
  });

  it('DELETE /admin/tokens/:id revokes at once; revoked tokens are not listed', async () => {
    const accountId = await newAccount();
    const productId = await newProduct(accountId);
    const kept = (await api.post('/admin/tokens', { name: 'kept', accountId })).body;
    const revoked = (await api.post('/admin/tokens', { name: 'revoked', accountId })).body;
    const response = await api.send('DELETE', `/admin/tokens/${revoked.id}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ code: 0, message: 'Token revoked' });
    expectError(await client(t.app, revoked.token).post('/create-key', { productId }), ERRORS.invalidToken);
    expect((await client(t.app, kept.token).post('/create-key', { productId })).status).toBe(200);
    const list = await api.get('/admin/tokens', { accountId });
    expect(list.body.data.map((token: { id: string }) => token.id)).toEqual([kept.id]);
    expectError(await api.send('DELETE', `/admin/tokens/${revoked.id}`), 404, 1, 'Token not found');
    expectError(await api.send('DELETE', `/admin/tokens/${'f'.repeat(22)}`), 404, 1, 'Token not found');
  });
});
