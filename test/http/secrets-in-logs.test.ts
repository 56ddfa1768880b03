import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { buildApp } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { sha256Hex } from '../../src/lib/hashing.js';
import { ADMIN_TOKEN, openIsolatedDatabase, testConfig, usingPostgres } from '../helpers/app.js';
import { activate, admin, client, createKey, createTenant, ERRORS, type Tenant } from '../helpers/fixtures.js';
import { checkedOut, checkin, createFloatingKey, heartbeatOk, sign } from '../helpers/floating.js';
import { type Receiver, startReceiver } from '../modules/webhooks/helpers.js';

/**
 * Secrets never reach a log line or an error answer (README, "Security"). One server at LOG_LEVEL
 * trace runs a full workflow — the admin token, access tokens, keys and activations, a floating
 * session with its heartbeats, a webhook and a signed delivery, license files signed under
 * SECRET_KEY, wrong credentials, database errors while a secret is being written — and every
 * secret the run saw or presented is then looked for in the whole log and in every answer.
 */

const METRICS_TOKEN = `metrics-${randomBytes(12).toString('hex')}`;
const SECRET_KEY = `secret-key-${randomBytes(16).toString('hex')}`;

const lines: string[] = [];
/** Every answer's status and body, in order. */
const answers: { url: string; status: number; body: string }[] = [];
const secrets = new Map<string, string>();
const remember = (label: string, value: string) => {
  expect(value.length, label).toBeGreaterThan(8);
  secrets.set(label, value);
};

let app: FastifyInstance;
let database: Database;
let receiver: Receiver;
let tenant: Tenant;

/** A failure forced where the database writes a secret; the statement's values are in its error. */
async function installFailureTriggers() {
  await database.db.execute(sql`
    create or replace function keymint_test_forced_failure() returns trigger language plpgsql as $$
    begin raise exception 'forced by the log test'; end $$`);
  // Storing an idempotent answer (a checkout's session secret, a webhook's signing secret).
  await database.db.execute(sql`
    create trigger keymint_test_fail_store before update on idempotency_keys for each row
    when (new.response_body is not null and new.key like 'fail-store-%')
    execute function keymint_test_forced_failure()`);
  // Inserting a floating session, with its new secret.
  await database.db.execute(sql`
    create trigger keymint_test_fail_session before insert on floating_sessions for each row
    when (new.host_id = 'fail-host') execute function keymint_test_forced_failure()`);
}

beforeAll(async () => {
  receiver = await startReceiver();
  database = await openIsolatedDatabase();
  await installFailureTriggers();
  app = await buildApp({
    config: testConfig({
      METRICS_TOKEN,
      SECRET_KEY,
      WEBHOOKS_WORKER: 'true',
      WEBHOOKS_ALLOW_PRIVATE: 'true',
      WEBHOOKS_RETRY_BASE_MS: '100',
    }),
    database,
    logger: { level: 'trace', stream: { write: (line: string) => void lines.push(line) } },
  });
  app.addHook('onSend', async (request, reply, payload) => {
    answers.push({ url: request.url, status: reply.statusCode, body: typeof payload === 'string' ? payload : '' });
  });
  await app.ready();
  remember('ADMIN_TOKEN', ADMIN_TOKEN);
  remember('METRICS_TOKEN', METRICS_TOKEN);
  remember('SECRET_KEY', SECRET_KEY);
});
afterAll(async () => {
  await app?.close();
  await database?.close();
  await receiver?.close();
});

const records = () => lines.map((line) => JSON.parse(line) as Record<string, any>);

/** Answers whose body holds `value`. */
const answersHolding = (value: string) => answers.filter((answer) => answer.body.includes(value));

