import { readFileSync } from 'node:fs';
import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../scripts/server-process.js';
import { buildApp } from '../../../src/app.js';
import { webhookDeliveries, webhookEvents } from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { pruneWebhookEvents } from '../../../src/modules/webhooks/retention.js';
import { createTestApp, openIsolatedDatabase, type TestApp, testConfig, useTestApp } from '../../helpers/app.js';
import { sample, scrape } from '../../helpers/metrics.js';
import {
  type Answering,
  deleteWebhook,
  deliveryRow,
  isDueNow,
  type Receiver,
  type SeededDelivery,
  seedDeliveries,
  seedWebhook,
  startReceiver,
  verifySignature,
} from './helpers.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

// A worker in the test app, on a database of its own; retries 200 ms, 400 ms, …; 2 s timeout.
const WORKER = {
  WEBHOOKS_WORKER: 'true',
  WEBHOOKS_ALLOW_PRIVATE: 'true',
  WEBHOOKS_RETRY_BASE_MS: '200',
  WEBHOOKS_TIMEOUT_MS: '2000',
};
// Retry windows that have ended: the first failed attempt fails the delivery.
const EXPIRED = { expiresInMs: -1000 };
const WAIT = { timeout: 25_000, interval: 20 };

const ATTEMPTS = 'keymint_webhook_attempts_total';

function receiverOf(): () => Receiver {
  let receiver: Receiver | undefined;
  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => receiver?.close());
  return () => receiver!;
}

/** Helpers bound to one test app and receiver. */
function deliveriesOf(t: TestApp, receiver: () => Receiver) {
  return {
    /** A webhook to a fresh path of the receiver, answered by `answering` (default 200). */
    async hook(answering?: Answering) {
      const path = `/hooks/${newId()}`;
      if (answering) receiver().answer(path, answering);
      const webhook = await seedWebhook(t.database.db, `${receiver().url}${path}`);
      return { path, webhook };
    },
    /** Waits until the delivery has left `pending`; its row. */
    async settled(delivery: SeededDelivery) {
      await expect
        .poll(async () => (await deliveryRow(t.database.db, delivery.deliveryId)).status, WAIT)
        .not.toBe('pending');
      return deliveryRow(t.database.db, delivery.deliveryId);
    },
  };
}

