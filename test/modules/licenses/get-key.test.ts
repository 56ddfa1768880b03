import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { devices, licenseKeys } from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { useTestApp } from '../../helpers/app.js';
import {
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  customerView,
  ERRORS,
  expectError,
  HEX_ID,
  licenseView,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();

/** GET /key (v2, query) and POST /get-key (v1, JSON body) with the same parameters. */
const lookups = {
  'GET /key': (tenant: Tenant, params: Record<string, unknown>) =>
    tenant.api.get('/key', params as Record<string, string>),
  'POST /get-key': (tenant: Tenant, params: Record<string, unknown>) => tenant.api.post('/get-key', params),
};

async function keyId(tenant: Tenant, key: string) {
  const [row] = await t.database.db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
  return row!.id;
}

describe('GET /key (v2 names)', () => {
  it('returns the full license document and the short customer', async () => {
    const tenant = await createTenant(t.app);
    const email = `ada.${randomBytes(4).toString('hex')}@example.com`;
    const key = await createKey(tenant, {
      usesPerKey: '5',
      expiryDate: '2031-03-31T23:59:59Z',
      metadata: { plan: 'pro' },
      allowedHosts: ['host-a'],
      newCustomer: { name: 'Ada Park', email },
    });
    const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: {
        license: licenseView(key, tenant.productId, {
          id: await keyId(tenant, key),
          maxActivations: 5,
          expirationDate: '2031-03-31T23:59:59.000Z',
          metadata: { plan: 'pro' },
          allowedHosts: ['host-a'],
        }),
        customer: customerView({ name: 'Ada Park', email }),
      },
    });
  });

  it('customer is null for an unassigned key, and the key id is 22 hex chars', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    expect(response.body.data.customer).toBeNull();
    expect(response.body.data.license.id).toMatch(HEX_ID);
  });

  it('lists recorded devices in activation order with v2 names', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: 3 });
    const licenseKeyId = await keyId(tenant, key);
    await t.database.db.insert(devices).values([
      {
        id: newId(),
        licenseKeyId,
        hostId: 'second',
        deviceTag: null,
        ipAddress: null,
        activatedAt: new Date('2030-01-02T00:00:00.000Z'),
      },
      {
        id: newId(),
        licenseKeyId,
        hostId: 'first',
        deviceTag: 'Build server',
        ipAddress: '203.0.113.7',
        activatedAt: new Date('2030-01-01T10:15:03.120Z'),
      },
    ]);
    const { body } = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    expect(body.data.license.activations).toBe(2);
    expect(body.data.license.devices).toEqual([
      {
        hostId: 'first',
        deviceTag: 'Build server',
        ipAddress: '203.0.113.7',
        activationTime: '2030-01-01T10:15:03.120Z',
      },
      { hostId: 'second', deviceTag: null, ipAddress: null, activationTime: '2030-01-02T00:00:00.000Z' },
    ]);
  });

  it('returns blocked and expired keys (no state check) with activated false', async () => {
    const tenant = await createTenant(t.app);
    const expired = await createKey(tenant, { expiryDate: '2020-01-01' });
    const blocked = await createKey(tenant);
    await t.database.db
      .update(licenseKeys)
      .set({ blocked: true })
      .where(eq(licenseKeys.id, await keyId(tenant, blocked)));
    const expiredView = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: expired });
    expect(expiredView.body.data.license).toMatchObject({ activated: false, blocked: false });
    const blockedView = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: blocked });
    expect(blockedView.body.data.license).toMatchObject({ activated: false, blocked: true });
  });

  it('ignores unknown query parameters', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key, versionId: 'x' });
    expect(response.status).toBe(200);
  });

  it('a bodiless GET with Content-Type: application/json works (SDKs send it)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await tenant.api.get(
      '/key',
      { productId: tenant.productId, licenseKey: key },
      { 'content-type': 'application/json' },
    );
    expect(response.status).toBe(200);
  });
});

describe('POST /get-key (v1 names)', () => {
  it('renames exactly the v1 fields and nothing inside metadata', async () => {
    const tenant = await createTenant(t.app);
    const metadata = { productId: 'kept', maxActivations: 1, nested: { hostId: 'kept too' } };
    const key = await createKey(tenant, {
      usesPerKey: 2,
      expiryDate: '2031-01-01',
      metadata,
      newCustomer: { name: 'Legacy' },
    });
    await t.database.db.insert(devices).values({
      id: newId(),
      licenseKeyId: await keyId(tenant, key),
      hostId: 'host-1',
      deviceTag: 'tag',
      ipAddress: '198.51.100.1',
      activatedAt: new Date('2030-05-05T05:05:05.005Z'),
    });
    const response = await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: key });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: {
        license: {
          id: await keyId(tenant, key),
          key,
          product_id: tenant.productId,
          max_activations: 2,
          activations: 1,
          devices: [
            {
              host_id: 'host-1',
              device_tag: 'tag',
              ip_address: '198.51.100.1',
              activation_time: '2030-05-05T05:05:05.005Z',
            },
          ],
          activated: true,
          expiration_date: '2031-01-01T00:00:00.000Z',
          metadata,
          allowedHosts: null,
          licenseType: 'node-locked',
          blocked: false,
        },
        customer: customerView({ name: 'Legacy', email: null }),
      },
    });
  });

  it('unlimited keys and never-expiring keys give null v1 fields', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: null });
    const { body } = await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: key });
    expect(body.data.license).toMatchObject({ max_activations: null, expiration_date: null, devices: [] });
    expect(body.data.customer).toBeNull();
  });
});