describe('a full run at LOG_LEVEL=trace', () => {
  it('tokens: the admin token, new access tokens, wrong and near-miss tokens, the metrics token', async () => {
    tenant = await createTenant(app);
    remember('access token', tenant.token);
    const second = await admin(app).post('/admin/tokens', {
      name: 'second',
      accountId: tenant.accountId,
      scopes: ['licenses:read'],
    });
    expect(second.status).toBe(201);
    remember('second access token', second.body.token);

    // Wrong ones, some a real secret plus or minus a character: a log of the presented value
    // would show the real one.
    for (const [label, token, path] of [
      ['admin token + x', `${ADMIN_TOKEN}x`, '/admin/products'],
      ['admin token - 1', ADMIN_TOKEN.slice(0, -1), '/admin/tokens'],
      ['access token + x', `${tenant.token}x`, '/customer'],
      ['unknown at_ token', `at_${randomBytes(32).toString('base64url')}`, '/customer'],
      ['metrics token + x', `${METRICS_TOKEN}x`, '/metrics'],
      ['the admin token on the public API', ADMIN_TOKEN, '/customer'],
      ['an access token on the admin API', tenant.token, '/admin/tokens'],
    ] as const) {
      if (![...secrets.values()].includes(token)) remember(label, token);
      expect((await client(app, token).get(path)).body, label).toEqual(ERRORS.invalidToken.body);
    }
    expect((await client(app, METRICS_TOKEN).get('/metrics')).status).toBe(200);
  });

  it('keys: create-key, activate, get-key', async () => {
    const key = await createKey(tenant, { newCustomer: { name: 'Ada', email: 'ada@example.com' } });
    expect((await activate(tenant, key, { hostId: 'host-1' })).status).toBe(200);
    expect((await tenant.api.post('/create-key', { productId: tenant.productId })).status).toBe(200);
    expect((await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key })).status).toBe(200);
  });

  it('floating: checkout (session secret), heartbeats (signatures), a replayed signature, checkin', async () => {
    const key = await createFloatingKey(tenant);
    const { session } = await checkedOut(tenant, key);
    remember('session secret', session.sessionSecret);
    const firstSignature = sign(session.sessionSecret, session.sessionId, session.nonce);
    remember('heartbeat signature', firstSignature);
    await heartbeatOk(tenant, key, session);
    // The consumed nonce signed again: refused, and the presented signature is not logged.
    const replay = await tenant.api.post('/key/heartbeat', {
      productId: tenant.productId,
      licenseKey: key,
      sessionId: session.sessionId,
      timestamp: session.nonce,
      signature: firstSignature,
    });
    expect(replay.status).toBe(403);
    remember('checkin signature', sign(session.sessionSecret, session.sessionId, session.nonce));
    expect((await checkin(tenant, key, session)).status).toBe(200);
  });

  it('webhooks: the whsec_ secret at creation, and a delivery signed with it', async () => {
    const created = await admin(app).post('/admin/webhooks', {
      url: `${receiver.url}/hook`,
      accountId: tenant.accountId,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    remember('webhook secret', created.body.secret);
    // The first attempt fails (its error is logged), the retry is delivered.
    receiver.answer('/hook', (index) => (index === 0 ? { status: 500, body: 'receiver down' } : 200));
    await createKey(tenant);
    await expect.poll(() => receiver.to('/hook').length, { timeout: 20_000, interval: 50 }).toBeGreaterThanOrEqual(2);
    const header = String(receiver.to('/hook')[1]!.headers['keymint-signature']);
    remember('delivery signature', header.split('v1=')[1]!);
    await expect
      .poll(() => records().some((record) => record.msg === 'webhook attempt' && record.outcome === 'delivered'), {
        timeout: 10_000,
        interval: 50,
      })
      .toBe(true);
  });

  it('license files: signed under SECRET_KEY', async () => {
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    const signed = await tenant.api.post('/key/sign', { productId: tenant.productId, licenseKey: key, hostId: 'h' });
    expect(signed.status, JSON.stringify(signed.body)).toBe(200);
    const rotated = await admin(app).post('/admin/signing-keys/rotate');
    expect(rotated.status).toBe(201);
  });

  it('database errors while a secret is written: the statement values stay out of the log', async () => {
    // The checkout commits and answers; storing its answer for Idempotency-Key replays fails.
    const key = await createFloatingKey(tenant);
    const stored = await tenant.api.post(
      '/key/checkout',
      { productId: tenant.productId, licenseKey: key, hostId: 'host-2' },
      { 'idempotency-key': 'fail-store-checkout' },
    );
    expect(stored.status, JSON.stringify(stored.body)).toBe(200);
    remember('session secret (answer not stored)', stored.body.sessionSecret);
    const webhook = await admin(app).post(
      '/admin/webhooks',
      { url: `${receiver.url}/other`, accountId: tenant.accountId },
      { 'idempotency-key': 'fail-store-webhook' },
    );
    expect(webhook.status).toBe(201);
    remember('webhook secret (answer not stored)', webhook.body.secret);
    const notSaved = records().filter((record) => record.msg === 'idempotency record not saved');
    expect(notSaved).toHaveLength(2);
    // The error is logged, with its SQL, not with its values.
    for (const record of notSaved) {
      expect(record.err.message).toContain('Failed query: update "idempotency_keys"');
      expect(record.err.message).toContain('forced by the log test');
      expect(record.err).not.toHaveProperty('params');
    }

    // The session insert itself fails: 500, and the new secret (never answered) is not logged.
    const failed = await tenant.api.post('/key/checkout', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'fail-host',
    });
    expect(failed).toMatchObject(ERRORS.serverError);
    const logged = records().filter((record) => record.reqId === failed.headers['x-request-id'] && record.err);
    expect(logged.length).toBeGreaterThan(0);
    for (const record of logged) {
      expect(record.err.message).toContain('Failed query: insert into "floating_sessions"');
      // Session secrets are 64 hex chars; so is any SHA-256 (token hash, fingerprint) among the values.
      expect(JSON.stringify(record)).not.toMatch(/[0-9a-f]{64}/);
    }
  });

  it('configuration errors never echo a secret value', () => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    for (const [name, value] of [
      ['ADMIN_TOKEN', `short-${randomBytes(2).toString('hex')}`],
      ['METRICS_TOKEN', `short-${randomBytes(2).toString('hex')}`],
      ['SECRET_KEY', `short-${randomBytes(2).toString('hex')}`],
      ['DATABASE_URL', `mysql://keymint:${password}@db/keymint`],
      ['REDIS_URL', `http://:${password}@cache:6379`],
    ] as const) {
      let error: unknown;
      try {
        loadConfig({ [name]: value });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(`Invalid environment variable ${name}`);
      expect((error as Error).message).not.toContain(value);
      expect((error as Error).message).not.toContain(password);
    }
  });

  it('no secret in the log; each is in no answer but the one that hands it out', () => {
    expect(lines.length).toBeGreaterThan(30);
    // Debug lines were written (bearer authentication's refusals, webhook attempts).
    expect(records().some((record) => record.level === 20)).toBe(true);
    const log = lines.join('\n');
    expect(secrets.size).toBe(17);
    for (const [label, value] of secrets) {
      expect(log.includes(value), `${label} in the log`).toBe(false);
      expect(log.includes(sha256Hex(value)), `SHA-256 of ${label} in the log`).toBe(false);
    }
    expect(log).not.toMatch(/PRIVATE KEY|whsec_|Bearer /);

    const handedOut: Record<string, number> = {
      'access token': 1,
      'second access token': 1,
      'session secret': 1,
      'webhook secret': 1,
      'session secret (answer not stored)': 1,
      'webhook secret (answer not stored)': 1,
    };
    for (const [label, value] of secrets) {
      const holding = answersHolding(value);
      expect(holding.length, `answers holding ${label}`).toBe(handedOut[label] ?? 0);
      for (const answer of holding) expect(answer.status).toBeLessThan(300);
    }
    expect(answers.filter((answer) => answer.status >= 400).length).toBeGreaterThan(5);
  });
});

