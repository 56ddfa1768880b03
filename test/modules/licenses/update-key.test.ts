import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  customerView,
  ERRORS,
  expectError,
  getLicense,
  storedRows,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();
/** keyRow: the stored row, for the settings GET /key does not show. */
const { customerCount, disableCustomer, keyRow } = storedRows(t);

const UPDATED = { code: 0, message: 'License key updated', affectedCount: 1 };

const update = (tenant: Tenant, key: string, body: Record<string, unknown>) =>
  tenant.api.send('PATCH', '/key', { productId: tenant.productId, licenseKey: key, ...body });

const expectUpdated = async (tenant: Tenant, key: string, body: Record<string, unknown>) => {
  const response = await update(tenant, key, body);
  expect({ status: response.status, body: response.body }).toEqual({ status: 200, body: UPDATED });
};

const activate = (tenant: Tenant, key: string, hostId: string) =>
  tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId });

describe('PATCH /key — fields', () => {
  it('changes only the fields present', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, {
      usesPerKey: '3',
      expiryDate: '2099-01-01',
      metadata: { plan: 'pro' },
      allowedHosts: ['a'],
    });
    const before = await keyRow(tenant, key);
    await expectUpdated(tenant, key, { metadata: { plan: 'enterprise', seats: 10 } });
    const after = await keyRow(tenant, key);
    expect(after).toEqual({ ...before, metadata: { plan: 'enterprise', seats: 10 }, updatedAt: expect.any(Date) });
    expect(after.updatedAt.getTime()).toBeGreaterThanOrEqual(before.updatedAt.getTime());
  });

  it('a body with only the key identifiers changes nothing and still answers 200', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: 2 });
    const before = await keyRow(tenant, key);
    await expectUpdated(tenant, key, {});
    expect(await keyRow(tenant, key)).toEqual(before);
  });

  it('values equal to the stored ones do not rewrite the row', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: 2, metadata: { b: 1, a: { y: 2, x: 1 } }, allowedHosts: ['h'] });
    const before = await keyRow(tenant, key);
    await expectUpdated(tenant, key, {
      maxActivations: '2',
      metadata: { a: { x: 1, y: 2 }, b: 1 },
      allowedHosts: ['h'],
      licenseType: 'node-locked',
      heartbeatInterval: 300,
    });
    expect(await keyRow(tenant, key)).toEqual(before);
  });

  it('maxActivations / usesPerKey: digit string or integer; null = unlimited', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    await expectUpdated(tenant, key, { maxActivations: '7' });
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(7);
    await expectUpdated(tenant, key, { usesPerKey: 4 });
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(4);
    await expectUpdated(tenant, key, { maxActivations: 5, usesPerKey: '5' });
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(5);
    await expectUpdated(tenant, key, { maxActivations: null });
    expect((await getLicense(tenant, key)).license.maxActivations).toBeNull();
  });

  it('usesPerKey and maxActivations that differ → 400/1, nothing changes', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    expectError(
      await update(tenant, key, { maxActivations: 2, usesPerKey: '3' }),
      400,
      1,
      'usesPerKey and maxActivations must match',
    );
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(1);
  });

  it('raising the limit lets a full key activate again', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    expect((await activate(tenant, key, 'a')).status).toBe(200);
    expectError(await activate(tenant, key, 'b'), ERRORS.activationLimit);
    await expectUpdated(tenant, key, { usesPerKey: '2' });
    expect((await activate(tenant, key, 'b')).status).toBe(200);
  });

  it('lowering the limit below the device count keeps the devices but refuses new activations', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '3' });
    for (const host of ['a', 'b', 'c']) expect((await activate(tenant, key, host)).status).toBe(200);
    await expectUpdated(tenant, key, { maxActivations: 1 });
    const { license } = await getLicense(tenant, key);
    expect(license).toMatchObject({ maxActivations: 1, activations: 3 });
    expectError(await activate(tenant, key, 'd'), ERRORS.activationLimit);
    expect((await activate(tenant, key, 'a')).status).toBe(200);
    const deactivate = await tenant.api.post('/key/deactivate', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'a',
    });
    expect(deactivate.status).toBe(200);
    expectError(await activate(tenant, key, 'd'), ERRORS.activationLimit);
  });

  it('expiryDate: a date sets it, null = never expires, omitted = unchanged', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    await expectUpdated(tenant, key, { expiryDate: '2030-06-30T12:00:00+02:00' });
    expect((await getLicense(tenant, key)).license.expirationDate).toBe('2030-06-30T10:00:00.000Z');
    await expectUpdated(tenant, key, { metadata: { x: 1 } });
    expect((await getLicense(tenant, key)).license.expirationDate).toBe('2030-06-30T10:00:00.000Z');
    await expectUpdated(tenant, key, { expiryDate: null });
    expect((await getLicense(tenant, key)).license.expirationDate).toBeNull();
  });

  it('a past expiryDate expires the key; a future one revives it', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await expectUpdated(tenant, key, { expiryDate: '2020-01-01' });
    expect((await getLicense(tenant, key)).license.activated).toBe(false);
    expectError(await activate(tenant, key, 'a'), ERRORS.keyExpired);
    await expectUpdated(tenant, key, { expiryDate: '2099-01-01' });
    expect((await activate(tenant, key, 'a')).status).toBe(200);
  });

  it('metadata replaces the whole object; null clears', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { metadata: { a: 1, b: 2 } });
    await expectUpdated(tenant, key, { metadata: { c: 3 } });
    expect((await getLicense(tenant, key)).license.metadata).toEqual({ c: 3 });
    await expectUpdated(tenant, key, { metadata: null });
    expect((await getLicense(tenant, key)).license.metadata).toBeNull();
  });

  it('allowedHosts replaces; null and [] clear', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await expectUpdated(tenant, key, { allowedHosts: ['a', 'b'] });
    expect((await getLicense(tenant, key)).license.allowedHosts).toEqual(['a', 'b']);
    expectError(await activate(tenant, key, 'c'), ERRORS.hostNotAllowed);
    await expectUpdated(tenant, key, { allowedHosts: [] });
    expect((await getLicense(tenant, key)).license.allowedHosts).toBeNull();
    await expectUpdated(tenant, key, { allowedHosts: ['x'] });
    await expectUpdated(tenant, key, { allowedHosts: null });
    expect((await getLicense(tenant, key)).license.allowedHosts).toBeNull();
    expect((await activate(tenant, key, 'c')).status).toBe(200);
  });

  it('session settings are stored', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { maxConcurrentSessions: 2 });
    await expectUpdated(tenant, key, { maxConcurrentSessions: 9, heartbeatInterval: 120, sessionLeaseDuration: 600 });
    expect(await keyRow(tenant, key)).toMatchObject({
      maxConcurrentSessions: 9,
      heartbeatInterval: 120,
      sessionLeaseDuration: 600,
    });
    await expectUpdated(tenant, key, { maxConcurrentSessions: null });
    expect((await keyRow(tenant, key)).maxConcurrentSessions).toBeNull();
  });

  it('switching to floating removes every device; back to node-locked allows activation again', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    for (const host of ['a', 'b']) expect((await activate(tenant, key, host)).status).toBe(200);
    await expectUpdated(tenant, key, { licenseType: 'floating' });
    const { license } = await getLicense(tenant, key);
    expect(license).toMatchObject({ licenseType: 'floating', activations: 0, devices: [] });
    expectError(await activate(tenant, key, 'a'), ERRORS.floatingLicense);
    await expectUpdated(tenant, key, { licenseType: 'node-locked' });
    expect((await activate(tenant, key, 'a')).status).toBe(200);
  });

  it('blocked and expired keys may be updated', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2020-01-01' });
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    await expectUpdated(tenant, key, { metadata: { note: 'still editable' } });
    expect((await getLicense(tenant, key)).license).toMatchObject({
      blocked: true,
      metadata: { note: 'still editable' },
    });
  });
});

