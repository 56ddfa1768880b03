import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { openTestDatabase, testConfig } from '../../helpers/app.js';
import { client, createKey, createTenant } from '../../helpers/fixtures.js';
import { checkedOut, checkin, checkout, createFloatingKey, heartbeat, heartbeatOk } from '../../helpers/floating.js';

describe('logs and metrics', () => {
  let lines: string[] = [];
  let app: Awaited<ReturnType<typeof buildApp>>;
  let closeDatabase: () => Promise<void>;

  beforeAll(async () => {
    const database = await openTestDatabase();
    closeDatabase = () => database.close();
    app = await buildApp({
      config: testConfig(),
      database,
      logger: { level: 'trace', stream: { write: (line: string) => void lines.push(line) } },
    });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await closeDatabase();
  });

  it('never write the session secret, even at trace level', async () => {
    const tenant = await createTenant(app);
    const key = await createFloatingKey(tenant);
    lines = [];
    const { session } = await checkedOut(tenant, key);
    await heartbeatOk(tenant, key, session);
    expect((await checkin(tenant, key, session)).status).toBe(200);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(session.sessionSecret);
    app.log.info({ session: { sessionSecret: session.sessionSecret }, sessionSecret: session.sessionSecret }, 'x');
    expect(lines.at(-1)).not.toContain(session.sessionSecret);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({
      sessionSecret: '[redacted]',
      session: { sessionSecret: '[redacted]' },
    });
  });

  it('count checkouts, heartbeats and checkins by outcome', async () => {
    const scrape = async () => (await client(app).get('/metrics')).body as string;
    const value = (text: string, name: string, outcome: string) => {
      const line = text.split('\n').find((entry) => entry.startsWith(`${name}{outcome="${outcome}"} `));
      return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
    };
    const before = await scrape();
    for (const [name, outcome] of [
      ['keymint_floating_checkouts_total', 'no_floating_seats'],
      ['keymint_floating_heartbeats_total', 'customer_inactive'],
      ['keymint_floating_checkins_total', 'session_expired'],
    ] as const) {
      expect(value(before, name, outcome), `${name} ${outcome}`).toBeGreaterThanOrEqual(0);
    }

    const tenant = await createTenant(app);
    const key = await createFloatingKey(tenant, { maxConcurrentSessions: 1 });
    const node = await createKey(tenant);
    const { session } = await checkedOut(tenant, key);
    await checkout(tenant, key, { hostId: 'second' });
    await checkout(tenant, node);
    await checkout(tenant, 'NO-SUCH-KEY');
    await heartbeatOk(tenant, key, session);
    await heartbeat(tenant, key, { ...session, nonce: 'f'.repeat(32) });
    await heartbeat(tenant, key, { ...session, sessionId: 'ffffffffffffffffffffff' });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key });
    await heartbeat(tenant, key, session);
    await checkin(tenant, key, session);
    await tenant.api.post('/key/checkout', { productId: tenant.productId });
    const after = await scrape();
    const delta = (name: string, outcome: string) => value(after, name, outcome) - value(before, name, outcome);
    expect({
      checkouts: ['accepted', 'no_floating_seats', 'not_floating', 'license_key_not_found'].map((o) =>
        delta('keymint_floating_checkouts_total', o),
      ),
      heartbeats: ['accepted', 'invalid_session_signature', 'session_not_found', 'blocked'].map((o) =>
        delta('keymint_floating_heartbeats_total', o),
      ),
      checkins: ['accepted', 'session_not_found'].map((o) => delta('keymint_floating_checkins_total', o)),
    }).toEqual({ checkouts: [1, 1, 1, 1], heartbeats: [1, 1, 1, 1], checkins: [0, 1] });
  });
});
