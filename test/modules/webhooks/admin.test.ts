import { and, count, eq, lte, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accounts,
  type DeliveryStatus,
  webhookDeliveries,
  webhookEvents,
  webhooks,
} from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { ADMIN_TOKEN, createTestApp, type TestApp, useTestApp } from '../../helpers/app.js';
import { admin, client, createTenant, ERRORS, expectError, HEX_ID, ISO_MS } from '../../helpers/fixtures.js';
import { ALL_EVENTS } from './helpers.js';

const t = useTestApp();
const api = () => admin(t.app);

const SECRET = /^whsec_[A-Za-z0-9_-]{43}$/;
/** A public address (TEST-NET-3) as an IP literal: accepted without any DNS lookup. */
const PUBLIC_URL = 'https://203.0.113.7/hooks/keymint';
const PRIVATE_URLS = [
  'http://127.0.0.1/x',
  'http://localhost/x',
  'http://10.1.2.3/x',
  'http://[::1]/x',
  'http://169.254.169.254/',
];
const UNKNOWN = 'f'.repeat(22);

async function newAccount() {
  const response = await api().post('/admin/accounts', { name: 'Webhooks' });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

async function newWebhook(accountId: string, body: Record<string, unknown> = {}) {
  const response = await api().post('/admin/webhooks', { url: PUBLIC_URL, accountId, ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body as { id: string; url: string; events: string[]; secret: string };
}

async function defaultAccountId() {
  const [row] = await t.database.db.select({ id: accounts.id }).from(accounts).where(eq(accounts.isDefault, true));
  return row!.id;
}

async function webhookCount(accountId: string) {
  const [row] = await t.database.db.select({ n: count() }).from(webhooks).where(eq(webhooks.accountId, accountId));
  return row!.n;
}

async function insertEvent(accountId: string, type = 'key.created') {
  const id = newId();
  await t.database.db
    .insert(webhookEvents)
    .values({ id, accountId, type, payload: '{}', createdAt: new Date('2025-11-05T10:00:00.000Z') });
  return id;
}

interface DeliveryFields {
  status?: DeliveryStatus;
  attempts?: number;
  nextAttemptAt?: Date | null;
  expiresAt?: Date;
  lease?: string | null;
  lastStatusCode?: number | null;
  lastError?: string | null;
  lastAttemptAt?: Date | null;
  deliveredAt?: Date | null;
  createdAt: Date;
}

async function insertDelivery(webhookId: string, eventId: string, fields: DeliveryFields) {
  const id = newId();
  await t.database.db.insert(webhookDeliveries).values({
    id,
    eventId,
    webhookId,
    nextAttemptAt: fields.createdAt,
    expiresAt: new Date(fields.createdAt.getTime() + 24 * 3_600_000),
    ...fields,
  });
  return id;
}

async function deliveryRow(id: string) {
  const [row] = await t.database.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id));
  return row;
}

/** The worker's claim condition: pending and due by the database's clock. */
async function isDue(id: string) {
  const rows = await t.database.db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.id, id),
        eq(webhookDeliveries.status, 'pending'),
        lte(webhookDeliveries.nextAttemptAt, sql`now()`),
      ),
    );
  return rows.length === 1;
}