describe('PATCH /key — customer assignment', () => {
  it('customerId assigns an existing customer; null unassigns', async () => {
    const tenant = await createTenant(t.app);
    const owned = await createKey(tenant, { newCustomer: { name: 'Ada Park', email: 'ada@example.com' } });
    const customerId = (await getLicense(tenant, owned)).customer.id;
    const key = await createKey(tenant);
    await expectUpdated(tenant, key, { customerId });
    expect((await getLicense(tenant, key)).customer).toEqual(
      customerView({ id: customerId, name: 'Ada Park', email: 'ada@example.com' }),
    );
    await expectUpdated(tenant, key, { customerId: null });
    expect((await getLicense(tenant, key)).customer).toBeNull();
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('an unknown customerId → 404/2 with the id as sent; nothing changes', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    const response = await update(tenant, key, { usesPerKey: '9', customerId: 'cust_abc123' });
    expectError(response, 404, 2, 'Customer with ID cust_abc123 not found');
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(1);
  });

  it("another account's customer is unknown", async () => {
    const other = await createTenant(t.app);
    const foreign = await createKey(other, { newCustomer: { name: 'Foreign' } });
    const foreignId = (await getLicense(other, foreign)).customer.id;
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    expectError(
      await update(tenant, key, { customerId: foreignId }),
      404,
      2,
      `Customer with ID ${foreignId} not found`,
    );
    expect((await getLicense(tenant, key)).customer).toBeNull();
  });

  it('newCustomer creates and assigns a customer', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    await expectUpdated(tenant, key, { newCustomer: { name: 'Grace', email: 'grace@example.com' } });
    expect((await getLicense(tenant, key)).customer).toMatchObject({
      name: 'Grace',
      email: 'grace@example.com',
      active: true,
    });
    await expectUpdated(tenant, key, { newCustomer: { name: 'No email' } });
    expect((await getLicense(tenant, key)).customer).toMatchObject({ name: 'No email', email: null });
    expect(await customerCount(tenant.accountId)).toBe(2);
  });

  it('newCustomer with an email already used (any case) → 409/2; nothing changes', async () => {
    const tenant = await createTenant(t.app);
    await createKey(tenant, { newCustomer: { name: 'Ada', email: 'ada@example.com' } });
    const key = await createKey(tenant, { metadata: { v: 1 } });
    const response = await update(tenant, key, {
      metadata: { v: 2 },
      newCustomer: { name: 'Clash', email: 'ADA@example.com' },
    });
    expectError(response, 409, 2, 'CONFLICT: Customer email ADA@example.com already exists.');
    const { license, customer } = await getLicense(tenant, key);
    expect(customer).toBeNull();
    expect(license.metadata).toEqual({ v: 1 });
    expect(await customerCount(tenant.accountId)).toBe(1);
  });

  it('customerId together with newCustomer → 400/1, even when customerId is null', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant);
    const message = 'Cannot specify both customerId and newCustomer';
    expectError(await update(tenant, key, { customerId: 'c1', newCustomer: { name: 'N' } }), 400, 1, message);
    expectError(await update(tenant, key, { customerId: null, newCustomer: { name: 'N' } }), 400, 1, message);
    expect(await customerCount(tenant.accountId)).toBe(0);
  });

  it('assigning an inactive customer is allowed; activation then fails', async () => {
    const tenant = await createTenant(t.app);
    const owned = await createKey(tenant, { newCustomer: { name: 'Off' } });
    const customerId = (await getLicense(tenant, owned)).customer.id;
    await disableCustomer(customerId);
    const key = await createKey(tenant);
    await expectUpdated(tenant, key, { customerId });
    expectError(await activate(tenant, key, 'a'), ERRORS.customerInactive);
  });
});

