/**
 * `npm run bench`: throughput and latency of the hot endpoints against PostgreSQL, next to the
 * ceiling pgbench reaches running the same SQL transaction on the same database.
 *
 * DATABASE_URL names the server to use (default postgres://postgres@127.0.0.1:5432/postgres);
 * the benchmark creates a database of its own next to it and drops it at the end.
 * BENCH_DURATION (seconds, default 10) and BENCH_CONNECTIONS (default 50) tune the runs.
 *
 * POST /key/sign has no SQL ceiling worth measuring (two indexed reads); its ceiling is the
 * signature itself: jose SignJWT with Ed25519 in a loop in this process, one core, as the
 * server's JavaScript runs on one core (BENCH_SIGN_ITERATIONS, default 20000).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { importPKCS8, SignJWT } from 'jose';
import postgres from 'postgres';
import { createFreshDatabase, request, startServer } from '../scripts/server-process.js';
import { sha256Hex } from '../src/lib/hashing.js';
import { sessionSignature } from '../src/modules/sessions/signature.js';
import { createTenant, type Receiver, startReceiver } from './shared.js';

const run = promisify(execFile);
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;
const SIGN_ITERATIONS = Number(process.env.BENCH_SIGN_ITERATIONS ?? 20_000);
// Heartbeat scenario: unlimited floating keys, and the live sessions the HTTP run rotates
// through (several per connection; each is used by one connection at a time).
const FLOATING_KEYS = 10;
const FLOATING_SESSIONS = Math.max(300, CONNECTIONS * 6);

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
}

async function http(name: string, options: autocannon.Options): Promise<Figures> {
  const result = await autocannon({ connections: CONNECTIONS, duration: DURATION, ...options });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function pgbench(
  name: string,
  databaseUrl: string,
  script: string,
  variables: Record<string, string>,
): Promise<Figures> {
  const binDir = readdirSync('/usr/lib/postgresql').sort().reverse()[0];
  const binary = binDir ? `/usr/lib/postgresql/${binDir}/bin/pgbench` : 'pgbench';
  const dir = mkdtempSync(join(tmpdir(), 'keymint-pgbench-'));
  try {
    const file = join(dir, 'script.sql');
    writeFileSync(file, script);
    const url = new URL(databaseUrl);
    const args = [
      '-n',
      '-M',
      'prepared',
      '-c',
      String(CONNECTIONS),
      '-j',
      '2',
      '-T',
      String(DURATION),
      '-l',
      '-f',
      file,
      '-h',
      url.hostname,
      '-p',
      url.port || '5432',
      '-U',
      decodeURIComponent(url.username || 'postgres'),
      ...Object.entries(variables).flatMap(([key, value]) => ['-D', `${key}=${value}`]),
      url.pathname.slice(1),
    ];
    const { stdout } = await run(binary, args, {
      cwd: dir,
      env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) },
      maxBuffer: 16 * 1024 * 1024,
    });
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
    // Per-transaction log lines: client_id transaction_no latency_us script_no epoch epoch_us
    const latencies = readdirSync(dir)
      .filter((entry) => entry.startsWith('pgbench_log'))
      .flatMap((entry) => readFileSync(join(dir, entry), 'utf8').trim().split('\n'))
      .map((line) => Number(line.split(' ')[2]) / 1000)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return { name, rps: tps, p50: percentile(latencies, 50), p99: percentile(latencies, 99), failures: failed };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The statements one POST /create-key runs (one key, no new customer): the token lookup, then
// the single INSERT … SELECT that checks the product and the customer and inserts the key.
const CREATE_KEY_SQL = `
SELECT id, account_id, scopes, product_ids, expires_at, revoked_at FROM access_tokens WHERE token_hash = :hash;
INSERT INTO license_keys (id, account_id, product_id, key, max_activations, expires_at, customer_id, metadata, allowed_hosts, license_type, max_concurrent_sessions, heartbeat_interval, session_lease_duration, blocked, created_at, updated_at)
  SELECT cast(substr(md5(random()::text), 1, 22) as text), products.account_id, products.id, cast(upper(substr(md5(random()::text), 1, 23)) as text), cast(5 as integer), cast(now() + interval '1 month' as timestamptz), customers.id, cast(NULL as jsonb), cast(NULL as text[]), cast('node-locked' as text), cast(NULL as integer), cast(300 as integer), cast(900 as integer), false, now(), now()
  FROM products LEFT JOIN customers ON (customers.id = NULL AND customers.account_id = products.account_id)
  WHERE products.id = :product AND products.account_id = :account AND products.active = true AND (cast(NULL as text) IS NULL OR customers.id IS NOT NULL)
  ON CONFLICT (product_id, key) DO NOTHING RETURNING key;
`;

// The statements one POST /key/activate runs for a new device on an unlimited key without a
// customer: the token lookup, then one transaction locking the key row and inserting the device
// unless its host is already there.
const ACTIVATE_SQL = `
\\set h random(1, 1000000000000)
SELECT id, account_id, scopes, product_ids, expires_at, revoked_at FROM access_tokens WHERE token_hash = :hash;
BEGIN;
SELECT license_keys.id, license_keys.account_id, license_keys.product_id, license_keys.key, license_keys.max_activations, license_keys.expires_at, license_keys.customer_id, license_keys.metadata, license_keys.allowed_hosts, license_keys.license_type, license_keys.max_concurrent_sessions, license_keys.heartbeat_interval, license_keys.session_lease_duration, license_keys.blocked, license_keys.created_at, license_keys.updated_at
  FROM license_keys INNER JOIN products ON products.id = license_keys.product_id
  WHERE license_keys.product_id = :product AND license_keys.key = :key AND license_keys.account_id = :account AND products.active = true
  LIMIT 1 FOR UPDATE OF license_keys;
INSERT INTO devices (id, license_key_id, host_id, device_tag, ip_address, activated_at)
  VALUES (substr(md5(random()::text), 1, 22), :keyid, :h, NULL, '127.0.0.1', now())
  ON CONFLICT (license_key_id, host_id) DO NOTHING RETURNING id;
COMMIT;
`;

/** Signatures per second of the license-file JWT alone: what POST /key/sign cannot exceed. */
async function signingAlone(name: string): Promise<Figures> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const key = await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'EdDSA');
  const kid = randomBytes(32).toString('base64url');
  const claims = (i: number) => {
    const now = Math.floor(Date.now() / 1000);
    const licenseKey = `OOSPN-1D2XU-WHO7Z-${String(i % 100_000).padStart(5, '0')}`;
    return {
      sub: licenseKey,
      key: licenseKey,
      productId: '330e0bf6cc9f511ca1b048',
      machine: 'bench-host',
      type: 'offline',
      iat: now,
      nbf: now,
      exp: now + 86_400,
    };
  };
  for (let i = 0; i < 500; i++) await new SignJWT(claims(i)).setProtectedHeader({ alg: 'EdDSA', kid }).sign(key);
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < SIGN_ITERATIONS; i++) {
    const t0 = performance.now();
    await new SignJWT(claims(i)).setProtectedHeader({ alg: 'EdDSA', kid }).sign(key);
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name,
    rps: SIGN_ITERATIONS / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failures: 0,
  };
}