describe('POST /admin/webhooks', () => {
  it('answers 201 {code, id, url, events, secret} with every event type by default; stores the secret', async () => {
    const accountId = await newAccount();
    const response = await api().post('/admin/webhooks', { url: PUBLIC_URL, accountId });
    expect(response.status).toBe(201);
    expect(response.body).toEqual({
      code: 0,
      id: expect.stringMatching(HEX_ID),
      url: PUBLIC_URL,
      events: ALL_EVENTS,
      secret: expect.stringMatching(SECRET),
    });
    const [row] = await t.database.db.select().from(webhooks).where(eq(webhooks.id, response.body.id));
    expect(row).toEqual({
      id: response.body.id,
      accountId,
      url: PUBLIC_URL,
      events: ALL_EVENTS,
      secret: response.body.secret,
      createdAt: expect.any(Date),
    });
  });

  it('stores chosen events once each, in the contract order', async () => {
    const accountId = await newAccount();
    const chosen = await newWebhook(accountId, {
      events: ['customer.deleted', 'key.created', 'customer.deleted', 'key.activated'],
    });
    expect(chosen.events).toEqual(['key.created', 'key.activated', 'customer.deleted']);
    const [row] = await t.database.db.select().from(webhooks).where(eq(webhooks.id, chosen.id));
    expect(row!.events).toEqual(['key.created', 'key.activated', 'customer.deleted']);
    expect((await newWebhook(accountId, { events: ['customer.enabled'] })).events).toEqual(['customer.enabled']);
    expect((await newWebhook(accountId, { events: null })).events).toEqual(ALL_EVENTS);
    expect((await newWebhook(accountId, { events: ALL_EVENTS })).events).toEqual(ALL_EVENTS);
  });

  it('each webhook gets its own secret', async () => {
    const accountId = await newAccount();
    const first = await newWebhook(accountId);
    const second = await newWebhook(accountId);
    expect(first.secret).not.toBe(second.secret);
    expect(first.id).not.toBe(second.id);
  });

  it('accountId omitted = the default account', async () => {
    const response = await api().post('/admin/webhooks', { url: PUBLIC_URL });
    expect(response.status).toBe(201);
    const [row] = await t.database.db.select().from(webhooks).where(eq(webhooks.id, response.body.id));
    expect(row!.accountId).toBe(await defaultAccountId());
    const listed = await api().get('/admin/webhooks');
    expect(listed.body.data.map((webhook: { id: string }) => webhook.id)).toContain(response.body.id);
  });

  it('accepts a URL of exactly 2048 chars, with a query, a port or credentials', async () => {
    const accountId = await newAccount();
    const base = 'https://203.0.113.7/';
    for (const url of [
      base + 'a'.repeat(2048 - base.length),
      'http://203.0.113.7:8080/hook?source=keymint#x',
      'HTTPS://user:pass@203.0.113.7/',
    ]) {
      const response = await api().post('/admin/webhooks', { url, accountId });
      expect({ url, status: response.status, stored: response.body.url }).toEqual({ url, status: 201, stored: url });
    }
  });

  it('url missing, null or "" is Missing required params (also on a bodiless request)', async () => {
    const accountId = await newAccount();
    for (const body of [{ accountId }, { url: null, accountId }, { url: '', accountId }, { events: ['bogus'] }]) {
      expectError(await api().post('/admin/webhooks', body), ERRORS.missingParams);
    }
    const bodiless = await t.app.inject({
      method: 'POST',
      url: '/admin/webhooks',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    });
    expect({ status: bodiless.statusCode, body: bodiless.json() }).toEqual(ERRORS.missingParams);
    expect(await webhookCount(accountId)).toBe(0);
  });

  it('answers 400/1 Invalid url for anything but an absolute http(s) URL of at most 2048 chars', async () => {
    const accountId = await newAccount();
    const base = 'https://203.0.113.7/';
    for (const url of [
      5,
      true,
      ['https://203.0.113.7/'],
      { href: 'https://203.0.113.7/' },
      '/hooks/keymint',
      'hooks/keymint',
      '//203.0.113.7/x',
      'ftp://203.0.113.7/x',
      'ws://203.0.113.7/x',
      'mailto:ops@example.com',
      'javascript:alert(1)',
      'file:///etc/passwd',
      'https://',
      'https:203.0.113.7/x',
      'https:\\\\203.0.113.7\\x',
      ' https://203.0.113.7/x',
      'https://203.0.113.7/x ',
      'https://203.0.113.7/a b',
      'https://203.0.113.7/\tx',
      'https://203.0.113.7/\u0000',
      'https://203.0.113.7/\ud800',
      base + 'a'.repeat(2049 - base.length),
      'x'.repeat(5000),
    ]) {
      const response = await api().post('/admin/webhooks', { url, accountId });
      expect({ url, status: response.status, body: response.body }).toEqual({
        url,
        status: 400,
        body: { message: 'Invalid url', code: 1 },
      });
    }
    expect(await webhookCount(accountId)).toBe(0);
  });

  it('refuses loopback, private and link-local hosts: 400/1 Invalid url', async () => {
    const accountId = await newAccount();
    for (const url of [
      ...PRIVATE_URLS,
      'http://0.0.0.0/x',
      'http://192.168.1.10/x',
      'https://172.16.5.4/x',
      'http://[fe80::1]/x',
      'http://[fd00::1]/x',
      'http://[::ffff:127.0.0.1]/x',
      'http://127.1/x',
      'http://2130706433/x',
      'http://LOCALHOST:3000/x',
    ]) {
      const response = await api().post('/admin/webhooks', { url, accountId });
      expect({ url, status: response.status, body: response.body }).toEqual({
        url,
        status: 400,
        body: { message: 'Invalid url', code: 1 },
      });
    }
    expect(await webhookCount(accountId)).toBe(0);
  });

  it('answers 400/1 Invalid events for an empty, unknown or non-array value', async () => {
    const accountId = await newAccount();
    for (const events of [
      [],
      ['bogus'],
      ['key.created', 'KEY.CREATED'],
      ['key.created', 'key.*'],
      ['license.created'],
      'key.created',
      [1],
      [null],
      [['key.created']],
      {},
      5,
      Array(ALL_EVENTS.length + 1).fill('key.created'),
    ]) {
      const response = await api().post('/admin/webhooks', { url: PUBLIC_URL, accountId, events });
      expect({ events, status: response.status, body: response.body }).toEqual({
        events,
        status: 400,
        body: { message: 'Invalid events', code: 1 },
      });
    }
    expect(await webhookCount(accountId)).toBe(0);
  });

  it('accountId: a string of 1–256 chars; an unknown one is 404/1 Account not found', async () => {
    for (const accountId of [5, ['x'], 'a'.repeat(257), {}]) {
      expectError(await api().post('/admin/webhooks', { url: PUBLIC_URL, accountId }), 400, 1, 'Invalid accountId');
    }
    expectError(
      await api().post('/admin/webhooks', { url: PUBLIC_URL, accountId: UNKNOWN }),
      404,
      1,
      'Account not found',
    );
  });

  it('reports the first invalid field in table order (url, events, accountId), before the account lookup', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ url: 'ftp://203.0.113.7/', events: ['bogus'], accountId: 5 }, 'Invalid url'],
      [{ url: 'http://127.0.0.1/x', events: ['bogus'], accountId: 5 }, 'Invalid url'],
      [{ url: 'http://127.0.0.1/x', accountId: UNKNOWN }, 'Invalid url'],
      [{ url: PUBLIC_URL, events: ['bogus'], accountId: 5 }, 'Invalid events'],
      [{ url: PUBLIC_URL, events: [], accountId: UNKNOWN }, 'Invalid events'],
      [{ url: PUBLIC_URL, accountId: 5 }, 'Invalid accountId'],
    ];
    for (const [body, message] of cases) {
      const response = await api().post('/admin/webhooks', body);
      expect({ body, status: response.status, answer: response.body }).toEqual({
        body,
        status: 400,
        answer: { message, code: 1 },
      });
    }
  });

  it('follows the body rules of the public API', async () => {
    expectError(await api().post('/admin/webhooks', '{"url":'), ERRORS.invalidJson);
    expectError(await api().post('/admin/webhooks', '["https://203.0.113.7/"]'), ERRORS.invalidJson);
    expectError(
      await api().post('/admin/webhooks', `url=${PUBLIC_URL}`, { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      1,
      'Content-Type must be application/json',
    );
  });
});

