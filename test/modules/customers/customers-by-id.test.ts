import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  addCustomer,
  createTenant,
  ERRORS,
  expectError,
  fullCustomerView,
  ISO_MS,
  type Tenant,
} from '../../helpers/fixtures.js';

const t = useTestApp();

const getCustomer = async (tenant: Tenant, customerId: string) => {
  const response = await tenant.api.get('/customer/by-id', { customerId });
  expect(response.status).toBe(200);
  return response.body.data[0];
};

const put = (tenant: Tenant, body?: Record<string, unknown>, query = '') =>
  tenant.api.send('PUT', `/customer/by-id${query}`, body);

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('GET /customer/by-id', () => {
  it('answers the customer inside a one-element data array', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada Park', email: 'ada@example.com' });
    const response = await tenant.api.get('/customer/by-id', { customerId: id });
    expect(response.status).toBe(200);
    expect(response.body).toStrictEqual({
      action: 'getCustomerById',
      status: true,
      data: [fullCustomerView(tenant, { id, name: 'Ada Park', email: 'ada@example.com' })],
      code: 0,
    });
    expect(response.body.data[0].createdAt).toBe(response.body.data[0].updatedAt);
  });

  it('answers 400/1 Missing required params without customerId, or with an empty one', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.get('/customer/by-id'), ERRORS.missingParams);
    expectError(await tenant.api.get('/customer/by-id', { customerId: '' }), ERRORS.missingParams);
  });

  it('answers 400/1 Invalid customerId for an id over 256 chars', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.get('/customer/by-id', { customerId: 'c'.repeat(257) }), 400, 1, 'Invalid customerId');
  });

  it('answers 404/1 Customer not found for an unknown id and for another account customer', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await addCustomer(other, { name: 'Theirs' });
    expectError(await tenant.api.get('/customer/by-id', { customerId: 'cust_abc123' }), ERRORS.customerNotFound);
    expectError(await tenant.api.get('/customer/by-id', { customerId: theirs }), ERRORS.customerNotFound);
  });
});

