import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from './config.js';
import type { Database } from './db/client.js';
import { DataDirInUseError, staleLockMessage } from './db/data-dir-lock.js';
import { openDatabase } from './db/open.js';
import { withTransaction } from './db/unit-of-work.js';
import { parseIsoDate } from './lib/dates.js';
import { AppError } from './lib/errors.js';
import { createAccount, listAccounts } from './modules/admin/accounts.js';
import { createProduct, listProducts, updateProduct } from './modules/admin/products.js';
import { createAccessToken, listAccessTokens, revokeAccessToken } from './modules/admin/tokens.js';
import { BackupError } from './modules/backup/archive.js';
import { backupCommand, restoreCommand } from './modules/backup/command.js';
import { SigningKeys } from './modules/license-files/signing-keys.js';
import { exportCommand, importCommand } from './modules/transfer/command.js';
import { IMPORT_FORMATS, ON_CONFLICT } from './modules/transfer/format.js';
import { checkNewWebhook, createWebhook, deleteWebhook, listWebhooks } from './modules/webhooks/admin.js';

const USAGE = `Usage: keymint-server <command> [options]

Commands:
  serve                                   run the HTTP server (the default)
  migrate                                 apply pending database migrations
  accounts create --name NAME             create an account
  accounts list                           list accounts
  products create --name NAME [--account ID] [--inactive]
  products list [--account ID]
  products update ID [--name NAME] [--active true|false]
  tokens create --name NAME [--account ID] [--scopes a,b] [--products ID,ID] [--expires-at ISO]
  tokens list [--account ID]
  tokens revoke ID
  webhooks create --url URL [--events a,b] [--account ID]
  webhooks list [--account ID]
  webhooks delete ID
  signing-keys rotate                     make a new current key for offline license files
  signing-keys list                       list signing keys (current first; retired ones stay published)
  backup FILE [--url URL]                 back up the embedded database: through the server at URL while it
                                          runs (needs ADMIN_TOKEN), or from DATA_DIR while no server runs
  restore FILE [--force]                  restore a backup into DATA_DIR (server stopped; --force moves a
                                          non-empty DATA_DIR aside)
  export [--account ID] [--product ID] [--format jsonl|csv] [--out FILE]
                                          write every customer, key and device (stdout by default)
  import FILE [--account ID] [--product ID] [--format jsonl|csv|keygen] [--dry-run]
         [--on-conflict skip|update|fail] import keys, customers and devices (exit 1 if a line failed)

Options:
  --json    machine-readable output
  --help    show this help

The database is chosen by the environment, as for the server: DATABASE_URL (PostgreSQL)
or DATA_DIR (embedded, default ./data). signing-keys needs the server's SECRET_KEY when it is set;
webhooks create refuses private addresses unless WEBHOOKS_ALLOW_PRIVATE=true, as the server does.`;

export class UsageError extends Error {}

type Output = (human: string, json: unknown) => void;

const csv = (value: string | undefined) =>
  value === undefined
    ? undefined
    : value
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

/** Names follow the admin API's rule (1–255 chars), which the services do not repeat. */
function nameOption(value: string | undefined, flag: string): string {
  const name = required(value, flag);
  if (name.length > 255) throw new UsageError(`${flag} must be at most 255 characters`);
  return name;
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(none)';
  const columns = Object.keys(rows[0]!);
  const cell = (value: unknown) =>
    value === null || value === undefined ? '-' : Array.isArray(value) ? value.join(',') : String(value);
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns), ...rows.map((row) => line(columns.map((column) => cell(row[column]))))].join('\n');
}

