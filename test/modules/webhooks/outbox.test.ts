import { asc, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { webhookDeliveries, webhookEvents, webhooks } from '../../../src/db/schema/index.js';
import { WEBHOOK_EVENT_TYPES } from '../../../src/lib/events.js';
import { newId } from '../../../src/lib/ids.js';
import { useTestApp } from '../../helpers/app.js';
import {
  activate,
  createKey,
  createTenant,
  expectError,
  fullCustomerView,
  getLicense,
  HEX_ID,
  ISO_MS,
  licenseView,
  type Tenant,
  uniqueEmail,
} from '../../helpers/fixtures.js';

/**
 * The outbox (docs/api.md, "Webhooks"): which changes write which events, in the transaction of
 * the change, with the payload every delivery attempt sends. Delivery itself is tested in
 * delivery.test.ts.
 */

const testApp = useTestApp();

/** A webhook of the tenant's account, inserted as the admin API stores it. */
async function addWebhook(tenant: Tenant, events: readonly string[] = WEBHOOK_EVENT_TYPES) {
  const id = newId();
  await testApp.database.db.insert(webhooks).values({
    id,
    accountId: tenant.accountId,
    url: 'https://receiver.example/hooks',
    events: [...events],
    secret: 'whsec_test',
  });
  return id;
}

/** The tenant's events in the order they were written, payloads parsed. */
async function eventsOf(tenant: Tenant) {
  const rows = await testApp.database.db
    .select()
    .from(webhookEvents)
    .where(eq(webhookEvents.accountId, tenant.accountId))
    .orderBy(asc(webhookEvents.createdAt), asc(webhookEvents.id));
  return rows.map((row) => ({ row, body: JSON.parse(row.payload) }));
}

/**
 * Events written since the last call (per tenant). The events of one request share their
 * createdAt and have no order among them; call it after each request whose events are compared
 * in order.
 */
function eventFeed(tenant: Tenant) {
  let seen = new Set<string>();
  return async () => {
    const all = await eventsOf(tenant);
    const fresh = all.filter(({ row }) => !seen.has(row.id));
    seen = new Set(all.map(({ row }) => row.id));
    return fresh.map(({ body }) => body);
  };
}

/** Runs the requests one by one and returns the events each wrote, in request order. */
async function eventsAfterEach(tenant: Tenant, requests: (() => Promise<unknown>)[]) {
  const feed = eventFeed(tenant);
  await feed();
  const events: any[] = [];
  for (const send of requests) {
    await send();
    events.push(...(await feed()));
  }
  return events;
}

const byType = (events: any[]) => [...events].sort((a, b) => (a.type < b.type ? -1 : 1));

const deliveriesOf = (eventId: string) =>
  testApp.database.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId));

/** The license object of key events: the v2 License (as GET /key shows it) without devices, plus customerId. */
const licensePayload = (tenant: Tenant, key: string, fields: Record<string, unknown> = {}) => {
  const { devices: _devices, ...license } = licenseView(key, tenant.productId);
  return { ...license, customerId: null, ...fields };
};

const event = (type: string, data: Record<string, unknown>) => ({
  id: expect.stringMatching(HEX_ID),
  type,
  createdAt: expect.stringMatching(ISO_MS),
  data,
});

