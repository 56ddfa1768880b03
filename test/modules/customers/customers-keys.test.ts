import { and, eq, inArray } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { customers, devices, licenseKeys } from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { useTestApp } from '../../helpers/app.js';
import {
  addCustomer,
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  ERRORS,
  expectError,
  HEX_ID,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();

async function keyRow(productId: string, key: string) {
  const [row] = await t.database.db
    .select()
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, productId), eq(licenseKeys.key, key)));
  expect(row).toBeDefined();
  return row!;
}

/** Records devices directly: activation is a separate endpoint, this file tests the counts. */
async function addDevices(licenseKeyId: string, count: number) {
  await t.database.db
    .insert(devices)
    .values(Array.from({ length: count }, (_, i) => ({ id: newId(), licenseKeyId, hostId: `host-${i}` })));
}

const customerKeys = (tenant: Tenant, customerId: string) => tenant.api.get('/customer/keys', { customerId });

const tick = () => new Promise((resolve) => setTimeout(resolve, 3));

/** A second product of the tenant's account and an unrestricted token that can create keys on it. */
async function otherProductOf(tenant: Tenant) {
  const productId = await createProduct(t.app, tenant.accountId);
  const token = await createToken(t.app, tenant.accountId);
  const owner: Tenant = { ...tenant, productId, token, api: client(t.app, token) };
  return owner;
}

describe('GET /customer/keys', () => {
  it('answers {customer, licenseKeys}: keys by creation, without devices, licenseType, blocked', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant, { name: 'Ada Park', email: 'ada@example.com' });
    const first = await createKey(tenant, {
      customerId,
      usesPerKey: '5',
      expiryDate: '2099-03-31T23:59:59Z',
      metadata: { plan: 'pro' },
      allowedHosts: ['host-0'],
    });
    await tick();
    const second = await createKey(tenant, { customerId, expiryDate: null });
    await tick();
    const expired = await createKey(tenant, { customerId, maxActivations: 1, expiryDate: '2020-01-01' });
    await createKey(tenant, {});
    await addCustomer(tenant, { name: 'Bob' });
    const firstRow = await keyRow(tenant.productId, first);
    await addDevices(firstRow.id, 2);

    const response = await customerKeys(tenant, customerId);
    expect(response.status).toBe(200);
    const customer = (await tenant.api.get('/customer/by-id', { customerId })).body.data[0];
    expect(response.body).toStrictEqual({
      action: 'getCustomerLicenseKeys',
      status: true,
      data: {
        customer,
        licenseKeys: [
          {
            id: firstRow.id,
            key: first,
            productId: tenant.productId,
            maxActivations: 5,
            activations: 2,
            activated: true,
            expirationDate: '2099-03-31T23:59:59.000Z',
            metadata: { plan: 'pro' },
            allowedHosts: ['host-0'],
          },
          {
            id: expect.stringMatching(HEX_ID),
            key: second,
            productId: tenant.productId,
            maxActivations: null,
            activations: 0,
            activated: true,
            expirationDate: null,
            metadata: null,
            allowedHosts: null,
          },
          {
            id: expect.stringMatching(HEX_ID),
            key: expired,
            productId: tenant.productId,
            maxActivations: 1,
            activations: 0,
            activated: false,
            expirationDate: '2020-01-01T00:00:00.000Z',
            metadata: null,
            allowedHosts: null,
          },
        ],
      },
      code: 0,
    });
  });

  it('answers an empty licenseKeys array for a customer without keys', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const response = await customerKeys(tenant, customerId);
    expect(response.status).toBe(200);
    expect(response.body.data.licenseKeys).toEqual([]);
    expect(response.body.data.customer.id).toBe(customerId);
  });

  it('shows a blocked key as not activated', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const key = await createKey(tenant, { customerId });
    await t.database.db.update(licenseKeys).set({ blocked: true }).where(eq(licenseKeys.key, key));
    const [license] = (await customerKeys(tenant, customerId)).body.data.licenseKeys;
    expect(license).toMatchObject({ key, activated: false });
    expect(license).not.toHaveProperty('blocked');
  });

  it('leaves out keys of products the token may not see and of inactive products', async () => {
    const tenant = await createTenant(t.app, { productIds: 'own' });
    const owner = await otherProductOf(tenant);
    const inactive = await otherProductOf(tenant);
    const customerId = await addCustomer(tenant);
    const visible = await createKey(tenant, { customerId });
    await tick();
    const hidden = await createKey(owner, { customerId });
    await createKey(inactive, { customerId });
    const patched = await admin(t.app).send('PATCH', `/admin/products/${inactive.productId}`, { active: false });
    expect(patched.status).toBe(200);

    const restricted = await customerKeys(tenant, customerId);
    expect(restricted.body.data.licenseKeys.map((k: { key: string }) => k.key)).toEqual([visible]);
    const unrestricted = await customerKeys(owner, customerId);
    expect(unrestricted.body.data.licenseKeys.map((k: { key: string }) => k.key)).toEqual([visible, hidden]);
  });

  it('answers 400/1 Missing required params without customerId', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.get('/customer/keys'), ERRORS.missingParams);
    expectError(await customerKeys(tenant, ''), ERRORS.missingParams);
  });

  it('answers 404/1 Customer not found for an unknown id and for another account customer', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await addCustomer(other);
    await createKey(other, { customerId: theirs });
    expectError(await customerKeys(tenant, 'cust_abc123'), ERRORS.customerNotFound);
    expectError(await customerKeys(tenant, theirs), ERRORS.customerNotFound);
  });
});