/**
 * The same for a real server process on its stdout and stderr at LOG_LEVEL=trace: start-up,
 * bearer authentication (admin, access, metrics, wrong tokens), a checkout, shutdown. On
 * PostgreSQL its DATABASE_URL carries a password (trust authentication ignores it).
 */
describe('a server process at LOG_LEVEL=trace', () => {
  let server: ServerProcess | undefined;
  let cleanup: () => Promise<void> = async () => {};
  const password = `db-pw-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    const env: Record<string, string> = {
      LOG_LEVEL: 'trace',
      ADMIN_TOKEN,
      METRICS_TOKEN,
      SECRET_KEY,
      WEBHOOKS_WORKER: 'false',
    };
    if (usingPostgres) {
      const fresh = await createFreshDatabase();
      await migratePostgresDatabase(fresh.url);
      const url = new URL(fresh.url);
      url.password = password;
      env.DATABASE_URL = url.toString();
      cleanup = () => fresh.drop();
    } else {
      // A copy of the migrated template: no initdb (slow on a busy machine) in the process.
      const dir = mkdtempSync(join(tmpdir(), 'keymint-secrets-'));
      cpSync(inject('pgliteTemplateDir'), join(dir, 'data'), { recursive: true });
      env.DATA_DIR = join(dir, 'data');
      env.DATABASE_URL = '';
      cleanup = async () => rmSync(dir, { recursive: true, force: true });
    }
    server = await startServer(env, 120_000);
  }, 150_000);
  afterAll(async () => {
    await server?.stop();
    await cleanup();
  });

  it('prints no token, secret or password', async () => {
    const url = server!.url;
    const account = await request(url, 'POST', '/admin/accounts', ADMIN_TOKEN, { name: 'process' });
    const product = await request(url, 'POST', '/admin/products', ADMIN_TOKEN, {
      name: 'p',
      accountId: account.body.id,
    });
    const token = await request(url, 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 't', accountId: account.body.id });
    expect([account.status, product.status, token.status]).toEqual([201, 201, 201]);
    const accessToken = token.body.token as string;
    const created = await request(url, 'POST', '/key', accessToken, {
      productId: product.body.id,
      licenseType: 'floating',
    });
    const checkout = await request(url, 'POST', '/key/checkout', accessToken, {
      productId: product.body.id,
      licenseKey: created.body.key,
      hostId: 'h',
    });
    expect(checkout.status).toBe(200);
    const signed = await request(url, 'POST', '/key/sign', accessToken, {
      productId: product.body.id,
      licenseKey: created.body.key,
      hostId: 'h',
      ttl: 3600,
    });
    expect(signed.status).toBe(200);
    for (const [token, path] of [
      [`${ADMIN_TOKEN}x`, '/admin/tokens'],
      [`${accessToken}x`, '/customer'],
      [`${METRICS_TOKEN}x`, '/metrics'],
      [METRICS_TOKEN, '/metrics'],
    ] as const) {
      expect((await request(url, 'GET', path, token)).status).toBe(
        path === '/metrics' && token === METRICS_TOKEN ? 200 : 401,
      );
    }
    await server!.stop();

    const output = server!.output();
    expect(output).toContain('keymint-server ready');
    expect(output).toContain('"level":20'); // debug lines: bearer authentication's refusals
    expect(output).toContain('request completed');
    for (const secret of [ADMIN_TOKEN, METRICS_TOKEN, SECRET_KEY, accessToken, checkout.body.sessionSecret, password]) {
      expect(output).not.toContain(secret);
    }
  });
});
