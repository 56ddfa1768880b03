import { and, count, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { floatingSessions, licenseKeys } from '../../../src/db/schema/index.js';
import { useTestApp } from '../../helpers/app.js';
import { createTenant, expectError, type Tenant } from '../../helpers/fixtures.js';
import {
  checkedOut,
  checkin,
  checkout,
  createFloatingKey,
  heartbeat,
  heartbeatOk,
  storedSession,
} from '../../helpers/floating.js';

const t = useTestApp();

const patch = (tenant: Tenant, key: string, body: Record<string, unknown>) =>
  tenant.api.send('PATCH', '/key', { productId: tenant.productId, licenseKey: key, ...body });

const keyIdOf = async (tenant: Tenant, key: string) => {
  const [row] = await t.database.db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
  return row!.id;
};

describe('PATCH /key and sessions', () => {
  it('switching to node-locked ends every live session of the key at once', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 2 });
    const other = await createFloatingKey(tenant);
    const { session: a } = await checkedOut(tenant, key, { hostId: 'a' });
    const { session: b } = await checkedOut(tenant, key, { hostId: 'b' });
    const { session: elsewhere } = await checkedOut(tenant, other, { hostId: 'a' });
    expect((await patch(tenant, key, { licenseType: 'node-locked' })).status).toBe(200);
    for (const session of [a, b]) {
      expect((await storedSession(t.database.db, session.sessionId))!.checkedInAt).toBeInstanceOf(Date);
      expectError(await heartbeat(tenant, key, session), 404, 1, 'Session not found');
      expectError(await checkin(tenant, key, session), 404, 1, 'Session not found');
    }
    // Another key's sessions are untouched; the key is now activated, not checked out.
    await heartbeatOk(tenant, other, elsewhere);
    expectError(await checkout(tenant, key), 403, 2, 'License is not a floating license');
    const activated = await tenant.api.post('/key/activate', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'h',
    });
    expect(activated.status).toBe(200);
  });

  it('switching back to floating starts from no sessions: every seat is free', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 1 });
    await checkedOut(tenant, key, { hostId: 'a' });
    expect((await patch(tenant, key, { licenseType: 'node-locked' })).status).toBe(200);
    expect((await patch(tenant, key, { licenseType: 'floating' })).status).toBe(200);
    expect((await checkedOut(tenant, key, { hostId: 'b' })).response.body.currentSessions).toBe(1);
  });

  it('other updates keep the sessions: a lower limit refuses new checkouts only', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 3 });
    const sessions = [];
    for (const hostId of ['a', 'b', 'c']) sessions.push((await checkedOut(tenant, key, { hostId })).session);
    expect(
      (await patch(tenant, key, { maxConcurrentSessions: 2, metadata: { seats: 2 }, licenseType: 'floating' })).status,
    ).toBe(200);
    for (const session of sessions) await heartbeatOk(tenant, key, session);
    expectError(await checkout(tenant, key, { hostId: 'd' }), 403, 2, 'No floating seats available');
    expect((await checkin(tenant, key, sessions[0]!)).status).toBe(200);
    expectError(await checkout(tenant, key, { hostId: 'd' }), 403, 2, 'No floating seats available');
    expect((await checkin(tenant, key, sessions[1]!)).status).toBe(200);
    expect((await checkedOut(tenant, key, { hostId: 'd' })).response.body).toMatchObject({
      currentSessions: 2,
      maxSessions: 2,
      metadata: { seats: 2 },
    });
  });
});

describe('customers and sessions', () => {
  it('deleting the customer deletes its keys with their sessions', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { newCustomer: { name: 'Leaving' } });
    const { session } = await checkedOut(tenant, key);
    const id = await keyIdOf(tenant, key);
    const { body } = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    const removed = await tenant.api.send('DELETE', `/customer/by-id?customerId=${body.data.customer.id}`);
    expect(removed.status).toBe(200);
    const [left] = await t.database.db
      .select({ n: count() })
      .from(floatingSessions)
      .where(eq(floatingSessions.licenseKeyId, id));
    expect(left!.n).toBe(0);
    expectError(await heartbeat(tenant, key, session), 404, 1, 'License key not found');
  });

  it('checkout names the key customer as licensee (null fields without one)', async () => {
    const tenant = await createTenant(t.app);
    const withCustomer = await createFloatingKey(tenant, { newCustomer: { name: 'Ada Park' } });
    expect((await checkedOut(tenant, withCustomer)).response.body).toMatchObject({
      licenseeName: 'Ada Park',
      licenseeEmail: null,
    });
  });
});

describe('GET /key on a floating key', () => {
  it('shows the License object of §1.11 unchanged: licenseType, no session fields', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 4 });
    await checkedOut(tenant, key);
    const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    expect(response.status).toBe(200);
    expect(Object.keys(response.body.data.license).sort()).toEqual(
      [
        'id',
        'key',
        'productId',
        'maxActivations',
        'activations',
        'devices',
        'activated',
        'expirationDate',
        'metadata',
        'allowedHosts',
        'licenseType',
        'blocked',
      ].sort(),
    );
    expect(response.body.data.license).toMatchObject({ licenseType: 'floating', activations: 0, devices: [] });
  });
});
