import { describe, expect, it } from 'vitest';
import { customers } from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { useTestApp } from '../../helpers/app.js';
import {
  addCustomer,
  createTenant,
  ERRORS,
  expectError,
  fullCustomerView,
  HEX_ID,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();

const listAll = (tenant: Tenant, query: Record<string, string> = {}) => tenant.api.get('/customer', query);

describe('POST /customer', () => {
  it('creates a customer: 201, the id at the top level and in data', async () => {
    const tenant = await createTenant(t.app);
    const response = await tenant.api.post('/customer', { name: 'Ada Park', email: 'Ada@Example.com' });
    expect(response.status).toBe(201);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const id = response.body.id;
    expect(id).toMatch(HEX_ID);
    expect(response.body).toStrictEqual({
      action: 'createCustomer',
      status: true,
      message: 'Customer created successfully',
      id,
      data: { id, name: 'Ada Park', email: 'Ada@Example.com' },
      code: 0,
    });
    const stored = await tenant.api.get('/customer/by-id', { customerId: id });
    expect(stored.body.data[0]).toMatchObject({ id, name: 'Ada Park', email: 'Ada@Example.com', active: true });
  });

  it('treats an absent, empty (Go SDK) or null email as no email', async () => {
    const tenant = await createTenant(t.app);
    for (const body of [{ name: 'A' }, { name: 'B', email: '' }, { name: 'C', email: null }]) {
      const response = await tenant.api.post('/customer', body);
      expect(response.status).toBe(201);
      expect(response.body.data.email).toBeNull();
    }
    expect((await listAll(tenant)).body.meta.total).toBe(3);
  });

  it('ignores unknown fields', async () => {
    const tenant = await createTenant(t.app);
    const response = await tenant.api.post('/customer', { name: 'Ada', apiKey: 'x', versionId: 3 });
    expect(response.status).toBe(201);
    expect(Object.keys(response.body.data)).toEqual(['id', 'name', 'email']);
  });

  it('rejects an email already used in the account, whatever its case, with 409/1 and creates nothing', async () => {
    const tenant = await createTenant(t.app);
    await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });
    expectError(
      await tenant.api.post('/customer', { name: 'Ada again', email: 'ADA@example.COM' }),
      409,
      1,
      'Customer with this email already exists',
    );
    const list = await listAll(tenant);
    expect(list.body.meta.total).toBe(1);
    expect(list.body.data[0].name).toBe('Ada');
  });

  it('allows the same email in another account', async () => {
    const first = await createTenant(t.app);
    const second = await createTenant(t.app);
    await addCustomer(first, { name: 'Ada', email: 'shared@example.com' });
    await addCustomer(second, { name: 'Ada', email: 'shared@example.com' });
  });

  it.each([
    ['a bodiless request', undefined, 'Missing required params'],
    ['no name', { email: 'a@example.com' }, 'Missing required params'],
    ['an empty name', { name: '' }, 'Missing required params'],
    ['a null name', { name: null }, 'Missing required params'],
    ['a name that is not a string', { name: 42 }, 'Invalid name'],
    ['a name over 255 chars', { name: 'x'.repeat(256) }, 'Invalid name'],
    ['an invalid email', { name: 'Ada', email: 'not-an-email' }, 'Invalid email'],
    ['an email with a space', { name: 'Ada', email: 'a b@example.com' }, 'Invalid email'],
    ['an email that is not a string', { name: 'Ada', email: 12 }, 'Invalid email'],
    ['an email over 254 chars', { name: 'Ada', email: `${'a'.repeat(250)}@x.io` }, 'Invalid email'],
    ['a missing name and an invalid email', { email: 'bad' }, 'Missing required params'],
  ])('answers 400/1 for %s', async (_label, body, message) => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.post('/customer', body as Record<string, unknown> | undefined), 400, 1, message);
    expect((await listAll(tenant)).body.meta.total).toBe(0);
  });

  it('accepts a 255-char name', async () => {
    const tenant = await createTenant(t.app);
    const response = await tenant.api.post('/customer', { name: 'x'.repeat(255) });
    expect(response.status).toBe(201);
  });

  it('answers 400/1 Invalid JSON body for malformed JSON', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.post('/customer', '{"name":'), ERRORS.invalidJson);
  });
});

