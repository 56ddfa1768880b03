import { and, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { customers, floatingSessions, licenseKeys } from '../../../src/db/schema/index.js';
import { useTestApp } from '../../helpers/app.js';
import { client, createProduct, createTenant, createToken, expectError, type Tenant } from '../../helpers/fixtures.js';
import {
  checkedOut,
  checkin,
  checkout,
  createFloatingKey,
  heartbeat,
  heartbeatOk,
  lapse,
  type Session,
  sessionCall,
  sign,
  storedSession,
} from '../../helpers/floating.js';

const t = useTestApp();

const CALLS = [
  { path: '/key/heartbeat', call: heartbeat },
  { path: '/key/checkin', call: checkin },
] as const;

/** A floating key with one checked-out session. */
async function withSession(body: Record<string, unknown> = {}) {
  const tenant = await createTenant(t.app);
  const key = await createFloatingKey(tenant, body);
  const { session } = await checkedOut(tenant, key);
  return { tenant, key, session };
}

const customerOf = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  return response.body.data.customer.id as string;
};

const setKey = (tenant: Tenant, key: string, changes: Partial<typeof licenseKeys.$inferInsert>) =>
  t.database.db
    .update(licenseKeys)
    .set(changes)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));

describe('POST /key/heartbeat — success', () => {
  it('renews the lease and issues a new nonce (§3.2)', async () => {
    const { tenant, key, session } = await withSession({ sessionLeaseDuration: 1200 });
    await lapse(t.database.db, session.sessionId, -60); // the lease ends in one minute
    const before = Date.now();
    const response = await heartbeat(tenant, key, session);
    expect(response.status).toBe(200);
    expect(Object.keys(response.body)).toEqual(['code', 'message', 'expiresAt', 'nextNonce']);
    expect(response.body).toEqual({
      code: 0,
      message: 'Heartbeat accepted',
      expiresAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      nextNonce: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect(response.body.nextNonce).not.toBe(session.nonce);
    expect(Math.abs(Date.parse(response.body.expiresAt) - before - 1_200_000)).toBeLessThan(5_000);
    const stored = await storedSession(t.database.db, session.sessionId);
    expect(stored).toMatchObject({ nonce: response.body.nextNonce, checkedInAt: null });
    expect(stored!.expiresAt.toISOString()).toBe(response.body.expiresAt);
  });

  it('each nonce signs one heartbeat: a session goes on as long as it follows nextNonce', async () => {
    const { tenant, key, session } = await withSession();
    const nonces = new Set([session.nonce]);
    for (let i = 0; i < 5; i++) nonces.add((await heartbeatOk(tenant, key, session)).body.nextNonce);
    expect(nonces.size).toBe(6);
  });

  it('the lease length follows the key setting as it is when the heartbeat arrives', async () => {
    const { tenant, key, session } = await withSession({ sessionLeaseDuration: 300 });
    const patched = await tenant.api.send('PATCH', '/key', {
      productId: tenant.productId,
      licenseKey: key,
      sessionLeaseDuration: 3600,
    });
    expect(patched.status).toBe(200);
    const before = Date.now();
    const response = await heartbeatOk(tenant, key, session);
    expect(Math.abs(Date.parse(response.body.expiresAt) - before - 3_600_000)).toBeLessThan(5_000);
  });

  it('accepts timestamp as a JSON number (converted to its decimal string)', async () => {
    const { tenant, key, session } = await withSession();
    // A nonce that happens to be all digits can arrive as a JSON number.
    const digits = '17000000001234';
    await t.database.db
      .update(floatingSessions)
      .set({ nonce: digits })
      .where(eq(floatingSessions.id, session.sessionId));
    const signature = sign(session.sessionSecret, session.sessionId, digits);
    const response = await heartbeat(tenant, key, session, { timestamp: Number(digits), signature });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    // A number that is not the current nonce is a wrong nonce (403/2), not bad input.
    session.nonce = response.body.nextNonce;
    const stale = { timestamp: 12345, signature: sign(session.sessionSecret, session.sessionId, '12345') };
    expectError(await heartbeat(tenant, key, session, stale), 403, 2, 'Invalid session signature');
    await heartbeatOk(tenant, key, session);
  });

  it('accepts the signature in upper-case hex', async () => {
    const { tenant, key, session } = await withSession();
    const signature = sign(session.sessionSecret, session.sessionId, session.nonce).toUpperCase();
    expect((await heartbeat(tenant, key, session, { signature })).status).toBe(200);
  });

  it('ignores unknown fields such as apiKey: only the Authorization header authenticates', async () => {
    const { tenant, key, session } = await withSession();
    const response = await heartbeat(tenant, key, session, { apiKey: 'at_someone-elses-key', version: '2' });
    expect(response.status).toBe(200);
  });
});

describe('POST /key/checkin — success', () => {
  it('ends the session: {code: 0, message: "Session checked in"}', async () => {
    const { tenant, key, session } = await withSession();
    const response = await checkin(tenant, key, session);
    expect({ status: response.status, body: response.body }).toEqual({
      status: 200,
      body: { code: 0, message: 'Session checked in' },
    });
    expect(Object.keys(response.body)).toEqual(['code', 'message']);
    const stored = await storedSession(t.database.db, session.sessionId);
    expect(stored!.checkedInAt).toBeInstanceOf(Date);
    expect(stored!.expiresAt.getTime()).toBeLessThanOrEqual(stored!.checkedInAt!.getTime());
  });

  it('frees the seat at once', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 1 });
    const { session } = await checkedOut(tenant, key, { hostId: 'a' });
    expectError(await checkout(tenant, key, { hostId: 'b' }), 403, 2, 'No floating seats available');
    expect((await checkin(tenant, key, session)).status).toBe(200);
    expect((await checkedOut(tenant, key, { hostId: 'b' })).response.body.currentSessions).toBe(1);
  });

  it('signs the current nonce: after heartbeats, the latest nextNonce', async () => {
    const { tenant, key, session } = await withSession();
    await heartbeatOk(tenant, key, session);
    await heartbeatOk(tenant, key, session);
    expect((await checkin(tenant, key, session)).status).toBe(200);
  });

  it('works on blocked and expired keys, and for a disabled customer', async () => {
    const { tenant, key, session } = await withSession({ newCustomer: { name: 'C' } });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key });
    await setKey(tenant, key, { expiresAt: new Date(Date.now() - 1000) });
    await t.database.db
      .update(customers)
      .set({ active: false })
      .where(eq(customers.id, await customerOf(tenant, key)));
    expect((await checkin(tenant, key, session)).status).toBe(200);
  });
});