describe('PATCH /key — validation and lookup', () => {
  it('answers 400/1 for missing or invalid fields, first in table order', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { metadata: { v: 1 } });
    const { productId } = tenant;
    const send = (body: Record<string, unknown>) => tenant.api.send('PATCH', '/key', body);
    expectError(await send({}), ERRORS.missingParams);
    expectError(await send({ productId, metadata: {} }), ERRORS.missingParams);
    expectError(await send({ productId: 'short', licenseKey: key }), ERRORS.invalidProductId);
    const invalid: Array<[Record<string, unknown>, string]> = [
      [{ maxActivations: '0' }, 'Invalid maxActivations'],
      [{ maxActivations: '1.5' }, 'Invalid maxActivations'],
      [{ usesPerKey: -1 }, 'Invalid usesPerKey'],
      [{ usesPerKey: '' }, 'Invalid usesPerKey'],
      [{ expiryDate: '2025-02-30' }, 'Invalid expiryDate'],
      [{ expiryDate: '2025-01-01T00:00:00' }, 'Invalid expiryDate'],
      [{ customerId: '' }, 'Invalid customerId'],
      [{ customerId: 12 }, 'Invalid customerId'],
      [{ newCustomer: { name: 'N', email: 'bad' } }, 'Invalid newCustomer.email'],
      [{ metadata: [1, 2] }, 'Invalid metadata'],
      [{ metadata: 'text' }, 'Invalid metadata'],
      [{ allowedHosts: [''] }, 'Invalid allowedHosts'],
      [{ allowedHosts: 'a' }, 'Invalid allowedHosts'],
      [{ licenseType: 'perpetual' }, 'Invalid licenseType'],
      [{ maxConcurrentSessions: 0 }, 'Invalid maxConcurrentSessions'],
      [{ heartbeatInterval: 59 }, 'Invalid heartbeatInterval'],
      [{ sessionLeaseDuration: 299 }, 'Invalid sessionLeaseDuration'],
      [{ maxActivations: 'x', sessionLeaseDuration: 1 }, 'Invalid maxActivations'],
    ];
    for (const [body, message] of invalid) {
      expectError(await send({ productId, licenseKey: key, metadata: { v: 2 }, ...body }), 400, 1, message);
    }
    expectError(await send({ productId, licenseKey: key, newCustomer: { email: 'a@b.co' } }), ERRORS.missingParams);
    expect((await getLicense(tenant, key)).license.metadata).toEqual({ v: 1 });
  });

  it('null on fields that cannot be cleared means omitted', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { licenseType: 'node-locked', heartbeatInterval: 120 });
    await expectUpdated(tenant, key, { licenseType: null, heartbeatInterval: null, newCustomer: null });
    expect(await keyRow(tenant, key)).toMatchObject({
      licenseType: 'node-locked',
      heartbeatInterval: 120,
      customerId: null,
    });
  });

  it('an unknown key → 404/1 License key not found (before the customer checks)', async () => {
    const tenant = await createTenant(t.app);
    expectError(await update(tenant, 'NOPE', { customerId: 'cust_abc123' }), ERRORS.keyNotFound);
    expectError(await update(tenant, 'NOPE', { newCustomer: { name: 'N' } }), ERRORS.keyNotFound);
    expect(await customerCount(tenant.accountId)).toBe(0);
  });
});

