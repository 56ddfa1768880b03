import { count, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { customers, licenseKeys } from '../../src/db/schema/index.js';
import { createTestApp, useTestApp } from '../helpers/app.js';
import {
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  expectError,
  type Tenant,
} from '../helpers/fixtures.js';

const t = useTestApp();

const PAST = '2020-01-01T00:00:00Z';
const HEX22 = /^[0-9a-f]{22}$/;
const PATHS = ['/key/activate', '/activate-key'] as const;

const activate = (tenant: Tenant, key: string, body: Record<string, unknown> = {}, path = '/key/activate') =>
  tenant.api.post(path, { productId: tenant.productId, licenseKey: key, ...body });

const getKey = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  expect(response.status).toBe(200);
  return response.body.data as { license: any; customer: any };
};

/** A key assigned to a new customer, whose id is returned too. */
async function keyWithCustomer(tenant: Tenant, body: Record<string, unknown> = {}, email?: string) {
  const key = await createKey(tenant, { newCustomer: { name: 'Ada Park', ...(email ? { email } : {}) }, ...body });
  const { customer } = await getKey(tenant, key);
  return { key, customerId: customer.id as string };
}

const disableCustomer = async (customerId: string) => {
  await t.database.db.update(customers).set({ active: false }).where(eq(customers.id, customerId));
};

const customerCount = async (accountId: string) => {
  const [row] = await t.database.db.select({ n: count() }).from(customers).where(eq(customers.accountId, accountId));
  return row!.n;
};

describe('POST /key/activate — success', () => {
  it('records the device and answers the v2 document', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, {
      usesPerKey: '2',
      expiryDate: '2099-03-31T23:59:59Z',
      metadata: { plan: 'pro' },
    });
    const response = await activate(tenant, key, { hostId: 'host-7f3a', deviceTag: 'Build server' });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      message: 'License valid',
      licenseeName: null,
      licenseeEmail: null,
      hostId: 'host-7f3a',
      expirationDate: '2099-03-31T23:59:59.000Z',
      metadata: { plan: 'pro' },
      allowedHosts: null,
    });

    const { license } = await getKey(tenant, key);
    expect(license.activations).toBe(1);
    expect(license.maxActivations).toBe(2);
    expect(license.activated).toBe(true);
    expect(license.devices).toEqual([
      { hostId: 'host-7f3a', deviceTag: 'Build server', ipAddress: '127.0.0.1', activationTime: expect.any(String) },
    ]);
    const activatedAt = Date.parse(license.devices[0].activationTime);
    expect(Math.abs(Date.now() - activatedAt)).toBeLessThan(60_000);
  });

  it('names the key customer as licensee', async () => {
    const tenant = await createTenant(t.app);
    const { key } = await keyWithCustomer(tenant, {}, 'ada@example.com');
    const response = await activate(tenant, key, { hostId: 'h1' });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Ada Park', licenseeEmail: 'ada@example.com' });
  });

  it('generates a 22-hex hostId when none (or "") is sent, and records it', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const omitted = await activate(tenant, key, { deviceTag: 'laptop' });
    const empty = await activate(tenant, key, { hostId: '' });
    expect(omitted.status).toBe(200);
    expect(empty.status).toBe(200);
    expect(omitted.body.hostId).toMatch(HEX22);
    expect(empty.body.hostId).toMatch(HEX22);
    expect(empty.body.hostId).not.toBe(omitted.body.hostId);
    const { license } = await getKey(tenant, key);
    expect(license.devices.map((d: any) => d.hostId)).toEqual([omitted.body.hostId, empty.body.hostId]);
    expect(license.devices[0].deviceTag).toBe('laptop');
    expect(license.devices[1].deviceTag).toBeNull();
  });

  it('re-activating the same host is idempotent: 200, no new slot, device unchanged', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: 3 });
    expect((await activate(tenant, key, { hostId: 'same', deviceTag: 'first' })).status).toBe(200);
    const before = (await getKey(tenant, key)).license.devices;
    const again = await activate(tenant, key, { hostId: 'same', deviceTag: 'second' });
    expect(again.status).toBe(200);
    expect(again.body.hostId).toBe('same');
    const { license } = await getKey(tenant, key);
    expect(license.activations).toBe(1);
    expect(license.devices).toEqual(before);
  });

  it('unlimited keys accept any number of devices', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: null });
    for (let i = 0; i < 25; i++) expect((await activate(tenant, key, { hostId: `host-${i}` })).status).toBe(200);
    const { license } = await getKey(tenant, key);
    expect(license.maxActivations).toBeNull();
    expect(license.activations).toBe(25);
    expect(license.devices).toHaveLength(25);
  });

  it('ignores unknown body fields the SDKs send (version, versionId)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await activate(tenant, key, { hostId: 'h', version: '1.2.3', versionId: 'v' });
    expect(response.status).toBe(200);
  });
});

