/** POST /key/activate and POST /activate-key: the nine checks in order, validation and security. */
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  activate,
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  ERRORS,
  expectError,
  getLicense,
  keyWithCustomer,
  storedRows,
} from '../../helpers/fixtures.js';

const t = useTestApp();
const { disableCustomer } = storedRows(t);

const PAST = '2020-01-01T00:00:00Z';
const PATHS = ['/key/activate', '/activate-key'] as const;

describe('POST /key/activate — the nine checks, in order (§2.4)', () => {
  it('1. unknown key, key of another product, inactive product → 404 License key not found', async () => {
    const tenant = await createTenant(t.app);
    expectError(await activate(tenant, 'NOPE-NOPE'), ERRORS.keyNotFound);

    const otherProduct = await createProduct(t.app, tenant.accountId);
    const otherKey = await createKey({ ...tenant, productId: otherProduct });
    expectError(await activate(tenant, otherKey), ERRORS.keyNotFound);

    const key = await createKey(tenant);
    const patch = await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expect(patch.status).toBe(200);
    expectError(await activate(tenant, key), ERRORS.keyNotFound);
  });

  it('1. matches the key exactly (case-sensitive, no trimming)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(await activate(tenant, key.toLowerCase()), ERRORS.keyNotFound);
    expectError(await activate(tenant, ` ${key}`), ERRORS.keyNotFound);
  });

  it('2. floating key → 403/2 Floating licenses must use checkout (even when also blocked)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { licenseType: 'floating', expiryDate: PAST });
    expectError(await activate(tenant, key), ERRORS.floatingLicense);
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    expectError(await activate(tenant, key), ERRORS.floatingLicense);
  });

  it('3. blocked key → 403/2 License key is blocked (checked before expiry)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    expectError(await activate(tenant, key, { hostId: 'h' }), ERRORS.keyBlocked);

    const expired = await createKey(tenant, { expiryDate: PAST });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: expired });
    expectError(await activate(tenant, expired), ERRORS.keyBlocked);
    expect((await getLicense(tenant, expired)).license.activations).toBe(0);
  });

  it('4. expired key → 403/2 License key has expired (checked before the customer)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: PAST });
    expectError(await activate(tenant, key, { hostId: 'h' }), ERRORS.keyExpired);

    const { key: withCustomer, customerId } = await keyWithCustomer(tenant, { expiryDate: PAST });
    await disableCustomer(customerId);
    expectError(await activate(tenant, withCustomer), ERRORS.keyExpired);
    expect((await getLicense(tenant, withCustomer)).license.activations).toBe(0);
  });

  it('4. a key expiring in the future activates; one expiring a moment ago does not', async () => {
    const tenant = await createTenant(t.app);
    const soon = await createKey(tenant, { expiryDate: new Date(Date.now() + 60_000).toISOString() });
    expect((await activate(tenant, soon)).status).toBe(200);
    const justNow = await createKey(tenant, { expiryDate: new Date(Date.now() - 1000).toISOString() });
    expectError(await activate(tenant, justNow), ERRORS.keyExpired);
  });

  it("5. the key's inactive customer → 403/2 Customer is inactive (checked before allowedHosts)", async () => {
    const tenant = await createTenant(t.app);
    const { key, customerId } = await keyWithCustomer(tenant, { allowedHosts: ['only-this'] });
    await disableCustomer(customerId);
    expectError(await activate(tenant, key, { hostId: 'only-this' }), ERRORS.customerInactive);
    expectError(await activate(tenant, key, { hostId: 'elsewhere' }), ERRORS.customerInactive);
    expect((await getLicense(tenant, key)).license.activations).toBe(0);
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
    expectError(response, ERRORS.customerInactive);
    const data = await getLicense(tenant, key);
    expect(data.customer).toBeNull();
    expect(data.license.activations).toBe(0);
  });

  it('6. allowedHosts set and hostId not in it → 403/2 Host not allowed (checked before the limit)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { allowedHosts: ['host-a', 'host-b'], usesPerKey: '1' });
    expectError(await activate(tenant, key, { hostId: 'host-c' }), ERRORS.hostNotAllowed);
    expectError(await activate(tenant, key, { hostId: 'HOST-A' }), ERRORS.hostNotAllowed);
    expect((await activate(tenant, key, { hostId: 'host-a' })).status).toBe(200);
    // The key is now full, yet a foreign host still hears about the host, not the limit.
    expectError(await activate(tenant, key, { hostId: 'host-c' }), ERRORS.hostNotAllowed);
    expectError(await activate(tenant, key, { hostId: 'host-b' }), ERRORS.activationLimit);
  });

  it('6. a generated hostId is checked against allowedHosts too', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { allowedHosts: ['host-a'] });
    expectError(await activate(tenant, key), ERRORS.hostNotAllowed);
    expect((await getLicense(tenant, key)).license.activations).toBe(0);
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
    expectError(await activate(tenant, key, { hostId: 'host-a' }), ERRORS.hostNotAllowed);
  });

  it('7 before 9: the same host on a full key answers 200 without a new slot', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '2' });
    expect((await activate(tenant, key, { hostId: 'one' })).status).toBe(200);
    expect((await activate(tenant, key, { hostId: 'two' })).status).toBe(200);
    const again = await activate(tenant, key, { hostId: 'one' });
    expect(again.status).toBe(200);
    expect(again.body.hostId).toBe('one');
    expect((await getLicense(tenant, key)).license.activations).toBe(2);
  });

  it('8. below the limit a new device is recorded', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { maxActivations: 2 });
    expect((await activate(tenant, key, { hostId: 'one' })).status).toBe(200);
    expect((await getLicense(tenant, key)).license.activations).toBe(1);
    expect((await activate(tenant, key, { hostId: 'two' })).status).toBe(200);
    expect((await getLicense(tenant, key)).license.activations).toBe(2);
  });

  it('9. a full key → 403/2 Activation limit reached; nothing is recorded', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '2' });
    await activate(tenant, key, { hostId: 'one' });
    await activate(tenant, key, { hostId: 'two' });
    expectError(await activate(tenant, key, { hostId: 'three' }), ERRORS.activationLimit);
    const { license } = await getLicense(tenant, key);
    expect(license.activations).toBe(2);
    expect(license.devices.map((d: any) => d.hostId)).toEqual(['one', 'two']);
  });
});