describe('outbox rows', () => {
  it('writes nothing while the account has no webhook', async () => {
    const tenant = await createTenant(testApp.app);
    await createKey(tenant, { newCustomer: { name: 'Ada' } });
    await createKey(tenant);
    expect(await eventsOf(tenant)).toEqual([]);
  });

  it('writes only the types a webhook subscribed to, one delivery per webhook that wants it', async () => {
    const tenant = await createTenant(testApp.app);
    const both = await addWebhook(tenant, ['key.created', 'customer.created']);
    const keysOnly = await addWebhook(tenant, ['key.created']);
    await addWebhook(tenant, ['key.blocked']);
    const other = await createTenant(testApp.app);
    await addWebhook(other);

    const key = await createKey(tenant, { newCustomer: { name: 'Ada' } });
    await tenant.api.post('/key/unblock', { productId: tenant.productId, licenseKey: key });

    const events = (await eventsOf(tenant)).sort((a, b) => (a.body.type < b.body.type ? -1 : 1));
    expect(events.map(({ body }) => body.type)).toEqual(['customer.created', 'key.created']);
    const [customerEvent, keyEvent] = events;
    expect((await deliveriesOf(customerEvent!.row.id)).map((d) => d.webhookId)).toEqual([both]);
    expect((await deliveriesOf(keyEvent!.row.id)).map((d) => d.webhookId).sort()).toEqual([both, keysOnly].sort());
    expect(await eventsOf(other)).toEqual([]);
  });

  it('makes each delivery due at once, pending, unattempted, retried until 24 h after the event', async () => {
    const tenant = await createTenant(testApp.app);
    const webhookId = await addWebhook(tenant);
    await createKey(tenant);
    const [{ row }] = (await eventsOf(tenant)) as [{ row: typeof webhookEvents.$inferSelect; body: unknown }];
    const [delivery] = await deliveriesOf(row.id);
    expect(delivery).toMatchObject({ webhookId, status: 'pending', attempts: 0, lease: null, lastStatusCode: null });
    expect(delivery!.id).toMatch(HEX_ID);
    expect(delivery!.nextAttemptAt!.getTime()).toBe(row.createdAt.getTime());
    expect(delivery!.expiresAt.getTime() - row.createdAt.getTime()).toBe(24 * 60 * 60 * 1000);
  });

  it('stores the body exactly as it is sent: {id, type, createdAt, data} with the row id and time', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    await createKey(tenant);
    const [{ row, body }] = (await eventsOf(tenant)) as [{ row: typeof webhookEvents.$inferSelect; body: any }];
    expect(Object.keys(body)).toEqual(['id', 'type', 'createdAt', 'data']);
    expect(body.id).toBe(row.id);
    expect(body.createdAt).toBe(row.createdAt.toISOString());
    expect(row.payload).toBe(JSON.stringify(body));
    expect(Object.keys(body.data.license)).toEqual([
      'id',
      'key',
      'productId',
      'customerId',
      'maxActivations',
      'activations',
      'activated',
      'expirationDate',
      'metadata',
      'allowedHosts',
      'licenseType',
      'blocked',
    ]);
  });
});