describe('POST /activate-key — v1 names', () => {
  it('answers the same values with licensee_name, licensee_email, host_id, expiration_date', async () => {
    const tenant = await createTenant(t.app);
    const { key } = await keyWithCustomer(
      tenant,
      { expiryDate: '2099-01-01', metadata: { productId: 'stays', tier: 1 }, allowedHosts: ['h-1'] },
      'ada@example.com',
    );
    const response = await activate(tenant, key, { hostId: 'h-1' }, '/activate-key');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      message: 'License valid',
      licensee_name: 'Ada Park',
      licensee_email: 'ada@example.com',
      host_id: 'h-1',
      expiration_date: '2099-01-01T00:00:00.000Z',
      metadata: { productId: 'stays', tier: 1 },
      allowedHosts: ['h-1'],
    });
  });

  it('applies the same rules as v2 (same errors, same slots)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    expect((await activate(tenant, key, { hostId: 'a' }, '/activate-key')).status).toBe(200);
    expectError(await activate(tenant, key, { hostId: 'b' }, '/activate-key'), 403, 2, 'Activation limit reached');
    expectError(await activate(tenant, key, { hostId: 'b' }), 403, 2, 'Activation limit reached');
    const generated = await activate(tenant, key, {}, '/activate-key');
    expectError(generated, 403, 2, 'Activation limit reached');
  });
});

