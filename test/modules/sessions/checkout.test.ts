import { and, count, eq, isNull } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { customers, floatingSessions, licenseKeys } from '../../../src/db/schema/index.js';
import { useTestApp } from '../../helpers/app.js';
import {
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  expectError,
  type Tenant,
} from '../../helpers/fixtures.js';
import {
  checkedOut,
  checkout,
  createFloatingKey,
  heartbeat,
  heartbeatOk,
  lapse,
  storedSession,
} from '../../helpers/floating.js';

const t = useTestApp();

const HEX22 = /^[0-9a-f]{22}$/;
const PAST = '2020-01-01T00:00:00Z';

const keyId = async (tenant: Tenant, key: string) => {
  const [row] = await t.database.db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
  return row!.id;
};

/** Every session row of the key, live or not. */
const sessionRows = async (tenant: Tenant, key: string) =>
  t.database.db
    .select()
    .from(floatingSessions)
    .where(eq(floatingSessions.licenseKeyId, await keyId(tenant, key)));

const openSessions = async (tenant: Tenant, key: string) => {
  const [row] = await t.database.db
    .select({ n: count() })
    .from(floatingSessions)
    .where(and(eq(floatingSessions.licenseKeyId, await keyId(tenant, key)), isNull(floatingSessions.checkedInAt)));
  return row!.n;
};

const customerOf = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  return response.body.data.customer.id as string;
};

const disableCustomer = (customerId: string) =>
  t.database.db.update(customers).set({ active: false }).where(eq(customers.id, customerId));

describe('POST /key/checkout — success', () => {
  it('answers the contract document (§3.1)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, {
      maxConcurrentSessions: 5,
      heartbeatInterval: 120,
      sessionLeaseDuration: 600,
      metadata: { plan: 'pro' },
      newCustomer: { name: 'Ada Park', email: 'ada@example.com' },
    });
    const before = Date.now();
    const response = await checkout(tenant, key, { hostId: 'host-7f3a' });
    expect(response.status).toBe(200);
    expect(Object.keys(response.body)).toEqual([
      'code',
      'message',
      'sessionId',
      'sessionSecret',
      'nextNonce',
      'expiresAt',
      'heartbeatInterval',
      'currentSessions',
      'maxSessions',
      'metadata',
      'licenseeName',
      'licenseeEmail',
    ]);
    expect(response.body).toEqual({
      code: 0,
      message: 'Session checked out',
      sessionId: expect.stringMatching(HEX22),
      sessionSecret: expect.stringMatching(/^[0-9a-f]{64}$/),
      nextNonce: expect.stringMatching(/^[0-9a-f]{32}$/),
      expiresAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      heartbeatInterval: 120,
      currentSessions: 1,
      maxSessions: 5,
      metadata: { plan: 'pro' },
      licenseeName: 'Ada Park',
      licenseeEmail: 'ada@example.com',
    });
    // expiresAt = now + sessionLeaseDuration (the database's clock; generous bounds for its skew).
    const lease = Date.parse(response.body.expiresAt) - before;
    expect(lease).toBeGreaterThan(600_000 - 5_000);
    expect(lease).toBeLessThan(600_000 + 5_000);
  });

  it('uses the key defaults: heartbeatInterval 300, a 900 s lease, unlimited seats (maxSessions null)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const before = Date.now();
    const { response } = await checkedOut(tenant, key);
    expect(response.body).toMatchObject({
      heartbeatInterval: 300,
      maxSessions: null,
      currentSessions: 1,
      metadata: null,
      licenseeName: null,
      licenseeEmail: null,
    });
    expect(Math.abs(Date.parse(response.body.expiresAt) - before - 900_000)).toBeLessThan(5_000);
  });

  it('currentSessions counts the live sessions of the key, the new one included', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 3 });
    const other = await createFloatingKey(tenant);
    await checkedOut(tenant, other, { hostId: 'elsewhere' });
    const counts = [];
    for (const hostId of ['a', 'b', 'c'])
      counts.push((await checkedOut(tenant, key, { hostId })).response.body.currentSessions);
    expect(counts).toEqual([1, 2, 3]);
  });

  it('records hostId, deviceTag and userIdentifier; "" counts as omitted', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const { session } = await checkedOut(tenant, key, {
      hostId: 'h1',
      deviceTag: 'Build server',
      userIdentifier: 'ada',
    });
    const { session: bare } = await checkedOut(tenant, key, { hostId: 'h2', deviceTag: '', userIdentifier: '' });
    expect(await storedSession(t.database.db, session.sessionId)).toMatchObject({
      hostId: 'h1',
      deviceTag: 'Build server',
      userIdentifier: 'ada',
      secret: session.sessionSecret,
      nonce: session.nonce,
      checkedInAt: null,
    });
    expect(await storedSession(t.database.db, bare.sessionId)).toMatchObject({
      hostId: 'h2',
      deviceTag: null,
      userIdentifier: null,
    });
  });

  it('ignores unknown fields, such as the apiKey and version the SDKs may send', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const response = await checkout(tenant, key, { apiKey: 'at_not-used', version: '1.2.3', versionId: 'v' });
    expect(response.status).toBe(200);
  });

  it('issues a fresh session ID, secret and nonce every time', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const sessions = [];
    for (let i = 0; i < 5; i++) sessions.push((await checkedOut(tenant, key, { hostId: `h${i}` })).session);
    for (const field of ['sessionId', 'sessionSecret', 'nonce'] as const) {
      expect(new Set(sessions.map((session) => session[field])).size).toBe(5);
    }
  });
});

