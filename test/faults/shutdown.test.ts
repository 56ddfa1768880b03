import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const SHUTDOWN_TIMEOUT_MS = 10_000;
const BUSY = 50;

/**
 * SIGTERM while 50 connections each wait for an answer (their activations queue on a row lock the
 * test holds, and for the pool's 10 connections): new connections are refused at once, every
 * accepted request still gets its answer once the lock goes, and the process exits 0 in time.
 */
describe.skipIf(!usingPostgres)('graceful shutdown under load', () => {
  let fresh: Awaited<ReturnType<typeof createFreshDatabase>>;
  let server: ServerProcess;
  let sql: postgres.Sql;

  beforeAll(async () => {
    fresh = await createFreshDatabase();
    await migratePostgresDatabase(fresh.url);
    server = await startServer({
      DATABASE_URL: fresh.url,
      ADMIN_TOKEN,
      REQUEST_TIMEOUT_MS: '30000',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      LOG_LEVEL: 'info',
    });
    sql = postgres(fresh.url, { max: 2, onnotice: () => {} });
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await sql?.end({ timeout: 5 });
    await fresh?.drop();
  });

  it('answers every accepted request, refuses new ones, exits 0', async () => {
    const tenant = await provisionTenant(server.url, ADMIN_TOKEN, 'shutdown');
    const created = await request(server.url, 'POST', '/create-key', tenant.token, {
      productId: tenant.productId,
      maxActivations: String(BUSY),
    });
    expect(created.status).toBe(200);
    const key = created.body.key as string;

    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = sql.begin(async (tx) => {
      await tx`select id from license_keys where key = ${key} for update`;
      locked();
      await released;
    });
    await isLocked;

    const busy = Array.from({ length: BUSY }, (_, index) =>
      request(server.url, 'POST', '/activate-key', tenant.token, {
        productId: tenant.productId,
        licenseKey: key,
        hostId: `busy-${index}`,
      }).catch((err: Error) => ({ status: -1, body: `${err.message}: ${(err.cause as Error)?.message}` })),
    );
    // Every request is in: 10 wait on the lock in a transaction, the rest for a pool connection.
    for (let waited = 0; waited < 100; waited++) {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`;
      if ((row?.n ?? 0) >= 10) break;
      await sleep(100);
    }
    await sleep(500);

    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      server.child.once('exit', (code) => resolve({ code, at: performance.now() })),
    );
    const signalledAt = performance.now();
    server.child.kill('SIGTERM');
    await sleep(300);
    const newConnection = await fetch(`${server.url}/healthz`).then(
      (response) => response.status,
      (err: Error) => (err.cause as { code?: string }).code,
    );
    expect(server.child.exitCode).toBeNull(); // still draining
    release();
    await holder;
    const answers = await Promise.all(busy);
    const exit = await exited;

    expect(newConnection).toBe('ECONNREFUSED');
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    expect(exit.code).toBe(0);
    expect(exit.at - signalledAt).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    const [devices] = await sql<{ n: number }[]>`
      select count(*)::int as n from devices d join license_keys k on k.id = d.license_key_id where k.key = ${key}`;
    expect(devices?.n).toBe(BUSY);
    expect(server.output()).toContain('shutting down');
    console.log(`shutdown: ${BUSY} busy requests answered, exit 0 after ${Math.round(exit.at - signalledAt)} ms`);
  }, 90_000);
});
