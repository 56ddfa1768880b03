import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, count, eq, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { openPostgres } from '../../src/db/client.js';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { customers, licenseKeys } from '../../src/db/schema/index.js';
import { ADMIN_TOKEN, testConfig, useTestApp, usingPostgres } from '../helpers/app.js';
import {
  type ApiResponse,
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  expectError,
  type Tenant,
} from '../helpers/fixtures.js';
import { createFreshDatabase, request, startServer } from '../helpers/server-process.js';

const t = useTestApp();

const DEFAULT_KEY = /^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/;
const HEX_ID = /^[0-9a-f]{22}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const uniqueEmail = (local = 'user') => `${local}.${randomBytes(5).toString('hex')}@example.com`;

async function getLicense(tenant: Tenant, key: string) {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data as { license: Record<string, any>; customer: Record<string, any> | null };
}

async function customerCount(accountId: string) {
  const [row] = await t.database.db.select({ n: count() }).from(customers).where(eq(customers.accountId, accountId));
  return row!.n;
}

async function keyCount(accountId: string) {
  const [row] = await t.database.db
    .select({ n: count() })
    .from(licenseKeys)
    .where(eq(licenseKeys.accountId, accountId));
  return row!.n;
}

async function keyRow(tenant: Tenant, key: string) {
  const [row] = await t.database.db
    .select()
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
  return row!;
}

