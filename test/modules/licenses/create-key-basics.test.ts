/** POST /create-key and POST /key: the seed examples, the answer, productId, the scope and the order of checks. */
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  admin,
  client,
  createProduct,
  createTenant,
  createToken,
  customerView,
  DEFAULT_KEY,
  ERRORS,
  expectError,
  getLicense,
  keyCreator,
  licenseView,
  storedRows,
  uniqueEmail,
} from '../../helpers/fixtures.js';

const t = useTestApp();
const { customerCount, keyCount } = storedRows(t);

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const { create, createOk } = keyCreator(path);

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
      expect(customer).toEqual(customerView({ name: 'John Doe', email }));
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
        ERRORS.invalidProductId,
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
      expect(license).toEqual(licenseView(body.key, tenant.productId));
    });
  });

  describe('productId', () => {
    it('missing, null or "" is Missing required params', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [{}, { productId: null }, { productId: '' }, { usesPerKey: 'abc' }]) {
        expectError(await tenant.api.post(path, body), ERRORS.missingParams);
      }
    });

    it('must be a string of 22–256 chars', async () => {
      const tenant = await createTenant(t.app);
      for (const productId of [
        'a'.repeat(21),
        'a'.repeat(257),
        // biome-ignore lint/correctness/noPrecisionLoss: a number too large for any ID field, on purpose
        12345678901234567890123,
        ['x'.repeat(22)],
        { id: 1 },
        true,
      ]) {
        expectError(await tenant.api.post(path, { productId }), ERRORS.invalidProductId);
      }
      for (const productId of ['a'.repeat(22), 'a'.repeat(256)]) {
        expectError(await tenant.api.post(path, { productId }), ERRORS.productNotFound);
      }
    });

    it('an inactive product is 404/1', async () => {
      const tenant = await createTenant(t.app);
      const inactive = await createProduct(t.app, tenant.accountId, false);
      expectError(await tenant.api.post(path, { productId: inactive }), ERRORS.productNotFound);
    });

    it('a product deactivated after keys were made refuses new keys', async () => {
      const tenant = await createTenant(t.app);
      await createOk(tenant);
      expect((await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false })).status).toBe(
        200,
      );
      expectError(await create(tenant, {}), ERRORS.productNotFound);
    });

    it("another account's product is 404/1 and creates nothing there", async () => {
      const tenant = await createTenant(t.app);
      const other = await createTenant(t.app);
      expectError(await tenant.api.post(path, { productId: other.productId }), ERRORS.productNotFound);
      expect(await keyCount(other.accountId)).toBe(0);
    });

    it("a product outside the token's productIds is 404/1", async () => {
      const tenant = await createTenant(t.app, { productIds: 'own' });
      const second = await createProduct(t.app, tenant.accountId);
      expectError(await tenant.api.post(path, { productId: second }), ERRORS.productNotFound);
      await createOk(tenant);
    });
  });

  describe('authorization', () => {
    it('requires a bearer token', async () => {
      const tenant = await createTenant(t.app);
      expectError(await client(t.app).post(path, { productId: tenant.productId }), ERRORS.invalidToken);
      expectError(await client(t.app, 'at_unknown').post(path, { productId: tenant.productId }), ERRORS.invalidToken);
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('requires the licenses:write scope', async () => {
      const tenant = await createTenant(t.app, { scopes: ['licenses:read', 'customers:write'] });
      expectError(await create(tenant, { newCustomer: { name: 'No scope' } }), ERRORS.forbidden);
      const writer = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:write'] }));
      // A customer created as a side effect needs only the endpoint's scope (§1.2).
      const response = await writer.post(path, { productId: tenant.productId, newCustomer: { name: 'Side effect' } });
      expect(response.status).toBe(200);
    });
  });

  describe('validation order and unknown fields', () => {
    it('Missing required params wins over invalid fields; then the first invalid field in table order', async () => {
      const tenant = await createTenant(t.app);
      expectError(await tenant.api.post(path, { usesPerKey: 'x', newCustomer: {} }), ERRORS.missingParams);
      expectError(await create(tenant, { usesPerKey: 'x', newCustomer: {} }), ERRORS.missingParams);
      expectError(
        await tenant.api.post(path, { productId: 'short', expiryDate: 'bad', usesPerKey: 'x' }),
        ERRORS.invalidProductId,
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
});