describe('key events', () => {
  it('key.created for one key (the one-statement path), with the settings it was created with', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const feed = eventFeed(tenant);
    const key = await createKey(tenant, {
      maxActivations: 3,
      expiryDate: '2031-01-02',
      metadata: { plan: 'pro' },
      allowedHosts: ['a', 'b'],
    });
    const { license } = await getLicense(tenant, key);
    expect(await feed()).toEqual([
      event('key.created', {
        license: licensePayload(tenant, key, {
          id: license.id,
          maxActivations: 3,
          expirationDate: '2031-01-02T00:00:00.000Z',
          metadata: { plan: 'pro' },
          allowedHosts: ['a', 'b'],
        }),
      }),
    ]);
  });

  it('key.created for a key of an existing customer, and for a floating key', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const customer = await tenant.api.post('/customer', { name: 'Ada' });
    const feed = eventFeed(tenant);
    await feed();
    const key = await createKey(tenant, { customerId: customer.body.id });
    const floating = await createKey(tenant, { licenseType: 'floating', maxConcurrentSessions: 2 });
    expect(await feed()).toEqual([
      event('key.created', { license: licensePayload(tenant, key, { customerId: customer.body.id }) }),
      event('key.created', { license: licensePayload(tenant, floating, { licenseType: 'floating' }) }),
    ]);
  });

  it('customer.created then one key.created per key when a request makes a customer and several keys', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const feed = eventFeed(tenant);
    const email = uniqueEmail();
    const created = await tenant.api.post('/key', {
      productId: tenant.productId,
      amountKeys: 3,
      newCustomer: { name: 'Ada', email },
    });
    expect(created.status).toBe(200);
    const events = byType(await feed());
    expect(events.map((e) => e.type)).toEqual(['customer.created', 'key.created', 'key.created', 'key.created']);
    const customerId = events[0].data.customer.id;
    expect(events[0]).toEqual(
      event('customer.created', { customer: fullCustomerView(tenant, { name: 'Ada', email, id: customerId }) }),
    );
    expect(events.slice(1).map((e) => e.data.license.key)).toEqual(expect.arrayContaining(created.body.keys));
    for (const e of events.slice(1)) expect(e.data.license.customerId).toBe(customerId);
    // One request: one createdAt for all its events.
    expect(new Set(events.map((e) => e.createdAt)).size).toBe(1);
  });

  it('key.activated with the device, only when a device is recorded', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const key = await createKey(tenant, { maxActivations: 2 });
    const feed = eventFeed(tenant);
    await feed();
    expect((await activate(tenant, key, { hostId: 'host-1', deviceTag: 'Build server' })).status).toBe(200);
    expect((await activate(tenant, key, { hostId: 'host-1' })).status).toBe(200); // already active: no event
    const events = await feed();
    expect(events).toEqual([
      event('key.activated', {
        license: licensePayload(tenant, key, { maxActivations: 2, activations: 1 }),
        device: {
          hostId: 'host-1',
          deviceTag: 'Build server',
          ipAddress: '127.0.0.1',
          activationTime: expect.stringMatching(ISO_MS),
        },
      }),
    ]);
  });

  it('key.activated and customer.created when activation makes the licensee', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const key = await createKey(tenant);
    const feed = eventFeed(tenant);
    await feed();
    const email = uniqueEmail();
    expect((await activate(tenant, key, { hostId: 'h', licensee: { name: 'Lee', email } })).status).toBe(200);
    const events = byType(await feed());
    expect(events.map((e) => e.type)).toEqual(['customer.created', 'key.activated']);
    // The key's payload shows the licensee assigned by the same request.
    expect(events[1].data.license.customerId).toBe(events[0].data.customer.id);
  });

  it('key.deactivated with the hosts removed, and the activations left', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const key = await createKey(tenant);
    for (const hostId of ['h1', 'h2', 'h3']) await activate(tenant, key, { hostId });
    const lookup = { productId: tenant.productId, licenseKey: key };
    const events = await eventsAfterEach(tenant, [
      () => tenant.api.post('/key/deactivate', { ...lookup, hostId: 'h2' }),
      () => tenant.api.post('/key/deactivate', lookup),
    ]);
    expect(events).toEqual([
      event('key.deactivated', { license: licensePayload(tenant, key, { activations: 2 }), hostIds: ['h2'] }),
      event('key.deactivated', {
        license: licensePayload(tenant, key, { activations: 0 }),
        hostIds: expect.arrayContaining(['h1', 'h3']),
      }),
    ]);
  });

  it('key.blocked and key.unblocked on a change only; key.updated when PATCH changed something', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const key = await createKey(tenant);
    const lookup = { productId: tenant.productId, licenseKey: key };
    const events = await eventsAfterEach(tenant, [
      () => tenant.api.post('/key/block', lookup),
      () => tenant.api.post('/key/block', lookup),
      () => tenant.api.post('/key/unblock', lookup),
      () => tenant.api.send('PATCH', '/key', { ...lookup, metadata: { seats: 5 } }),
      () => tenant.api.send('PATCH', '/key', { ...lookup, metadata: { seats: 5 } }),
    ]);
    expect(events).toEqual([
      event('key.blocked', { license: licensePayload(tenant, key, { blocked: true, activated: false }) }),
      event('key.unblocked', { license: licensePayload(tenant, key) }),
      event('key.updated', { license: licensePayload(tenant, key, { metadata: { seats: 5 } }) }),
    ]);
  });

  it('the legacy (v1) paths raise the same events', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    let key = '';
    const events = await eventsAfterEach(tenant, [
      async () => {
        key = (await tenant.api.post('/create-key', { productId: tenant.productId })).body.key;
      },
      () => activate(tenant, key, { hostId: 'h' }, '/activate-key'),
      () => tenant.api.post('/block-key', { productId: tenant.productId, licenseKey: key }),
    ]);
    expect(events.map((e) => e.type)).toEqual(['key.created', 'key.activated', 'key.blocked']);
  });
});