describe('GET /customer', () => {
  it('lists the account customers with the full Customer shape and pagination meta', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada Park', email: 'ada@example.com' });
    const response = await listAll(tenant);
    expect(response.status).toBe(200);
    expect(response.body).toStrictEqual({
      action: 'getCustomers',
      status: true,
      data: [fullCustomerView(tenant, { id, name: 'Ada Park', email: 'ada@example.com' })],
      meta: { total: 1, page: 1, limit: 10, totalPages: 1 },
      code: 0,
    });
  });

  it('answers an empty list for an account without customers', async () => {
    const tenant = await createTenant(t.app);
    const response = await listAll(tenant);
    expect(response.body.data).toEqual([]);
    expect(response.body.meta).toEqual({ total: 0, page: 1, limit: 10, totalPages: 0 });
  });

  it('orders by creation and pages through the results', async () => {
    const tenant = await createTenant(t.app);
    const ids: string[] = [];
    for (const name of ['one', 'two', 'three']) {
      ids.push(await addCustomer(tenant, { name }));
      // Distinct creation times: rows created within one millisecond are ordered by their random id.
      await new Promise((resolve) => setTimeout(resolve, 3));
    }

    const first = await listAll(tenant, { page: '1', limit: '2' });
    expect(first.body.data.map((c: { id: string }) => c.id)).toEqual(ids.slice(0, 2));
    expect(first.body.meta).toEqual({ total: 3, page: 1, limit: 2, totalPages: 2 });

    const second = await listAll(tenant, { page: '2', limit: '2' });
    expect(second.body.data.map((c: { id: string }) => c.id)).toEqual(ids.slice(2));
    expect(second.body.meta).toEqual({ total: 3, page: 2, limit: 2, totalPages: 2 });

    const past = await listAll(tenant, { page: '3', limit: '2' });
    expect(past.status).toBe(200);
    expect(past.body.data).toEqual([]);
    expect(past.body.meta).toEqual({ total: 3, page: 3, limit: 2, totalPages: 2 });

    const far = await listAll(tenant, { page: '2147483647', limit: '100' });
    expect(far.status).toBe(200);
    expect(far.body.data).toEqual([]);
  });

  it('orders customers created in the same millisecond by id', async () => {
    const tenant = await createTenant(t.app);
    const createdAt = new Date('2025-11-04T09:12:44.518Z');
    const ids = [newId(), newId(), newId()];
    await t.database.db
      .insert(customers)
      .values(ids.map((id) => ({ id, accountId: tenant.accountId, name: id, createdAt, updatedAt: createdAt })));
    const response = await listAll(tenant);
    expect(response.body.data.map((c: { id: string }) => c.id)).toEqual([...ids].sort());
  });

  it('clamps a limit above 100 to 100', async () => {
    const tenant = await createTenant(t.app);
    await addCustomer(tenant, { name: 'one' });
    for (const limit of ['101', '100000000000000000000']) {
      const response = await listAll(tenant, { limit });
      expect(response.status).toBe(200);
      expect(response.body.meta).toEqual({ total: 1, page: 1, limit: 100, totalPages: 1 });
    }
  });

  it.each([
    ['limit', '0'],
    ['limit', 'abc'],
    ['limit', '-1'],
    ['limit', '1.5'],
    ['limit', ' 5'],
    ['page', '0'],
    ['page', 'abc'],
    ['page', '-1'],
    ['page', '2.0'],
    ['page', '2147483648'],
  ])('answers 400/1 Invalid %s for %s', async (field, value) => {
    const tenant = await createTenant(t.app);
    expectError(await listAll(tenant, { [field]: value }), 400, 1, `Invalid ${field}`);
  });

  it('filters by email, exactly and case-insensitively', async () => {
    const tenant = await createTenant(t.app);
    const ada = await addCustomer(tenant, { name: 'Ada', email: 'Ada@Example.com' });
    await addCustomer(tenant, { name: 'Bob', email: 'bob@example.com' });
    await addCustomer(tenant, { name: 'Nobody' });

    const match = await listAll(tenant, { email: 'ada@EXAMPLE.com' });
    expect(match.body.data.map((c: { id: string }) => c.id)).toEqual([ada]);
    expect(match.body.meta).toEqual({ total: 1, page: 1, limit: 10, totalPages: 1 });

    const partial = await listAll(tenant, { email: 'ada@' });
    expect(partial.body.data).toEqual([]);
    expect(partial.body.meta.total).toBe(0);

    const unfiltered = await listAll(tenant, { email: '' });
    expect(unfiltered.body.meta.total).toBe(3);
  });

  it('lists only the caller account customers', async () => {
    const mine = await createTenant(t.app);
    const other = await createTenant(t.app);
    const id = await addCustomer(mine, { name: 'Mine', email: 'same@example.com' });
    await addCustomer(other, { name: 'Theirs', email: 'same@example.com' });
    const response = await listAll(mine, { email: 'same@example.com' });
    expect(response.body.data.map((c: { id: string }) => c.id)).toEqual([id]);
  });
});