/** One calendar month later, clamped to the target month's last day: written independently of src/lib/dates. */
function oneMonthAfter(date: Date): Date {
  const year = date.getUTCFullYear() + (date.getUTCMonth() === 11 ? 1 : 0);
  const month = (date.getUTCMonth() + 1) % 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const result = new Date(date.getTime());
  result.setUTCFullYear(year, month, Math.min(date.getUTCDate(), lastDay));
  return result;
}

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const create = (tenant: Tenant, body: Record<string, unknown>) =>
    tenant.api.post(path, { productId: tenant.productId, ...body });

  async function createOk(tenant: Tenant, body: Record<string, unknown> = {}): Promise<ApiResponse> {
    const response = await create(tenant, body);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response;
  }

  describe('seed examples', () => {
    it('simple key with usesPerKey and expiryDate', async () => {
      const tenant = await createTenant(t.app);
      const response = await createOk(tenant, { usesPerKey: '3', expiryDate: '2025-06-30T23:59:59Z' });
      expect(Object.keys(response.body).sort()).toEqual(['code', 'key']);
      expect(response.body.code).toBe(0);
      expect(response.body.key).toMatch(DEFAULT_KEY);
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
      const { license, customer } = await getLicense(tenant, response.body.key);
      expect(license.maxActivations).toBe(3);
      expect(license.expirationDate).toBe('2025-06-30T23:59:59.000Z');
      expect(customer).toBeNull();
    });

    it('assign to a new customer', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail('john.doe.new');
      const response = await createOk(tenant, { newCustomer: { name: 'John Doe', email } });
      expect(response.body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY) });
      const { customer } = await getLicense(tenant, response.body.key);
      expect(customer).toEqual({ id: expect.stringMatching(HEX_ID), name: 'John Doe', email, active: true });
    });

    it('assign to an existing customer', async () => {
      const tenant = await createTenant(t.app);
      const first = await createOk(tenant, { newCustomer: { name: 'Existing', email: uniqueEmail() } });
      const existing = (await getLicense(tenant, first.body.key)).customer!;
      const response = await createOk(tenant, { customerId: existing.id });
      expect(response.body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY) });
      expect((await getLicense(tenant, response.body.key)).customer).toEqual(existing);
      expect(await customerCount(tenant.accountId)).toBe(1);
    });

    it('the literal sample productId (19 chars) is Invalid productId', async () => {
      const tenant = await createTenant(t.app);
      expectError(
        await tenant.api.post(path, {
          productId: 'your_product_id_123',
          usesPerKey: '3',
          expiryDate: '2025-06-30T23:59:59Z',
        }),
        400,
        1,
        'Invalid productId',
      );
    });

    it('the literal sample customerId is 404/2 with the ID as sent', async () => {
      const tenant = await createTenant(t.app);
      expectError(
        await create(tenant, { customerId: 'cust_abc123' }),
        404,
        2,
        'Customer with ID cust_abc123 not found',
      );
      expect(await keyCount(tenant.accountId)).toBe(0);
    });
  });

  describe('success body and key shape', () => {
    it('is exactly {code, key} without amountKeys, with an unassigned key', async () => {
      const tenant = await createTenant(t.app);
      const response = await createOk(tenant);
      expect(response.body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY) });
      expect('keys' in response.body).toBe(false);
      expect((await getLicense(tenant, response.body.key)).customer).toBeNull();
      expect(await customerCount(tenant.accountId)).toBe(0);
    });

    it('answers 200, never 201', async () => {
      const tenant = await createTenant(t.app);
      expect((await create(tenant, {})).status).toBe(200);
    });

    it('draws keys over the whole default charset', async () => {
      const tenant = await createTenant(t.app);
      const response = await createOk(tenant, { amountKeys: 200 });
      const chars = new Set(response.body.keys.join('').replaceAll('-', ''));
      // 200 keys x 20 chars: every one of the 36 chars appears unless the draw is broken.
      expect([...chars].sort().join('')).toBe('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    });

    it('GET /key shows the defaults of a fresh key', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant);
      const { license } = await getLicense(tenant, body.key);
      expect(license).toEqual({
        id: expect.stringMatching(HEX_ID),
        key: body.key,
        productId: tenant.productId,
        maxActivations: null,
        activations: 0,
        devices: [],
        activated: true,
        expirationDate: expect.stringMatching(ISO_MS),
        metadata: null,
        allowedHosts: null,
        licenseType: 'node-locked',
        blocked: false,
      });
    });
  });

  describe('productId', () => {
    it('missing, null or "" is Missing required params', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [{}, { productId: null }, { productId: '' }, { usesPerKey: 'abc' }]) {
        expectError(await tenant.api.post(path, body), 400, 1, 'Missing required params');
      }
    });

    it('must be a string of 22–256 chars', async () => {
      const tenant = await createTenant(t.app);
      for (const productId of [
        'a'.repeat(21),
        'a'.repeat(257),
        // biome-ignore lint/correctness/noPrecisionLoss: a 23-digit JSON number, whatever its exact value
        12345678901234567890123,
        ['x'.repeat(22)],
        { id: 1 },
        true,
      ]) {
        expectError(await tenant.api.post(path, { productId }), 400, 1, 'Invalid productId');
      }
      for (const productId of ['a'.repeat(22), 'a'.repeat(256)]) {
        expectError(await tenant.api.post(path, { productId }), 404, 1, 'Product not found or inactive');
      }
    });

    it('an inactive product is 404/1', async () => {
      const tenant = await createTenant(t.app);
      const inactive = await createProduct(t.app, tenant.accountId, false);
      expectError(await tenant.api.post(path, { productId: inactive }), 404, 1, 'Product not found or inactive');
    });

    it('a product deactivated after keys were made refuses new keys', async () => {
      const tenant = await createTenant(t.app);
      await createOk(tenant);
      expect((await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false })).status).toBe(
        200,
      );
      expectError(await create(tenant, {}), 404, 1, 'Product not found or inactive');
    });

    it("another account's product is 404/1 and creates nothing there", async () => {
      const tenant = await createTenant(t.app);
      const other = await createTenant(t.app);
      expectError(await tenant.api.post(path, { productId: other.productId }), 404, 1, 'Product not found or inactive');
      expect(await keyCount(other.accountId)).toBe(0);
    });

    it("a product outside the token's productIds is 404/1", async () => {
      const tenant = await createTenant(t.app, { productIds: 'own' });
      const second = await createProduct(t.app, tenant.accountId);
      expectError(await tenant.api.post(path, { productId: second }), 404, 1, 'Product not found or inactive');
      await createOk(tenant);
    });
  });

  describe('authorization', () => {
    it('requires a bearer token', async () => {
      const tenant = await createTenant(t.app);
      expectError(await client(t.app).post(path, { productId: tenant.productId }), 401, 1, 'Invalid access token');
      expectError(
        await client(t.app, 'at_unknown').post(path, { productId: tenant.productId }),
        401,
        1,
        'Invalid access token',
      );
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('requires the licenses:write scope', async () => {
      const tenant = await createTenant(t.app, { scopes: ['licenses:read', 'customers:write'] });
      expectError(
        await create(tenant, { newCustomer: { name: 'No scope' } }),
        403,
        1,
        'Insufficient permissions for this operation',
      );
      const writer = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:write'] }));
      // A customer created as a side effect needs only the endpoint's scope (§1.2).
      const response = await writer.post(path, { productId: tenant.productId, newCustomer: { name: 'Side effect' } });
      expect(response.status).toBe(200);
    });
  });

  describe('usesPerKey / maxActivations (D2)', () => {
    it('accepts digit strings and integers', async () => {
      const tenant = await createTenant(t.app);
      const cases: [Record<string, unknown>, number][] = [
        [{ usesPerKey: '5' }, 5],
        [{ usesPerKey: 7 }, 7],
        [{ maxActivations: '2' }, 2],
        [{ maxActivations: 1 }, 1],
        [{ usesPerKey: '4', maxActivations: 4 }, 4],
        [{ usesPerKey: '06' }, 6],
        [{ maxActivations: '00000000000000000003' }, 3],
        [{ usesPerKey: '2147483647' }, 2147483647],
        [{ usesPerKey: 9, maxActivations: null }, 9],
        [{ usesPerKey: null, maxActivations: '8' }, 8],
      ];
      for (const [body, expected] of cases) {
        const { body: created } = await createOk(tenant, body);
        const { license } = await getLicense(tenant, created.key);
        expect(license.maxActivations, JSON.stringify(body)).toBe(expected);
      }
    });

    it('null or omitted means unlimited and reads back as null, never a string', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [
        {},
        { usesPerKey: null },
        { maxActivations: null },
        { usesPerKey: null, maxActivations: null },
      ]) {
        const { body: created } = await createOk(tenant, body);
        const { license } = await getLicense(tenant, created.key);
        expect(license.maxActivations).toBeNull();
      }
    });

    it.each([
      ['0'],
      ['-1'],
      ['1.5'],
      ['abc'],
      [''],
      [' 5'],
      ['5 '],
      ['+5'],
      ['1e3'],
      [1.5],
      [0],
      [-3],
      [true],
      [[5]],
      [{}],
      ['2147483648'],
      ['000000000000002147483648'],
      [2147483648],
    ])('rejects %j', async (value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { usesPerKey: value }), 400, 1, 'Invalid usesPerKey');
      expectError(await create(tenant, { maxActivations: value }), 400, 1, 'Invalid maxActivations');
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('both given and different is 400/1', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [
        { usesPerKey: '3', maxActivations: '4' },
        { usesPerKey: 3, maxActivations: '5' },
        { usesPerKey: '10', maxActivations: 1 },
      ]) {
        expectError(await create(tenant, body), 400, 1, 'usesPerKey and maxActivations must match');
      }
      expect(await keyCount(tenant.accountId)).toBe(0);
    });
  });

  describe('expiryDate', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('defaults to one calendar month after creation', async () => {
      const tenant = await createTenant(t.app);
      const before = new Date();
      const { body } = await createOk(tenant);
      const after = new Date();
      const { license } = await getLicense(tenant, body.key);
      const expiry = new Date(license.expirationDate).getTime();
      expect(license.expirationDate).toMatch(ISO_MS);
      expect(expiry).toBeGreaterThanOrEqual(oneMonthAfter(before).getTime());
      expect(expiry).toBeLessThanOrEqual(oneMonthAfter(after).getTime());
    });

    it.each([
      ['2025-01-31T10:20:30.456Z', '2025-02-28T10:20:30.456Z'],
      ['2024-01-31T00:00:00.000Z', '2024-02-29T00:00:00.000Z'],
      ['2025-03-31T23:59:59.999Z', '2025-04-30T23:59:59.999Z'],
      ['2025-12-15T08:00:00.000Z', '2026-01-15T08:00:00.000Z'],
    ])('the default from %s is %s (clamped to the month end)', async (now, expected) => {
      const tenant = await createTenant(t.app);
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date(now));
      const { body } = await createOk(tenant);
      vi.useRealTimers();
      const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: body.key });
      expect(response.body.data.license.expirationDate).toBe(expected);
    });

    it('null means never expires', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: null });
      const { license } = await getLicense(tenant, body.key);
      expect(license.expirationDate).toBeNull();
      expect(license.activated).toBe(true);
    });

    it.each([
      ['2030-12-31T23:59:59Z', '2030-12-31T23:59:59.000Z'],
      ['2030-12-31', '2030-12-31T00:00:00.000Z'],
      ['2030-06-30T23:59:59+02:00', '2030-06-30T21:59:59.000Z'],
      ['2030-06-30T23:59:59-05:30', '2030-07-01T05:29:59.000Z'],
      ['2030-06-30T23:59:59.5Z', '2030-06-30T23:59:59.500Z'],
      ['2030-06-30T23:59:59.123456789Z', '2030-06-30T23:59:59.123Z'],
      ['2030-06-30T12:00Z', '2030-06-30T12:00:00.000Z'],
      ['2028-02-29', '2028-02-29T00:00:00.000Z'],
      ['2030-01-01T00:30:00+01:00', '2029-12-31T23:30:00.000Z'],
      ['1000-01-01T00:00:00Z', '1000-01-01T00:00:00.000Z'],
      ['1000-01-01T00:30:00+00:30', '1000-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ])('accepts %s and returns %s', async (input, output) => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: input });
      expect((await getLicense(tenant, body.key)).license.expirationDate).toBe(output);
    });

    it('accepts a past date; the key then reads as not activated', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: '2020-01-01T00:00:00Z' });
      const { license } = await getLicense(tenant, body.key);
      expect(license.expirationDate).toBe('2020-01-01T00:00:00.000Z');
      expect(license.activated).toBe(false);
    });

    it.each([
      ['2024-13-45'],
      ['2025-02-30'],
      ['2025-02-29'],
      ['2025-04-31T00:00:00Z'],
      ['2025-06-30T23:59:59'],
      ['2025-06-30T24:00:00Z'],
      ['2025-06-30T23:60:00Z'],
      ['2025-06-30T23:59:60Z'],
      ['2025-06-30T23:59:59+2400'],
      ['2025-06-30T23:59:59+24:00'],
      ['2025-6-30'],
      ['30/06/2025'],
      ['June 30, 2025'],
      ['tomorrow'],
      [''],
      ['0000-01-01'],
      ['0001-01-01T00:00:00Z'],
      ['0999-12-31'],
      ['1000-01-01T00:00:00+01:00'],
      ['9999-12-31T23:59:59-01:00'],
      [1751327999000],
      [true],
      [{}],
    ])('rejects %j', async (value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { expiryDate: value }), 400, 1, 'Invalid expiryDate');
    });
  });

  describe('customerId / newCustomer', () => {
    it('both given is 400/1, checked before the product', async () => {
      const tenant = await createTenant(t.app);
      const body = { customerId: 'cust_abc123', newCustomer: { name: 'Both', email: uniqueEmail() } };
      expectError(await create(tenant, body), 400, 1, 'Cannot specify both customerId and newCustomer');
      expectError(
        await tenant.api.post(path, { productId: 'f'.repeat(22), ...body }),
        400,
        1,
        'Cannot specify both customerId and newCustomer',
      );
      expect(await customerCount(tenant.accountId)).toBe(0);
    });

    it('an unknown product is reported before an unknown customer', async () => {
      const tenant = await createTenant(t.app);
      expectError(
        await tenant.api.post(path, { productId: 'f'.repeat(22), customerId: 'cust_abc123' }),
        404,
        1,
        'Product not found or inactive',
      );
    });

    it('customerId "" or null means no customer', async () => {
      const tenant = await createTenant(t.app);
      for (const customerId of ['', null]) {
        const { body } = await createOk(tenant, { customerId });
        expect((await getLicense(tenant, body.key)).customer).toBeNull();
      }
      const { body } = await createOk(tenant, { customerId: '', newCustomer: { name: 'Only new' } });
      expect((await getLicense(tenant, body.key)).customer?.name).toBe('Only new');
    });

    it('customerId must be a string of at most 256 chars', async () => {
      const tenant = await createTenant(t.app);
      for (const customerId of [123, {}, ['a'], 'c'.repeat(257)]) {
        expectError(await create(tenant, { customerId }), 400, 1, 'Invalid customerId');
      }
      expectError(
        await create(tenant, { customerId: 'c'.repeat(256) }),
        404,
        2,
        `Customer with ID ${'c'.repeat(256)} not found`,
      );
    });

    it("another account's customer is 404/2 with the ID as sent", async () => {
      const tenant = await createTenant(t.app);
      const other = await createTenant(t.app);
      const { body } = await other.api.post(path, { productId: other.productId, newCustomer: { name: 'Theirs' } });
      const theirs = (await getLicense(other, body.key)).customer!.id;
      expectError(await create(tenant, { customerId: theirs }), 404, 2, `Customer with ID ${theirs} not found`);
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('an inactive customer may be assigned', async () => {
      const tenant = await createTenant(t.app);
      const first = await createOk(tenant, { newCustomer: { name: 'Dormant' } });
      const customerId = (await getLicense(tenant, first.body.key)).customer!.id;
      await t.database.db.update(customers).set({ active: false }).where(eq(customers.id, customerId));
      const { body } = await createOk(tenant, { customerId });
      expect((await getLicense(tenant, body.key)).customer).toEqual({
        id: customerId,
        name: 'Dormant',
        email: null,
        active: false,
      });
    });

    it('newCustomer without name (absent, null, "") is Missing required params', async () => {
      const tenant = await createTenant(t.app);
      for (const newCustomer of [{}, { email: uniqueEmail() }, { name: null }, { name: '' }]) {
        expectError(await create(tenant, { newCustomer }), 400, 1, 'Missing required params');
      }
      expect(await customerCount(tenant.accountId)).toBe(0);
    });

    it('newCustomer null is omitted; any non-object is Invalid newCustomer', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { newCustomer: null });
      expect((await getLicense(tenant, body.key)).customer).toBeNull();
      for (const newCustomer of ['John', ['John'], 5, true]) {
        expectError(await create(tenant, { newCustomer }), 400, 1, 'Invalid newCustomer');
      }
    });

    it('validates name and email', async () => {
      const tenant = await createTenant(t.app);
      for (const name of ['n'.repeat(256), 5, ['a']]) {
        expectError(await create(tenant, { newCustomer: { name } }), 400, 1, 'Invalid newCustomer.name');
      }
      const local = 'l'.repeat(64);
      const ofLength = (n: number) => `${local}@${'d'.repeat(n - local.length - 5)}.com`;
      for (const email of [
        'no-at-sign',
        'a@nodot',
        'a b@example.com',
        '@example.com',
        'a@@example.com',
        ' a@example.com',
        ofLength(255),
        5,
      ]) {
        expectError(await create(tenant, { newCustomer: { name: 'x', email } }), 400, 1, 'Invalid newCustomer.email');
      }
      expect(await customerCount(tenant.accountId)).toBe(0);
      expect(ofLength(254)).toHaveLength(254);
      await createOk(tenant, { newCustomer: { name: 'n'.repeat(255), email: ofLength(254) } });
    });

    it('email "" (or null) creates a customer without email; several may exist', async () => {
      const tenant = await createTenant(t.app);
      for (const email of ['', null, '']) {
        const { body } = await createOk(tenant, { newCustomer: { name: 'No mail', email } });
        expect((await getLicense(tenant, body.key)).customer).toMatchObject({ name: 'No mail', email: null });
      }
      expect(await customerCount(tenant.accountId)).toBe(3);
    });

    it('an email already used (case-insensitively) is 409/2 with the email as sent, and creates nothing', async () => {
      const tenant = await createTenant(t.app);
      const base = uniqueEmail('Ada');
      await createOk(tenant, { newCustomer: { name: 'Ada', email: base } });
      const again = base.toLowerCase().replace('example.com', 'EXAMPLE.com');
      const keysBefore = await keyCount(tenant.accountId);
      expectError(
        await create(tenant, { newCustomer: { name: 'Ada again', email: again } }),
        409,
        2,
        `CONFLICT: Customer email ${again} already exists.`,
      );
      expectError(
        await create(tenant, { newCustomer: { name: 'Ada again', email: base }, amountKeys: 5 }),
        409,
        2,
        `CONFLICT: Customer email ${base} already exists.`,
      );
      expect(await keyCount(tenant.accountId)).toBe(keysBefore);
      expect(await customerCount(tenant.accountId)).toBe(1);
    });

    it('email uniqueness is per account', async () => {
      const email = uniqueEmail();
      const first = await createTenant(t.app);
      const second = await createTenant(t.app);
      await createOk(first, { newCustomer: { name: 'One', email } });
      await createOk(second, { newCustomer: { name: 'Two', email } });
    });

    it('the new customer is stored as sent and listed by GET /customer', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail('Mixed.Case');
      await createOk(tenant, { newCustomer: { name: '  Ada Park  ', email } });
      const response = await tenant.api.get('/customer');
      expect(response.status).toBe(200);
      expect(response.body).toEqual({
        action: 'getCustomers',
        status: true,
        data: [
          {
            id: expect.stringMatching(HEX_ID),
            name: '  Ada Park  ',
            email,
            active: true,
            createdAt: expect.stringMatching(ISO_MS),
            updatedAt: expect.stringMatching(ISO_MS),
            createdBy: tenant.accountId,
          },
        ],
        meta: { total: 1, page: 1, limit: 10, totalPages: 1 },
        code: 0,
      });
    });
  });

  describe('metadata', () => {
    const nested = (levels: number): Record<string, unknown> => {
      let value: Record<string, unknown> = { leaf: true };
      for (let i = 1; i < levels; i++) value = { next: value };
      return value;
    };

    it('stores an object and returns it as given', async () => {
      const tenant = await createTenant(t.app);
      const metadata = {
        plan: 'pro',
        seats: 5,
        ratio: 0.25,
        flags: [true, false, null],
        nested: { 'unicode ✓': 'ünïcødé 🚀', empty: {}, list: [] },
        productId: 'not renamed',
      };
      const { body } = await createOk(tenant, { metadata });
      expect((await getLicense(tenant, body.key)).license.metadata).toEqual(metadata);
    });

    it('null and {} are stored as given', async () => {
      const tenant = await createTenant(t.app);
      const none = await createOk(tenant, { metadata: null });
      expect((await getLicense(tenant, none.body.key)).license.metadata).toBeNull();
      const empty = await createOk(tenant, { metadata: {} });
      expect((await getLicense(tenant, empty.body.key)).license.metadata).toEqual({});
    });

    it('accepts 8 levels and exactly 16 KiB', async () => {
      const tenant = await createTenant(t.app);
      await createOk(tenant, { metadata: nested(8) });
      const filler = 'x'.repeat(16 * 1024 - JSON.stringify({ s: '' }).length);
      expect(Buffer.byteLength(JSON.stringify({ s: filler }))).toBe(16 * 1024);
      await createOk(tenant, { metadata: { s: filler } });
    });

    it.each([
      ['9 levels', nested(9)],
      ['more than 16 KiB', { s: 'x'.repeat(16 * 1024) }],
      ['more than 16 KiB in UTF-8 bytes', { s: 'é'.repeat(8200) }],
      ['an array', [{ a: 1 }]],
      ['a string', '{"a":1}'],
      ['a number', 5],
      ['arrays nested 9 levels', { a: [[[[[[[[1]]]]]]]] }],
    ])('rejects %s', async (_label, metadata) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { metadata }), 400, 1, 'Invalid metadata');
    });
  });

  describe('allowedHosts', () => {
    it('stores the list; [] and null are stored as null', async () => {
      const tenant = await createTenant(t.app);
      const hosts = ['host-a', 'h'.repeat(256)];
      const listed = await createOk(tenant, { allowedHosts: hosts });
      expect((await getLicense(tenant, listed.body.key)).license.allowedHosts).toEqual(hosts);
      for (const allowedHosts of [[], null]) {
        const { body } = await createOk(tenant, { allowedHosts });
        expect((await getLicense(tenant, body.key)).license.allowedHosts).toBeNull();
      }
    });

    it('accepts 1000 items and rejects 1001, empty or over-long items and non-arrays', async () => {
      const tenant = await createTenant(t.app);
      const many = Array.from({ length: 1000 }, (_, i) => `host-${i}`);
      const { body } = await createOk(tenant, { allowedHosts: many });
      expect((await getLicense(tenant, body.key)).license.allowedHosts).toHaveLength(1000);
      for (const allowedHosts of [[...many, 'one-more'], [''], ['h'.repeat(257)], 'host-a', [5], {}]) {
        expectError(await create(tenant, { allowedHosts }), 400, 1, 'Invalid allowedHosts');
      }
    });
  });

  describe('license type and floating settings', () => {
    it('stores licenseType and the floating settings', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, {
        licenseType: 'floating',
        maxConcurrentSessions: 3,
        heartbeatInterval: 60,
        sessionLeaseDuration: 300,
      });
      expect((await getLicense(tenant, body.key)).license.licenseType).toBe('floating');
      expect(await keyRow(tenant, body.key)).toMatchObject({
        licenseType: 'floating',
        maxConcurrentSessions: 3,
        heartbeatInterval: 60,
        sessionLeaseDuration: 300,
      });
    });

    it('defaults: node-locked, unlimited seats, 300 s heartbeat, 900 s lease', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { maxConcurrentSessions: null });
      expect(await keyRow(tenant, body.key)).toMatchObject({
        licenseType: 'node-locked',
        maxConcurrentSessions: null,
        heartbeatInterval: 300,
        sessionLeaseDuration: 900,
      });
    });

    it.each([
      ['licenseType', 'bogus'],
      ['licenseType', 'FLOATING'],
      ['licenseType', ''],
      ['maxConcurrentSessions', 0],
      ['maxConcurrentSessions', '3'],
      ['heartbeatInterval', 59],
      ['heartbeatInterval', 60.5],
      ['sessionLeaseDuration', 299],
      ['sessionLeaseDuration', '900'],
    ])('rejects %s = %j', async (field, value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { [field]: value }), 400, 1, `Invalid ${field}`);
    });
  });

  describe('format (§1.8)', () => {
    const keyOf = async (tenant: Tenant, format: Record<string, unknown>) =>
      (await createOk(tenant, { format })).body.key as string;

    it('applies every field; prefix and suffix have no extra separator', async () => {
      const tenant = await createTenant(t.app);
      const key = await keyOf(tenant, {
        sections: 3,
        sectionLength: 4,
        separator: '.',
        charset: 'ABC123',
        prefix: 'PRO',
        suffix: '-EU',
      });
      expect(key).toMatch(/^PRO[ABC123]{4}\.[ABC123]{4}\.[ABC123]{4}-EU$/);
    });

    it('sections and sectionLength bounds, empty and multi-char separators', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { sections: 1, sectionLength: 1 })).toMatch(/^[A-Z0-9]$/);
      expect(await keyOf(tenant, { sections: 10, sectionLength: 32 })).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
      expect(await keyOf(tenant, { separator: '' })).toMatch(/^[A-Z0-9]{20}$/);
      expect(await keyOf(tenant, { separator: '::-', sections: 2 })).toMatch(/^[A-Z0-9]{5}::-[A-Z0-9]{5}$/);
    });

    it('case upper / lower / mixed transform the charset; prefix and suffix stay as given', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { charset: 'abc', case: 'upper', prefix: 'p-', suffix: '-s' })).toMatch(
        /^p-[ABC]{5}(-[ABC]{5}){3}-s$/,
      );
      expect(await keyOf(tenant, { case: 'lower', prefix: 'KEY_' })).toMatch(/^KEY_[a-z0-9]{5}(-[a-z0-9]{5}){3}$/);
      const mixed = await createOk(tenant, {
        format: { charset: 'ab', case: 'mixed', sections: 1, sectionLength: 8 },
        amountKeys: 50,
      });
      const chars = new Set((mixed.body.keys as string[]).join(''));
      expect([...chars].sort()).toEqual(['A', 'B', 'a', 'b']);
    });

    it('the default case upper-cases a lower-case charset', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { charset: 'xyz' })).toMatch(/^[XYZ]{5}(-[XYZ]{5}){3}$/);
    });

    it('fewer than 2 distinct chars after case and dedupe is Invalid format.charset', async () => {
      const tenant = await createTenant(t.app);
      for (const format of [
        { charset: 'aA' },
        { charset: 'aaaa', case: 'lower' },
        { charset: 'Aa', case: 'lower' },
        { charset: '11' },
      ]) {
        expectError(await create(tenant, { format }), 400, 1, 'Invalid format.charset');
      }
      expect(await keyOf(tenant, { charset: 'aA', case: 'mixed', sections: 1, sectionLength: 3 })).toMatch(/^[aA]{3}$/);
    });

    it.each([
      ['sections', 0],
      ['sections', 11],
      ['sections', 2.5],
      ['sections', '4'],
      ['sectionLength', 0],
      ['sectionLength', 33],
      ['separator', '----'],
      ['separator', 5],
      ['charset', 'A'],
      ['charset', 'A B'],
      ['charset', 'AB\t'],
      ['charset', 'x'.repeat(101)],
      ['charset', ''],
      ['prefix', 'p'.repeat(17)],
      ['suffix', 's'.repeat(17)],
      ['case', 'title'],
      ['case', 'UPPER'],
    ])('rejects format.%s = %j', async (field, value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { format: { [field]: value } }), 400, 1, `Invalid format.${field}`);
    });

    it('format must be an object', async () => {
      const tenant = await createTenant(t.app);
      for (const format of ['XXXXX-XXXXX', ['a'], 5]) {
        expectError(await create(tenant, { format }), 400, 1, 'Invalid format');
      }
    });

    it('a format that cannot yield enough unique keys is Invalid format', async () => {
      const tenant = await createTenant(t.app);
      const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
      expectError(await create(tenant, { format: tiny, amountKeys: 3 }), 400, 1, 'Invalid format');
      const both = await createOk(tenant, { format: tiny, amountKeys: 2 });
      expect([...both.body.keys].sort()).toEqual(['A', 'B']);
      // The key space is now used up in this product.
      expectError(await create(tenant, { format: tiny }), 400, 1, 'Invalid format');
      expect(await keyCount(tenant.accountId)).toBe(2);
    });
  });

  describe('amountKeys', () => {
    it('amountKeys 1 (integer or string) adds keys: [key]', async () => {
      const tenant = await createTenant(t.app);
      for (const amountKeys of [1, '1', '0001']) {
        const { body } = await createOk(tenant, { amountKeys });
        expect(body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY), keys: [body.key] });
      }
    });

    it('creates N keys with the same settings and the same single customer', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail();
      const { body } = await createOk(tenant, {
        amountKeys: '5',
        usesPerKey: '2',
        expiryDate: '2031-01-01',
        metadata: { batch: 1 },
        newCustomer: { name: 'Batch', email },
      });
      expect(body.keys).toHaveLength(5);
      expect(body.keys[0]).toBe(body.key);
      expect(new Set(body.keys).size).toBe(5);
      const licenses = await Promise.all((body.keys as string[]).map((key) => getLicense(tenant, key)));
      const customerIds = new Set(licenses.map(({ customer }) => customer?.id));
      expect(customerIds.size).toBe(1);
      for (const { license, customer } of licenses) {
        expect(license).toMatchObject({
          maxActivations: 2,
          expirationDate: '2031-01-01T00:00:00.000Z',
          metadata: { batch: 1 },
        });
        expect(customer).toMatchObject({ name: 'Batch', email });
      }
      expect(await customerCount(tenant.accountId)).toBe(1);
      expect(await keyCount(tenant.accountId)).toBe(5);
    });

    it.each([[0], ['0'], [1001], ['1001'], [-1], ['abc'], [''], [1.5], ['2.0'], [true], [[2]]])(
      'rejects %j',
      async (amountKeys) => {
        const tenant = await createTenant(t.app);
        expectError(await create(tenant, { amountKeys }), 400, 1, 'Invalid amountKeys');
      },
    );

    it('1000 keys in one request are all distinct and all stored', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { amountKeys: 1000 });
      expect(body.keys).toHaveLength(1000);
      expect(new Set(body.keys).size).toBe(1000);
      for (const key of body.keys) expect(key).toMatch(DEFAULT_KEY);
      expect(await keyCount(tenant.accountId)).toBe(1000);
      expect((await getLicense(tenant, body.keys[999])).license.key).toBe(body.keys[999]);
    });

    it('fills a small key space exactly, without duplicates', async () => {
      const tenant = await createTenant(t.app);
      // 3^4 = 81 possible keys: random draws collide often, the server must redraw.
      const { body } = await createOk(tenant, {
        format: { charset: 'ABC', sections: 1, sectionLength: 4 },
        amountKeys: 60,
      });
      expect(new Set(body.keys).size).toBe(60);
    });
  });

  describe('validation order and unknown fields', () => {
    it('Missing required params wins over invalid fields; then the first invalid field in table order', async () => {
      const tenant = await createTenant(t.app);
      expectError(await tenant.api.post(path, { usesPerKey: 'x', newCustomer: {} }), 400, 1, 'Missing required params');
      expectError(await create(tenant, { usesPerKey: 'x', newCustomer: {} }), 400, 1, 'Missing required params');
      expectError(
        await tenant.api.post(path, { productId: 'short', expiryDate: 'bad', usesPerKey: 'x' }),
        400,
        1,
        'Invalid productId',
      );
      expectError(await create(tenant, { expiryDate: 'bad', usesPerKey: 'x' }), 400, 1, 'Invalid usesPerKey');
      expectError(await create(tenant, { amountKeys: 0, metadata: [] }), 400, 1, 'Invalid metadata');
      expectError(await create(tenant, { format: { sections: 0 }, licenseType: 'x' }), 400, 1, 'Invalid licenseType');
    });

    it('ignores unknown fields such as versionId', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { versionId: 'v1', version: 2, apiKey: 'ignored', extra: { deep: [1] } });
      expect(body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY) });
    });
  });

  describe('atomicity', () => {
    it('a newCustomer request failing on the product leaves no customer', async () => {
      const tenant = await createTenant(t.app);
      const inactive = await createProduct(t.app, tenant.accountId, false);
      const newCustomer = { name: 'Ghost', email: uniqueEmail() };
      expectError(
        await tenant.api.post(path, { productId: inactive, newCustomer }),
        404,
        1,
        'Product not found or inactive',
      );
      expectError(
        await tenant.api.post(path, { productId: 'f'.repeat(22), newCustomer }),
        404,
        1,
        'Product not found or inactive',
      );
      expect(await customerCount(tenant.accountId)).toBe(0);
      // The email is still free.
      await createOk(tenant, { newCustomer });
    });

    it('a newCustomer request failing on key generation rolls the customer back', async () => {
      const tenant = await createTenant(t.app);
      const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
      await createOk(tenant, { format: tiny, amountKeys: 2 });
      const newCustomer = { name: 'Rolled back', email: uniqueEmail() };
      expectError(await create(tenant, { format: tiny, newCustomer }), 400, 1, 'Invalid format');
      expect(await customerCount(tenant.accountId)).toBe(0);
      expect(await keyCount(tenant.accountId)).toBe(2);
    });

    it('a database failure during the insert is 500 Server error and persists nothing', async () => {
      const tenant = await createTenant(t.app);
      const suffix = randomBytes(6).toString('hex');
      const fn = `fail_keys_${suffix}`;
      await t.database.db.execute(
        sql.raw(`create function ${fn}() returns trigger language plpgsql as $$
          begin
            if new.product_id = '${tenant.productId}' then raise exception 'injected failure'; end if;
            return new;
          end $$`),
      );
      await t.database.db.execute(
        sql.raw(`create trigger ${fn} before insert on license_keys for each row execute function ${fn}()`),
      );
      try {
        const email = uniqueEmail();
        const response = await create(tenant, { newCustomer: { name: 'Lost', email }, amountKeys: 3 });
        expect(response.status).toBe(500);
        expect(response.body).toEqual({ message: 'Server error', code: 1 });
        expect(await customerCount(tenant.accountId)).toBe(0);
        expect(await keyCount(tenant.accountId)).toBe(0);
      } finally {
        await t.database.db.execute(sql.raw(`drop trigger ${fn} on license_keys`));
        await t.database.db.execute(sql.raw(`drop function ${fn}()`));
      }
      await createOk(tenant);
    });
  });
});

