import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';

/**
 * License lifecycle requests racing across two real server processes on one PostgreSQL
 * database: the key row lock, the customer key-share lock and the unique indexes must hold
 * whatever process serves a request.
 */
describe.skipIf(!usingPostgres)('activation races across processes (PostgreSQL)', () => {
  let servers: ServerProcess[] = [];
  let token: string;
  let productId: string;

  const serverFor = (i: number) => servers[i % servers.length]!.url;

  const createKey = async (body: Record<string, unknown> = {}) => {
    const response = await request(serverFor(0), 'POST', '/key', token, { productId, ...body });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.key as string;
  };

  const getLicense = async (key: string) => {
    const query = new URLSearchParams({ productId, licenseKey: key });
    const response = await request(serverFor(1), 'GET', `/key?${query}`, token);
    expect(response.status).toBe(200);
    return response.body.data;
  };

  beforeAll(async () => {
    const env = { DATABASE_URL: process.env.DATABASE_URL!, ADMIN_TOKEN, DB_POOL_SIZE: '20' };
    servers = await Promise.all([startServer(env), startServer(env)]);
    ({ productId, token } = await provisionTenant(servers[0]!.url, ADMIN_TOKEN, 'Race account'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('40 parallel activations of distinct hosts on a 5-slot key: exactly five succeed', async () => {
    const key = await createKey({ usesPerKey: '5' });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        request(serverFor(i), 'POST', '/key/activate', token, { productId, licenseKey: key, hostId: `host-${i}` }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(35);
    for (const response of refused) {
      expect(response).toEqual({ status: 403, body: { message: 'Activation limit reached', code: 2 } });
    }
    const { license } = await getLicense(key);
    expect(license.activations).toBe(5);
    expect(license.devices.map((d: { hostId: string }) => d.hostId).sort()).toEqual(
      ok.map((r) => r.body.hostId as string).sort(),
    );
  });

  it('20 parallel activations of one new host: all 200, exactly one device', async () => {
    const key = await createKey({ usesPerKey: '5' });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        request(serverFor(i), 'POST', '/key/activate', token, { productId, licenseKey: key, hostId: 'the-one-host' }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    for (const response of results) expect(response.body.hostId).toBe('the-one-host');
    const { license } = await getLicense(key);
    expect(license.activations).toBe(1);
    expect(license.devices).toHaveLength(1);
  });

  it('10 parallel activations of different keys with the same new licensee: one customer for all', async () => {
    const keys = await Promise.all(Array.from({ length: 10 }, () => createKey()));
    const licensee = { name: 'Racing Licensee', email: `race-${Date.now()}@example.com` };
    const results = await Promise.all(
      keys.map((key, i) =>
        request(serverFor(i), 'POST', '/key/activate', token, { productId, licenseKey: key, hostId: 'h', licensee }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    const customerIds = new Set<string>();
    for (const key of keys) {
      const { customer } = await getLicense(key);
      expect(customer).toMatchObject({ name: licensee.name, email: licensee.email });
      customerIds.add(customer.id);
    }
    expect(customerIds.size).toBe(1);
  });

  const createCustomer = async (email: string) => {
    const response = await request(serverFor(0), 'POST', '/customer', token, { name: 'Doomed', email });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.id as string;
  };

  const deleteCustomer = (customerId: string, i: number) =>
    request(serverFor(i + 1), 'DELETE', `/customer/by-id?customerId=${customerId}`, token);

  it('PATCH /key assigning a customer while it is deleted: 200 then cascade, or 404/2 — never 500', async () => {
    for (let round = 0; round < 15; round++) {
      const customerId = await createCustomer(`patch-${round}-${Date.now()}@example.com`);
      const key = await createKey();
      const [patch, removal] = await Promise.all([
        request(serverFor(round), 'PATCH', '/key', token, { productId, licenseKey: key, customerId }),
        deleteCustomer(customerId, round),
      ]);
      expect(removal.status).toBe(200);
      const query = new URLSearchParams({ productId, licenseKey: key });
      const after = await request(serverFor(0), 'GET', `/key?${query}`, token);
      if (patch.status === 200) {
        // Assigned first: the delete then removed the customer's keys, this one included.
        expect(after.status).toBe(404);
      } else {
        expect(patch).toEqual({ status: 404, body: { message: `Customer with ID ${customerId} not found`, code: 2 } });
        expect(after.status).toBe(200);
        expect(after.body.data.customer).toBeNull();
      }
    }
  });

  it('activating with a licensee while that customer is deleted never answers 500', async () => {
    for (let round = 0; round < 15; round++) {
      const email = `licensee-${round}-${Date.now()}@example.com`;
      const customerId = await createCustomer(email);
      const key = await createKey();
      const [activation, removal] = await Promise.all([
        request(serverFor(round), 'POST', '/key/activate', token, {
          productId,
          licenseKey: key,
          hostId: 'h',
          licensee: { name: 'Fresh', email },
        }),
        deleteCustomer(customerId, round),
      ]);
      expect(removal.status).toBe(200);
      expect(activation.status, JSON.stringify(activation.body)).toBe(200);
      const query = new URLSearchParams({ productId, licenseKey: key });
      const after = await request(serverFor(0), 'GET', `/key?${query}`, token);
      if (activation.body.licenseeName === 'Doomed') {
        expect(after.status).toBe(404);
      } else {
        expect(activation.body.licenseeName).toBe('Fresh');
        expect(after.body.data.customer).toMatchObject({ name: 'Fresh', email });
      }
    }
  });

  it('10 parallel PATCH /key with the same new customer email: one 200, nine 409/2', async () => {
    const keys = await Promise.all(Array.from({ length: 10 }, () => createKey()));
    const email = `patch-new-${Date.now()}@example.com`;
    const results = await Promise.all(
      keys.map((key, i) =>
        request(serverFor(i), 'PATCH', '/key', token, {
          productId,
          licenseKey: key,
          newCustomer: { name: 'N', email },
        }),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const response of results.filter((r) => r.status !== 200)) {
      expect(response).toEqual({
        status: 409,
        body: { message: `CONFLICT: Customer email ${email} already exists.`, code: 2 },
      });
    }
    const assigned = [];
    for (const key of keys) if ((await getLicense(key)).customer) assigned.push(key);
    expect(assigned).toHaveLength(1);
  });
});
