import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFreshDatabase, request, startServer } from '../../../scripts/server-process.js';
import { migratePostgresDatabase } from '../../../src/db/migrate.js';
import { ADMIN_TOKEN, usingPostgres } from '../../helpers/app.js';
import { runCli } from '../../helpers/cli.js';
import { JWKS_PATH, KID } from './helpers.js';

const SECRET = 'cli-secret-key-0123456789abcdef';

// The database of this file: a DATA_DIR of its own (PGlite, a copy of the migrated template) or
// a fresh PostgreSQL database.
let root: string;
let env: Record<string, string>;
let dropDatabase: (() => Promise<void>) | undefined;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'keymint-signing-cli-'));
  if (usingPostgres) {
    const fresh = await createFreshDatabase();
    await migratePostgresDatabase(fresh.url);
    env = { DATABASE_URL: fresh.url };
    dropDatabase = () => fresh.drop();
  } else {
    cpSync(inject('pgliteTemplateDir'), join(root, 'data'), { recursive: true });
    env = { DATA_DIR: join(root, 'data') };
  }
});
afterAll(async () => {
  await dropDatabase?.();
  rmSync(root, { recursive: true, force: true });
});

const run = (args: string[], extra: Record<string, string> = {}, timeout = 60_000) =>
  runCli(args, { SECRET_KEY: '', ...env, ...extra }, timeout);

async function json(args: string[], extra: Record<string, string> = {}) {
  const result = await run([...args, '--json'], extra);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

describe('keymint-server signing-keys', { timeout: 240_000 }, () => {
  let first: string;
  let second: string;

  it('list on a database without keys; rotate creates the first key, then retires it', async () => {
    expect(await json(['signing-keys', 'list'])).toEqual([]);
    expect((await run(['signing-keys', 'list'])).stdout.trim()).toBe('(none)');

    const created = await json(['signing-keys', 'rotate']);
    expect(created).toEqual({ kid: expect.stringMatching(KID), retired: [] });
    first = created.kid;

    const human = await run(['signing-keys', 'rotate']);
    expect(human.code, human.stderr).toBe(0);
    const match = /^New current signing key ([A-Za-z0-9_-]{43}); retired ([A-Za-z0-9_-]{43})$/.exec(
      human.stdout.trim(),
    );
    expect(match?.[2]).toBe(first);
    second = match![1]!;
  });

  it('list shows the current key first, then the retired ones; --json and a table', async () => {
    const listed = await json(['signing-keys', 'list']);
    expect(listed).toEqual([
      { kid: second, status: 'current', encrypted: false, createdAt: expect.any(String), retiredAt: null },
      { kid: first, status: 'retired', encrypted: false, createdAt: expect.any(String), retiredAt: expect.any(String) },
    ]);
    const table = (await run(['signing-keys', 'list'])).stdout.trim().split('\n');
    expect(table[0]!.split(/\s+/)).toEqual(['kid', 'status', 'encrypted', 'createdAt', 'retiredAt']);
    expect(table[1]).toMatch(new RegExp(`^${second}\\s+current\\s+false\\s+\\S+\\s+-$`));
    expect(table[2]).toMatch(new RegExp(`^${first}\\s+retired\\s+false\\s+\\S+\\s+\\S+$`));
  });

  it('an unknown action is a usage error (exit 2)', async () => {
    const result = await run(['signing-keys', 'delete']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Unknown command: signing-keys delete');
    expect(result.stderr).toContain('signing-keys rotate');
  });

  it('with SECRET_KEY, rotate encrypts the new key and the stored plain ones', async () => {
    const rotated = await json(['signing-keys', 'rotate'], { SECRET_KEY: SECRET });
    expect(rotated.retired).toEqual([second]);
    const listed = await json(['signing-keys', 'list']);
    expect(listed.map((key: { kid: string }) => key.kid)).toEqual([rotated.kid, second, first]);
    expect(listed.map((key: { encrypted: boolean }) => key.encrypted)).toEqual([true, true, true]);
  });

  it('refuses to rotate without SECRET_KEY or with another one once keys are encrypted (exit 1)', async () => {
    const missing = await run(['signing-keys', 'rotate']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'keymint-server: SECRET_KEY is not set, but the database holds 3 signing key(s) encrypted with one: ' +
        'start with the SECRET_KEY they were encrypted with\n',
    );
    const wrong = await run(['signing-keys', 'rotate', '--json'], { SECRET_KEY: 'not-the-right-secret-key' });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout).error).toMatch(/^SECRET_KEY does not decrypt signing key /);
    expect((await json(['signing-keys', 'list'])).length).toBe(3);
  });

  it('serve refuses to start without SECRET_KEY or with a wrong one, naming SECRET_KEY; with it, it signs', async () => {
    const missing = await run(['serve'], { PORT: '0' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('keymint-server: SECRET_KEY is not set, but the database holds 3 signing key(s)');
    const wrong = await run(['serve'], { PORT: '0', SECRET_KEY: 'not-the-right-secret-key' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/keymint-server: SECRET_KEY does not decrypt signing key [A-Za-z0-9_-]{43}: /);

    const server = await startServer({ ...env, ADMIN_TOKEN, SECRET_KEY: SECRET });
    try {
      const product = await request(server.url, 'POST', '/admin/products', ADMIN_TOKEN, { name: 'CLI product' });
      const token = await request(server.url, 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 'cli' });
      const key = await request(server.url, 'POST', '/key', token.body.token, {
        productId: product.body.id,
        expiryDate: '2099-01-01',
      });
      const signed = await request(server.url, 'POST', '/key/sign', token.body.token, {
        productId: product.body.id,
        licenseKey: key.body.key,
        hostId: 'cli-host',
      });
      expect(signed.status, JSON.stringify(signed.body)).toBe(200);
      const jwks = await request(server.url, 'GET', JWKS_PATH, undefined);
      const verified = await jwtVerify(signed.body.file.licenseToken, createLocalJWKSet(jwks.body));
      expect(verified.payload.machine).toBe('cli-host');
      expect(jwks.body.keys).toHaveLength(3);
    } finally {
      await server.stop();
    }
  });
});