async function runAdminCommand(
  database: Database,
  config: Config,
  group: string,
  action: string | undefined,
  positional: string[],
  values: Record<string, string | boolean | undefined>,
  out: Output,
) {
  const db = database.db;
  const str = (name: string) => values[name] as string | undefined;
  const key = `${group} ${action ?? ''}`.trim();
  switch (key) {
    case 'accounts create': {
      const name = nameOption(str('name'), '--name');
      const account = await withTransaction(db, (tx) => createAccount(tx, name));
      return out(`Created account ${account.id} (${account.name})`, account);
    }
    case 'accounts list': {
      const accounts = await listAccounts(db);
      return out(table(accounts), accounts);
    }
    case 'products create': {
      const input = { name: nameOption(str('name'), '--name'), accountId: str('account'), active: !values.inactive };
      const product = await withTransaction(db, (tx) => createProduct(tx, input));
      return out(`Created product ${product.id} (${product.name}) in account ${product.accountId}`, product);
    }
    case 'products list': {
      const products = await listProducts(db, str('account'));
      return out(table(products), products);
    }
    case 'products update': {
      const id = required(positional[0], 'product ID');
      const active = str('active');
      if (active !== undefined && active !== 'true' && active !== 'false') {
        throw new UsageError('--active takes true or false');
      }
      const changes = {
        name: str('name') === undefined ? undefined : nameOption(str('name'), '--name'),
        active: active === undefined ? undefined : active === 'true',
      };
      const product = await withTransaction(db, (tx) => updateProduct(tx, id, changes));
      return out(`Updated product ${product.id}: name=${product.name} active=${product.active}`, product);
    }
    case 'tokens create': {
      const expires = str('expires-at');
      const expiresAt = expires === undefined ? undefined : parseIsoDate(expires);
      if (expires !== undefined && !expiresAt) throw new UsageError('--expires-at must be an ISO 8601 date');
      const input = {
        name: nameOption(str('name'), '--name'),
        accountId: str('account'),
        scopes: csv(str('scopes')),
        productIds: csv(str('products')),
        expiresAt,
      };
      const token = await withTransaction(db, (tx) => createAccessToken(tx, input));
      return out(
        `Created token ${token.id} (${token.name})\n` +
          `scopes:   ${token.scopes.join(', ')}\n` +
          `products: ${token.productIds ? token.productIds.join(', ') : 'all'}\n\n` +
          `${token.token}\n\nThis is the only time the token is shown; store it now.`,
        token,
      );
    }
    case 'tokens list': {
      const tokens = await listAccessTokens(db, str('account'));
      return out(table(tokens), tokens);
    }
    case 'tokens revoke': {
      const id = required(positional[0], 'token ID');
      await withTransaction(db, (tx) => revokeAccessToken(tx, id));
      return out(`Revoked token ${id}`, { id, revoked: true });
    }
    case 'webhooks create': {
      const input = await checkNewWebhook(
        { url: required(str('url'), '--url'), events: csv(str('events')), accountId: str('account') },
        config.webhooks.allowPrivate,
      );
      const webhook = await withTransaction(db, (tx) => createWebhook(tx, input));
      return out(
        `Created webhook ${webhook.id} for ${webhook.url} in account ${webhook.accountId}\n` +
          `events: ${webhook.events.join(', ')}\n\n` +
          `${webhook.secret}\n\nThis is the only time the signing secret is shown; store it now.`,
        webhook,
      );
    }
    case 'webhooks list': {
      const webhooks = await listWebhooks(db, str('account'));
      return out(table(webhooks), webhooks);
    }
    case 'webhooks delete': {
      const id = required(positional[0], 'webhook ID');
      await withTransaction(db, (tx) => deleteWebhook(tx, id));
      return out(`Deleted webhook ${id}`, { id, deleted: true });
    }
    case 'signing-keys rotate': {
      const keys = new SigningKeys(db, config.secretKey);
      // The server's start-up check: never rotate to a plain key beside encrypted ones.
      await keys.checkSecretKey();
      const rotated = await keys.rotate();
      const retired = rotated.retired.length > 0 ? `; retired ${rotated.retired.join(', ')}` : '';
      return out(`New current signing key ${rotated.kid}${retired}`, rotated);
    }
    case 'signing-keys list': {
      const keys = await new SigningKeys(db, config.secretKey).list();
      return out(table(keys), keys);
    }
    default:
      throw new UsageError(`Unknown command: ${key}`);
  }
}

function choice<T extends string>(value: string | undefined, flag: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!choices.includes(value as T)) throw new UsageError(`${flag} takes ${choices.join(', ')}`);
  return value as T;
}

