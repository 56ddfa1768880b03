import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, jwtVerify } from 'jose';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFreshDatabase } from '../../../scripts/server-process.js';
import { buildApp } from '../../../src/app.js';
import { type Database, openPostgres } from '../../../src/db/client.js';
import { migratePostgresDatabase } from '../../../src/db/migrate.js';
import { openPglite } from '../../../src/db/pglite.js';
import { decodeBackup } from '../../../src/modules/backup/archive.js';
import { backupCommand, restoreCommand } from '../../../src/modules/backup/command.js';
import { ADMIN_TOKEN, createTestApp, testConfig, usingPostgres } from '../../helpers/app.js';
import { runCli } from '../../helpers/cli.js';
import {
  admin,
  client,
  createKey,
  createTenant,
  expectError,
  getLicense,
  type Tenant,
  uniqueEmail,
} from '../../helpers/fixtures.js';

const SECRET_KEY = 'backup-test-secret-key-0123456789';
// Webhooks on 127.0.0.1 are refused otherwise; the worker stays off (testConfig), so rows stay put.
const ENV = { SECRET_KEY, WEBHOOKS_ALLOW_PRIVATE: 'true' };
const run = promisify(execFile);
/** How many migrations the server has (drizzle's journal): a backup's header counts them. */
const MIGRATIONS: number = JSON.parse(readFileSync('migrations/meta/_journal.json', 'utf8')).entries.length;

type Rows = Record<string, string[]>;

/**
 * Every row of every table (public and drizzle's migrations), as JSON text in a stable order,
 * and every sequence's position: found in the catalog, so a new table cannot be forgotten.
 */
async function snapshot(query: (text: string) => Promise<Record<string, unknown>[]>): Promise<Rows> {
  const tables = await query(
    `select quote_ident(table_schema) || '.' || quote_ident(table_name) as name from information_schema.tables
      where table_schema in ('public', 'drizzle') and table_type = 'BASE TABLE' order by 1`,
  );
  const rows: Rows = {};
  for (const { name } of tables as { name: string }[]) {
    rows[name] = (await query(`select to_jsonb(t)::text as row from ${name} t order by 1`)).map((r) => String(r.row));
  }
  rows.sequences = (
    await query(`select schemaname || '.' || sequencename || '=' || coalesce(last_value::text, '-') as s
                   from pg_sequences where schemaname in ('public', 'drizzle') order by 1`)
  ).map((r) => String(r.s));
  return rows;
}

const pgliteRows = (client: PGlite) =>
  snapshot(async (text) => (await client.query<Record<string, unknown>>(text)).rows);

interface State {
  tenant: Tenant;
  key: string;
  licenseToken: string;
  kid: string;
}

/**
 * Writes a row into every table through HTTP: a webhook (deliveries follow every event), an
 * account with a product and a token, keys with customers, devices, a floating session, a
 * blocked key, an idempotency record, and a signed license file (the first signing key).
 */
async function buildState(app: FastifyInstance): Promise<State> {
  const tenant = await createTenant(app);
  const webhook = await admin(app).post('/admin/webhooks', {
    url: 'http://127.0.0.1:9/keymint',
    accountId: tenant.accountId,
  });
  expect(webhook.status, JSON.stringify(webhook.body)).toBe(201);
  const key = await createKey(tenant, {
    maxActivations: '3',
    metadata: { plan: 'pro' },
    newCustomer: { name: 'Ada Park', email: uniqueEmail('ada') },
  });
  for (const hostId of ['host-a', 'host-b']) {
    const activated = await tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId });
    expect(activated.status, JSON.stringify(activated.body)).toBe(200);
  }
  const customer = await tenant.api.post('/customer', { name: 'Lin Wu', email: uniqueEmail('lin') });
  expect(customer.status).toBe(201);
  const batch = await tenant.api.post(
    '/key',
    { productId: tenant.productId, amountKeys: 3, customerId: customer.body.data.id },
    { 'idempotency-key': 'backup-order-1' },
  );
  expect(batch.status, JSON.stringify(batch.body)).toBe(200);
  const blocked = await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: batch.body.keys[0] });
  expect(blocked.status).toBe(200);
  const floating = await createKey(tenant, { licenseType: 'floating', maxConcurrentSessions: 2 });
  const session = await tenant.api.post('/key/checkout', {
    productId: tenant.productId,
    licenseKey: floating,
    hostId: 'host-f',
  });
  expect(session.status, JSON.stringify(session.body)).toBe(200);
  const signed = await tenant.api.post('/key/sign', {
    productId: tenant.productId,
    licenseKey: key,
    hostId: 'host-a',
    ttl: 3600,
  });
  expect(signed.status, JSON.stringify(signed.body)).toBe(200);
  return { tenant, key, licenseToken: signed.body.file.licenseToken, kid: signed.body.file.keyId };
}