describe('POST /admin/webhooks with WEBHOOKS_ALLOW_PRIVATE=true', () => {
  const open = useTestApp({ WEBHOOKS_ALLOW_PRIVATE: 'true' });

  it('accepts loopback, private and link-local hosts', async () => {
    for (const url of PRIVATE_URLS) {
      const response = await admin(open.app).post('/admin/webhooks', { url, events: ['key.created'] });
      expect({ url, status: response.status, body: response.body }).toEqual({
        url,
        status: 201,
        body: {
          code: 0,
          id: expect.stringMatching(HEX_ID),
          url,
          events: ['key.created'],
          secret: expect.stringMatching(SECRET),
        },
      });
    }
  });

  it('still refuses what is not an absolute http(s) URL', async () => {
    for (const url of ['ftp://127.0.0.1/x', '/x', 'http://', `http://127.0.0.1/${'a'.repeat(2048)}`]) {
      expectError(await admin(open.app).post('/admin/webhooks', { url }), 400, 1, 'Invalid url');
    }
  });
});

describe('GET /admin/webhooks', () => {
  it("lists an account's webhooks in creation order, never their secrets", async () => {
    const accountId = await newAccount();
    const first = await newWebhook(accountId, { events: ['key.created'] });
    const second = await newWebhook(accountId, { url: 'http://203.0.113.8/second' });
    const [firstRow, secondRow] = await Promise.all(
      [first, second].map(
        async ({ id }) => (await t.database.db.select().from(webhooks).where(eq(webhooks.id, id)))[0]!,
      ),
    );
    const response = await api().get('/admin/webhooks', { accountId });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: [
        {
          id: first.id,
          url: PUBLIC_URL,
          events: ['key.created'],
          accountId,
          createdAt: firstRow!.createdAt.toISOString(),
        },
        {
          id: second.id,
          url: 'http://203.0.113.8/second',
          events: ALL_EVENTS,
          accountId,
          createdAt: secondRow!.createdAt.toISOString(),
        },
      ],
    });
    expect(response.body.data[0].createdAt).toMatch(ISO_MS);
    expect(response.raw.body).not.toContain(first.secret);
    expect(response.raw.body).not.toContain(second.secret);
    expect(response.raw.body).not.toContain('whsec_');
  });

  it("shows only the given account's webhooks; unknown account is 404", async () => {
    const mine = await newAccount();
    const other = await newAccount();
    const own = await newWebhook(mine);
    await newWebhook(other);
    const listed = await api().get('/admin/webhooks', { accountId: mine });
    expect(listed.body.data.map((webhook: { id: string }) => webhook.id)).toEqual([own.id]);
    expect((await api().get('/admin/webhooks', { accountId: await newAccount() })).body).toEqual({ code: 0, data: [] });
    expectError(await api().get('/admin/webhooks', { accountId: UNKNOWN }), 404, 1, 'Account not found');
    expectError(await api().get('/admin/webhooks', { accountId: 'a'.repeat(257) }), 400, 1, 'Invalid accountId');
  });

  it('orders webhooks created in the same millisecond by id', async () => {
    const accountId = await newAccount();
    const createdAt = new Date('2025-11-04T09:12:44.518Z');
    const ids = [newId(), newId(), newId()];
    await t.database.db
      .insert(webhooks)
      .values(
        ids.map((id) => ({ id, accountId, url: PUBLIC_URL, events: ['key.created'], secret: 'whsec_x', createdAt })),
      );
    const response = await api().get('/admin/webhooks', { accountId });
    expect(response.body.data.map((webhook: { id: string }) => webhook.id)).toEqual([...ids].sort());
    expect(response.body.data[0].createdAt).toBe('2025-11-04T09:12:44.518Z');
  });
});