describe('DELETE /customer/by-id', () => {
  const remove = (tenant: Tenant, query: string, body?: Record<string, unknown>) =>
    tenant.api.send('DELETE', `/customer/by-id${query}`, body);

  async function customerExists(customerId: string) {
    const rows = await t.database.db.select().from(customers).where(eq(customers.id, customerId));
    return rows.length === 1;
  }

  it('deletes the customer, its keys and their devices in one go', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const keep = await addCustomer(tenant, { name: 'Bob' });
    const keys = [await createKey(tenant, { customerId }), await createKey(tenant, { customerId })];
    const kept = await createKey(tenant, { customerId: keep });
    const unassigned = await createKey(tenant, {});
    const keyIds = [(await keyRow(tenant.productId, keys[0]!)).id, (await keyRow(tenant.productId, keys[1]!)).id];
    await addDevices(keyIds[0]!, 2);
    const keptId = (await keyRow(tenant.productId, kept)).id;
    await addDevices(keptId, 1);

    const response = await remove(tenant, `?customerId=${customerId}`);
    expect(response.status).toBe(200);
    expect(response.body).toStrictEqual({
      action: 'removeCustomer',
      status: true,
      message: 'Customer deleted successfully',
      code: 0,
    });

    expectError(await tenant.api.get('/customer/by-id', { customerId }), ERRORS.customerNotFound);
    for (const licenseKey of keys) {
      expectError(await tenant.api.get('/key', { productId: tenant.productId, licenseKey }), ERRORS.keyNotFound);
    }
    const orphans = await t.database.db.select().from(devices).where(inArray(devices.licenseKeyId, keyIds));
    expect(orphans).toEqual([]);

    for (const licenseKey of [kept, unassigned]) {
      expect((await tenant.api.get('/key', { productId: tenant.productId, licenseKey })).status).toBe(200);
    }
    expect((await customerKeys(tenant, keep)).body.data.licenseKeys[0].activations).toBe(1);
  });

  it('answers with a bodiless DELETE carrying the SDKs Content-Type', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const response = await t.app.inject({
      method: 'DELETE',
      url: `/customer/by-id?customerId=${customerId}`,
      headers: { authorization: `Bearer ${tenant.token}`, 'content-type': 'application/json' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().message).toBe('Customer deleted successfully');
    expect(await customerExists(customerId)).toBe(false);
  });

  it('accepts customerId in a JSON body; the query wins when both are given', async () => {
    const tenant = await createTenant(t.app);
    const fromBody = await addCustomer(tenant);
    const fromQuery = await addCustomer(tenant, { name: 'Bob' });
    expect((await remove(tenant, '', { customerId: fromBody })).status).toBe(200);
    expect(await customerExists(fromBody)).toBe(false);

    const bystander = await addCustomer(tenant, { name: 'Cy' });
    expect((await remove(tenant, `?customerId=${fromQuery}`, { customerId: bystander })).status).toBe(200);
    expect(await customerExists(fromQuery)).toBe(false);
    expect(await customerExists(bystander)).toBe(true);
  });

  it('answers 400/1 Missing required params without customerId', async () => {
    const tenant = await createTenant(t.app);
    expectError(await remove(tenant, ''), ERRORS.missingParams);
    expectError(await remove(tenant, '?customerId='), ERRORS.missingParams);
    expectError(await remove(tenant, '', { customerId: null }), ERRORS.missingParams);
  });

  it('answers 400/1 Invalid customerId for a non-string body value', async () => {
    const tenant = await createTenant(t.app);
    expectError(await remove(tenant, '', { customerId: ['x'] }), 400, 1, 'Invalid customerId');
  });

  it('answers 404/1 for an unknown id and for another account customer, deleting nothing', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await addCustomer(other);
    const theirKey = await createKey(other, { customerId: theirs });
    expectError(await remove(tenant, '?customerId=cust_abc123'), ERRORS.customerNotFound);
    expectError(await remove(tenant, `?customerId=${theirs}`), ERRORS.customerNotFound);
    expect(await customerExists(theirs)).toBe(true);
    expect((await other.api.get('/key', { productId: other.productId, licenseKey: theirKey })).status).toBe(200);
  });

  it('answers 403/1 to a product-restricted token when the customer owns keys of other products; nothing is deleted', async () => {
    const tenant = await createTenant(t.app, { productIds: 'own' });
    const owner = await otherProductOf(tenant);
    const customerId = await addCustomer(tenant);
    const ownKey = await createKey(tenant, { customerId });
    await tick();
    const foreignKey = await createKey(owner, { customerId });
    const ownKeyId = (await keyRow(tenant.productId, ownKey)).id;
    await addDevices(ownKeyId, 1);

    expectError(await remove(tenant, `?customerId=${customerId}`), ERRORS.forbidden);
    expect(await customerExists(customerId)).toBe(true);
    const remaining = await customerKeys(owner, customerId);
    expect(remaining.body.data.licenseKeys.map((k: { key: string }) => k.key)).toEqual([ownKey, foreignKey]);
    expect(remaining.body.data.licenseKeys[0].activations).toBe(1);
  });

  it('lets a product-restricted token delete a customer whose keys are all within its products', async () => {
    const tenant = await createTenant(t.app, { productIds: 'own' });
    const withKey = await addCustomer(tenant);
    const key = await createKey(tenant, { customerId: withKey });
    const withoutKeys = await addCustomer(tenant, { name: 'Bob' });
    expect((await remove(tenant, `?customerId=${withKey}`)).status).toBe(200);
    expect((await remove(tenant, `?customerId=${withoutKeys}`)).status).toBe(200);
    expectError(await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key }), ERRORS.keyNotFound);
  });
});