describe('webhook delivery worker', () => {
  const t = useTestApp(WORKER, { ownDatabase: true });
  const receiver = receiverOf();
  const { hook, settled } = deliveriesOf(t, receiver);

  it('POSTs the stored body byte for byte with the contract headers; the signature verifies as the SDKs check it', async () => {
    const { path, webhook } = await hook(() => 204);
    const [delivery] = await seedDeliveries(t.database.db, webhook);
    t.app.webhookWorker.wake();
    const row = await settled(delivery!);

    const requests = receiver().to(path);
    expect(requests).toHaveLength(1);
    const request = requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.body.equals(Buffer.from(delivery!.payload, 'utf8'))).toBe(true);
    expect(request.headers).toMatchObject({
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(delivery!.payload)),
      'keymint-event-id': delivery!.eventId,
      'keymint-event-type': 'customer.created',
      'user-agent': `keymint-server/${version}`,
    });
    const signature = request.headers['keymint-signature'] as string;
    expect(signature).toMatch(/^t=[0-9]+,v1=[0-9a-f]{64}$/);
    expect(verifySignature(webhook.secret, signature, request.body.toString('utf8'))).toBe(true);
    expect(verifySignature(`${webhook.secret}x`, signature, request.body.toString('utf8'))).toBe(false);
    expect(verifySignature(webhook.secret, signature, `${request.body.toString('utf8')} `)).toBe(false);

    expect(row).toMatchObject({
      status: 'delivered',
      attempts: 1,
      lastStatusCode: 204,
      lastError: null,
      nextAttemptAt: null,
      lease: null,
    });
    expect(row.deliveredAt).toBeInstanceOf(Date);
    expect(row.lastAttemptAt).toBeInstanceOf(Date);
  });

  it('retries with growing gaps: 500, 500, then 200 is three attempts, each signed, and the delivery ends delivered', async () => {
    const { path, webhook } = await hook((index) => (index < 2 ? { status: 500, body: 'boom' } : 200));
    const [delivery] = await seedDeliveries(t.database.db, webhook);
    t.app.webhookWorker.wake();
    const row = await settled(delivery!);

    const requests = receiver().to(path);
    expect(requests).toHaveLength(3);
    for (const request of requests) {
      expect(request.body.toString('utf8')).toBe(delivery!.payload);
      expect(verifySignature(webhook.secret, request.headers['keymint-signature'] as string, delivery!.payload)).toBe(
        true,
      );
    }
    const [first, second, third] = requests.map((request) => request.at) as [number, number, number];
    // Retry base 200 ms, then 400 ms (database clock and receiver clock are this machine's).
    expect(second - first).toBeGreaterThanOrEqual(190);
    expect(third - second).toBeGreaterThan(second - first);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3, lastStatusCode: 200, lastError: null });
  });

  it('fails the delivery when the next retry would fall after its window: the last status and answer are kept', async () => {
    const { path, webhook } = await hook(() => ({ status: 503, body: 'down for\n maintenance' }));
    // Retries after 200, 400, 800 and 1600 ms fit in 5 s; the fifth failure's 3.2 s does not.
    const [delivery] = await seedDeliveries(t.database.db, webhook, { expiresInMs: 5_000 });
    t.app.webhookWorker.wake();
    const row = await settled(delivery!);
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 5,
      lastStatusCode: 503,
      lastError: 'HTTP 503: down for maintenance',
      nextAttemptAt: null,
      lease: null,
      deliveredAt: null,
    });
    expect(receiver().to(path)).toHaveLength(5);
  });

  it('counts an answer that does not come within the timeout as a failed attempt', async () => {
    const { path, webhook } = await hook(() => 'hang');
    const [delivery] = await seedDeliveries(t.database.db, webhook, EXPIRED);
    t.app.webhookWorker.wake();
    const row = await settled(delivery!);
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastStatusCode: null,
      lastError: 'timeout after 2000 ms',
    });
    expect(receiver().to(path)).toHaveLength(1);
  });

  it('does not follow a redirect: a 302 is a failed attempt', async () => {
    const { path, webhook } = await hook(() => ({ status: 302, headers: { location: `${receiver().url}/moved` } }));
    const [delivery] = await seedDeliveries(t.database.db, webhook, EXPIRED);
    t.app.webhookWorker.wake();
    const row = await settled(delivery!);
    expect(row).toMatchObject({ status: 'failed', attempts: 1, lastStatusCode: 302, lastError: 'HTTP 302' });
    expect(receiver().to(path)).toHaveLength(1);
    // The attempt had ended when its outcome was written.
    expect(receiver().to('/moved')).toHaveLength(0);
  });

  it('records a refused connection without a status code', async () => {
    const webhook = await seedWebhook(t.database.db, `http://127.0.0.1:${await freePort()}/hook`);
    const [delivery] = await seedDeliveries(t.database.db, webhook, EXPIRED);
    t.app.webhookWorker.wake();
    expect(await settled(delivery!)).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastStatusCode: null,
      lastError: 'connect ECONNREFUSED',
    });
  });

  it('delivers a batch concurrently, each event once', async () => {
    const { path, webhook } = await hook(() => ({ status: 200, delayMs: 300 }));
    const deliveries = await seedDeliveries(t.database.db, webhook, { count: 120 });
    t.app.webhookWorker.wake();
    await expect
      .poll(async () => {
        const rows = await t.database.db
          .select({ status: webhookDeliveries.status })
          .from(webhookDeliveries)
          .where(eq(webhookDeliveries.webhookId, webhook.id));
        return rows.filter((row) => row.status === 'delivered').length;
      }, WAIT)
      .toBe(120);
    const ids = receiver()
      .to(path)
      .map((request) => request.headers['keymint-event-id']);
    expect(ids.sort()).toEqual(deliveries.map((delivery) => delivery.eventId).sort());
  });

  it('counts attempts by outcome and their duration', async () => {
    const before = await scrape(t.app);
    const delivered = await hook(() => 200);
    const refused = await hook(() => 500);
    const hanging = await hook(() => 'hang');
    const closed = await seedWebhook(t.database.db, `http://127.0.0.1:${await freePort()}/hook`);
    const seeded = [
      ...(await seedDeliveries(t.database.db, delivered.webhook)),
      ...(await seedDeliveries(t.database.db, refused.webhook, EXPIRED)),
      ...(await seedDeliveries(t.database.db, hanging.webhook, EXPIRED)),
      ...(await seedDeliveries(t.database.db, closed, EXPIRED)),
    ];
    t.app.webhookWorker.wake();
    for (const delivery of seeded) await settled(delivery);
    const after = await scrape(t.app);
    const delta = (name: string, labels?: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta(ATTEMPTS, { outcome: 'delivered' })).toBe(1);
    expect(delta(ATTEMPTS, { outcome: 'http_error' })).toBe(1);
    expect(delta(ATTEMPTS, { outcome: 'timeout' })).toBe(1);
    expect(delta(ATTEMPTS, { outcome: 'network_error' })).toBe(1);
    expect(delta(ATTEMPTS, { outcome: 'blocked' })).toBe(0);
    expect(delta('keymint_webhook_attempt_duration_seconds_count')).toBe(4);
    expect(after).toContain('# TYPE keymint_webhook_attempt_duration_seconds histogram');
  });

  it('prunes events older than 30 days once their deliveries ended, in bounded batches; deliveries go with them', async () => {
    const { webhook } = await hook();
    const db = t.database.db;
    const days = (n: number) => n * 24 * 3_600_000;
    const oldEnded = [
      ...(await seedDeliveries(db, webhook, { count: 2, createdAgoMs: days(31), status: 'delivered' })),
      ...(await seedDeliveries(db, webhook, { createdAgoMs: days(40), status: 'failed' })),
    ];
    // Still pending (a retry asked for by hand), and not due while the test runs.
    const oldPending = await seedDeliveries(db, webhook, { createdAgoMs: days(31), dueInMs: 3_600_000 });
    const recent = await seedDeliveries(db, webhook, { createdAgoMs: days(29), status: 'delivered' });

    expect(await pruneWebhookEvents(db, { batchSize: 2, maxBatches: 1 })).toBe(2);
    expect(await pruneWebhookEvents(db)).toBe(1);
    expect(await pruneWebhookEvents(db)).toBe(0);

    const eventIds = [...oldEnded, ...oldPending, ...recent].map((row) => row.eventId);
    const events = await db
      .select({ id: webhookEvents.id })
      .from(webhookEvents)
      .where(inArray(webhookEvents.id, eventIds));
    expect(events.map((row) => row.id).sort()).toEqual([oldPending[0]!.eventId, recent[0]!.eventId].sort());
    const deliveries = await db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(
        inArray(
          webhookDeliveries.id,
          oldEnded.map((row) => row.deliveryId),
        ),
      );
    expect(deliveries).toEqual([]);
    await deleteWebhook(db, webhook.id);
  });
});