function expectEveryTableFilled(rows: Rows) {
  const empty = Object.entries(rows).filter(([, list]) => list.length === 0);
  expect(empty.map(([name]) => name)).toEqual([]);
  expect(Object.keys(rows).length).toBeGreaterThanOrEqual(14); // 12 tables, drizzle's, sequences
}

/** The restored server answers as the original did: the token hash and the signing key came along. */
async function expectServesLikeBefore(app: FastifyInstance, state: State, license: unknown) {
  const { tenant } = state;
  const api = { ...tenant, api: client(app, tenant.token) };
  expect(await getLicense(api, state.key)).toEqual(license);
  const jwks = await api.api.get('/.well-known/jwks.json');
  const { protectedHeader } = await jwtVerify(state.licenseToken, createLocalJWKSet(jwks.body), {
    algorithms: ['EdDSA'],
  });
  expect(protectedHeader.kid).toBe(state.kid);
  const again = await api.api.post('/key/sign', {
    productId: tenant.productId,
    licenseKey: state.key,
    hostId: 'host-a',
    ttl: 3600,
  });
  expect(again.status, JSON.stringify(again.body)).toBe(200);
  expect(again.body.file.keyId).toBe(state.kid);
}

describe.skipIf(usingPostgres)('backup and restore of the embedded database', { timeout: 180_000 }, () => {
  // On PostgreSQL runs the embedded round trip would repeat the PGlite run's; pg_dump is tested below.
  let root = '';
  let dataA = '';
  let dataB = '';
  let databaseA: Awaited<ReturnType<typeof openPglite>>;
  let appA: FastifyInstance;
  let urlA = '';
  let state: State;
  let before: Rows;
  let license: unknown;
  const file = () => join(root, 'keymint.backup');
  const config = (dataDir: string) => testConfig({ ...ENV, DATA_DIR: dataDir });

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'keymint-backup-'));
    dataA = join(root, 'a');
    dataB = join(root, 'b');
    cpSync(inject('pgliteTemplateDir'), dataA, { recursive: true });
    // The server of DATA_DIR a, in this process: it holds a's lock, as `keymint-server serve` would.
    databaseA = await openPglite({ dataDir: dataA });
    appA = await buildApp({ config: config(dataA), database: databaseA });
    urlA = await appA.listen({ port: 0, host: '127.0.0.1' });
    state = await buildState(appA);
    license = await getLicense(state.tenant, state.key);
    before = await pgliteRows(databaseA.client);
  });
  afterAll(async () => {
    await appA?.close();
    await databaseA?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('GET /admin/backup answers the file to the admin token only', async () => {
    expectError(await client(appA).get('/admin/backup'), 401, 1, 'Invalid access token');
    expectError(await client(appA, state.tenant.token).get('/admin/backup'), 401, 1, 'Invalid access token');
    const response = await admin(appA).get('/admin/backup');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['content-disposition']).toMatch(/^attachment; filename="keymint-\d{8}T\d{6}Z\.backup"$/);
    expect(response.headers['cache-control']).toBe('no-store');
    const { header } = decodeBackup(response.raw.rawPayload);
    expect(header).toMatchObject({ format: 'pglite-data-dir', pglite: '0.5.17', migrations: MIGRATIONS });
  });

  it('backs up the running server through GET /admin/backup, and restores it into a new DATA_DIR', async () => {
    expectEveryTableFilled(before);
    // state.tenant's client talks to appA through inject; GET /key over the socket while the backup runs.
    let served = 0;
    let backupDone = false;
    const reads = (async () => {
      const failures: number[] = [];
      while (!backupDone) {
        const response = await fetch(
          `${urlA}/key?productId=${state.tenant.productId}&licenseKey=${encodeURIComponent(state.key)}`,
          { headers: { authorization: `Bearer ${state.tenant.token}` } },
        );
        await response.arrayBuffer();
        if (response.status === 200) served++;
        else failures.push(response.status);
      }
      return failures;
    })();
    const backup = await runCli(['backup', file(), '--url', urlA, '--json'], { ADMIN_TOKEN, DATABASE_URL: '' });
    backupDone = true;
    expect(backup.code, backup.stderr).toBe(0);
    expect(await reads).toEqual([]);
    expect(served).toBeGreaterThan(0);
    const made = JSON.parse(backup.stdout);
    expect(made).toMatchObject({ file: file(), size: statSync(file()).size, header: { migrations: MIGRATIONS } });
    expect(statSync(file()).mode & 0o777).toBe(0o600);
    expect(readdirSync(root).sort()).toEqual(['a', 'keymint.backup']); // no temporary file left

    // The server holds DATA_DIR a: a restore there is refused, and a is untouched.
    const refused = await runCli(['restore', file(), '--force'], { DATA_DIR: dataA, DATABASE_URL: '' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/in use by a running keymint-server \(pid \d+\)\. Stop it first/);
    expect(await pgliteRows(databaseA.client)).toEqual(before);

    const restored = await runCli(['restore', file()], { DATA_DIR: dataB, DATABASE_URL: '' });
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`into ${dataB}`);
    expect(existsSync(join(dataB, 'keymint-server.pid'))).toBe(false); // a's lock did not come along
    expect(readdirSync(root).sort()).toEqual(['a', 'b', 'keymint.backup']);

    const databaseB = await openPglite({ dataDir: dataB });
    try {
      expect(await pgliteRows(databaseB.client)).toEqual(before);
      const appB = await buildApp({ config: config(dataB), database: databaseB });
      try {
        await appB.ready();
        await expectServesLikeBefore(appB, state, license);
      } finally {
        await appB.close();
      }
    } finally {
      await databaseB.close();
    }
  });

  it('backs up offline from DATA_DIR; an older backup is migrated on restore; --force keeps the old data', async () => {
    await appA.close();
    await databaseA.close();
    // Make an older database: the latest migration (0006, the access-token triggers) not
    // applied yet.
    const old = await PGlite.create(dataA);
    await old.exec(`drop function keymint_notify_access_token_change() cascade;
      delete from drizzle.__drizzle_migrations where created_at = (select max(created_at) from drizzle.__drizzle_migrations)`);
    await old.close();

    const offline = join(root, 'offline.backup');
    const made = await backupCommand(config(dataA), offline, undefined);
    expect(made.json).toMatchObject({ source: dataA, header: { migrations: MIGRATIONS - 1 } });
    expect(statSync(offline).mode & 0o777).toBe(0o600);

    const result = await restoreCommand(config(dataB), offline, true);
    const movedAside = (result.json as { movedAside: string }).movedAside;
    expect(movedAside).toMatch(/\/b\.before-restore-\d{8}T\d{6}Z$/);
    // The data that was in b (the first restore) is kept, renamed, without a lock file.
    expect(existsSync(join(movedAside, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(movedAside, 'keymint-server.pid'))).toBe(false);

    const restored = await PGlite.create(dataB);
    try {
      // Every row is back, and the migration the backup lacked was applied on restore.
      // (drizzle's table got a new id for it: compared by hash.)
      const rows = await pgliteRows(restored);
      const tables = (all: Rows) =>
        Object.fromEntries(Object.entries(all).filter(([name]) => name.startsWith('public.')));
      const migrations = (all: Rows) => (all['drizzle.__drizzle_migrations'] ?? []).map((row) => JSON.parse(row).hash);
      expect(tables(rows)).toEqual(tables(before));
      expect(migrations(rows)).toEqual(migrations(before));
      expect(migrations(rows)).toHaveLength(MIGRATIONS);
      const triggers = await restored.query(
        `select tgname from pg_trigger where tgrelid = 'access_tokens'::regclass and not tgisinternal order by 1`,
      );
      expect(triggers.rows).toEqual([{ tgname: 'access_tokens_changed' }, { tgname: 'access_tokens_truncated' }]);
    } finally {
      await restored.close();
    }
  });

  it('refuses an empty, garbage, truncated or damaged file, and a non-empty DATA_DIR without --force', async () => {
    const good = readFileSync(file());
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /the file is empty/],
      ['garbage', Buffer.from('PK\u0003\u0004 this is a zip file, not a backup'), /not a keymint-server backup/],
      ['header only', good.subarray(0, 30), /the file is truncated \(it ends inside the header\)/],
      [
        'truncated',
        good.subarray(0, good.length - 1000),
        /the file is truncated: the database part has \d+ of its \d+ bytes/,
      ],
      ['damaged', Buffer.from(good).fill(0x41, good.length - 5000, good.length - 4000), /damaged: its checksum/],
    ];
    const listing = () => readdirSync(root).sort();
    const unchanged = listing();
    const restoredRows = readdirSync(dataB).sort();
    for (const [name, content, message] of cases) {
      const bad = join(root, `${name}.backup`);
      writeFileSync(bad, content);
      await expect(restoreCommand(config(dataB), bad, true), name).rejects.toThrow(message);
      await expect(restoreCommand(config(join(root, 'new')), bad, false), name).rejects.toThrow(
        `Cannot restore ${bad}: `,
      );
      rmSync(bad);
    }
    expect(listing()).toEqual(unchanged);
    expect(readdirSync(dataB).sort()).toEqual(restoredRows);
    await expect(restoreCommand(config(dataB), file(), false)).rejects.toThrow(
      `${dataB} (DATA_DIR) is not empty. Restore into an empty or new directory, or pass --force`,
    );
    await expect(backupCommand(config(join(root, 'none')), join(root, 'x.backup'), undefined)).rejects.toThrow(
      /There is no embedded database in .*none \(DATA_DIR\)/,
    );
    expect(listing()).toEqual(unchanged);
  });
});

