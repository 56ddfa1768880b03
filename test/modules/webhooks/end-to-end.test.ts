import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookDeliveries, webhookEvents } from '../../../src/db/schema/index.js';
import { WEBHOOK_EVENT_TYPES } from '../../../src/lib/events.js';
import { useTestApp } from '../../helpers/app.js';
import {
  activate,
  admin,
  createKey,
  createTenant,
  HEX_ID,
  ISO_MS,
  type Tenant,
  uniqueEmail,
} from '../../helpers/fixtures.js';
import { type Receiver, startReceiver, verifySignature } from './helpers.js';

/**
 * Webhooks from the request to the receiver, in one server with its delivery worker: registered
 * through the admin API, raised by the public API, delivered to a real HTTP receiver on
 * 127.0.0.1 and checked with the SDKs' signature algorithm; the delivery log and manual retry
 * through the admin API. The outbox's payloads are tested field by field in outbox.test.ts.
 */

const testApp = useTestApp(
  { WEBHOOKS_WORKER: 'true', WEBHOOKS_ALLOW_PRIVATE: 'true', WEBHOOKS_RETRY_BASE_MS: '200' },
  { ownDatabase: true },
);
const WAIT = { timeout: 20_000, interval: 50 };

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => receiver?.close());

interface Hook {
  id: string;
  secret: string;
  path: string;
}

