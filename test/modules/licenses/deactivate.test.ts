import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  ERRORS,
  expectError,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();

const PATHS = ['/key/deactivate', '/deactivate-key'] as const;
const DEACTIVATED = { message: 'Device deactivated', code: 0 };

const activate = async (tenant: Tenant, key: string, hostId: string) => {
  const response = await tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
};

const deactivate = (tenant: Tenant, key: string, body: Record<string, unknown> = {}, path = '/key/deactivate') =>
  tenant.api.post(path, { productId: tenant.productId, licenseKey: key, ...body });

const hostsOf = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  expect(response.status).toBe(200);
  const { license } = response.body.data;
  expect(license.activations).toBe(license.devices.length);
  return license.devices.map((device: { hostId: string }) => device.hostId) as string[];
};

describe.each(PATHS)('%s', (path) => {
  it('removes one device by hostId and keeps the others', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '3' });
    for (const host of ['a', 'b', 'c']) await activate(tenant, key, host);
    const response = await deactivate(tenant, key, { hostId: 'b' }, path);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(DEACTIVATED);
    expect(await hostsOf(tenant, key)).toEqual(['a', 'c']);
  });

  it('removes every device when hostId is omitted (or "")', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    for (const host of ['a', 'b']) await activate(tenant, key, host);
    const response = await deactivate(tenant, key, {}, path);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(DEACTIVATED);
    expect(await hostsOf(tenant, key)).toEqual([]);

    await activate(tenant, key, 'c');
    expect((await deactivate(tenant, key, { hostId: '' }, path)).body).toEqual(DEACTIVATED);
    expect(await hostsOf(tenant, key)).toEqual([]);
  });

  it('frees the slot: a full key accepts a new host afterwards', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    await activate(tenant, key, 'old');
    const refused = await tenant.api.post('/key/activate', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'new',
    });
    expectError(refused, ERRORS.activationLimit);
    expect((await deactivate(tenant, key, { hostId: 'old' }, path)).status).toBe(200);
    await activate(tenant, key, 'new');
    expect(await hostsOf(tenant, key)).toEqual(['new']);
  });

  it('hostId not active on the key → 404/1 Device not found', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const other = await createKey(tenant);
    await activate(tenant, key, 'a');
    await activate(tenant, other, 'elsewhere');
    expectError(await deactivate(tenant, key, { hostId: 'elsewhere' }, path), 404, 1, 'Device not found');
    expectError(await deactivate(tenant, key, { hostId: 'A' }, path), 404, 1, 'Device not found');
    expect(await hostsOf(tenant, key)).toEqual(['a']);
    expect(await hostsOf(tenant, other)).toEqual(['elsewhere']);
  });

  it('a hostId already deactivated → 404/1 Device not found', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await activate(tenant, key, 'a');
    expect((await deactivate(tenant, key, { hostId: 'a' }, path)).status).toBe(200);
    expectError(await deactivate(tenant, key, { hostId: 'a' }, path), 404, 1, 'Device not found');
  });

  it('deactivate-all on a key without devices → 403/2 License not activated', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(await deactivate(tenant, key, {}, path), 403, 2, 'License not activated');
    await activate(tenant, key, 'a');
    expect((await deactivate(tenant, key, {}, path)).status).toBe(200);
    expectError(await deactivate(tenant, key, {}, path), 403, 2, 'License not activated');
  });

  it('unknown key (checked before the device) → 404/1 License key not found', async () => {
    const tenant = await createTenant(t.app);
    expectError(await deactivate(tenant, 'NOPE', { hostId: 'a' }, path), ERRORS.keyNotFound);
    expectError(await deactivate(tenant, 'NOPE', {}, path), ERRORS.keyNotFound);
  });

  it('works on blocked and on expired keys', async () => {
    const tenant = await createTenant(t.app);
    const blocked = await createKey(tenant);
    await activate(tenant, blocked, 'a');
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: blocked })).status).toBe(
      200,
    );
    expect((await deactivate(tenant, blocked, { hostId: 'a' }, path)).body).toEqual(DEACTIVATED);
    expect(await hostsOf(tenant, blocked)).toEqual([]);

    const expiring = await createKey(tenant);
    await activate(tenant, expiring, 'a');
    const expire = await tenant.api.send('PATCH', '/key', {
      productId: tenant.productId,
      licenseKey: expiring,
      expiryDate: '2020-01-01',
    });
    expect(expire.status).toBe(200);
    expect((await deactivate(tenant, expiring, {}, path)).body).toEqual(DEACTIVATED);
    expect(await hostsOf(tenant, expiring)).toEqual([]);
  });

  it('validates the body', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const { api, productId } = tenant;
    expectError(await api.post(path, {}), ERRORS.missingParams);
    expectError(await api.post(path, { productId, hostId: 'a' }), ERRORS.missingParams);
    expectError(await api.post(path, { productId: 'x'.repeat(21), licenseKey: key }), ERRORS.invalidProductId);
    expectError(
      await api.post(path, { productId, licenseKey: key, hostId: 'h'.repeat(257) }),
      400,
      1,
      'Invalid hostId',
    );
    expectError(await api.post(path, { productId, licenseKey: key, hostId: ['a'] }), 400, 1, 'Invalid hostId');
  });

  it('security: no token → 401, wrong scope → 403/1, other account and restricted product → 404', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await activate(tenant, key, 'a');
    const body = { productId: tenant.productId, licenseKey: key, hostId: 'a' };

    expectError(await client(t.app).post(path, body), ERRORS.invalidToken);
    const noScope = await createToken(t.app, tenant.accountId, { scopes: ['licenses:read', 'licenses:write'] });
    expectError(await client(t.app, noScope).post(path, body), ERRORS.forbidden);

    const stranger = await createTenant(t.app);
    expectError(await stranger.api.post(path, body), ERRORS.keyNotFound);

    const otherProduct = await createProduct(t.app, tenant.accountId);
    const restricted = await createToken(t.app, tenant.accountId, { productIds: [otherProduct] });
    expectError(await client(t.app, restricted).post(path, body), ERRORS.keyNotFound);

    expect(await hostsOf(tenant, key)).toEqual(['a']);
  });
});