describe('POST /key/checkout — checks in order (§3.1)', () => {
  it('1. an unknown key, or one of another product, account or an inactive product → 404/1', async () => {
    const tenant = await createTenant(t.app);
    const stranger = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    expectError(await checkout(tenant, 'NO-SUCH-KEY'), 404, 1, 'License key not found');
    expectError(await checkout(stranger, key), 404, 1, 'License key not found');
    const otherProduct = await createProduct(t.app, tenant.accountId);
    expectError(
      await tenant.api.post('/key/checkout', { productId: otherProduct, licenseKey: key, hostId: 'h' }),
      404,
      1,
      'License key not found',
    );
    const restricted = client(t.app, await createToken(t.app, tenant.accountId, { productIds: [otherProduct] }));
    expectError(
      await restricted.post('/key/checkout', { productId: tenant.productId, licenseKey: key, hostId: 'h' }),
      404,
      1,
      'License key not found',
    );
    const inactive = await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expect(inactive.status).toBe(200);
    expectError(await checkout(tenant, key), 404, 1, 'License key not found');
  });

  it('2. a node-locked key → 403/2 License is not a floating license (before blocked / expired)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: PAST });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key });
    expectError(await checkout(tenant, key), 403, 2, 'License is not a floating license');
  });

  it('3. blocked → 403/2 License key is blocked (before expired)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { expiryDate: PAST });
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    expectError(await checkout(tenant, key), 403, 2, 'License key is blocked');
  });

  it('4. expired → 403/2 License key has expired (before customer inactive)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { expiryDate: PAST, newCustomer: { name: 'Off' } });
    await disableCustomer(await customerOf(tenant, key));
    expectError(await checkout(tenant, key), 403, 2, 'License key has expired');
  });

  it('5. the key customer disabled → 403/2 Customer is inactive (before allowedHosts)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { allowedHosts: ['only-this'], newCustomer: { name: 'Off' } });
    await disableCustomer(await customerOf(tenant, key));
    expectError(await checkout(tenant, key, { hostId: 'another' }), 403, 2, 'Customer is inactive');
  });

  it('6. allowedHosts set and the hostId not in it → 403/2 Host not allowed for this license', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { allowedHosts: ['ws-1', 'ws-2'] });
    expectError(await checkout(tenant, key, { hostId: 'ws-3' }), 403, 2, 'Host not allowed for this license');
    expect((await checkout(tenant, key, { hostId: 'ws-2' })).status).toBe(200);
  });

  it('7. a live session of the same hostId is ended and replaced, taking no extra seat', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 2 });
    const { session: first } = await checkedOut(tenant, key, { hostId: 'same' });
    await checkedOut(tenant, key, { hostId: 'other' });
    const { session: second, response } = await checkedOut(tenant, key, { hostId: 'same' });
    expect(response.body.currentSessions).toBe(2);
    expect(second.sessionId).not.toBe(first.sessionId);
    // The first session is over: its heartbeat finds no session; the replacement goes on.
    expectError(await heartbeat(tenant, key, first), 404, 1, 'Session not found');
    await heartbeatOk(tenant, key, second);
    expect((await storedSession(t.database.db, first.sessionId))!.checkedInAt).toBeInstanceOf(Date);
    expect(await openSessions(tenant, key)).toBe(2);
    expectError(await checkout(tenant, key, { hostId: 'third' }), 403, 2, 'No floating seats available');
  });

  it('8. live sessions ≥ maxConcurrentSessions → 403/2 No floating seats available, nothing written', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 2 });
    await checkedOut(tenant, key, { hostId: 'a' });
    await checkedOut(tenant, key, { hostId: 'b' });
    const before = await sessionRows(tenant, key);
    expectError(await checkout(tenant, key, { hostId: 'c' }), 403, 2, 'No floating seats available');
    expect(await sessionRows(tenant, key)).toEqual(before);
  });

  it('8. a refused replacement changes nothing: the host keeps its session (the limit was lowered)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 3 });
    const { session } = await checkedOut(tenant, key, { hostId: 'a' });
    await checkedOut(tenant, key, { hostId: 'b' });
    await checkedOut(tenant, key, { hostId: 'c' });
    const lowered = await tenant.api.send('PATCH', '/key', {
      productId: tenant.productId,
      licenseKey: key,
      maxConcurrentSessions: 1,
    });
    expect(lowered.status).toBe(200);
    expectError(await checkout(tenant, key, { hostId: 'a' }), 403, 2, 'No floating seats available');
    // Existing sessions are kept when the limit is lowered; the host's own one was not ended.
    await heartbeatOk(tenant, key, session);
    expect(await openSessions(tenant, key)).toBe(3);
  });

  it('a lapsed lease frees its seat without any background job', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 1 });
    const { session } = await checkedOut(tenant, key, { hostId: 'a' });
    expectError(await checkout(tenant, key, { hostId: 'b' }), 403, 2, 'No floating seats available');
    await lapse(t.database.db, session.sessionId);
    const { response } = await checkedOut(tenant, key, { hostId: 'b' });
    expect(response.body.currentSessions).toBe(1);
    // The lapsed session is not revived by a late heartbeat.
    expectError(await heartbeat(tenant, key, session), 403, 2, 'Session expired');
  });

  it('a lapsed session of the same host is not counted and stays lapsed', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 1 });
    const { session } = await checkedOut(tenant, key, { hostId: 'a' });
    await lapse(t.database.db, session.sessionId);
    const { response } = await checkedOut(tenant, key, { hostId: 'a' });
    expect(response.body.currentSessions).toBe(1);
    expectError(await heartbeat(tenant, key, session), 403, 2, 'Session expired');
  });
});