describe('POST /customer/disable', () => {
  const toggleMessage = (response: { statusCode: number; json(): any }) => {
    expect(response.statusCode).toBe(200);
    return response.json().message as string;
  };
  const inject = (tenant: Tenant, options: { url: string; headers?: Record<string, string>; payload?: string }) =>
    t.app.inject({
      method: 'POST',
      url: options.url,
      headers: { authorization: `Bearer ${tenant.token}`, ...options.headers },
      payload: options.payload,
    });
  const isActive = async (tenant: Tenant, customerId: string) =>
    (await tenant.api.get('/customer/by-id', { customerId })).body.data[0].active as boolean;

  it('toggles the customer: query with {} (Node), query without any body (Python), body only (Go)', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);

    const node: LightMyRequestResponse = await inject(tenant, {
      url: `/customer/disable?customerId=${customerId}`,
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    expect(node.json()).toStrictEqual({
      action: 'toggleActive',
      status: true,
      message: 'Customer disabled',
      code: 0,
    });
    expect(await isActive(tenant, customerId)).toBe(false);

    const python = await inject(tenant, { url: `/customer/disable?customerId=${customerId}` });
    expect(python.json()).toStrictEqual({ action: 'toggleActive', status: true, message: 'Customer enabled', code: 0 });
    expect(await isActive(tenant, customerId)).toBe(true);

    const go = await inject(tenant, {
      url: '/customer/disable',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ customerId }),
    });
    expect(toggleMessage(go)).toBe('Customer disabled');
    expect(await isActive(tenant, customerId)).toBe(false);
  });

  it('prefers the query when both carry a customerId', async () => {
    const tenant = await createTenant(t.app);
    const fromQuery = await addCustomer(tenant);
    const fromBody = await addCustomer(tenant, { name: 'Bob' });
    const response = await tenant.api.post(`/customer/disable?customerId=${fromQuery}`, { customerId: fromBody });
    expect(response.body.message).toBe('Customer disabled');
    expect(await isActive(tenant, fromQuery)).toBe(false);
    expect(await isActive(tenant, fromBody)).toBe(true);
  });

  it('shows the disabled customer as inactive on its keys', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const licenseKey = await createKey(tenant, { customerId });
    await tenant.api.post(`/customer/disable?customerId=${customerId}`, {});
    const key = await tenant.api.get('/key', { productId: tenant.productId, licenseKey });
    expect(key.body.data.customer).toMatchObject({ id: customerId, active: false });
    const keys = await customerKeys(tenant, customerId);
    expect(keys.body.data.customer.active).toBe(false);
  });

  it('refuses activation while the customer is disabled and allows it once enabled again', async () => {
    const tenant = await createTenant(t.app);
    const customerId = await addCustomer(tenant);
    const licenseKey = await createKey(tenant, { customerId });
    const activate = () =>
      tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey, hostId: 'host-a' });

    expect((await tenant.api.post(`/customer/disable?customerId=${customerId}`)).body.message).toBe(
      'Customer disabled',
    );
    expectError(await activate(), ERRORS.customerInactive);
    expect((await customerKeys(tenant, customerId)).body.data.licenseKeys[0].activations).toBe(0);

    expect((await tenant.api.post('/customer/disable', { customerId })).body.message).toBe('Customer enabled');
    const activated = await activate();
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ code: 0, message: 'License valid', hostId: 'host-a' });
    expect((await customerKeys(tenant, customerId)).body.data.licenseKeys[0].activations).toBe(1);
  });

  it('answers 400/1 Missing required params without customerId', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.post('/customer/disable'), ERRORS.missingParams);
    expectError(await tenant.api.post('/customer/disable', {}), ERRORS.missingParams);
    expectError(await tenant.api.post('/customer/disable?customerId=', { customerId: '' }), ERRORS.missingParams);
  });

  it('answers 400/1 Invalid customerId for a non-string or over-long value', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.post('/customer/disable', { customerId: 7 }), 400, 1, 'Invalid customerId');
    expectError(await tenant.api.post(`/customer/disable?customerId=${'c'.repeat(257)}`), 400, 1, 'Invalid customerId');
  });

  it('answers 404/1 for an unknown id and for another account customer, changing nothing', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await addCustomer(other);
    expectError(await tenant.api.post('/customer/disable?customerId=cust_abc123'), ERRORS.customerNotFound);
    expectError(await tenant.api.post('/customer/disable', { customerId: theirs }), ERRORS.customerNotFound);
    expect(await isActive(other, theirs)).toBe(true);
  });
});
