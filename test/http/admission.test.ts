/** Admission: the concurrency limit, the request timeout (whose writes roll back), event-loop shedding, shutdown. */

import { connect } from 'node:net';
import { count, eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { request } from '../../scripts/server-process.js';
import { devices, licenseKeys } from '../../src/db/schema/index.js';
import { useTestApp } from '../helpers/app.js';
import { type ApiResponse, activate, client, createKey, createTenant } from '../helpers/fixtures.js';
import { holdKeyLock } from '../helpers/hold-lock.js';
import { sample, scrape } from '../helpers/metrics.js';

const UNAVAILABLE = { message: 'Service unavailable', code: 1 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function deviceCount(testApp: ReturnType<typeof useTestApp>, key: string): Promise<number> {
  const [row] = await testApp.database.db
    .select({ n: count() })
    .from(devices)
    .innerJoin(licenseKeys, eq(devices.licenseKeyId, licenseKeys.id))
    .where(eq(licenseKeys.key, key));
  return row?.n ?? 0;
}

describe('MAX_CONCURRENT_REQUESTS', () => {
  const testApp = useTestApp({ MAX_CONCURRENT_REQUESTS: '3' });

  it('refuses requests beyond the limit at once with 503 and Retry-After; probes still answer', async () => {
    const tenant = await createTenant(testApp.app);
    const key = await createKey(tenant, { maxActivations: '10' });
    const lock = await holdKeyLock(testApp.database, key);
    let held: ApiResponse[];
    let refused: ApiResponse;
    let refusedMs: number;
    let health: ApiResponse;
    try {
      const inProgress = [1, 2, 3].map((n) => activate(tenant, key, { hostId: `held-${n}` }));
      await sleep(200);
      const started = performance.now();
      refused = await activate(tenant, key, { hostId: 'one-too-many' });
      refusedMs = performance.now() - started;
      health = await client(testApp.app).get('/healthz');
      await lock.release();
      held = await Promise.all(inProgress);
    } finally {
      await lock.release();
    }

    expect({ status: refused.status, body: refused.body }).toEqual({ status: 503, body: UNAVAILABLE });
    expect(refused.headers['retry-after']).toBe('1');
    // Refused before any work: it did not wait for the lock the others wait on.
    expect(refusedMs).toBeLessThan(150);
    expect(health.status).toBe(200);
    expect(held.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect(await deviceCount(testApp, key)).toBe(3);
    const text = await scrape(testApp.app);
    expect(sample(text, 'keymint_http_requests_shed_total', { reason: 'concurrency' })).toBe(1);
    expect(sample(text, 'keymint_http_requests_in_flight')).toBe(1); // the scrape itself
    // The limit counts requests in progress, not requests served: the next one is admitted.
    expect((await activate(tenant, key, { hostId: 'after' })).status).toBe(200);
  });
});

describe('REQUEST_TIMEOUT_MS', () => {
  const testApp = useTestApp({ REQUEST_TIMEOUT_MS: '500' });

  it('answers 503 when the request runs out of time, and its change never commits', async () => {
    const tenant = await createTenant(testApp.app);
    const key = await createKey(tenant, { maxActivations: '10' });
    const lock = await holdKeyLock(testApp.database, key);
    let timedOut: ApiResponse;
    let elapsed: number;
    try {
      const started = performance.now();
      timedOut = await activate(tenant, key, { hostId: 'too-late' });
      elapsed = performance.now() - started;
      // The request's transaction is still waiting for the lock: let it go on after the answer.
      await sleep(300);
    } finally {
      await lock.release();
    }
    await sleep(300);

    expect({ status: timedOut.status, body: timedOut.body }).toEqual({ status: 503, body: UNAVAILABLE });
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(3000);
    expect(await deviceCount(testApp, key)).toBe(0);
    const text = await scrape(testApp.app);
    expect(
      sample(text, 'keymint_http_request_timeouts_total') +
        sample(text, 'keymint_http_requests_total', { method: 'POST', route: '/key/activate', status_code: '503' }),
    ).toBeGreaterThanOrEqual(1);
    // The server goes on serving.
    expect((await activate(tenant, key, { hostId: 'in-time' })).status).toBe(200);
    expect(await deviceCount(testApp, key)).toBe(1);
  });

  it('drops the Idempotency-Key record of a timed-out request, so its retry runs the change once', async () => {
    const tenant = await createTenant(testApp.app);
    const key = await createKey(tenant, { maxActivations: '10' });
    const body = { productId: tenant.productId, licenseKey: key, hostId: 'retried' };
    const headers = { 'idempotency-key': `retry-${Date.now()}` };
    const lock = await holdKeyLock(testApp.database, key);
    let timedOut: ApiResponse;
    try {
      timedOut = await tenant.api.post('/key/activate', body, headers);
    } finally {
      await lock.release();
    }
    await sleep(300);
    const retry = await tenant.api.post('/key/activate', body, headers);
    const replay = await tenant.api.post('/key/activate', body, headers);

    expect(timedOut.status).toBe(503);
    expect(retry.status).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(await deviceCount(testApp, key)).toBe(1);
  });
});

describe('MAX_EVENT_LOOP_DELAY_MS (@fastify/under-pressure)', () => {
  const testApp = useTestApp({ MAX_EVENT_LOOP_DELAY_MS: '20' });

  it('sheds requests while the event loop lags, answers probes, and exports the delay', async () => {
    const tenant = await createTenant(testApp.app);
    // Enforced from two samples (2 s) after start-up.
    await sleep(2200);
    expect((await tenant.api.get('/customer')).status).toBe(200);
    // Longer than a sample: the mean delay of the sample it ends is above 20 ms whatever its phase.
    const stalledUntil = Date.now() + 3000;
    while (Date.now() < stalledUntil) {
      // A stalled event loop: what a process sees when more work arrives than it can parse.
    }
    await sleep(50);
    const shed = await tenant.api.get('/customer');
    const health = await client(testApp.app).get('/healthz');
    const text = await scrape(testApp.app);

    expect({ status: shed.status, body: shed.body }).toEqual({ status: 503, body: UNAVAILABLE });
    expect(health.status).toBe(200);
    expect(sample(text, 'keymint_http_requests_shed_total', { reason: 'event_loop_delay' })).toBe(1);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds \S+$/m);
    // A sample later, the loop is idle again and requests are served.
    await sleep(2100);
    expect((await tenant.api.get('/customer')).status).toBe(200);
  });
});

describe('shutting down', () => {
  const testApp = useTestApp();

  it('lets requests in progress finish, refuses new connections, and answers a request that arrives meanwhile with 503', async () => {
    const tenant = await createTenant(testApp.app);
    const key = await createKey(tenant, { maxActivations: '10' });
    const base = await testApp.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = new URL(base);
    const lock = await holdKeyLock(testApp.database, key);
    let late = '';
    let newConnection: unknown;
    let closing: Promise<undefined> | undefined;
    let inProgress: Promise<{ status: number; body: unknown }> | undefined;
    try {
      inProgress = request(base, 'POST', '/key/activate', tenant.token, {
        productId: tenant.productId,
        licenseKey: key,
        hostId: 'in-progress',
      });
      // A request whose headers are still arriving when the server starts closing.
      const socket = connect(Number(port), '127.0.0.1');
      socket.on('data', (chunk) => (late += chunk.toString()));
      const ended = new Promise((resolve) => socket.once('close', resolve));
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('GET /customer HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await sleep(200);
      closing = testApp.app.close();
      await sleep(100);
      socket.write(`Authorization: Bearer ${tenant.token}\r\n\r\n`);
      await ended; // closed by the server after its answer
      newConnection = await fetch(`${base}/healthz`).catch((err: Error) => (err.cause as { code?: string }).code);
    } finally {
      await lock.release();
    }
    const answer = await inProgress;
    await closing;

    expect(late).toMatch(/^HTTP\/1\.1 503 /);
    expect(late.toLowerCase()).toContain('connection: close');
    expect(late.slice(late.indexOf('\r\n\r\n') + 4)).toBe(JSON.stringify(UNAVAILABLE));
    expect(newConnection).toBe('ECONNREFUSED');
    expect(answer.status).toBe(200);
    expect(await deviceCount(testApp, key)).toBe(1);
  });
});
