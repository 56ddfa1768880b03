import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';

/**
 * One Idempotency-Key sent many times at once to two real server processes on one fresh
 * PostgreSQL database: the record lives in the database, so exactly one request runs whichever
 * process serves it, and every other one is answered from that record (or 409 while it runs).
 */
describe.skipIf(!usingPostgres)('idempotency across processes (PostgreSQL)', () => {
  let servers: ServerProcess[] = [];
  let database: Awaited<ReturnType<typeof createFreshDatabase>>;
  let sql: postgres.Sql;
  let token: string;
  let productId: string;
  let accountId: string;

  const serverFor = (i: number) => servers[i % servers.length]!.url;

  async function send(i: number, path: string, key: string, body: unknown) {
    const response = await fetch(`${serverFor(i)}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      text: await response.text(),
      replayed: response.headers.get('idempotent-replayed'),
    };
  }

  const inProgress = JSON.stringify({ message: 'A request with this Idempotency-Key is in progress', code: 1 });

  /** Exactly one answer ran (`status`, not replayed); the others are its bytes replayed, or 409/1. */
  function expectOneRun(results: Awaited<ReturnType<typeof send>>[], status: number) {
    const ran = results.filter((r) => r.status === status && r.replayed === null);
    expect(ran, JSON.stringify(results)).toHaveLength(1);
    for (const result of results) {
      if (result === ran[0]) continue;
      if (result.status === 409) expect(result).toEqual({ status: 409, text: inProgress, replayed: null });
      else expect(result).toEqual({ status, text: ran[0]!.text, replayed: 'true' });
    }
  }

  beforeAll(async () => {
    database = await createFreshDatabase();
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
    const env = { DATABASE_URL: database.url, ADMIN_TOKEN, DB_POOL_SIZE: '20' };
    servers = await Promise.all([startServer(env), startServer(env)]);
    ({ productId, token, accountId } = await provisionTenant(servers[0]!.url, ADMIN_TOKEN, 'Idempotency race'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await sql?.end({ timeout: 5 });
    await database?.drop();
  });

  const keyCount = async () =>
    Number((await sql`select count(*) as n from license_keys where account_id = ${accountId}`)[0]!.n);

  it('40 parallel create-key requests with one key over two processes: one key, one answer', async () => {
    for (let round = 0; round < 5; round++) {
      const before = await keyCount();
      const key = `race-${randomBytes(8).toString('hex')}`;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => send(i, '/create-key', key, { productId, usesPerKey: '3' })),
      );
      expectOneRun(results, 200);
      expect(await keyCount()).toBe(before + 1);
      // Settled: each process now answers from the record, with the very same bytes.
      const ran = results.find((r) => r.replayed === null && r.status === 200)!;
      for (let i = 0; i < 2; i++) {
        expect(await send(i, '/create-key', key, { productId, usesPerKey: '3' })).toEqual({
          status: 200,
          text: ran.text,
          replayed: 'true',
        });
      }
    }
  });

  it('20 parallel POST /customer with one key over two processes: one customer, 201 or 409/1', async () => {
    const email = `race-${randomBytes(4).toString('hex')}@example.com`;
    const key = `race-${randomBytes(8).toString('hex')}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(i, '/customer', key, { name: 'Racer', email })),
    );
    expectOneRun(results, 201);
    const customers = await sql`select id from customers where account_id = ${accountId} and email = ${email}`;
    expect(customers).toHaveLength(1);
  });
});