describe('PUT /customer/by-id', () => {
  it('updates the name and answers the full customer object', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada Park', email: 'ada@example.com' });
    const before = await getCustomer(tenant, id);
    await tick();
    const response = await put(tenant, { customerId: id, name: 'Ada K. Park' });
    expect(response.status).toBe(200);
    expect(response.body).toStrictEqual({
      action: 'updateCustomer',
      status: true,
      message: 'Customer updated successfully',
      data: {
        id,
        name: 'Ada K. Park',
        email: 'ada@example.com',
        active: true,
        createdAt: before.createdAt,
        updatedAt: expect.stringMatching(ISO_MS),
        createdBy: tenant.accountId,
      },
      code: 0,
    });
    expect(Date.parse(response.body.data.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
    expect(await getCustomer(tenant, id)).toEqual(response.body.data);
  });

  it('changes the email, clears it with null and keeps it when "" is sent', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });

    const changed = await put(tenant, { customerId: id, email: 'Ada.Park@Example.com' });
    expect(changed.body.data.email).toBe('Ada.Park@Example.com');

    const kept = await put(tenant, { customerId: id, email: '' });
    expect(kept.status).toBe(200);
    expect(kept.body.data.email).toBe('Ada.Park@Example.com');

    const cleared = await put(tenant, { customerId: id, email: null });
    expect(cleared.body.data.email).toBeNull();
    expect((await getCustomer(tenant, id)).email).toBeNull();
  });

  it('applies active (sent by the Go SDK)', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada' });
    const disabled = await put(tenant, { customerId: id, active: false });
    expect(disabled.body.data.active).toBe(false);
    expect((await getCustomer(tenant, id)).active).toBe(false);
    const enabled = await put(tenant, { customerId: id, active: true, name: 'Ada P.' });
    expect(enabled.body.data).toMatchObject({ active: true, name: 'Ada P.' });
  });

  it('lets a customer change the letter case of its own email', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });
    const response = await put(tenant, { customerId: id, email: 'ADA@example.com' });
    expect(response.status).toBe(200);
    expect(response.body.data.email).toBe('ADA@example.com');
  });

  it('answers 409/1 for an email used by another customer and changes nothing', async () => {
    const tenant = await createTenant(t.app);
    await addCustomer(tenant, { name: 'Bob', email: 'bob@example.com' });
    const id = await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });
    const before = await getCustomer(tenant, id);
    expectError(
      await put(tenant, { customerId: id, name: 'Renamed', email: 'BOB@example.com' }),
      409,
      1,
      'Customer with this email already exists',
    );
    expect(await getCustomer(tenant, id)).toEqual(before);
  });

  it('allows an email used by a customer of another account', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    await addCustomer(other, { name: 'Bob', email: 'bob@example.com' });
    const id = await addCustomer(tenant, { name: 'Ada' });
    expect((await put(tenant, { customerId: id, email: 'bob@example.com' })).status).toBe(200);
  });

  it('takes customerId from the query when the body lacks it; the body wins when both are given', async () => {
    const tenant = await createTenant(t.app);
    const ada = await addCustomer(tenant, { name: 'Ada' });
    const bob = await addCustomer(tenant, { name: 'Bob' });

    const fromQuery = await put(tenant, { name: 'Ada (query)' }, `?customerId=${ada}`);
    expect(fromQuery.status).toBe(200);
    expect(fromQuery.body.data).toMatchObject({ id: ada, name: 'Ada (query)' });

    const both = await put(tenant, { customerId: bob, name: 'Bob (body)' }, `?customerId=${ada}`);
    expect(both.body.data).toMatchObject({ id: bob, name: 'Bob (body)' });
    expect((await getCustomer(tenant, ada)).name).toBe('Ada (query)');
  });

  it('answers the unchanged customer when only customerId is sent', async () => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });
    const before = await getCustomer(tenant, id);
    const response = await put(tenant, undefined, `?customerId=${id}`);
    expect(response.status).toBe(200);
    expect(response.body.data).toEqual(before);
  });

  it.each([
    ['no customerId anywhere', { name: 'Ada' }, 'Missing required params'],
    ['an empty customerId', { customerId: '' }, 'Missing required params'],
    ['no customerId and an invalid name', { name: 5 }, 'Missing required params'],
    ['a customerId that is not a string', { customerId: 5 }, 'Invalid customerId'],
    ['an empty name', { customerId: 'X', name: '' }, 'Invalid name'],
    ['a name over 255 chars', { customerId: 'X', name: 'n'.repeat(256) }, 'Invalid name'],
    ['an invalid email', { customerId: 'X', email: 'nope' }, 'Invalid email'],
    ['a non-boolean active', { customerId: 'X', active: 'false' }, 'Invalid active'],
    ['an invalid name and email', { customerId: 'X', name: 1, email: 'nope' }, 'Invalid name'],
  ])('answers 400/1 for %s and changes nothing', async (_label, body, message) => {
    const tenant = await createTenant(t.app);
    const id = await addCustomer(tenant, { name: 'Ada', email: 'ada@example.com' });
    const before = await getCustomer(tenant, id);
    const withId = Object.fromEntries(Object.entries(body).map(([k, v]) => [k, v === 'X' ? id : v]));
    expectError(await put(tenant, withId), 400, 1, message);
    expect(await getCustomer(tenant, id)).toEqual(before);
  });

  it('answers 404/1 Customer not found for an unknown id and for another account customer', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const theirs = await addCustomer(other, { name: 'Theirs' });
    expectError(await put(tenant, { customerId: 'cust_abc123', name: 'x' }), ERRORS.customerNotFound);
    expectError(await put(tenant, { customerId: theirs, name: 'Mine now' }), ERRORS.customerNotFound);
    expect((await getCustomer(other, theirs)).name).toBe('Theirs');
  });
});