// The statements one POST /key/heartbeat runs (sessions/service.ts heartbeatSession), with no
// transaction around them: the token lookup, the read of key, customer and session, and the
// compare-and-swap of the nonce that takes the key row FOR KEY SHARE. Client i heartbeats its own
// session on key i % FLOATING_KEYS (the benchmark gives those sessions and keys predictable IDs);
// \gset after the swap makes a swap that renewed nothing fail the run.
const HEARTBEAT_SQL = `
\\set k :client_id % ${FLOATING_KEYS}
SELECT id, account_id, scopes, product_ids, expires_at, revoked_at FROM access_tokens WHERE token_hash = :hash;
SELECT license_keys.id AS key_id, license_keys.blocked AS blocked, license_keys.expires_at AS key_expires_at, license_keys.session_lease_duration AS lease, customers.active AS customer_active, floating_sessions.id AS session_id, floating_sessions.secret AS secret, floating_sessions.nonce AS nonce, floating_sessions.expires_at <= statement_timestamp() AS lapsed
  FROM license_keys INNER JOIN products ON products.id = license_keys.product_id
  LEFT JOIN customers ON customers.id = license_keys.customer_id
  LEFT JOIN floating_sessions ON (floating_sessions.id = 'pgbench-' || :client_id AND floating_sessions.license_key_id = license_keys.id AND floating_sessions.checked_in_at IS NULL)
  WHERE license_keys.product_id = :product AND license_keys.key = 'bench-floating-' || :k AND license_keys.account_id = :account AND products.active = true
  LIMIT 1 \\gset
UPDATE floating_sessions SET nonce = md5(random()::text), expires_at = lock_clock.locked_at + cast(900 as integer) * interval '1 second'
  FROM (SELECT clock_timestamp() AS locked_at FROM (SELECT license_keys.id FROM license_keys WHERE license_keys.id = :key_id FOR KEY SHARE) locked_key) lock_clock
  WHERE floating_sessions.id = :session_id AND floating_sessions.nonce = :nonce AND floating_sessions.checked_in_at IS NULL AND floating_sessions.expires_at > lock_clock.locked_at
  RETURNING floating_sessions.expires_at AS renewed \\gset
`;