describe('POST /key/activate — the nine checks, in order (§2.4)', () => {
  it('1. unknown key, key of another product, inactive product → 404 License key not found', async () => {
    const tenant = await createTenant(t.app);
    expectError(await activate(tenant, 'NOPE-NOPE'), 404, 1, 'License key not found');

    const otherProduct = await createProduct(t.app, tenant.accountId);
    const otherKey = await createKey({ ...tenant, productId: otherProduct });
    expectError(await activate(tenant, otherKey), 404, 1, 'License key not found');

    const key = await createKey(tenant);
    const patch = await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expect(patch.status).toBe(200);
    expectError(await activate(tenant, key), 404, 1, 'License key not found');
  });

  it('1. matches the key exactly (case-sensitive, no trimming)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(await activate(tenant, key.toLowerCase()), 404, 1, 'License key not found');
    expectError(await activate(tenant, ` ${key}`), 404, 1, 'License key not found');
  });

  it('2. floating key → 403/2 Floating licenses must use checkout (even when also blocked)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { licenseType: 'floating', expiryDate: PAST });
    expectError(await activate(tenant, key), 403, 2, 'Floating licenses must use checkout');
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    expectError(await activate(tenant, key), 403, 2, 'Floating licenses must use checkout');
  });

  it('3. blocked key → 403/2 License key is blocked (checked before expiry)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    expectError(await activate(tenant, key, { hostId: 'h' }), 403, 2, 'License key is blocked');

    const expired = await createKey(tenant, { expiryDate: PAST });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: expired });
    expectError(await activate(tenant, expired), 403, 2, 'License key is blocked');
    expect((await getKey(tenant, expired)).license.activations).toBe(0);
  });

  it('4. expired key → 403/2 License key has expired (checked before the customer)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: PAST });
    expectError(await activate(tenant, key, { hostId: 'h' }), 403, 2, 'License key has expired');

    const { key: withCustomer, customerId } = await keyWithCustomer(tenant, { expiryDate: PAST });
    await disableCustomer(customerId);
    expectError(await activate(tenant, withCustomer), 403, 2, 'License key has expired');
    expect((await getKey(tenant, withCustomer)).license.activations).toBe(0);
  });

  it('4. a key expiring in the future activates; one expiring a moment ago does not', async () => {
    const tenant = await createTenant(t.app);
    const soon = await createKey(tenant, { expiryDate: new Date(Date.now() + 60_000).toISOString() });
    expect((await activate(tenant, soon)).status).toBe(200);
    const justNow = await createKey(tenant, { expiryDate: new Date(Date.now() - 1000).toISOString() });
    expectError(await activate(tenant, justNow), 403, 2, 'License key has expired');
  });

  it("5. the key's inactive customer → 403/2 Customer is inactive (checked before allowedHosts)", async () => {
    const tenant = await createTenant(t.app);
    const { key, customerId } = await keyWithCustomer(tenant, { allowedHosts: ['only-this'] });
    await disableCustomer(customerId);
    expectError(await activate(tenant, key, { hostId: 'only-this' }), 403, 2, 'Customer is inactive');
    expectError(await activate(tenant, key, { hostId: 'elsewhere' }), 403, 2, 'Customer is inactive');
    expect((await getKey(tenant, key)).license.activations).toBe(0);
  });

  it('5. a key without customer: the inactive customer the licensee resolves to → 403/2, nothing assigned', async () => {
    const tenant = await createTenant(t.app);
    const { customerId } = await keyWithCustomer(tenant, {}, 'gone@example.com');
    await disableCustomer(customerId);
    const key = await createKey(tenant);
    const response = await activate(tenant, key, {
      hostId: 'h',
      licensee: { name: 'Someone', email: 'GONE@example.com' },
    });
    expectError(response, 403, 2, 'Customer is inactive');
    const data = await getKey(tenant, key);
    expect(data.customer).toBeNull();
    expect(data.license.activations).toBe(0);
  });

  it('6. allowedHosts set and hostId not in it → 403/2 Host not allowed (checked before the limit)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { allowedHosts: ['host-a', 'host-b'], usesPerKey: '1' });
    expectError(await activate(tenant, key, { hostId: 'host-c' }), 403, 2, 'Host not allowed for this license');
    expectError(await activate(tenant, key, { hostId: 'HOST-A' }), 403, 2, 'Host not allowed for this license');
    expect((await activate(tenant, key, { hostId: 'host-a' })).status).toBe(200);
    // The key is now full, yet a foreign host still hears about the host, not the limit.
    expectError(await activate(tenant, key, { hostId: 'host-c' }), 403, 2, 'Host not allowed for this license');
    expectError(await activate(tenant, key, { hostId: 'host-b' }), 403, 2, 'Activation limit reached');
  });

  it('6. a generated hostId is checked against allowedHosts too', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { allowedHosts: ['host-a'] });
    expectError(await activate(tenant, key), 403, 2, 'Host not allowed for this license');
    expect((await getKey(tenant, key)).license.activations).toBe(0);
  });

  it('6 before 7: an active host removed from allowedHosts is refused', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { allowedHosts: ['host-a', 'host-b'] });
    expect((await activate(tenant, key, { hostId: 'host-a' })).status).toBe(200);
    const update = await tenant.api.send('PATCH', '/key', {
      productId: tenant.productId,
      licenseKey: key,
      allowedHosts: ['host-b'],
    });
    expect(update.status).toBe(200);
    expectError(await activate(tenant, key, { hostId: 'host-a' }), 403, 2, 'Host not allowed for this license');
  });

  it('7 before 9: the same host on a full key answers 200 without a new slot', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '2' });
    expect((await activate(tenant, key, { hostId: 'one' })).status).toBe(200);
    expect((await activate(tenant, key, { hostId: 'two' })).status).toBe(200);
    const again = await activate(tenant, key, { hostId: 'one' });
    expect(again.status).toBe(200);
    expect(again.body.hostId).toBe('one');
    expect((await getKey(tenant, key)).license.activations).toBe(2);
  });

  it('8. below the limit a new device is recorded', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { maxActivations: 2 });
    expect((await activate(tenant, key, { hostId: 'one' })).status).toBe(200);
    expect((await getKey(tenant, key)).license.activations).toBe(1);
    expect((await activate(tenant, key, { hostId: 'two' })).status).toBe(200);
    expect((await getKey(tenant, key)).license.activations).toBe(2);
  });

  it('9. a full key → 403/2 Activation limit reached; nothing is recorded', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '2' });
    await activate(tenant, key, { hostId: 'one' });
    await activate(tenant, key, { hostId: 'two' });
    expectError(await activate(tenant, key, { hostId: 'three' }), 403, 2, 'Activation limit reached');
    const { license } = await getKey(tenant, key);
    expect(license.activations).toBe(2);
    expect(license.devices.map((d: any) => d.hostId)).toEqual(['one', 'two']);
  });
});

