import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { type Database, openPostgres } from '../../src/db/client.js';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { webhookDeliveries } from '../../src/db/schema/index.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';
import {
  deliveryRows,
  isDueNow,
  type Receiver,
  type SeededWebhook,
  seedDeliveries,
  seedWebhook,
  startReceiver,
  verifySignature,
} from '../modules/webhooks/helpers.js';

const WAIT = { timeout: 90_000, interval: 100 };

/**
 * The delivery worker across real server processes on one fresh PostgreSQL database: claims
 * with SKIP LOCKED never let two processes send the same attempt, a process stopped with SIGTERM
 * gives its claims back, and the claims of a process killed with SIGKILL are sent again once
 * their lease has ended.
 */
describe.skipIf(!usingPostgres)('webhook delivery across processes (PostgreSQL)', () => {
  let database: { url: string; drop(): Promise<void> };
  let db: Database;
  let receiver: Receiver;
  const running: ServerProcess[] = [];

  const start = async (env: Record<string, string> = {}) => {
    const server = await startServer({
      DATABASE_URL: database.url,
      ADMIN_TOKEN,
      WEBHOOKS_ALLOW_PRIVATE: 'true',
      WEBHOOKS_RETRY_BASE_MS: '200',
      ...env,
    });
    running.push(server);
    return server;
  };

  const hookTo = (path: string): Promise<SeededWebhook> => seedWebhook(db.db, `${receiver.url}${path}`);

  const statuses = async (webhook: SeededWebhook) =>
    (
      await db.db
        .select({ status: webhookDeliveries.status })
        .from(webhookDeliveries)
        .where(eq(webhookDeliveries.webhookId, webhook.id))
    ).map((row) => row.status);

  const countBy = (values: unknown[]) => {
    const counts = new Map<unknown, number>();
    for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
    return counts;
  };

  beforeAll(async () => {
    database = await createFreshDatabase();
    await migratePostgresDatabase(database.url);
    db = openPostgres({ url: database.url, poolSize: 2 });
    receiver = await startReceiver();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(running.map((server) => server.stop()));
    await receiver?.close();
    await db?.close();
    await database?.drop();
  });

  it('two processes deliver 200 events: the receiver gets each exactly once and every row ends delivered', async () => {
    const servers = await Promise.all([start(), start()]);
    // A slow receiver keeps each process's slots busy, so both claim from the same due rows.
    receiver.answer('/race', () => ({ status: 200, delayMs: 100 }));
    const webhook = await hookTo('/race');
    const seeded = await seedDeliveries(db.db, webhook, { count: 200 });

    await expect.poll(async () => (await statuses(webhook)).filter((s) => s === 'delivered').length, WAIT).toBe(200);
    const perEvent = countBy(receiver.to('/race').map((request) => request.headers['keymint-event-id']));
    expect(perEvent.size).toBe(200);
    expect([...perEvent.values()].every((count) => count === 1)).toBe(true);
    expect([...perEvent.keys()].sort()).toEqual(seeded.map((row) => row.eventId).sort());
    const rows = await deliveryRows(
      db.db,
      seeded.map((row) => row.deliveryId),
    );
    expect(rows.every((row) => row.attempts === 1 && row.lease === null)).toBe(true);
    await Promise.all(servers.map((server) => server.stop()));
  }, 180_000);

  it('SIGTERM: the process gives its claims back (due now, no attempt counted) before their lease ends', async () => {
    // Lease 9 s; shutdown grace 2 s.
    const server = await start({ WEBHOOKS_TIMEOUT_MS: '4000' });
    receiver.answer('/held', () => 'hang');
    const webhook = await hookTo('/held');
    const seeded = await seedDeliveries(db.db, webhook, { count: 5 });
    await expect.poll(() => receiver.to('/held').length, WAIT).toBe(5);

    await server.stop();
    for (const row of await deliveryRows(
      db.db,
      seeded.map((delivery) => delivery.deliveryId),
    )) {
      expect(row).toMatchObject({ status: 'pending', attempts: 0, lease: null, lastError: null });
      expect(await isDueNow(db.db, row.id)).toBe(true);
    }
    // The next process sends them (below).
    receiver.answer('/held', () => 200);
  }, 120_000);

  it('SIGKILL: the claims of a killed process are sent again by the restarted one once their lease has ended', async () => {
    // Lease: the 3 s timeout + 5 s.
    const env = { WEBHOOKS_TIMEOUT_MS: '3000' };
    const killed = await start(env);
    receiver.answer('/killed', (index) => (index < 5 ? 'hang' : 200));
    const webhook = await hookTo('/killed');
    const seeded = await seedDeliveries(db.db, webhook, { count: 5 });
    await expect.poll(() => receiver.to('/killed').length, WAIT).toBe(5);
    const ids = seeded.map((delivery) => delivery.deliveryId);
    for (const row of await deliveryRows(db.db, ids)) {
      expect(row.lease).not.toBeNull();
    }

    const exited = new Promise((resolve) => killed.child.once('exit', resolve));
    killed.child.kill('SIGKILL');
    await exited;
    await start(env);

    await expect.poll(async () => (await statuses(webhook)).filter((s) => s === 'delivered').length, WAIT).toBe(5);
    const requests = receiver.to('/killed');
    expect(requests).toHaveLength(10);
    for (const delivery of seeded) {
      const [hung, sent] = requests.filter((request) => request.headers['keymint-event-id'] === delivery.eventId);
      // Not before the lease (claimed just before the first request) ended.
      expect(sent!.at - hung!.at).toBeGreaterThanOrEqual(7_000);
    }
    // The rows the killed process had not finished count no attempt of theirs.
    expect((await deliveryRows(db.db, ids)).map((row) => row.attempts)).toEqual([1, 1, 1, 1, 1]);
    // What the SIGTERM-stopped process gave back was delivered too: nothing is left pending.
    await expect
      .poll(
        async () => (await db.db.select().from(webhookDeliveries)).filter((row) => row.status !== 'delivered'),
        WAIT,
      )
      .toEqual([]);
  }, 180_000);

  it('SIGKILL right after a commit: the event written through HTTP is delivered once a process runs again', async () => {
    // No worker of the earlier tests may be left running: the event must wait for the restart.
    await Promise.all(running.splice(0).map((server) => server.stop()));
    // An API-only process commits the change and its outbox rows, and dies before anything is sent.
    const api = await start({ WEBHOOKS_WORKER: 'false' });
    const tenant = await provisionTenant(api.url, ADMIN_TOKEN, 'killed after commit');
    const registered = await request(api.url, 'POST', '/admin/webhooks', ADMIN_TOKEN, {
      url: `${receiver.url}/after-commit`,
      events: ['key.created'],
      accountId: tenant.accountId,
    });
    expect(registered.status).toBe(201);
    const created = await request(api.url, 'POST', '/key', tenant.token, { productId: tenant.productId });
    expect(created.status).toBe(200);
    const exited = new Promise((resolve) => api.child.once('exit', resolve));
    api.child.kill('SIGKILL');
    await exited;
    expect(receiver.to('/after-commit')).toHaveLength(0);

    await start();
    await expect.poll(() => receiver.to('/after-commit').length, WAIT).toBe(1);
    const [arrived] = receiver.to('/after-commit');
    const body = JSON.parse(arrived!.body.toString('utf8'));
    expect(body).toMatchObject({ type: 'key.created', data: { license: { key: created.body.key } } });
    expect(
      verifySignature(
        registered.body.secret,
        String(arrived!.headers['keymint-signature']),
        arrived!.body.toString('utf8'),
      ),
    ).toBe(true);
  }, 120_000);
});
