/** POST /key/activate and POST /activate-key: successful activations, v1 names, the licensee and the client IP. */
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { customers, licenseKeys } from '../../../src/db/schema/index.js';
import { createTestApp, useTestApp } from '../../helpers/app.js';
import {
  activate,
  createKey,
  createTenant,
  customerView,
  ERRORS,
  expectError,
  getLicense,
  HEX_ID,
  keyWithCustomer,
  storedRows,
} from '../../helpers/fixtures.js';

const t = useTestApp();
const { customerCount } = storedRows(t);

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

    const { license } = await getLicense(tenant, key);
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
    expect(omitted.body.hostId).toMatch(HEX_ID);
    expect(empty.body.hostId).toMatch(HEX_ID);
    expect(empty.body.hostId).not.toBe(omitted.body.hostId);
    const { license } = await getLicense(tenant, key);
    expect(license.devices.map((d: any) => d.hostId)).toEqual([omitted.body.hostId, empty.body.hostId]);
    expect(license.devices[0].deviceTag).toBe('laptop');
    expect(license.devices[1].deviceTag).toBeNull();
  });

  it('re-activating the same host is idempotent: 200, no new slot, device unchanged', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: 3 });
    expect((await activate(tenant, key, { hostId: 'same', deviceTag: 'first' })).status).toBe(200);
    const before = (await getLicense(tenant, key)).license.devices;
    const again = await activate(tenant, key, { hostId: 'same', deviceTag: 'second' });
    expect(again.status).toBe(200);
    expect(again.body.hostId).toBe('same');
    const { license } = await getLicense(tenant, key);
    expect(license.activations).toBe(1);
    expect(license.devices).toEqual(before);
  });

  it('unlimited keys accept any number of devices', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: null });
    for (let i = 0; i < 25; i++) expect((await activate(tenant, key, { hostId: `host-${i}` })).status).toBe(200);
    const { license } = await getLicense(tenant, key);
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
    expectError(await activate(tenant, key, { hostId: 'b' }, '/activate-key'), ERRORS.activationLimit);
    expectError(await activate(tenant, key, { hostId: 'b' }), ERRORS.activationLimit);
    const generated = await activate(tenant, key, {}, '/activate-key');
    expectError(generated, ERRORS.activationLimit);
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
    const { customer } = await getLicense(tenant, key);
    expect(customer).toEqual(customerView({ name: 'Grace Hopper', email: 'grace@example.com' }));
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('reuses the customer found by email, case-insensitively', async () => {
    const tenant = await createTenant(t.app);
    const { customerId } = await keyWithCustomer(tenant, {}, 'Ada@Example.com');
    const key = await createKey(tenant);
    const response = await activate(tenant, key, { licensee: { name: 'Other name', email: 'ada@EXAMPLE.com' } });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Ada Park', licenseeEmail: 'Ada@Example.com' });
    expect((await getLicense(tenant, key)).customer.id).toBe(customerId);
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('is assigned on a same-host re-activation too', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await activate(tenant, key, { hostId: 'h' })).status).toBe(200);
    const again = await activate(tenant, key, { hostId: 'h', licensee: { name: 'Late', email: 'late@example.com' } });
    expect(again.status).toBe(200);
    expect((await getLicense(tenant, key)).customer).toMatchObject({ name: 'Late', email: 'late@example.com' });
  });

  it('is ignored when the key already has a customer', async () => {
    const tenant = await createTenant(t.app);
    const { key, customerId } = await keyWithCustomer(tenant, {}, 'ada@example.com');
    const response = await activate(tenant, key, { licensee: { name: 'Ignored', email: 'ignored@example.com' } });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ licenseeName: 'Ada Park', licenseeEmail: 'ada@example.com' });
    expect((await getLicense(tenant, key)).customer.id).toBe(customerId);
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
    expectError(response, ERRORS.activationLimit);
    expect((await getLicense(tenant, key)).customer).toBeNull();
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
    expect((await getLicense(tenant, key)).license.devices[0].ipAddress).toBe('127.0.0.1');
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