/** `export` and `import FILE`; import exits 1 when a line failed, after its summary. */
async function runTransferCommand(
  db: Database['db'],
  command: 'export' | 'import',
  file: string | undefined,
  values: Record<string, string | boolean | undefined>,
  out: Output,
  stderr: NodeJS.WriteStream,
): Promise<number> {
  const str = (name: string) => values[name] as string | undefined;
  const progress = { stream: stderr, quiet: Boolean(values.json) };
  if (command === 'export') {
    const format = choice(str('format'), '--format', ['jsonl', 'csv'] as const) ?? 'jsonl';
    const target = str('out');
    const result = await exportCommand(
      db,
      { account: str('account'), product: str('product'), format, out: target ?? process.stdout },
      progress,
    );
    // With the data on stdout, the summary goes to stderr.
    if (target === undefined) stderr.write(`${values.json ? JSON.stringify(result.json) : result.human}\n`);
    else out(result.human, result.json);
    return 0;
  }
  const summary = await importCommand(
    db,
    required(file, 'FILE'),
    {
      account: str('account'),
      product: str('product'),
      format: choice(str('format'), '--format', IMPORT_FORMATS),
      onConflict: choice(str('on-conflict'), '--on-conflict', ON_CONFLICT) ?? 'skip',
      dryRun: Boolean(values['dry-run']),
    },
    progress,
  );
  out(summary.human, summary.json);
  return summary.json.failed > 0 ? 1 : 0;
}

const parseCliArgs = (argv: string[]) =>
  parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      name: { type: 'string' },
      account: { type: 'string' },
      inactive: { type: 'boolean' },
      active: { type: 'string' },
      scopes: { type: 'string' },
      products: { type: 'string' },
      'expires-at': { type: 'string' },
      url: { type: 'string' },
      events: { type: 'string' },
      force: { type: 'boolean' },
      product: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'on-conflict': { type: 'string' },
    },
  });

export async function runCli(argv: string[], stdout = process.stdout, stderr = process.stderr): Promise<number> {
  let parsed: ReturnType<typeof parseCliArgs>;
  try {
    parsed = parseCliArgs(argv);
  } catch (err) {
    stderr.write(`keymint-server: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command = 'serve', action, ...rest] = positionals;
  if (values.help) {
    stdout.write(`${USAGE}\n`);
    return 0;
  }
  const out: Output = (human, json) => {
    stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
  };

  let database: Database | undefined;
  try {
    const config = loadConfig();
    if (command === 'serve') {
      // Loaded only to serve: the admin commands start without the HTTP stack.
      const { serve } = await import('./server.js');
      await serve(config);
      return -1; // keeps running
    }
    if (command === 'backup' || command === 'restore') {
      const file = required(action, 'FILE');
      const result =
        command === 'backup'
          ? await backupCommand(config, file, values.url)
          : await restoreCommand(config, file, Boolean(values.force));
      out(result.human, result.json);
      return 0;
    }
    if (
      !['migrate', 'accounts', 'products', 'tokens', 'webhooks', 'signing-keys', 'import', 'export'].includes(command)
    ) {
      throw new UsageError(`Unknown command: ${command}`);
    }
    database = await openDatabase(config);
    if (database.lockTakenOverFrom) {
      stderr.write(`keymint-server: warning: ${staleLockMessage(database.lockTakenOverFrom)}\n`);
    }
    if (command === 'migrate') {
      out('Database is up to date.', { migrated: true });
    } else if (command === 'export' || command === 'import') {
      return await runTransferCommand(database.db, command, action, values, out, stderr);
    } else {
      await runAdminCommand(database, config, command, action, rest, values, out);
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`keymint-server: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (
      err instanceof AppError ||
      err instanceof ConfigError ||
      err instanceof DataDirInUseError ||
      err instanceof BackupError
    ) {
      if (values.json) stdout.write(`${JSON.stringify({ error: err.message })}\n`);
      stderr.write(`keymint-server: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await database?.close();
  }
}

/** Resolves once everything written to the stream so far has been handed to the OS. */
const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));

const code = await runCli(process.argv.slice(2));
if (code >= 0) {
  // Writes to a pipe are asynchronous: exiting at once cut `accounts list --json | jq` short.
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