interface BenchSession {
  licenseKey: string;
  sessionId: string;
  secret: string;
  nonce: string;
}

/**
 * FLOATING_KEYS unlimited floating keys with FLOATING_SESSIONS live sessions for the HTTP run,
 * plus one session per pgbench client. The keys get predictable license keys and pgbench's
 * sessions predictable IDs ("pgbench-<client id>"), so that its script can name its own.
 */
async function floatingSetup(baseUrl: string, databaseUrl: string, token: string, productId: string) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const keys: string[] = [];
    for (let i = 0; i < FLOATING_KEYS; i++) {
      const created = await request(baseUrl, 'POST', '/key', token, { productId, licenseType: 'floating' });
      if (created.status !== 200) throw new Error(`create floating key failed: ${JSON.stringify(created.body)}`);
      const key = `bench-floating-${i}`;
      await sql`update license_keys set key = ${key} where product_id = ${productId} and key = ${created.body.key}`;
      keys.push(key);
    }
    const checkout = async (licenseKey: string, hostId: string): Promise<BenchSession> => {
      const response = await request(baseUrl, 'POST', '/key/checkout', token, { productId, licenseKey, hostId });
      if (response.status !== 200) throw new Error(`checkout failed: ${JSON.stringify(response.body)}`);
      const { sessionId, sessionSecret: secret, nextNonce: nonce } = response.body;
      return { licenseKey, sessionId, secret, nonce };
    };
    const sessions: BenchSession[] = [];
    for (let first = 0; first < FLOATING_SESSIONS; first += 25) {
      const batch = Array.from({ length: Math.min(25, FLOATING_SESSIONS - first) }, (_, j) => first + j);
      sessions.push(...(await Promise.all(batch.map((i) => checkout(keys[i % FLOATING_KEYS]!, `bench-host-${i}`)))));
    }
    for (let client = 0; client < CONNECTIONS; client++) {
      const session = await checkout(keys[client % FLOATING_KEYS]!, `pgbench-host-${client}`);
      await sql`update floating_sessions set id = ${`pgbench-${client}`} where id = ${session.sessionId}`;
    }
    return sessions;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Heartbeats over HTTP: each request takes a free session, signs its current nonce and, when the
 * answer arrives, records the next nonce and frees the session again. autocannon keeps one
 * request in flight per connection, so a session is never used by two requests at once.
 */