describe.each(Object.entries(lookups))('%s errors', (_name, lookup) => {
  it('missing, null or empty parameters are Missing required params', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    for (const params of [
      {},
      { productId: tenant.productId },
      { licenseKey: key },
      { productId: tenant.productId, licenseKey: '' },
      { productId: '', licenseKey: key },
    ]) {
      expectError(await lookup(tenant, params), ERRORS.missingParams);
    }
  });

  it('validates productId (22–256 chars) and licenseKey (≤ 512 chars)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(await lookup(tenant, { productId: 'short', licenseKey: key }), ERRORS.invalidProductId);
    expectError(await lookup(tenant, { productId: 'p'.repeat(257), licenseKey: key }), ERRORS.invalidProductId);
    expectError(
      await lookup(tenant, { productId: tenant.productId, licenseKey: 'k'.repeat(513) }),
      400,
      1,
      'Invalid licenseKey',
    );
    expectError(await lookup(tenant, { productId: tenant.productId, licenseKey: 'k'.repeat(512) }), ERRORS.keyNotFound);
  });

  it('matches the key exactly: case-sensitive, no trimming', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    for (const licenseKey of [key.toLowerCase(), ` ${key}`, `${key} `, key.replaceAll('-', '')]) {
      expectError(await lookup(tenant, { productId: tenant.productId, licenseKey }), ERRORS.keyNotFound);
    }
  });

  it('a key of another product of the same account is not found', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const second = await createProduct(t.app, tenant.accountId);
    expectError(await lookup(tenant, { productId: second, licenseKey: key }), ERRORS.keyNotFound);
  });

  it("another account's key answers exactly like a missing one", async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await createKey(other);
    expectError(await lookup(tenant, { productId: other.productId, licenseKey: theirs }), ERRORS.keyNotFound);
    expectError(await lookup(tenant, { productId: tenant.productId, licenseKey: theirs }), ERRORS.keyNotFound);
    expectError(
      await lookup(tenant, { productId: other.productId, licenseKey: 'NOSUC-HKEYX-XXXXX-XXXXX' }),
      ERRORS.keyNotFound,
    );
  });

  it("a product outside the token's productIds is not found", async () => {
    const tenant = await createTenant(t.app);
    const second = await createProduct(t.app, tenant.accountId);
    const key = (await tenant.api.post('/key', { productId: second })).body.key as string;
    const restricted = {
      ...tenant,
      api: client(t.app, await createToken(t.app, tenant.accountId, { productIds: [tenant.productId] })),
    };
    expectError(await lookup(restricted, { productId: second, licenseKey: key }), ERRORS.keyNotFound);
    expect((await lookup(tenant, { productId: second, licenseKey: key })).status).toBe(200);
  });

  it('a key of an inactive product is not found; reactivating shows it again', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expectError(await lookup(tenant, { productId: tenant.productId, licenseKey: key }), ERRORS.keyNotFound);
    await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: true });
    expect((await lookup(tenant, { productId: tenant.productId, licenseKey: key })).status).toBe(200);
  });

  it('requires licenses:read', async () => {
    const tenant = await createTenant(t.app, { scopes: ['licenses:write', 'licenses:activate'] });
    const key = await createKey(tenant);
    expectError(await lookup(tenant, { productId: tenant.productId, licenseKey: key }), ERRORS.forbidden);
    const reader = {
      ...tenant,
      api: client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:read'] })),
    };
    expect((await lookup(reader, { productId: tenant.productId, licenseKey: key })).status).toBe(200);
  });

  it('requires a valid token', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const anonymous = { ...tenant, api: client(t.app) };
    expectError(await lookup(anonymous, { productId: tenant.productId, licenseKey: key }), ERRORS.invalidToken);
  });
});

describe('parameter types', () => {
  it('GET /key: a repeated query parameter is invalid, not a 500', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const response = await t.app.inject({
      method: 'GET',
      url: `/key?productId=${tenant.productId}&productId=${tenant.productId}&licenseKey=${key}`,
      headers: { authorization: `Bearer ${tenant.token}` },
    });
    expect({ status: response.statusCode, body: response.json() }).toEqual(ERRORS.invalidProductId);
  });

  it('POST /get-key: non-string values are invalid', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(
      await tenant.api.post('/get-key', { productId: [tenant.productId], licenseKey: key }),
      ERRORS.invalidProductId,
    );
    expectError(
      await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: 12345 }),
      400,
      1,
      'Invalid licenseKey',
    );
    expectError(
      await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: { key } }),
      400,
      1,
      'Invalid licenseKey',
    );
  });
});