describe.each(CALLS)('POST $path — checks in order (§3.2)', ({ path, call }) => {
  it('1. unknown key, another product, another account, inactive product → 404/1 License key not found', async () => {
    const { tenant, key, session } = await withSession();
    const stranger = await createTenant(t.app);
    expectError(await call(tenant, 'NO-SUCH-KEY', session), 404, 1, 'License key not found');
    expectError(await call(stranger, key, session), 404, 1, 'License key not found');
    const otherProduct = await createProduct(t.app, tenant.accountId);
    expectError(await call(tenant, key, session, { productId: otherProduct }), 404, 1, 'License key not found');
    const restricted = client(t.app, await createToken(t.app, tenant.accountId, { productIds: [otherProduct] }));
    expectError(await restricted.post(path, sessionCall(tenant, key, session)), 404, 1, 'License key not found');
    // Even a wrong signature is judged after the key.
    expectError(await call(tenant, 'NO-SUCH-KEY', session, { signature: 'bad' }), 404, 1, 'License key not found');
    // The session still works.
    expect((await call(tenant, key, session)).status).toBe(200);
  });

  it('2. a session unknown for this key → 404/1 Session not found (before the signature)', async () => {
    const { tenant, key, session } = await withSession();
    const otherKey = await createFloatingKey(tenant);
    const { session: foreign } = await checkedOut(tenant, otherKey);
    expectError(
      await call(tenant, key, { ...session, sessionId: 'ffffffffffffffffffffff' }),
      404,
      1,
      'Session not found',
    );
    expectError(await call(tenant, key, { ...session, sessionId: 'not-even-hex' }), 404, 1, 'Session not found');
    // Another key's session, correctly signed, is not this key's.
    expectError(await call(tenant, key, foreign), 404, 1, 'Session not found');
    expectError(
      await call(tenant, key, session, { sessionId: foreign.sessionId, signature: 'x' }),
      404,
      1,
      'Session not found',
    );
  });

  it('2. an already checked-in session → 404/1 Session not found', async () => {
    const { tenant, key, session } = await withSession();
    expect((await checkin(tenant, key, session)).status).toBe(200);
    expectError(await call(tenant, key, session), 404, 1, 'Session not found');
  });

  it('3. a wrong signature → 403/2 Invalid session signature, the nonce stays valid', async () => {
    const { tenant, key, session } = await withSession();
    const good = sign(session.sessionSecret, session.sessionId, session.nonce);
    const flipped = (good[0] === '0' ? '1' : '0') + good.slice(1);
    const wrong = [
      flipped,
      sign('another secret', session.sessionId, session.nonce),
      sign(session.sessionSecret, session.sessionId, 'another nonce'),
      good.slice(0, 62),
      `${good}00`,
      'zz'.repeat(32),
      'not hex at all',
      Buffer.from(good, 'hex').toString('base64'),
    ];
    for (const signature of wrong) {
      expectError(await call(tenant, key, session, { signature }), 403, 2, 'Invalid session signature');
    }
    expect((await call(tenant, key, session)).status).toBe(200);
  });

  it('3. a timestamp other than the current nonce, even correctly signed → 403/2', async () => {
    const { tenant, key, session } = await withSession();
    const other = 'a'.repeat(32);
    expectError(
      await call(tenant, key, session, {
        timestamp: other,
        signature: sign(session.sessionSecret, session.sessionId, other),
      }),
      403,
      2,
      'Invalid session signature',
    );
    expectError(
      await call(tenant, key, session, { timestamp: session.nonce.toUpperCase() }),
      403,
      2,
      'Invalid session signature',
    );
  });

  it('3. an old nonce, and a replayed one → 403/2 Invalid session signature', async () => {
    const { tenant, key, session } = await withSession();
    const old = { ...session };
    await heartbeatOk(tenant, key, session);
    // Replaying the request that consumed `old`:
    expectError(await call(tenant, key, old), 403, 2, 'Invalid session signature');
    const middle = { ...session };
    await heartbeatOk(tenant, key, session);
    expectError(await call(tenant, key, middle), 403, 2, 'Invalid session signature');
    expect((await call(tenant, key, session)).status).toBe(200);
  });

  it('4. a lapsed lease → 403/2 Session expired (after the signature check)', async () => {
    const { tenant, key, session } = await withSession();
    await lapse(t.database.db, session.sessionId);
    expectError(await call(tenant, key, session, { signature: 'bad' }), 403, 2, 'Invalid session signature');
    expectError(await call(tenant, key, session), 403, 2, 'Session expired');
    // Still lapsed, not ended: the answer does not change.
    expectError(await call(tenant, key, session), 403, 2, 'Session expired');
    expect((await storedSession(t.database.db, session.sessionId))!.checkedInAt).toBeNull();
  });

  it('needs licenses:activate (403/1); without a token 401/1', async () => {
    const { tenant, key, session } = await withSession();
    const body = sessionCall(tenant, key, session);
    const readOnly = client(
      t.app,
      await createToken(t.app, tenant.accountId, { scopes: ['licenses:read', 'licenses:write'] }),
    );
    expectError(await readOnly.post(path, body), 403, 1, 'Insufficient permissions for this operation');
    expectError(await client(t.app).post(path, body), 401, 1, 'Invalid access token');
    const activateOnly = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:activate'] }));
    expect((await activateOnly.post(path, body)).status).toBe(200);
  });

  it('every field is required: missing, null or "" → 400/1 Missing required params, nothing changes', async () => {
    const { tenant, key, session } = await withSession();
    const full = sessionCall(tenant, key, session);
    for (const field of Object.keys(full)) {
      for (const value of [undefined, null, '']) {
        const body: Record<string, unknown> = { ...full, [field]: value };
        if (value === undefined) delete body[field];
        expectError(await tenant.api.post(path, body), 400, 1, 'Missing required params');
      }
    }
    expect(await storedSession(t.database.db, session.sessionId)).toMatchObject({
      nonce: session.nonce,
      checkedInAt: null,
    });
    expect((await call(tenant, key, session)).status).toBe(200);
  });

  it('a field of the wrong type or size → 400/1 Invalid <field> in field order, nothing changes', async () => {
    const { tenant, key, session } = await withSession();
    const cases: [Record<string, unknown>, string][] = [
      [{ productId: 'short', sessionId: 5 }, 'Invalid productId'],
      [{ licenseKey: 7 }, 'Invalid licenseKey'],
      [{ sessionId: 42 }, 'Invalid sessionId'],
      [{ sessionId: 's'.repeat(257) }, 'Invalid sessionId'],
      [{ sessionId: ['x'], timestamp: true }, 'Invalid sessionId'],
      [{ timestamp: true }, 'Invalid timestamp'],
      [{ timestamp: { nonce: session.nonce } }, 'Invalid timestamp'],
      [{ timestamp: [session.nonce] }, 'Invalid timestamp'],
      [{ timestamp: 't'.repeat(257) }, 'Invalid timestamp'],
      [{ signature: 12 }, 'Invalid signature'],
      [{ signature: 's'.repeat(1025) }, 'Invalid signature'],
    ];
    for (const [change, message] of cases) expectError(await call(tenant, key, session, change), 400, 1, message);
    expect(await storedSession(t.database.db, session.sessionId)).toMatchObject({
      nonce: session.nonce,
      checkedInAt: null,
    });
    expect((await call(tenant, key, session)).status).toBe(200);
  });
});