describe('PATCH /key — security', () => {
  it('no token → 401; a token without licenses:write → 403/1', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    const body = { productId: tenant.productId, licenseKey: key, usesPerKey: '5' };
    expectError(await client(t.app).send('PATCH', '/key', body), ERRORS.invalidToken);
    const noScope = await createToken(t.app, tenant.accountId, {
      scopes: ['licenses:read', 'licenses:activate', 'licenses:block', 'customers:write'],
    });
    expectError(await client(t.app, noScope).send('PATCH', '/key', body), ERRORS.forbidden);
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(1);
  });

  it("another account's key and a restricted product answer exactly like a missing key", async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { usesPerKey: '1' });
    const body = { productId: tenant.productId, licenseKey: key, usesPerKey: '5' };
    const stranger = await createTenant(t.app);
    expectError(await stranger.api.send('PATCH', '/key', body), ERRORS.keyNotFound);
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const restricted = await createToken(t.app, tenant.accountId, { productIds: [otherProduct] });
    expectError(await client(t.app, restricted).send('PATCH', '/key', body), ERRORS.keyNotFound);
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(1);
    const own = await createToken(t.app, tenant.accountId, { productIds: [tenant.productId] });
    expect((await client(t.app, own).send('PATCH', '/key', body)).body).toEqual(UPDATED);
    expect((await getLicense(tenant, key)).license.maxActivations).toBe(5);
  });
});