describe('POST /key/checkout — scope, tenancy and input', () => {
  it('needs licenses:activate (403/1) and a valid token (401/1)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const body = { productId: tenant.productId, licenseKey: key, hostId: 'h' };
    const readOnly = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:read'] }));
    expectError(await readOnly.post('/key/checkout', body), 403, 1, 'Insufficient permissions for this operation');
    expectError(await client(t.app).post('/key/checkout', body), 401, 1, 'Invalid access token');
    const activateOnly = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:activate'] }));
    expect((await activateOnly.post('/key/checkout', body)).status).toBe(200);
  });

  it('a required field missing, null or "" → 400/1 Missing required params, nothing written', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const full = { productId: tenant.productId, licenseKey: key, hostId: 'h' };
    for (const field of ['productId', 'licenseKey', 'hostId'] as const) {
      for (const value of [undefined, null, '']) {
        const body: Record<string, unknown> = { ...full, [field]: value };
        if (value === undefined) delete body[field];
        expectError(await tenant.api.post('/key/checkout', body), 400, 1, 'Missing required params');
      }
    }
    expect(await sessionRows(tenant, key)).toEqual([]);
  });

  it('a field of the wrong type or size → 400/1 Invalid <field>, in field-table order, nothing written', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const full = { productId: tenant.productId, licenseKey: key, hostId: 'h' };
    const cases: [Record<string, unknown>, string][] = [
      [{ productId: 'short' }, 'Invalid productId'],
      [{ productId: 'short', hostId: 7 }, 'Invalid productId'],
      [{ licenseKey: 'x'.repeat(513) }, 'Invalid licenseKey'],
      [{ licenseKey: 42 }, 'Invalid licenseKey'],
      [{ hostId: 'h'.repeat(257) }, 'Invalid hostId'],
      [{ hostId: ['h'] }, 'Invalid hostId'],
      [{ hostId: 'h'.repeat(257), deviceTag: 1 }, 'Invalid hostId'],
      [{ deviceTag: 'd'.repeat(257) }, 'Invalid deviceTag'],
      [{ deviceTag: false }, 'Invalid deviceTag'],
      [{ userIdentifier: 'u'.repeat(257) }, 'Invalid userIdentifier'],
      [{ userIdentifier: { id: 1 } }, 'Invalid userIdentifier'],
      [{ hostId: 'bad\u0000host' }, 'Invalid hostId'],
    ];
    for (const [change, message] of cases) {
      expectError(await tenant.api.post('/key/checkout', { ...full, ...change }), 400, 1, message);
    }
    expectError(await tenant.api.post('/key/checkout', '{"productId":'), 400, 1, 'Invalid JSON body');
    expect(await sessionRows(tenant, key)).toEqual([]);
  });
});

describe('floating keys and activation', () => {
  it('activating a floating key stays 403/2 Floating licenses must use checkout', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    expectError(
      await tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId: 'h' }),
      403,
      2,
      'Floating licenses must use checkout',
    );
  });
});