describe('webhook delivery without WEBHOOKS_ALLOW_PRIVATE', () => {
  const t = useTestApp({ ...WORKER, WEBHOOKS_ALLOW_PRIVATE: '' }, { ownDatabase: true });
  const receiver = receiverOf();
  const { settled } = deliveriesOf(t, receiver);

  it('sends nothing to a loopback address, by IP literal or by name, and records the attempt as blocked', async () => {
    const before = await scrape(t.app);
    const { port } = new URL(receiver().url);
    const seeded: SeededDelivery[] = [];
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      const webhook = await seedWebhook(t.database.db, `http://${host}:${port}/hook`);
      seeded.push(...(await seedDeliveries(t.database.db, webhook, EXPIRED)));
    }
    t.app.webhookWorker.wake();
    for (const delivery of seeded) {
      expect(await settled(delivery)).toMatchObject({
        status: 'failed',
        attempts: 1,
        lastStatusCode: null,
        lastError: 'blocked: non-public address',
      });
    }
    expect(receiver().requests).toEqual([]);
    const after = await scrape(t.app);
    const labels = { outcome: 'blocked' };
    expect(sample(after, ATTEMPTS, labels) - sample(before, ATTEMPTS, labels)).toBe(3);
  });
});

describe('webhook backlog metrics, in a process without the worker', () => {
  const t = useTestApp({ WEBHOOKS_WORKER: 'false' }, { ownDatabase: true });

  it('reports due, pending and failed deliveries at scrape time; wake() does nothing', async () => {
    const db = t.database.db;
    const webhook = await seedWebhook(db, 'https://receiver.example/hook');
    await seedDeliveries(db, webhook, { count: 2 });
    await seedDeliveries(db, webhook, { dueInMs: 60_000 });
    await seedDeliveries(db, webhook, { status: 'failed' });
    await seedDeliveries(db, webhook, { status: 'delivered' });
    t.app.webhookWorker.wake();
    const text = await scrape(t.app);
    expect(sample(text, 'keymint_webhook_deliveries', { state: 'due' })).toBe(2);
    expect(sample(text, 'keymint_webhook_deliveries', { state: 'pending' })).toBe(3);
    expect(sample(text, 'keymint_webhook_deliveries', { state: 'failed' })).toBe(1);
    for (const outcome of ['delivered', 'http_error', 'timeout', 'network_error', 'blocked']) {
      expect(text).toContain(`${ATTEMPTS}{outcome="${outcome}"}`);
    }
  });
});

