import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';
import { COUNT_QUERY, expectNoHalfWrites, KILL_AFTER, runLoadAndKill, verifyAcknowledged } from './kill-load.js';

/** Issue 11 (1): a server killed with SIGKILL under load has lost nothing it acknowledged. */
describe.skipIf(!usingPostgres)('kill -9 under load (PostgreSQL)', () => {
  let database: { url: string; drop(): Promise<void> };
  let sql: postgres.Sql;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    database = await createFreshDatabase();
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
  });

  afterAll(async () => {
    await server?.stop();
    await sql?.end({ timeout: 5 });
    await database?.drop();
  });

  it('every acknowledged key, customer and device is there after a restart; nothing is half-written', async () => {
    const env = {
      DATABASE_URL: database.url,
      ADMIN_TOKEN,
      RATE_LIMIT_PER_MINUTE: '10000000',
      WEBHOOKS_WORKER: 'false',
    };
    const first = await startServer(env);
    server = first;
    const tenant = await provisionTenant(first.url, ADMIN_TOKEN, 'Kill -9 account');
    const record = await runLoadAndKill({ server: first, tenant, emailPrefix: 'pg', killAfter: KILL_AFTER });
    expect(record.acknowledged).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(record.refused, 'the activation limit was reached').toBeGreaterThan(0);

    server = await startServer(env);
    const verified = await verifyAcknowledged(server.url, tenant, record);
    await expectNoHalfWrites((text) => sql.unsafe(text) as Promise<{ n: number }[]>);
    const [counts] = await sql.unsafe(COUNT_QUERY);
    expect(counts!.keys).toBeGreaterThanOrEqual(record.keys.size);
    console.info(
      `kill -9 (PostgreSQL): ${record.sent} sent, ${record.acknowledged} acknowledged, ${record.refused} refused at the limit, ` +
        `${record.failed} without an answer; verified ${verified.keys} keys and ${verified.devices} devices; ` +
        `in the database ${counts!.keys} keys, ${counts!.devices} devices`,
    );
  }, 180_000);
});