let paths = 0;
/** A webhook of the tenant's account to a path of its own on the receiver. */
async function register(tenant: Tenant, events?: string[]): Promise<Hook> {
  const path = `/hook-${++paths}`;
  const response = await admin(testApp.app).post('/admin/webhooks', {
    url: `${receiver.url}${path}`,
    accountId: tenant.accountId,
    ...(events ? { events } : {}),
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { id: response.body.id, secret: response.body.secret, path };
}

/** What arrived at a hook, parsed; each request's signature and headers checked on the way. */
function arrivals(hook: Hook) {
  return receiver.to(hook.path).map((request) => {
    const raw = request.body.toString('utf8');
    const body = JSON.parse(raw);
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['keymint-event-id']).toBe(body.id);
    expect(request.headers['keymint-event-type']).toBe(body.type);
    expect(verifySignature(hook.secret, String(request.headers['keymint-signature']), raw)).toBe(true);
    return { raw, body };
  });
}

const typesAt = (hook: Hook) => arrivals(hook).map(({ body }) => body.type);

/** Sends a change that raises exactly one key.created and waits until it has arrived: all that was sent before it has been claimed by then too. */
async function marker(tenant: Tenant, hook: Hook): Promise<string> {
  const key = await createKey(tenant);
  await expect.poll(() => arrivals(hook).some(({ body }) => body.data.license?.key === key), WAIT).toBe(true);
  return key;
}

describe('webhooks end to end', () => {
  it('every event type arrives, signed, with the body the outbox stored byte for byte', async () => {
    const tenant = await createTenant(testApp.app);
    const hook = await register(tenant);
    const lookup = (licenseKey: string) => ({ productId: tenant.productId, licenseKey });

    const email = uniqueEmail();
    const customer = await tenant.api.post('/customer', { name: 'Ada', email });
    const customerId = customer.body.id as string;
    await tenant.api.send('PUT', '/customer/by-id', { customerId, name: 'Ada Park' });
    await tenant.api.post(`/customer/disable?customerId=${customerId}`, {});
    await tenant.api.post(`/customer/disable?customerId=${customerId}`, {});
    const key = await createKey(tenant, { customerId });
    await activate(tenant, key, { hostId: 'host-1' });
    await tenant.api.post('/key/deactivate', { ...lookup(key), hostId: 'host-1' });
    await tenant.api.post('/key/block', lookup(key));
    await tenant.api.post('/key/unblock', lookup(key));
    await tenant.api.send('PATCH', '/key', { ...lookup(key), metadata: { seats: 2 } });
    await tenant.api.send('DELETE', `/customer/by-id?customerId=${customerId}`);

    await expect.poll(() => typesAt(hook).length, WAIT).toBe(WEBHOOK_EVENT_TYPES.length);
    expect([...typesAt(hook)].sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
    const stored = await testApp.database.db
      .select()
      .from(webhookEvents)
      .where(eq(webhookEvents.accountId, tenant.accountId));
    const payloads = new Map(stored.map((row) => [row.id, row.payload]));
    for (const { raw, body } of arrivals(hook)) {
      expect(raw).toBe(payloads.get(body.id));
      expect(body).toEqual({
        id: expect.stringMatching(HEX_ID),
        type: body.type,
        createdAt: expect.stringMatching(ISO_MS),
        data: expect.any(Object),
      });
    }
    const activated = arrivals(hook).find(({ body }) => body.type === 'key.activated')!.body;
    expect(activated.data).toMatchObject({
      license: { key, customerId, activations: 1 },
      device: { hostId: 'host-1', ipAddress: '127.0.0.1' },
    });
  });

  it('a webhook gets only the types it subscribed to; another account gets nothing', async () => {
    const tenant = await createTenant(testApp.app);
    const other = await createTenant(testApp.app);
    const keysOnly = await register(tenant, ['key.created']);
    const othersHook = await register(other);
    await tenant.api.post('/customer', { name: 'Ada' });
    await marker(tenant, keysOnly);
    await marker(other, othersHook);
    expect(typesAt(keysOnly)).toEqual(['key.created']);
    expect(typesAt(othersHook)).toEqual(['key.created']);
  });

  it('a refused or rolled-back request sends nothing', async () => {
    const tenant = await createTenant(testApp.app);
    const hook = await register(tenant);
    const email = uniqueEmail();
    await tenant.api.post('/customer', { name: 'Ada', email });
    await expect.poll(() => typesAt(hook), WAIT).toEqual(['customer.created']);
    // The new customer's insert fails on the email index after the request began: rolled back.
    const clash = await tenant.api.post('/key', { productId: tenant.productId, newCustomer: { name: 'B', email } });
    expect(clash.status).toBe(409);
    const full = await createKey(tenant, { maxActivations: 1 });
    await activate(tenant, full, { hostId: 'a' });
    expect((await activate(tenant, full, { hostId: 'b' })).status).toBe(403);
    await marker(tenant, hook);
    expect(typesAt(hook)).toEqual(['customer.created', 'key.created', 'key.activated', 'key.created']);
  });

  it('a replayed idempotent request sends no second webhook', async () => {
    const tenant = await createTenant(testApp.app);
    const hook = await register(tenant, ['key.created']);
    const headers = { 'idempotency-key': `e2e-${Date.now()}` };
    const body = { productId: tenant.productId };
    const first = await tenant.api.post('/key', body, headers);
    const replay = await tenant.api.post('/key', body, headers);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toEqual(first.body);
    await marker(tenant, hook);
    const created = arrivals(hook).map(({ body: event }) => event.data.license.key);
    expect(created.filter((key) => key === first.body.key)).toHaveLength(1);
    expect(created).toHaveLength(2);
  });

  it('500, 500, then 200: three attempts with growing delays, shown by the delivery log', async () => {
    const tenant = await createTenant(testApp.app);
    const hook = await register(tenant, ['customer.created']);
    receiver.answer(hook.path, (index) => (index < 2 ? { status: 500, body: 'busy' } : 200));
    await tenant.api.post('/customer', { name: 'Ada' });

    const log = () => admin(testApp.app).get(`/admin/webhooks/${hook.id}/deliveries`);
    await expect.poll(async () => (await log()).body.data[0]?.status, WAIT).toBe('delivered');
    const attempts = receiver.to(hook.path);
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((attempt) => attempt.headers['keymint-event-id'])).size).toBe(1);
    const gaps = [attempts[1]!.at - attempts[0]!.at, attempts[2]!.at - attempts[1]!.at];
    expect(gaps[0]).toBeGreaterThanOrEqual(150);
    expect(gaps[1]).toBeGreaterThan(gaps[0]!);
    // Each attempt is signed afresh (with its own t): all three verify.
    expect(arrivals(hook)).toHaveLength(3);

    const response = await log();
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: [
        {
          id: expect.stringMatching(HEX_ID),
          eventId: attempts[0]!.headers['keymint-event-id'],
          eventType: 'customer.created',
          status: 'delivered',
          attempts: 3,
          lastStatusCode: 200,
          lastError: null,
          nextAttemptAt: null,
          createdAt: expect.stringMatching(ISO_MS),
          deliveredAt: expect.stringMatching(ISO_MS),
        },
      ],
      meta: { total: 1, page: 1, limit: 10, totalPages: 1 },
    });

    // A manual retry sends the same event once more, now.
    const deliveryId = response.body.data[0].id;
    const retried = await admin(testApp.app).post(`/admin/webhooks/${hook.id}/deliveries/${deliveryId}/retry`, {});
    expect(retried.body).toEqual({ code: 0, message: 'Delivery scheduled' });
    await expect.poll(() => receiver.to(hook.path).length, WAIT).toBe(4);
    expect(receiver.to(hook.path)[3]!.headers['keymint-event-id']).toBe(attempts[0]!.headers['keymint-event-id']);
    await expect.poll(async () => (await log()).body.data[0].attempts, WAIT).toBe(4);
  });

  it('deleting a webhook drops its pending deliveries: nothing more is sent to it', async () => {
    const tenant = await createTenant(testApp.app);
    const hook = await register(tenant, ['key.created']);
    const kept = await register(tenant, ['key.created']);
    receiver.answer(hook.path, () => 503);
    await createKey(tenant);
    await expect.poll(() => receiver.to(hook.path).length, WAIT).toBe(1);
    expect((await admin(testApp.app).send('DELETE', `/admin/webhooks/${hook.id}`)).status).toBe(200);
    // The retry of the first attempt was dropped with the webhook.
    const left = await testApp.database.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.webhookId, hook.id));
    expect(left).toEqual([]);
    await marker(tenant, kept);
    expect(receiver.to(hook.path)).toHaveLength(1);
  });
});