describe('webhook worker shutdown', () => {
  const receiver = receiverOf();

  it('close() lets an attempt in flight finish, gives one that does not back (due again, not counted), and returns', async () => {
    // Grace: half the 6 s timeout, so the hanging attempt is cut short by the shutdown.
    const t = await createTestApp({ ...WORKER, WEBHOOKS_TIMEOUT_MS: '6000' }, { ownDatabase: true });
    let closed = false;
    try {
      const { hook } = deliveriesOf(t, receiver);
      const slow = await hook(() => ({ status: 200, delayMs: 1000 }));
      const hanging = await hook(() => 'hang');
      const [finishing] = await seedDeliveries(t.database.db, slow.webhook);
      const [cutShort] = await seedDeliveries(t.database.db, hanging.webhook);
      t.app.webhookWorker.wake();
      await expect.poll(() => receiver().to(slow.path).length + receiver().to(hanging.path).length, WAIT).toBe(2);

      await t.app.close();
      closed = true;

      expect(await deliveryRow(t.database.db, finishing!.deliveryId)).toMatchObject({
        status: 'delivered',
        attempts: 1,
      });
      expect(await deliveryRow(t.database.db, cutShort!.deliveryId)).toMatchObject({
        status: 'pending',
        attempts: 0,
        lease: null,
        lastError: null,
      });
      expect(await isDueNow(t.database.db, cutShort!.deliveryId)).toBe(true);
    } finally {
      if (!closed) await t.app.close();
      await t.database.close();
    }
  });
});

describe('webhook worker and a database error', () => {
  const receiver = receiverOf();

  it('logs a warning, keeps running and delivers once the database answers again; no secret is logged', async () => {
    const lines: string[] = [];
    const database = await openIsolatedDatabase();
    const app = await buildApp({
      config: testConfig(WORKER),
      database,
      logger: { level: 'debug', stream: { write: (line: string) => void lines.push(line) } },
    });
    try {
      await app.ready();
      const db = database.db;
      const webhook = await seedWebhook(db, `${receiver().url}/after-outage`);
      await db.execute(sql`alter table webhook_deliveries rename to webhook_deliveries_away`);
      app.webhookWorker.wake();
      await expect.poll(() => lines.some((line) => line.includes('cannot reach the database')), WAIT).toBe(true);
      expect(JSON.parse(lines.find((line) => line.includes('cannot reach the database'))!).level).toBe(40);
      await db.execute(sql`alter table webhook_deliveries_away rename to webhook_deliveries`);

      // Found by the next round, one poll interval later.
      const [delivery] = await seedDeliveries(db, webhook);
      await expect.poll(async () => (await deliveryRow(db, delivery!.deliveryId)).status, WAIT).toBe('delivered');
      const signature = receiver().to('/after-outage')[0]!.headers['keymint-signature'] as string;
      expect(lines.some((line) => line.includes('webhook attempt'))).toBe(true);
      for (const line of lines) {
        expect(line).not.toContain(webhook.secret);
        expect(line).not.toContain(signature.split('v1=')[1]);
      }
    } finally {
      await app.close();
      await database.close();
    }
  });
});