describe('POST /key/activate — validation', () => {
  it('answers 400/1 for missing or invalid fields, first in table order', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const { api, productId } = tenant;
    for (const path of PATHS) {
      expectError(await api.post(path, {}), ERRORS.missingParams);
      expectError(await api.post(path, { productId }), ERRORS.missingParams);
      expectError(await api.post(path, { productId, licenseKey: '' }), ERRORS.missingParams);
      expectError(await api.post(path, { productId: 'short', licenseKey: key }), ERRORS.invalidProductId);
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
        ERRORS.missingParams,
      );
      expectError(
        await api.post(path, { productId, licenseKey: key, licensee: { name: 'N', email: 'not-an-email' } }),
        400,
        1,
        'Invalid licensee.email',
      );
      expectError(
        await api.post(path, { productId, licenseKey: key, licensee: { name: '', email: 'a@b.co' } }),
        ERRORS.missingParams,
      );
      expectError(await api.post(path, { productId, licenseKey: key, licensee: 'x' }), 400, 1, 'Invalid licensee');
      expectError(await api.post(path, '{"productId":'), ERRORS.invalidJson);
    }
    expect((await getLicense(tenant, key)).license.activations).toBe(0);
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
    expectError(await client(t.app).post(path, body), ERRORS.invalidToken);
    expectError(
      await client(t.app, 'at_unknown_token_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx').post(path, body),
      ERRORS.invalidToken,
    );
    const noScope = await createToken(t.app, tenant.accountId, {
      scopes: ['licenses:read', 'licenses:write', 'licenses:block'],
    });
    expectError(await client(t.app, noScope).post(path, body), ERRORS.forbidden);
    expect((await getLicense(tenant, key)).license.activations).toBe(0);
  });

  it.each(PATHS)("%s: another account's key answers exactly like a missing one", async (path) => {
    const owner = await createTenant(t.app);
    const key = await createKey(owner);
    const stranger = await createTenant(t.app);
    const response = await stranger.api.post(path, { productId: owner.productId, licenseKey: key });
    expectError(response, ERRORS.keyNotFound);
    expect((await getLicense(owner, key)).license.activations).toBe(0);
  });

  it.each(PATHS)('%s: a token restricted to other products cannot see the key', async (path) => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const restricted = await createToken(t.app, tenant.accountId, { productIds: [otherProduct] });
    const response = await client(t.app, restricted).post(path, { productId: tenant.productId, licenseKey: key });
    expectError(response, ERRORS.keyNotFound);
    const own = await createToken(t.app, tenant.accountId, { productIds: [tenant.productId] });
    expect((await client(t.app, own).post(path, { productId: tenant.productId, licenseKey: key })).status).toBe(200);
  });
});