describe('POST /key/activate — licensee', () => {
  it('creates the licensee customer and assigns it to a key without customer', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await activate(tenant, key, {
      hostId: 'h',
      licensee: { name: 'Grace Hopper', email: 'grace@example.com' },
    });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Grace Hopper', licenseeEmail: 'grace@example.com' });
    const { customer } = await getKey(tenant, key);
    expect(customer).toEqual({
      id: expect.stringMatching(HEX22),
      name: 'Grace Hopper',
      email: 'grace@example.com',
      active: true,
    });
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('reuses the customer found by email, case-insensitively', async () => {
    const tenant = await createTenant(t.app);
    const { customerId } = await keyWithCustomer(tenant, {}, 'Ada@Example.com');
    const key = await createKey(tenant);
    const response = await activate(tenant, key, { licensee: { name: 'Other name', email: 'ada@EXAMPLE.com' } });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Ada Park', licenseeEmail: 'Ada@Example.com' });
    expect((await getKey(tenant, key)).customer.id).toBe(customerId);
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('is assigned on a same-host re-activation too', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await activate(tenant, key, { hostId: 'h' })).status).toBe(200);
    const again = await activate(tenant, key, { hostId: 'h', licensee: { name: 'Late', email: 'late@example.com' } });
    expect(again.status).toBe(200);
    expect((await getKey(tenant, key)).customer).toMatchObject({ name: 'Late', email: 'late@example.com' });
  });

  it('is ignored when the key already has a customer', async () => {
    const tenant = await createTenant(t.app);
    const { key, customerId } = await keyWithCustomer(tenant, {}, 'ada@example.com');
    const response = await activate(tenant, key, { licensee: { name: 'Ignored', email: 'ignored@example.com' } });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Ada Park', licenseeEmail: 'ada@example.com' });
    expect((await getKey(tenant, key)).customer.id).toBe(customerId);
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('creates and assigns nothing when the activation fails', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    await activate(tenant, key, { hostId: 'first' });
    const response = await activate(tenant, key, {
      hostId: 'second',
      licensee: { name: 'Nobody', email: 'nobody@example.com' },
    });
    expectError(response, 403, 2, 'Activation limit reached');
    expect((await getKey(tenant, key)).customer).toBeNull();
    expect(await customerCount(tenant.accountId)).toBe(0);
  });

  it('a licensee of another account is not found: a new customer is created in this one', async () => {
    const other = await createTenant(t.app);
    await keyWithCustomer(other, {}, 'shared@example.com');
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await activate(tenant, key, { licensee: { name: 'Mine', email: 'shared@example.com' } });
    expect(response.status).toBe(200);
    expect(response.body.licenseeName).toBe('Mine');
    const [row] = await t.database.db.select().from(licenseKeys).where(eq(licenseKeys.key, key));
    const [assigned] = await t.database.db.select().from(customers).where(eq(customers.id, row!.customerId!));
    expect(assigned!.accountId).toBe(tenant.accountId);
  });
});

describe('POST /key/activate — validation', () => {
  it('answers 400/1 for missing or invalid fields, first in table order', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const { api, productId } = tenant;
    for (const path of PATHS) {
      expectError(await api.post(path, {}), 400, 1, 'Missing required params');
      expectError(await api.post(path, { productId }), 400, 1, 'Missing required params');
      expectError(await api.post(path, { productId, licenseKey: '' }), 400, 1, 'Missing required params');
      expectError(await api.post(path, { productId: 'short', licenseKey: key }), 400, 1, 'Invalid productId');
      expectError(await api.post(path, { productId, licenseKey: 'K'.repeat(513) }), 400, 1, 'Invalid licenseKey');
      expectError(
        await api.post(path, { productId, licenseKey: key, hostId: 'h'.repeat(257) }),
        400,
        1,
        'Invalid hostId',
      );
      expectError(await api.post(path, { productId, licenseKey: key, hostId: 7 }), 400, 1, 'Invalid hostId');
      expectError(
        await api.post(path, { productId, licenseKey: key, deviceTag: 'd'.repeat(257) }),
        400,
        1,
        'Invalid deviceTag',
      );
      expectError(
        await api.post(path, { productId, licenseKey: key, licensee: { name: 'No email' } }),
        400,
        1,
        'Missing required params',
      );
      expectError(
        await api.post(path, { productId, licenseKey: key, licensee: { name: 'N', email: 'not-an-email' } }),
        400,
        1,
        'Invalid licensee.email',
      );
      expectError(
        await api.post(path, { productId, licenseKey: key, licensee: { name: '', email: 'a@b.co' } }),
        400,
        1,
        'Missing required params',
      );
      expectError(await api.post(path, { productId, licenseKey: key, licensee: 'x' }), 400, 1, 'Invalid licensee');
      expectError(await api.post(path, '{"productId":'), 400, 1, 'Invalid JSON body');
    }
    expect((await getKey(tenant, key)).license.activations).toBe(0);
  });

  it('a 256-char hostId is accepted', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await activate(tenant, key, { hostId: 'h'.repeat(256) });
    expect(response.status).toBe(200);
  });
});