describe('DELETE /admin/webhooks/:id', () => {
  it('deletes the webhook and its deliveries; afterwards it is 404 Webhook not found', async () => {
    const accountId = await newAccount();
    const doomed = await newWebhook(accountId);
    const kept = await newWebhook(accountId);
    const eventId = await insertEvent(accountId);
    const createdAt = new Date('2025-11-05T10:00:00.000Z');
    await insertDelivery(doomed.id, eventId, { createdAt });
    await insertDelivery(doomed.id, eventId, { createdAt, status: 'failed', nextAttemptAt: null });
    const keptDelivery = await insertDelivery(kept.id, eventId, { createdAt });

    const response = await api().send('DELETE', `/admin/webhooks/${doomed.id}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ code: 0, message: 'Webhook deleted' });

    const listed = await api().get('/admin/webhooks', { accountId });
    expect(listed.body.data.map((webhook: { id: string }) => webhook.id)).toEqual([kept.id]);
    const left = await t.database.db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.eventId, eventId));
    expect(left).toEqual([{ id: keptDelivery }]);

    expectError(await api().send('DELETE', `/admin/webhooks/${doomed.id}`), 404, 1, 'Webhook not found');
    expectError(await api().get(`/admin/webhooks/${doomed.id}/deliveries`), 404, 1, 'Webhook not found');
  });

  it('an unknown id is 404/1 Webhook not found', async () => {
    for (const id of [UNKNOWN, 'unknown', 'a'.repeat(256)]) {
      expectError(await api().send('DELETE', `/admin/webhooks/${id}`), 404, 1, 'Webhook not found');
    }
  });
});

describe('GET /admin/webhooks/:id/deliveries', () => {
  /** A webhook with `n` deliveries created one second apart; ids newest first. */
  async function webhookWithDeliveries(n: number) {
    const accountId = await newAccount();
    const webhook = await newWebhook(accountId);
    const eventId = await insertEvent(accountId);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.unshift(await insertDelivery(webhook.id, eventId, { createdAt: new Date(Date.UTC(2025, 10, 5, 10, 0, i)) }));
    }
    return { accountId, webhook, eventId, ids };
  }

  const page = (id: string, query: Record<string, string> = {}) => api().get(`/admin/webhooks/${id}/deliveries`, query);

  it('answers each delivery with its event, state and ISO timestamps', async () => {
    const accountId = await newAccount();
    const webhook = await newWebhook(accountId);
    const created = await insertEvent(accountId, 'key.created');
    const deleted = await insertEvent(accountId, 'customer.deleted');
    const pending = await insertDelivery(webhook.id, created, {
      createdAt: new Date('2025-11-05T10:00:00.120Z'),
      nextAttemptAt: new Date('2025-11-05T10:00:30.120Z'),
      attempts: 1,
      lastStatusCode: 503,
      lastError: 'HTTP 503',
    });
    const delivered = await insertDelivery(webhook.id, deleted, {
      createdAt: new Date('2025-11-05T10:00:01.000Z'),
      status: 'delivered',
      attempts: 1,
      nextAttemptAt: null,
      lastStatusCode: 204,
      deliveredAt: new Date('2025-11-05T10:00:01.250Z'),
    });
    const failed = await insertDelivery(webhook.id, created, {
      createdAt: new Date('2025-11-05T10:00:02.000Z'),
      status: 'failed',
      attempts: 14,
      nextAttemptAt: null,
      lastError: 'connect ECONNREFUSED',
    });
    const response = await page(webhook.id);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 0,
      data: [
        {
          id: failed,
          eventId: created,
          eventType: 'key.created',
          status: 'failed',
          attempts: 14,
          lastStatusCode: null,
          lastError: 'connect ECONNREFUSED',
          nextAttemptAt: null,
          createdAt: '2025-11-05T10:00:02.000Z',
          deliveredAt: null,
        },
        {
          id: delivered,
          eventId: deleted,
          eventType: 'customer.deleted',
          status: 'delivered',
          attempts: 1,
          lastStatusCode: 204,
          lastError: null,
          nextAttemptAt: null,
          createdAt: '2025-11-05T10:00:01.000Z',
          deliveredAt: '2025-11-05T10:00:01.250Z',
        },
        {
          id: pending,
          eventId: created,
          eventType: 'key.created',
          status: 'pending',
          attempts: 1,
          lastStatusCode: 503,
          lastError: 'HTTP 503',
          nextAttemptAt: '2025-11-05T10:00:30.120Z',
          createdAt: '2025-11-05T10:00:00.120Z',
          deliveredAt: null,
        },
      ],
      meta: { total: 3, page: 1, limit: 10, totalPages: 1 },
    });
  });

  it('pages newest first: page 1 and limit 10 by default, a page past the end is empty', async () => {
    const { webhook, ids } = await webhookWithDeliveries(12);
    const first = await page(webhook.id);
    expect(first.body.data.map((d: { id: string }) => d.id)).toEqual(ids.slice(0, 10));
    expect(first.body.meta).toEqual({ total: 12, page: 1, limit: 10, totalPages: 2 });
    const second = await page(webhook.id, { page: '2' });
    expect(second.body.data.map((d: { id: string }) => d.id)).toEqual(ids.slice(10));
    expect(second.body.meta).toEqual({ total: 12, page: 2, limit: 10, totalPages: 2 });
    const fives = await page(webhook.id, { page: '3', limit: '5' });
    expect(fives.body.data.map((d: { id: string }) => d.id)).toEqual(ids.slice(10));
    expect(fives.body.meta).toEqual({ total: 12, page: 3, limit: 5, totalPages: 3 });
    const past = await page(webhook.id, { page: '4', limit: '5' });
    expect(past.body).toEqual({ code: 0, data: [], meta: { total: 12, page: 4, limit: 5, totalPages: 3 } });
    const far = await page(webhook.id, { page: '2147483647', limit: '100' });
    expect(far.status).toBe(200);
    expect(far.body.data).toEqual([]);
  });

  it('clamps a limit above 100 to 100', async () => {
    const { webhook, ids } = await webhookWithDeliveries(2);
    for (const limit of ['101', '100000000000000000000']) {
      const response = await page(webhook.id, { limit });
      expect(response.status).toBe(200);
      expect(response.body.data.map((d: { id: string }) => d.id)).toEqual(ids);
      expect(response.body.meta).toEqual({ total: 2, page: 1, limit: 100, totalPages: 1 });
    }
  });

  it('orders deliveries created in the same millisecond by id, descending', async () => {
    const accountId = await newAccount();
    const webhook = await newWebhook(accountId);
    const eventId = await insertEvent(accountId);
    const createdAt = new Date('2025-11-05T10:00:00.000Z');
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await insertDelivery(webhook.id, eventId, { createdAt }));
    const response = await page(webhook.id);
    expect(response.body.data.map((d: { id: string }) => d.id)).toEqual([...ids].sort().reverse());
  });

  it("lists only this webhook's deliveries; none is {data: [], totalPages: 0}", async () => {
    const { accountId, webhook, eventId, ids } = await webhookWithDeliveries(2);
    const other = await newWebhook(accountId);
    await insertDelivery(other.id, eventId, { createdAt: new Date() });
    expect((await page(webhook.id)).body.data.map((d: { id: string }) => d.id)).toEqual(ids);
    const empty = await newWebhook(accountId);
    expect((await page(empty.id)).body).toEqual({
      code: 0,
      data: [],
      meta: { total: 0, page: 1, limit: 10, totalPages: 0 },
    });
  });

  it.each([
    ['limit', '0'],
    ['limit', 'abc'],
    ['limit', '-1'],
    ['limit', '1.5'],
    ['limit', ' 5'],
    ['page', '0'],
    ['page', 'abc'],
    ['page', '-1'],
    ['page', '2.0'],
    ['page', '2147483648'],
  ])('answers 400/1 Invalid %s for %s', async (field, value) => {
    const accountId = await newAccount();
    const webhook = await newWebhook(accountId);
    expectError(await page(webhook.id, { [field]: value }), 400, 1, `Invalid ${field}`);
  });

  it('an unknown webhook is 404/1 Webhook not found', async () => {
    for (const id of [UNKNOWN, 'unknown']) {
      expectError(await page(id), 404, 1, 'Webhook not found');
    }
  });
});

describe('POST /admin/webhooks/:id/deliveries/:deliveryId/retry', () => {
  async function setup() {
    const accountId = await newAccount();
    const webhook = await newWebhook(accountId);
    const eventId = await insertEvent(accountId);
    return { accountId, webhook, eventId };
  }
  const retry = (webhookId: string, deliveryId: string) =>
    api().post(`/admin/webhooks/${webhookId}/deliveries/${deliveryId}/retry`);
  const longAgo = new Date('2025-11-05T10:00:00.000Z');

  it('makes a failed delivery pending and due now; attempts and the last result are kept', async () => {
    const { webhook, eventId } = await setup();
    const failed = await insertDelivery(webhook.id, eventId, {
      createdAt: longAgo,
      status: 'failed',
      attempts: 14,
      nextAttemptAt: null,
      lastStatusCode: 500,
      lastError: 'HTTP 500',
      lastAttemptAt: new Date('2025-11-06T10:00:00.000Z'),
    });
    const untouched = await insertDelivery(webhook.id, eventId, {
      createdAt: longAgo,
      status: 'failed',
      attempts: 14,
      nextAttemptAt: null,
    });
    expect(await isDue(failed)).toBe(false);
    const before = Date.now();

    const response = await retry(webhook.id, failed);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ code: 0, message: 'Delivery scheduled' });

    const row = await deliveryRow(failed);
    expect(row).toMatchObject({
      status: 'pending',
      attempts: 14,
      lease: null,
      lastStatusCode: 500,
      lastError: 'HTTP 500',
      deliveredAt: null,
      expiresAt: new Date(longAgo.getTime() + 24 * 3_600_000),
    });
    expect(row!.nextAttemptAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(row!.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await isDue(failed)).toBe(true);
    expect(await deliveryRow(untouched)).toMatchObject({ status: 'failed', nextAttemptAt: null });

    const listed = await api().get(`/admin/webhooks/${webhook.id}/deliveries`);
    const shown = listed.body.data.find((d: { id: string }) => d.id === failed);
    expect(shown).toMatchObject({ status: 'pending', attempts: 14, nextAttemptAt: row!.nextAttemptAt!.toISOString() });
  });

  it('reschedules a delivery a worker holds right now: the lease is cleared, it is due at once', async () => {
    const { webhook, eventId } = await setup();
    const held = await insertDelivery(webhook.id, eventId, {
      createdAt: new Date(),
      attempts: 2,
      lease: 'worker-lease-1',
      nextAttemptAt: new Date(Date.now() + 10 * 60_000),
    });
    expect(await isDue(held)).toBe(false);
    expect((await retry(webhook.id, held)).body).toEqual({ code: 0, message: 'Delivery scheduled' });
    expect(await deliveryRow(held)).toMatchObject({ status: 'pending', lease: null, attempts: 2 });
    expect(await isDue(held)).toBe(true);
  });

  it('a delivered delivery is sent again: pending, due, no longer delivered', async () => {
    const { webhook, eventId } = await setup();
    const delivered = await insertDelivery(webhook.id, eventId, {
      createdAt: longAgo,
      status: 'delivered',
      attempts: 1,
      nextAttemptAt: null,
      lastStatusCode: 200,
      deliveredAt: longAgo,
    });
    expect((await retry(webhook.id, delivered)).status).toBe(200);
    expect(await deliveryRow(delivered)).toMatchObject({ status: 'pending', deliveredAt: null, attempts: 1 });
    expect(await isDue(delivered)).toBe(true);
  });

  it('an unknown webhook is 404 Webhook not found; a delivery not of that webhook is 404 Delivery not found', async () => {
    const { accountId, webhook, eventId } = await setup();
    const other = await newWebhook(accountId);
    const othersDelivery = await insertDelivery(other.id, eventId, {
      createdAt: longAgo,
      status: 'failed',
      nextAttemptAt: null,
    });
    expectError(await retry(UNKNOWN, othersDelivery), 404, 1, 'Webhook not found');
    expectError(await retry(UNKNOWN, UNKNOWN), 404, 1, 'Webhook not found');
    expectError(await retry(webhook.id, othersDelivery), 404, 1, 'Delivery not found');
    expectError(await retry(webhook.id, UNKNOWN), 404, 1, 'Delivery not found');
    expectError(await retry(webhook.id, 'unknown'), 404, 1, 'Delivery not found');
    expect(await deliveryRow(othersDelivery)).toMatchObject({ status: 'failed', nextAttemptAt: null });
  });
});

describe('admin authentication', () => {
  const routes = (id: string): [string, string, Record<string, unknown> | undefined][] => [
    ['POST', '/admin/webhooks', { url: PUBLIC_URL }],
    ['GET', '/admin/webhooks', undefined],
    ['DELETE', `/admin/webhooks/${id}`, undefined],
    ['GET', `/admin/webhooks/${id}/deliveries`, undefined],
    ['POST', `/admin/webhooks/${id}/deliveries/${UNKNOWN}/retry`, undefined],
  ];

  it('answers 401/1 without the admin token, with a wrong one or with an access token', async () => {
    const tenant = await createTenant(t.app);
    const webhook = await newWebhook(tenant.accountId);
    for (const token of [undefined, `${ADMIN_TOKEN}x`, tenant.token]) {
      for (const [method, url, body] of routes(webhook.id)) {
        const response = await t.app.inject({
          method: method as 'GET',
          url,
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          payload: body === undefined ? undefined : JSON.stringify(body),
        });
        expect({ method, url, status: response.statusCode, body: response.json() }).toEqual({
          method,
          url,
          ...ERRORS.invalidToken,
        });
      }
    }
    expect(await webhookCount(tenant.accountId)).toBe(1);
  });

  describe('admin API disabled (no ADMIN_TOKEN)', () => {
    let disabled: TestApp;
    beforeAll(async () => {
      disabled = await createTestApp({ ADMIN_TOKEN: '' });
    });
    afterAll(async () => disabled.close());

    it('every webhook path answers 404/1 Not found, whatever the token', async () => {
      for (const token of [undefined, ADMIN_TOKEN]) {
        const anyone = client(disabled.app, token);
        for (const [method, url, body] of routes(UNKNOWN)) {
          const response =
            method === 'GET' ? await anyone.get(url) : await anyone.send(method as 'POST' | 'DELETE', url, body);
          expect({ method, url, status: response.status, body: response.body }).toEqual({
            method,
            url,
            ...ERRORS.notFound,
          });
        }
      }
    });
  });
});

describe('OpenAPI', () => {
  it('documents the webhook routes under the Webhooks tag with the admin scheme; the list has no secret', async () => {
    const document = (await client(t.app).get('/openapi.json')).body;
    const operations = [
      ['post', '/admin/webhooks'],
      ['get', '/admin/webhooks'],
      ['delete', '/admin/webhooks/{id}'],
      ['get', '/admin/webhooks/{id}/deliveries'],
      ['post', '/admin/webhooks/{id}/deliveries/{deliveryId}/retry'],
    ];
    for (const [method, path] of operations) {
      const operation = document.paths[path!]?.[method!];
      expect({ method, path, tags: operation?.tags, security: operation?.security }).toEqual({
        method,
        path,
        tags: ['Webhooks'],
        security: [{ adminToken: [] }],
      });
    }
    const created = document.paths['/admin/webhooks'].post.responses['201'].content['application/json'].schema;
    expect(Object.keys(created.properties)).toEqual(['code', 'id', 'url', 'events', 'secret']);
    const listed = document.paths['/admin/webhooks'].get.responses['200'].content['application/json'].schema;
    expect(Object.keys(listed.properties.data.items.properties)).toEqual([
      'id',
      'url',
      'events',
      'accountId',
      'createdAt',
    ]);
  });
});

describe('bad path and query values', () => {
  it('answer 400/1 with the envelope, never 5xx', async () => {
    const cases: [string, string, string][] = [
      ['DELETE', '/admin/webhooks/%00', 'Invalid id'],
      ['DELETE', `/admin/webhooks/${'a'.repeat(257)}`, 'Bad request'],
      ['GET', '/admin/webhooks/%00/deliveries', 'Invalid id'],
      ['GET', `/admin/webhooks/${UNKNOWN}/deliveries?page=1&page=2`, 'Invalid page'],
      ['GET', `/admin/webhooks/${UNKNOWN}/deliveries?limit=`, 'Invalid limit'],
      ['GET', '/admin/webhooks?accountId=%00', 'Invalid accountId'],
      ['POST', `/admin/webhooks/${UNKNOWN}/deliveries/%00/retry`, 'Invalid deliveryId'],
      ['POST', `/admin/webhooks/${UNKNOWN}/deliveries/%ED%A0%80/retry`, 'Bad request'],
    ];
    for (const [method, url, message] of cases) {
      const response = await t.app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect({ method, url, status: response.statusCode, body: response.json() }).toEqual({
        method,
        url,
        status: 400,
        body: { message, code: 1 },
      });
    }
  });
});