describe.skipIf(!usingPostgres)('backups on PostgreSQL', { timeout: 120_000 }, () => {
  it('GET /admin/backup answers 409, telling to use pg_dump; the CLI commands refuse too', async () => {
    const { app, close } = await createTestApp();
    try {
      expectError(await admin(app).get('/admin/backup'), 409, 1, 'The database is PostgreSQL: back it up with pg_dump');
    } finally {
      await close();
    }
    const config = testConfig({ DATABASE_URL: process.env.DATABASE_URL! });
    await expect(backupCommand(config, '/nonexistent/x.backup', undefined)).rejects.toThrow(
      'DATABASE_URL is set: back up PostgreSQL with pg_dump',
    );
    await expect(restoreCommand(config, '/nonexistent/x.backup', false)).rejects.toThrow(
      'DATABASE_URL is set: restore PostgreSQL with pg_restore',
    );
  });

  const hasPgDump = (() => {
    try {
      execFileSync('sh', ['-c', 'command -v pg_dump && command -v pg_restore'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasPgDump)('pg_dump -Fc and pg_restore keep every row, and the restored server serves', async () => {
    const source = await createFreshDatabase();
    const target = await createFreshDatabase();
    const root = mkdtempSync(join(tmpdir(), 'keymint-pgdump-'));
    let database: Database | undefined;
    try {
      await migratePostgresDatabase(source.url);
      database = openPostgres({ url: source.url, poolSize: 2 });
      const app = await buildApp({ config: testConfig(ENV), database });
      await app.ready();
      const state = await buildState(app);
      const license = await getLicense(state.tenant, state.key);
      await app.close();
      await database.close();
      database = undefined;

      const dump = join(root, 'keymint.dump');
      await run('pg_dump', ['-Fc', '--no-owner', '-f', dump, '-d', source.url]);
      await run('pg_restore', ['--no-owner', '--exit-on-error', '-d', target.url, dump]);
      const rowsOf = async (url: string) => {
        const sql = postgres(url, { max: 1, onnotice: () => {} });
        try {
          return await snapshot((text) => sql.unsafe(text));
        } finally {
          await sql.end();
        }
      };
      const before = await rowsOf(source.url);
      expectEveryTableFilled(before);
      expect(await rowsOf(target.url)).toEqual(before);

      await migratePostgresDatabase(target.url); // what a server does at start: nothing to apply
      database = openPostgres({ url: target.url, poolSize: 2 });
      const restored = await buildApp({ config: testConfig(ENV), database });
      try {
        await restored.ready();
        await expectServesLikeBefore(restored, state, license);
      } finally {
        await restored.close();
      }
    } finally {
      await database?.close();
      await source.drop();
      await target.drop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