function heartbeatRequests(productId: string, sessions: BenchSession[]): autocannon.Options['requests'] {
  const free = [...sessions];
  return [
    {
      method: 'POST',
      setupRequest: (req, context) => {
        const session = free.shift();
        if (!session) throw new Error('heartbeat bench: no free session');
        context.session = session;
        const signature = sessionSignature(session.secret, session.sessionId, session.nonce).toString('hex');
        return {
          ...req,
          body: JSON.stringify({
            productId,
            licenseKey: session.licenseKey,
            sessionId: session.sessionId,
            timestamp: session.nonce,
            signature,
          }),
        };
      },
      onResponse: (status, body, context) => {
        const session = context.session as BenchSession;
        if (status === 200) session.nonce = (JSON.parse(body) as { nextNonce: string }).nextNonce;
        free.push(session);
      },
    },
  ];
}

/** A second account whose one webhook wants every event (the first account has none). */
async function webhookTenant(baseUrl: string, receiverUrl: string) {
  const tenant = await createTenant(baseUrl, ADMIN_TOKEN, 'bench webhooks');
  const webhook = await request(baseUrl, 'POST', '/admin/webhooks', ADMIN_TOKEN, {
    url: receiverUrl,
    accountId: tenant.accountId,
  });
  if (webhook.status !== 201) throw new Error(`webhook registration failed: ${JSON.stringify(webhook.body)}`);
  return tenant;
}

/**
 * Deliveries per second of one worker process (the default settings) draining the backlog the
 * webhook run left, against the loopback receiver: from the first delivery received to the last.
 */
