import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/db/open.js';
import { webhooks } from '../../../src/db/schema/index.js';
import { runCli, useCliDataDir } from '../../helpers/cli.js';
import { HEX_ID, ISO_MS } from '../../helpers/fixtures.js';
import { ALL_EVENTS } from './helpers.js';

const SECRET = /^whsec_[A-Za-z0-9_-]{43}$/;
const PUBLIC_URL = 'https://203.0.113.7/hooks/keymint';

const cliDatabase = useCliDataDir('keymint-cli-webhooks-');

const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  runCli(args, { WEBHOOKS_ALLOW_PRIVATE: '', ...cliDatabase.env, ...extraEnv });

async function cliJson(...args: string[]) {
  const run = await cli([...args, '--json']);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
}

async function storedSecret(id: string) {
  const database = await openDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: cliDatabase.env.DATA_DIR ?? './data',
    dbPoolSize: 1,
  });
  try {
    const [row] = await database.db.select({ secret: webhooks.secret }).from(webhooks).where(eq(webhooks.id, id));
    return row?.secret;
  } finally {
    await database.close();
  }
}

describe('keymint-server webhooks', { timeout: 180_000 }, () => {
  it('create | list | delete; the secret is printed once and never listed', async () => {
    const account = await cliJson('accounts', 'create', '--name', 'CLI Webhooks');
    const chosen = await cliJson(
      'webhooks',
      'create',
      '--url',
      PUBLIC_URL,
      '--events',
      'customer.deleted, key.created,customer.deleted',
      '--account',
      account.id,
    );
    expect(chosen).toEqual({
      id: expect.stringMatching(HEX_ID),
      url: PUBLIC_URL,
      events: ['key.created', 'customer.deleted'],
      accountId: account.id,
      createdAt: expect.stringMatching(ISO_MS),
      secret: expect.stringMatching(SECRET),
    });
    expect(await storedSecret(chosen.id)).toBe(chosen.secret);

    const human = await cli(['webhooks', 'create', '--url', 'http://203.0.113.8/all', '--account', account.id]);
    expect(human.code, human.stderr).toBe(0);
    const allId = new RegExp(
      `^Created webhook ([0-9a-f]{22}) for http://203\\.0\\.113\\.8/all in account ${account.id}$`,
      'm',
    ).exec(human.stdout)?.[1];
    expect(allId).toMatch(HEX_ID);
    expect(human.stdout).toContain(`events: ${ALL_EVENTS.join(', ')}`);
    const secret = /^(whsec_\S+)$/m.exec(human.stdout)?.[1];
    expect(secret).toMatch(SECRET);
    expect(await storedSecret(allId!)).toBe(secret);
    expect(human.stdout).toContain('This is the only time the signing secret is shown');

    const listed = await cli(['webhooks', 'list', '--account', account.id, '--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain('whsec_');
    expect(JSON.parse(listed.stdout)).toEqual([
      {
        id: chosen.id,
        url: PUBLIC_URL,
        events: ['key.created', 'customer.deleted'],
        accountId: account.id,
        createdAt: chosen.createdAt,
      },
      {
        id: allId,
        url: 'http://203.0.113.8/all',
        events: ALL_EVENTS,
        accountId: account.id,
        createdAt: expect.any(String),
      },
    ]);

    const table = await cli(['webhooks', 'list', '--account', account.id]);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^id\s+url\s+events\s+accountId\s+createdAt$/);
    expect(table.stdout).toMatch(
      new RegExp(`^${chosen.id}\\s+${PUBLIC_URL}\\s+key\\.created,customer\\.deleted\\s`, 'm'),
    );
    expect(table.stdout).not.toContain('whsec_');

    const deleted = await cli(['webhooks', 'delete', allId!]);
    expect(deleted).toMatchObject({ code: 0, stdout: `Deleted webhook ${allId}\n` });
    const after = await cliJson('webhooks', 'list', '--account', account.id);
    expect(after.map((webhook: { id: string }) => webhook.id)).toEqual([chosen.id]);
    const json = await cli(['webhooks', 'delete', chosen.id, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ id: chosen.id, deleted: true });
    expect(await cliJson('webhooks', 'list', '--account', account.id)).toEqual([]);
  });

  it('without --account: the default account', async () => {
    const created = await cliJson('webhooks', 'create', '--url', PUBLIC_URL);
    const listed = await cliJson('webhooks', 'list');
    expect(listed.map((webhook: { id: string }) => webhook.id)).toContain(created.id);
    const accounts = await cliJson('accounts', 'list');
    const defaultAccount = accounts.find((account: { isDefault: boolean }) => account.isDefault);
    expect(created.accountId).toBe(defaultAccount.id);
    await cliJson('webhooks', 'delete', created.id);
  });

  it('refuses what the admin API refuses, with its message (exit 1)', async () => {
    const unknown = 'f'.repeat(22);
    const cases: [string[], string][] = [
      [['webhooks', 'create', '--url', 'http://127.0.0.1/x'], 'Invalid url'],
      [['webhooks', 'create', '--url', 'http://localhost/x'], 'Invalid url'],
      [['webhooks', 'create', '--url', 'ftp://203.0.113.7/x'], 'Invalid url'],
      [['webhooks', 'create', '--url', PUBLIC_URL, '--events', 'key.created,bogus'], 'Invalid events'],
      [['webhooks', 'create', '--url', PUBLIC_URL, '--events', ''], 'Invalid events'],
      [['webhooks', 'create', '--url', 'http://127.0.0.1/x', '--events', 'bogus'], 'Invalid url'],
      [['webhooks', 'create', '--url', PUBLIC_URL, '--account', unknown], 'Account not found'],
      [['webhooks', 'list', '--account', unknown], 'Account not found'],
      [['webhooks', 'delete', unknown], 'Webhook not found'],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({
        args,
        code: 1,
        stderr: `keymint-server: ${message}\n`,
      });
    }
    const json = await cli(['webhooks', 'create', '--url', 'http://10.1.2.3/x', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ error: 'Invalid url' });
  });

  it('WEBHOOKS_ALLOW_PRIVATE=true from the environment lets private addresses through', async () => {
    const run = await cli(['webhooks', 'create', '--url', 'http://127.0.0.1:9000/x', '--json'], {
      WEBHOOKS_ALLOW_PRIVATE: 'true',
    });
    expect(run.code, run.stderr).toBe(0);
    const created = JSON.parse(run.stdout);
    expect(created).toMatchObject({ url: 'http://127.0.0.1:9000/x', secret: expect.stringMatching(SECRET) });
    await cliJson('webhooks', 'delete', created.id);
    const bad = await cli(['webhooks', 'create', '--url', 'http://127.0.0.1/x'], { WEBHOOKS_ALLOW_PRIVATE: 'maybe' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^keymint-server: Invalid environment variable WEBHOOKS_ALLOW_PRIVATE/);
  });

  it('usage errors exit 2 with the usage text, which lists the webhook commands', async () => {
    for (const args of [
      ['webhooks'],
      ['webhooks', 'create'],
      ['webhooks', 'delete'],
      ['webhooks', 'create', '--url'],
    ]) {
      const run = await cli(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(/^keymint-server: /);
      expect(run.stderr).toContain('Usage: keymint-server <command> [options]');
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const line of [
      'webhooks create --url URL [--events a,b] [--account ID]',
      'webhooks list [--account ID]',
      'webhooks delete ID',
    ]) {
      expect(help.stdout).toContain(line);
    }
  });
});