describe('key uniqueness', () => {
  it('keys are unique per product, not across products', async () => {
    const tenant = await createTenant(t.app);
    const second = await createProduct(t.app, tenant.accountId);
    const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
    const first = await tenant.api.post('/key', { productId: tenant.productId, format: tiny, amountKeys: 2 });
    const other = await tenant.api.post('/key', { productId: second, format: tiny, amountKeys: 2 });
    expect([...first.body.keys].sort()).toEqual(['A', 'B']);
    expect([...other.body.keys].sort()).toEqual(['A', 'B']);
  });

  it('keys created by separate requests on both paths never repeat', async () => {
    const tenant = await createTenant(t.app);
    const small = { charset: 'ABCD', sections: 1, sectionLength: 4 }; // 256 possible keys
    const seen: string[] = [];
    for (let i = 0; i < 16; i++) {
      const response = await tenant.api.post(i % 2 ? '/key' : '/create-key', {
        productId: tenant.productId,
        format: small,
        amountKeys: 4,
      });
      expect(response.status).toBe(200);
      seen.push(...response.body.keys);
    }
    expect(new Set(seen).size).toBe(64);
    expect(await keyCount(tenant.accountId)).toBe(64);
  });

  it('a key made through /create-key is found through /key paths and vice versa', async () => {
    const tenant = await createTenant(t.app);
    const v1 = (await tenant.api.post('/create-key', { productId: tenant.productId })).body.key;
    const v2 = await createKey(tenant);
    expect((await getLicense(tenant, v1)).license.key).toBe(v1);
    const legacy = await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: v2 });
    expect(legacy.body.data.license.key).toBe(v2);
  });
});

