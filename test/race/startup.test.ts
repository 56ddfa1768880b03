import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';

const BIN = fileURLToPath(new URL('../../bin/keymint-server.js', import.meta.url));
const JOURNAL = fileURLToPath(new URL('../../migrations/meta/_journal.json', import.meta.url));

function runMigrate(url: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'migrate'],
      { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: stdout + stderr }),
    );
  });
}

describe.skipIf(!usingPostgres)('start-up on one fresh PostgreSQL database', () => {
  let database: { url: string; drop(): Promise<void> };
  let servers: ServerProcess[] = [];
  let sql: postgres.Sql;

  beforeAll(async () => {
    database = await createFreshDatabase();
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await sql?.end({ timeout: 5 });
    await database?.drop();
  });

  it('two servers and a migrate command started together all succeed; the schema is migrated once', async () => {
    const env = { DATABASE_URL: database.url, ADMIN_TOKEN };
    const [first, second, migrate] = await Promise.all([startServer(env), startServer(env), runMigrate(database.url)]);
    servers = [first, second];
    expect(migrate, migrate.output).toMatchObject({ code: 0 });

    for (const server of servers) {
      expect(await request(server.url, 'GET', '/readyz', undefined)).toEqual({
        status: 200,
        body: { code: 0, status: 'ready' },
      });
    }

    const journal = JSON.parse(readFileSync(JOURNAL, 'utf8')) as { entries: unknown[] };
    const applied = await sql`select hash from drizzle.__drizzle_migrations`;
    expect(applied).toHaveLength(journal.entries.length);
    expect(new Set(applied.map((row) => row.hash)).size).toBe(journal.entries.length);
    const defaults = await sql`select id from accounts where is_default`;
    expect(defaults).toHaveLength(1);
  }, 180_000);

  it('both processes serve the same data', async () => {
    const [first, second] = servers;
    expect(second).toBeDefined();
    const product = await request(first!.url, 'POST', '/admin/products', ADMIN_TOKEN, { name: 'Start-up product' });
    expect(product.status).toBe(201);
    const token = await request(second!.url, 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 'start-up' });
    expect(token.status).toBe(201);
    const created = await request(first!.url, 'POST', '/create-key', token.body.token, {
      productId: product.body.id,
      newCustomer: { name: 'Start-up customer', email: 'startup@example.com' },
    });
    expect(created.status).toBe(200);
    const query = new URLSearchParams({ productId: product.body.id, licenseKey: created.body.key });
    const read = await request(second!.url, 'GET', `/key?${query}`, token.body.token);
    expect(read.status).toBe(200);
    expect(read.body.data.customer).toMatchObject({ name: 'Start-up customer', email: 'startup@example.com' });
    expect(product.body.accountId).toBe((await sql`select id from accounts where is_default`)[0]!.id);
  });

  it('a server started later on the migrated database applies nothing new', async () => {
    const before = await sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
    const late = await startServer({ DATABASE_URL: database.url });
    servers.push(late);
    expect((await request(late.url, 'GET', '/readyz', undefined)).status).toBe(200);
    const after = await sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
    expect(after[0]!.n).toBe(before[0]!.n);
    expect(await sql`select id from accounts where is_default`).toHaveLength(1);
  }, 120_000);
});
