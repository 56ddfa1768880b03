import { like } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { request, type ServerProcess, startServer } from '../../../scripts/server-process.js';
import { openDatabase } from '../../../src/db/open.js';
import { accounts } from '../../../src/db/schema/index.js';
import { sha256Hex } from '../../../src/lib/hashing.js';
import { newId } from '../../../src/lib/ids.js';
import { usingPostgres } from '../../helpers/app.js';
import { runCli, useCliDataDir } from '../../helpers/cli.js';
import { ALL_SCOPES, ERRORS, HEX_ID } from '../../helpers/fixtures.js';

const cliDatabase = useCliDataDir('keymint-cli-');

const cli = (...args: string[]) => runCli(args, cliDatabase.env);

async function cliJson(...args: string[]) {
  const run = await cli(...args, '--json');
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
}

describe('keymint-server CLI', { timeout: 180_000 }, () => {
  it('accounts create | list, with and without --json', async () => {
    const created = await cliJson('accounts', 'create', '--name', 'CLI Acme');
    expect(created).toEqual({ id: expect.stringMatching(HEX_ID), name: 'CLI Acme' });

    const human = await cli('accounts', 'create', '--name', 'CLI Human');
    expect(human.code).toBe(0);
    const humanId = /^Created account ([0-9a-f]{22}) \(CLI Human\)$/m.exec(human.stdout)?.[1];
    expect(humanId).toMatch(HEX_ID);

    const listed = await cliJson('accounts', 'list');
    const ids = listed.map((account: { id: string }) => account.id);
    expect(ids).toEqual(expect.arrayContaining([created.id, humanId]));
    expect(listed.filter((account: { isDefault: boolean }) => account.isDefault)).toHaveLength(1);
    expect(listed.find((account: { id: string }) => account.id === created.id)).toEqual({
      id: created.id,
      name: 'CLI Acme',
      isDefault: false,
      createdAt: expect.stringMatching(/Z$/),
    });

    const table = await cli('accounts', 'list');
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^id\s+name\s+isDefault\s+createdAt$/);
    expect(table.stdout).toMatch(new RegExp(`^${created.id}\\s+CLI Acme\\s+false\\s`, 'm'));
  });

  it('products create | list | update', async () => {
    const account = await cliJson('accounts', 'create', '--name', 'CLI Products');
    const editor = await cliJson('products', 'create', '--name', 'Editor', '--account', account.id);
    expect(editor).toEqual({ id: expect.stringMatching(HEX_ID), name: 'Editor', active: true, accountId: account.id });

    const legacy = await cli('products', 'create', '--name', 'Legacy', '--account', account.id, '--inactive');
    expect(legacy.code).toBe(0);
    expect(legacy.stdout).toMatch(
      new RegExp(`^Created product [0-9a-f]{22} \\(Legacy\\) in account ${account.id}$`, 'm'),
    );

    const updated = await cli('products', 'update', editor.id, '--name', 'Editor Pro', '--active', 'false');
    expect(updated.code).toBe(0);
    expect(updated.stdout.trim()).toBe(`Updated product ${editor.id}: name=Editor Pro active=false`);

    const listed = await cliJson('products', 'list', '--account', account.id);
    expect(listed.map((p: { name: string; active: boolean }) => [p.name, p.active])).toEqual([
      ['Editor Pro', false],
      ['Legacy', false],
    ]);
  });

  it('tokens create | list | revoke; the secret is printed once and never listed', async () => {
    const account = await cliJson('accounts', 'create', '--name', 'CLI Tokens');
    const product = await cliJson('products', 'create', '--name', 'P', '--account', account.id);
    const narrow = await cliJson(
      'tokens',
      'create',
      '--name',
      'ci',
      '--account',
      account.id,
      '--scopes',
      'licenses:read, licenses:write',
      '--products',
      product.id,
      '--expires-at',
      '2999-01-01',
    );
    expect(narrow).toEqual({
      id: expect.stringMatching(HEX_ID),
      name: 'ci',
      scopes: ['licenses:read', 'licenses:write'],
      productIds: [product.id],
      accountId: account.id,
      createdAt: expect.stringMatching(/Z$/),
      token: expect.stringMatching(/^at_[A-Za-z0-9_-]{40,}$/),
    });

    const human = await cli('tokens', 'create', '--name', 'ops', '--account', account.id);
    expect(human.code).toBe(0);
    const secret = /^(at_[A-Za-z0-9_-]{40,})$/m.exec(human.stdout)?.[1];
    expect(secret).toBeDefined();
    expect(human.stdout).toContain(`scopes:   ${ALL_SCOPES.join(', ')}`);
    expect(human.stdout).toContain('products: all');
    expect(human.stdout).toContain('This is the only time the token is shown');
    const opsId = /^Created token ([0-9a-f]{22}) \(ops\)$/m.exec(human.stdout)?.[1];

    const listed = await cli('tokens', 'list', '--account', account.id, '--json');
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(narrow.token);
    expect(listed.stdout).not.toContain(secret!);
    expect(listed.stdout).not.toContain(sha256Hex(narrow.token));
    expect(JSON.parse(listed.stdout)).toEqual([
      {
        id: narrow.id,
        name: 'ci',
        scopes: ['licenses:read', 'licenses:write'],
        productIds: [product.id],
        accountId: account.id,
        createdAt: narrow.createdAt,
        expiresAt: '2999-01-01T00:00:00.000Z',
      },
      expect.objectContaining({ id: opsId, name: 'ops', productIds: null, expiresAt: null }),
    ]);

    const revoked = await cli('tokens', 'revoke', opsId!);
    expect(revoked).toMatchObject({ code: 0, stdout: `Revoked token ${opsId}\n` });
    const after = await cliJson('tokens', 'list', '--account', account.id);
    expect(after.map((token: { id: string }) => token.id)).toEqual([narrow.id]);
  });

  it('usage errors exit 2 with the usage text', async () => {
    const cases: string[][] = [
      ['bogus'],
      ['accounts'],
      ['accounts', 'delete'],
      ['accounts', 'create', '--bogus'],
      ['accounts', 'create'],
      ['accounts', 'create', '--name', 'n'.repeat(256)],
      ['products', 'update', 'f'.repeat(22), '--active', 'maybe'],
      ['tokens', 'create', '--name', 'x', '--expires-at', 'next week'],
      ['tokens', 'revoke'],
    ];
    for (const args of cases) {
      const run = await cli(...args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(/^keymint-server: /);
      expect(run.stderr).toContain('Usage: keymint-server <command> [options]');
    }
  });

  it('unknown ids and invalid values exit 1 with the API message', async () => {
    const unknown = 'f'.repeat(22);
    const cases: [string[], string][] = [
      [['tokens', 'revoke', unknown], 'Token not found'],
      [['products', 'update', unknown, '--name', 'x'], 'Product not found'],
      [['products', 'list', '--account', unknown], 'Account not found'],
      [['tokens', 'create', '--name', 'x', '--account', unknown], 'Account not found'],
      [['tokens', 'create', '--name', 'x', '--scopes', 'licenses:admin'], 'Invalid scopes'],
      [['tokens', 'create', '--name', 'x', '--products', unknown], 'Product not found'],
      [['tokens', 'create', '--name', 'x', '--expires-at', '2000-01-01'], 'Invalid expiresAt'],
    ];
    for (const [args, message] of cases) {
      const run = await cli(...args);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({
        args,
        code: 1,
        stderr: `keymint-server: ${message}\n`,
      });
    }
    const json = await cli('tokens', 'revoke', unknown, '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ error: 'Token not found' });
  });

  it('a long --json list reaches a pipe complete', async () => {
    const open = () =>
      openDatabase({
        databaseUrl: process.env.DATABASE_URL,
        dataDir: cliDatabase.env.DATA_DIR ?? './data',
        dbPoolSize: 1,
      });
    const marker = `Pipe ${newId()} `;
    let database = await open();
    try {
      // ~100 KB of output, more than a pipe holds at once.
      await database.db
        .insert(accounts)
        .values(Array.from({ length: 400 }, (_, i) => ({ id: newId(), name: `${marker}${i}`.padEnd(250, '.') })));
    } finally {
      await database.close();
    }
    try {
      const listed = await cliJson('accounts', 'list');
      expect(listed.filter((account: { name: string }) => account.name.startsWith(marker))).toHaveLength(400);
    } finally {
      database = await open();
      await database.db.delete(accounts).where(like(accounts.name, `${marker}%`));
      await database.close();
    }
  });

  it('--help and migrate exit 0', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('tokens create --name NAME');
    const migrate = await cli('migrate');
    expect(migrate).toMatchObject({ code: 0, stdout: 'Database is up to date.\n' });
  });

  describe('with a running server', () => {
    let server: ServerProcess | undefined;
    afterAll(async () => server?.stop());

    it('a token created by the CLI works on the server; a revoked one is refused', async () => {
      const account = await cliJson('accounts', 'create', '--name', 'CLI Server');
      const product = await cliJson('products', 'create', '--name', 'P', '--account', account.id);
      const token = await cliJson(
        'tokens',
        'create',
        '--name',
        'live',
        '--account',
        account.id,
        '--products',
        product.id,
      );
      const doomed = await cliJson('tokens', 'create', '--name', 'doomed', '--account', account.id);
      await cli('tokens', 'revoke', doomed.id);

      server = await startServer(cliDatabase.env);
      const created = await request(server.url, 'POST', '/create-key', token.token, { productId: product.id });
      expect(created.status).toBe(200);
      expect(created.body).toEqual({ code: 0, key: expect.stringMatching(/^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$/) });
      const refused = await request(server.url, 'POST', '/create-key', doomed.token, { productId: product.id });
      expect(refused).toEqual(ERRORS.invalidToken);
    });

    it.skipIf(usingPostgres)('a CLI command refuses while the server holds the same DATA_DIR', async () => {
      expect(server).toBeDefined();
      const run = await cli('accounts', 'list');
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        /^keymint-server: The embedded database in .+ is in use by a running keymint-server \(pid \d+\)/,
      );
      expect(run.stderr).toContain('Stop that server first');
      const json = await cli('accounts', 'create', '--name', 'Refused', '--json');
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout).error).toMatch(/in use by a running keymint-server/);

      await server!.stop();
      server = undefined;
      const listed = await cliJson('accounts', 'list');
      expect(listed.map((account: { name: string }) => account.name)).not.toContain('Refused');
    });
  });
});