describe('customer events', () => {
  it('customer.created, customer.updated, customer.disabled, customer.enabled, customer.deleted', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const email = uniqueEmail();
    let customerId = '';
    let key = '';
    const events = await eventsAfterEach(tenant, [
      async () => {
        customerId = (await tenant.api.post('/customer', { name: 'Ada', email })).body.id;
      },
      () => tenant.api.send('PUT', '/customer/by-id', { customerId, name: 'Ada Park' }),
      () => tenant.api.post(`/customer/disable?customerId=${customerId}`, {}),
      () => tenant.api.post(`/customer/disable?customerId=${customerId}`, {}),
      async () => {
        key = await createKey(tenant, { customerId });
      },
    ]);
    const { license } = await getLicense(tenant, key);
    events.push(
      ...(await eventsAfterEach(tenant, [() => tenant.api.send('DELETE', `/customer/by-id?customerId=${customerId}`)])),
    );

    const named = (name: string, active = true) => fullCustomerView(tenant, { id: customerId, name, email, active });
    expect(events).toEqual([
      event('customer.created', { customer: named('Ada') }),
      event('customer.updated', { customer: named('Ada Park') }),
      event('customer.disabled', { customer: named('Ada Park', false) }),
      event('customer.enabled', { customer: named('Ada Park') }),
      event('key.created', { license: licensePayload(tenant, key, { customerId }) }),
      event('customer.deleted', { customer: named('Ada Park'), deletedKeyIds: [license.id] }),
    ]);
  });

  it('an update that flips active raises customer.updated and customer.disabled; no change, no event', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const created = await tenant.api.post('/customer', { name: 'Ada' });
    const customerId = created.body.id as string;
    const events = await eventsAfterEach(tenant, [
      () => tenant.api.send('PUT', '/customer/by-id', { customerId, active: false }),
      () => tenant.api.send('PUT', '/customer/by-id', { customerId }),
    ]);
    expect(byType(events).map((e) => e.type)).toEqual(['customer.disabled', 'customer.updated']);
  });
});

describe('a refused or rolled-back request emits nothing', () => {
  it('create-key whose new customer clashes (409), after the customer insert was attempted', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const email = uniqueEmail();
    await tenant.api.post('/customer', { name: 'Ada', email });
    const feed = eventFeed(tenant);
    await feed();
    const clash = await tenant.api.post('/key', { productId: tenant.productId, newCustomer: { name: 'B', email } });
    expect(clash.status).toBe(409);
    expect(await feed()).toEqual([]);
  });

  it('a format that cannot yield the keys asked for rolls back the keys already inserted', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const feed = eventFeed(tenant);
    // 2 chars, 1 section of length 1: two keys at most.
    const body = { productId: tenant.productId, format: { sections: 1, sectionLength: 1, charset: 'AB' } };
    expect((await tenant.api.post('/key', { ...body, amountKeys: 2 })).status).toBe(200);
    await feed();
    const refused = await tenant.api.post('/key', { ...body, newCustomer: { name: 'Ada' } });
    expectError(refused, { status: 400, body: { message: 'Invalid format', code: 1 } });
    expect(await feed()).toEqual([]);
  });

  it('an activation refused at the limit', async () => {
    const tenant = await createTenant(testApp.app);
    await addWebhook(tenant);
    const key = await createKey(tenant, { maxActivations: 1 });
    await activate(tenant, key, { hostId: 'a' });
    const feed = eventFeed(tenant);
    await feed();
    expect((await activate(tenant, key, { hostId: 'b', licensee: { name: 'L', email: uniqueEmail() } })).status).toBe(
      403,
    );
    expect(await feed()).toEqual([]);
  });
});