async function deliveryThroughput(databaseUrl: string, receiver: Receiver): Promise<Figures> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const pending = async () =>
    Number((await sql`select count(*)::int as n from webhook_deliveries where status = 'pending'`)[0]!.n);
  const backlog = await pending();
  const before = receiver.count();
  const worker = await startServer({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', WEBHOOKS_ALLOW_PRIVATE: 'true' });
  try {
    const deadline = Date.now() + 10 * 60_000;
    while ((await pending()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    const { first, last } = receiver.span();
    const delivered = receiver.count() - before;
    return {
      name: `webhook delivery (${backlog} queued)`,
      rps: delivered > 1 ? (delivered - 1) / ((last - first) / 1000) : Number.NaN,
      p50: Number.NaN,
      p99: Number.NaN,
      failures: await pending(),
    };
  } finally {
    await worker.stop();
    await sql.end({ timeout: 5 });
  }
}

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function print(rows: Figures[]) {
  console.log('');
  console.log(
    `${'scenario'.padEnd(34)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'failed'.padStart(7)}`,
  );
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(34)} ${fmt(row.rps).padStart(9)} ${fmt(row.p50, 2).padStart(8)} ${fmt(row.p99, 2).padStart(8)} ${String(row.failures).padStart(7)}`,
    );
  }
}

async function main() {
  const database = await createFreshDatabase();
  const server = await startServer({
    DATABASE_URL: database.url,
    ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '10000000',
    // An API-only process: the create-key runs measure the outbox rows, not their delivery,
    // which deliveryThroughput measures in a worker process of its own.
    WEBHOOKS_WORKER: 'false',
    WEBHOOKS_ALLOW_PRIVATE: 'true',
  });
  const receiver = await startReceiver();
  try {
    const { accountId, productId, token } = await createTenant(server.url, ADMIN_TOKEN, 'bench');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await request(server.url, 'POST', '/create-key', token, { productId, usesPerKey: '5' });
    if (created.status !== 200) throw new Error(`create-key failed: ${JSON.stringify(created.body)}`);
    const licenseKey = created.body.key as string;

    console.log(
      `keymint-server bench: ${CONNECTIONS} connections, ${DURATION} s per scenario, PostgreSQL ${new URL(database.url).host}`,
    );
    const rows: Figures[] = [];
    rows.push(
      await http('POST /create-key (http)', {
        url: `${server.url}/create-key`,
        method: 'POST',
        headers,
        body: JSON.stringify({ productId, usesPerKey: '5' }),
      }),
    );
    rows.push(
      await pgbench('create-key SQL (pgbench)', database.url, CREATE_KEY_SQL, {
        hash: sha256Hex(token),
        product: productId,
        account: accountId,
      }),
    );
    rows.push(
      await http('POST /create-key + Idempotency-Key', {
        url: `${server.url}/create-key`,
        method: 'POST',
        headers,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              headers: { ...headers, 'idempotency-key': randomBytes(16).toString('hex') },
              body: JSON.stringify({ productId, usesPerKey: '5' }),
            }),
          },
        ],
      }),
    );
    const hooked = await webhookTenant(server.url, receiver.url);
    rows.push(
      await http('POST /create-key + 1 webhook', {
        url: `${server.url}/create-key`,
        method: 'POST',
        headers: { authorization: `Bearer ${hooked.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ productId: hooked.productId, usesPerKey: '5' }),
      }),
    );
    rows.push(await deliveryThroughput(database.url, receiver));
    rows.push(
      await http('GET /key (http)', {
        url: `${server.url}/key?productId=${productId}&licenseKey=${encodeURIComponent(licenseKey)}`,
        headers: { authorization: `Bearer ${token}` },
      }),
    );
    const unlimited = await request(server.url, 'POST', '/key', token, { productId });
    const unlimitedKey = unlimited.body.key as string;
    const fetched = await request(
      server.url,
      'GET',
      `/key?productId=${productId}&licenseKey=${encodeURIComponent(unlimitedKey)}`,
      token,
    );
    const keyId = fetched.body.data.license.id as string;
    rows.push(
      await http('POST /key/activate (http)', {
        url: `${server.url}/key/activate`,
        method: 'POST',
        headers,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({ productId, licenseKey: unlimitedKey, hostId: randomBytes(16).toString('hex') }),
            }),
          },
        ],
      }),
    );
    rows.push(
      await pgbench('activate SQL (pgbench)', database.url, ACTIVATE_SQL, {
        hash: sha256Hex(token),
        product: productId,
        account: accountId,
        key: unlimitedKey,
        keyid: keyId,
      }),
    );

    const sessions = await floatingSetup(server.url, database.url, token, productId);
    rows.push(
      await http('POST /key/heartbeat (http)', {
        url: `${server.url}/key/heartbeat`,
        method: 'POST',
        headers,
        requests: heartbeatRequests(productId, sessions),
      }),
    );
    rows.push(
      await pgbench('heartbeat SQL (pgbench)', database.url, HEARTBEAT_SQL, {
        hash: sha256Hex(token),
        product: productId,
        account: accountId,
      }),
    );
    rows.push(
      await http('POST /key/sign (http)', {
        url: `${server.url}/key/sign`,
        method: 'POST',
        headers,
        body: JSON.stringify({ productId, licenseKey, hostId: 'bench-host', ttl: 86_400 }),
      }),
    );
    rows.push(await signingAlone('sign alone (jose, 1 core)'));
    print(rows);
    const [
      createKey,
      createKeySql,
      idempotent,
      withWebhook,
      ,
      ,
      activate,
      activateSql,
      heartbeat,
      heartbeatSql,
      sign,
      signAlone,
    ] = rows;
    console.log('');
    console.log(`ratio create-key / pgbench: ${fmt(createKey!.rps / createKeySql!.rps, 2)} (target >= 0.80)`);
    console.log(`ratio idempotent / plain create-key: ${fmt(idempotent!.rps / createKey!.rps, 2)} (target >= 0.80)`);
    console.log(`ratio 1 webhook / plain create-key:  ${fmt(withWebhook!.rps / createKey!.rps, 2)} (target >= 0.80)`);
    console.log(`ratio activate / pgbench:   ${fmt(activate!.rps / activateSql!.rps, 2)} (target >= 0.80)`);
    console.log(`ratio heartbeat / pgbench:  ${fmt(heartbeat!.rps / heartbeatSql!.rps, 2)} (target >= 0.80)`);
    console.log(`ratio sign / signing alone: ${fmt(sign!.rps / signAlone!.rps, 2)}`);
  } finally {
    await server.stop();
    await receiver.close();
    await database.drop();
  }
}

await main();