describe('POST /key/heartbeat — the key state ends the session (§3.2)', () => {
  /** The heartbeat is refused with `message` and the session is over: a following checkin finds none. */
  async function expectRefusedAndEnded(tenant: Tenant, key: string, session: Session, message: string) {
    expectError(await heartbeat(tenant, key, session), 403, 2, message);
    expect((await storedSession(t.database.db, session.sessionId))!.checkedInAt).toBeInstanceOf(Date);
    expectError(await checkin(tenant, key, session), 404, 1, 'Session not found');
    expectError(await heartbeat(tenant, key, session), 404, 1, 'Session not found');
  }

  it('blocked → 403/2 License key is blocked, and the session is ended', async () => {
    const { tenant, key, session } = await withSession({ maxConcurrentSessions: 1 });
    expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
    await expectRefusedAndEnded(tenant, key, session, 'License key is blocked');
    // Its seat is free again once the key is unblocked.
    await tenant.api.post('/key/unblock', { productId: tenant.productId, licenseKey: key });
    expect((await checkout(tenant, key, { hostId: 'next' })).status).toBe(200);
  });

  it('expired → 403/2 License key has expired, and the session is ended', async () => {
    const { tenant, key, session } = await withSession();
    await setKey(tenant, key, { expiresAt: new Date(Date.now() - 1000) });
    await expectRefusedAndEnded(tenant, key, session, 'License key has expired');
  });

  it('customer disabled → 403/2 Customer is inactive, and the session is ended', async () => {
    const { tenant, key, session } = await withSession({ newCustomer: { name: 'Soon disabled' } });
    const customerId = await customerOf(tenant, key);
    const toggled = await tenant.api.post(`/customer/disable?customerId=${customerId}`);
    expect(toggled.body.message).toBe('Customer disabled');
    await expectRefusedAndEnded(tenant, key, session, 'Customer is inactive');
  });

  it('the order: a lapsed lease first, then blocked, expired, customer inactive', async () => {
    const refusals = [];
    for (const state of [
      { lapsed: true, blocked: true, expired: true, disabled: true },
      { lapsed: false, blocked: true, expired: true, disabled: true },
      { lapsed: false, blocked: false, expired: true, disabled: true },
      { lapsed: false, blocked: false, expired: false, disabled: true },
    ]) {
      const { tenant, key, session } = await withSession({ newCustomer: { name: 'C' } });
      if (state.lapsed) await lapse(t.database.db, session.sessionId);
      await setKey(tenant, key, {
        blocked: state.blocked,
        expiresAt: state.expired ? new Date(Date.now() - 1000) : null,
      });
      if (state.disabled) {
        await t.database.db
          .update(customers)
          .set({ active: false })
          .where(eq(customers.id, await customerOf(tenant, key)));
      }
      refusals.push((await heartbeat(tenant, key, session)).body.message);
    }
    expect(refusals).toEqual([
      'Session expired',
      'License key is blocked',
      'License key has expired',
      'Customer is inactive',
    ]);
  });

  it('blocking alone does not end sessions: unblocked before the next heartbeat, they go on', async () => {
    const { tenant, key, session } = await withSession();
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key });
    await tenant.api.post('/key/unblock', { productId: tenant.productId, licenseKey: key });
    await heartbeatOk(tenant, key, session);
  });
});