describe.skipIf(!usingPostgres)('on a PostgreSQL database whose time zone is not UTC', () => {
  it('expiry dates of any accepted year read back exactly', async () => {
    const fresh = await createFreshDatabase();
    const zoned = new URL(fresh.url).pathname.slice(1);
    const database = openPostgres({ url: fresh.url, poolSize: 2 });
    try {
      await t.database.db.execute(sql.raw(`alter database ${zoned} set timezone = 'Europe/Amsterdam'`));
      await migratePostgresDatabase(fresh.url);
      const app = await buildApp({ config: testConfig(), database });
      try {
        const tenant = await createTenant(app);
        for (const [input, output] of [
          ['1000-06-15T12:00:00Z', '1000-06-15T12:00:00.000Z'],
          ['1800-01-01', '1800-01-01T00:00:00.000Z'],
          ['2030-07-01T12:00:00+02:00', '2030-07-01T10:00:00.000Z'],
        ]) {
          const key = await createKey(tenant, { expiryDate: input });
          const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
          expect({
            input,
            status: response.status,
            expirationDate: response.body.data?.license.expirationDate,
          }).toEqual({
            input,
            status: 200,
            expirationDate: output,
          });
        }
      } finally {
        await app.close();
      }
    } finally {
      await database.close();
      await fresh.drop();
    }
  }, 60_000);
});

describe('key generation in a fresh server process', () => {
  it('the longest format (10 x 32) as the first key of a process works, and so do the keys after it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'keymint-keygen-'));
    const server = await startServer({ ADMIN_TOKEN, ...(usingPostgres ? {} : { DATA_DIR: dataDir }) });
    try {
      const account = await request(server.url, 'POST', '/admin/accounts', ADMIN_TOKEN, { name: 'Key generation' });
      const accountId = account.body.id;
      const product = await request(server.url, 'POST', '/admin/products', ADMIN_TOKEN, { name: 'P', accountId });
      const token = await request(server.url, 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 't', accountId });
      const productId = product.body.id;
      const longest = await request(server.url, 'POST', '/create-key', token.body.token, {
        productId,
        format: { sections: 10, sectionLength: 32 },
      });
      expect(longest.status, JSON.stringify(longest.body)).toBe(200);
      expect(longest.body.key).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
      const next = await request(server.url, 'POST', '/key', token.body.token, { productId, amountKeys: 3 });
      expect(next.status, JSON.stringify(next.body)).toBe(200);
      for (const key of next.body.keys) expect(key).toMatch(DEFAULT_KEY);
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
