import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import {
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  expectError,
  type Tenant,
} from '../helpers/fixtures.js';

const t = useTestApp();

const VARIANTS = [
  { block: '/key/block', unblock: '/key/unblock' },
  { block: '/block-key', unblock: '/unblock-key' },
] as const;
const ALL_PATHS = VARIANTS.flatMap((variant) => [variant.block, variant.unblock]);
const BLOCKED = { message: 'Key blocked', code: 0 };
const UNBLOCKED = { message: 'Key unblocked', code: 0 };

const call = (tenant: Tenant, path: string, key: string) =>
  tenant.api.post(path, { productId: tenant.productId, licenseKey: key });

const licenseOf = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  expect(response.status).toBe(200);
  return response.body.data.license;
};

const activate = (tenant: Tenant, key: string, hostId: string) =>
  tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId });

describe.each(VARIANTS)('$block / $unblock', ({ block, unblock }) => {
  it('blocking keeps devices, sets blocked and activated=false, and refuses activation', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await activate(tenant, key, 'a')).status).toBe(200);

    const response = await call(tenant, block, key);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(BLOCKED);
    const license = await licenseOf(tenant, key);
    expect(license).toMatchObject({ blocked: true, activated: false, activations: 1 });
    expect(license.devices.map((d: { hostId: string }) => d.hostId)).toEqual(['a']);
    expectError(await activate(tenant, key, 'a'), 403, 2, 'License key is blocked');
    expectError(await activate(tenant, key, 'b'), 403, 2, 'License key is blocked');
  });

  it('unblocking restores activation', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await call(tenant, block, key);
    const response = await call(tenant, unblock, key);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(UNBLOCKED);
    expect(await licenseOf(tenant, key)).toMatchObject({ blocked: false, activated: true });
    expect((await activate(tenant, key, 'a')).status).toBe(200);
  });

  it('is idempotent in both directions', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await call(tenant, unblock, key)).body).toEqual(UNBLOCKED);
    expect((await licenseOf(tenant, key)).blocked).toBe(false);
    expect((await call(tenant, block, key)).body).toEqual(BLOCKED);
    expect((await call(tenant, block, key)).body).toEqual(BLOCKED);
    expect((await licenseOf(tenant, key)).blocked).toBe(true);
    expect((await call(tenant, unblock, key)).body).toEqual(UNBLOCKED);
    expect((await call(tenant, unblock, key)).body).toEqual(UNBLOCKED);
    expect((await licenseOf(tenant, key)).blocked).toBe(false);
  });

  it('an expired key can be blocked; it stays expired when unblocked', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2020-01-01' });
    expect((await call(tenant, block, key)).body).toEqual(BLOCKED);
    expect((await call(tenant, unblock, key)).body).toEqual(UNBLOCKED);
    expect(await licenseOf(tenant, key)).toMatchObject({ blocked: false, activated: false });
    expectError(await activate(tenant, key, 'a'), 403, 2, 'License key has expired');
  });

  it('only the addressed key changes', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const other = await createKey(tenant);
    await call(tenant, block, key);
    expect((await licenseOf(tenant, other)).blocked).toBe(false);
  });

  it.each([block, unblock])('%s validates the body and answers 404 for an unknown key', async (path) => {
    const tenant = await createTenant(t.app);
    const { api, productId } = tenant;
    expectError(await api.post(path, {}), 400, 1, 'Missing required params');
    expectError(await api.post(path, { productId }), 400, 1, 'Missing required params');
    expectError(await api.post(path, { licenseKey: 'K' }), 400, 1, 'Missing required params');
    expectError(await api.post(path, { productId: 42, licenseKey: 'K' }), 400, 1, 'Invalid productId');
    expectError(await api.post(path, { productId, licenseKey: 'K'.repeat(513) }), 400, 1, 'Invalid licenseKey');
    expectError(await api.post(path, { productId, licenseKey: 'NOPE' }), 404, 1, 'License key not found');
  });
});

describe('block / unblock — security', () => {
  it.each(ALL_PATHS)('%s: no token → 401, wrong scope → 403/1', async (path) => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const body = { productId: tenant.productId, licenseKey: key };
    expectError(await client(t.app).post(path, body), 401, 1, 'Invalid access token');
    const noScope = await createToken(t.app, tenant.accountId, {
      scopes: ['licenses:read', 'licenses:write', 'licenses:activate'],
    });
    expectError(await client(t.app, noScope).post(path, body), 403, 1, 'Insufficient permissions for this operation');
    const onlyBlock = await createToken(t.app, tenant.accountId, { scopes: ['licenses:block'] });
    expect((await client(t.app, onlyBlock).post(path, body)).status).toBe(200);
  });

  it.each(ALL_PATHS)("%s: another account's key and a restricted product answer 404", async (path) => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const body = { productId: tenant.productId, licenseKey: key };
    const stranger = await createTenant(t.app);
    expectError(await stranger.api.post(path, body), 404, 1, 'License key not found');
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const restricted = await createToken(t.app, tenant.accountId, { productIds: [otherProduct] });
    expectError(await client(t.app, restricted).post(path, body), 404, 1, 'License key not found');
    expect((await licenseOf(tenant, key)).blocked).toBe(false);
  });

  it('a stranger cannot unblock a blocked key', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await call(tenant, '/key/block', key);
    const stranger = await createTenant(t.app);
    expectError(
      await call({ ...stranger, productId: tenant.productId }, '/key/unblock', key),
      404,
      1,
      'License key not found',
    );
    expect((await licenseOf(tenant, key)).blocked).toBe(true);
  });
});