describe('POST /key/activate — security', () => {
  it.each(PATHS)('%s: no token → 401, wrong scope → 403/1', async (path) => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const body = { productId: tenant.productId, licenseKey: key };
    expectError(await client(t.app).post(path, body), 401, 1, 'Invalid access token');
    expectError(
      await client(t.app, 'at_unknown_token_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx').post(path, body),
      401,
      1,
      'Invalid access token',
    );
    const noScope = await createToken(t.app, tenant.accountId, {
      scopes: ['licenses:read', 'licenses:write', 'licenses:block'],
    });
    expectError(await client(t.app, noScope).post(path, body), 403, 1, 'Insufficient permissions for this operation');
    expect((await getKey(tenant, key)).license.activations).toBe(0);
  });

  it.each(PATHS)("%s: another account's key answers exactly like a missing one", async (path) => {
    const owner = await createTenant(t.app);
    const key = await createKey(owner);
    const stranger = await createTenant(t.app);
    const response = await stranger.api.post(path, { productId: owner.productId, licenseKey: key });
    expectError(response, 404, 1, 'License key not found');
    expect((await getKey(owner, key)).license.activations).toBe(0);
  });

  it.each(PATHS)('%s: a token restricted to other products cannot see the key', async (path) => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const restricted = await createToken(t.app, tenant.accountId, { productIds: [otherProduct] });
    const response = await client(t.app, restricted).post(path, { productId: tenant.productId, licenseKey: key });
    expectError(response, 404, 1, 'License key not found');
    const own = await createToken(t.app, tenant.accountId, { productIds: [tenant.productId] });
    expect((await client(t.app, own).post(path, { productId: tenant.productId, licenseKey: key })).status).toBe(200);
  });
});

describe('POST /key/activate — client IP', () => {
  it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await tenant.api.post(
      '/key/activate',
      { productId: tenant.productId, licenseKey: key, hostId: 'h' },
      { 'x-forwarded-for': '203.0.113.7' },
    );
    expect(response.status).toBe(200);
    expect((await getKey(tenant, key)).license.devices[0].ipAddress).toBe('127.0.0.1');
  });

  it('records the first X-Forwarded-For hop behind a trusted proxy', async () => {
    const proxied = await createTestApp({ TRUST_PROXY: 'true' });
    try {
      const tenant = await createTenant(proxied.app);
      const key = await createKey(tenant);
      const response = await tenant.api.post(
        '/key/activate',
        { productId: tenant.productId, licenseKey: key, hostId: 'h' },
        { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' },
      );
      expect(response.status).toBe(200);
      const get = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
      expect(get.body.data.license.devices[0].ipAddress).toBe('203.0.113.7');
    } finally {
      await proxied.close();
    }
  });
});
