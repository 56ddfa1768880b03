/**
 * `npm run bench`: throughput, latency and CPU per request of the hot endpoints, side by side
 * with their references, in one run (issue 12's goals; README "Benchmark" explains the output):
 *
 *   - per endpoint on PostgreSQL (POST /create-key plain, with an Idempotency-Key and with a
 *     webhook; GET /key; POST /key/activate spread over BENCH_KEYS keys with new hostIds;
 *     POST /key/heartbeat; POST /key/sign; webhook delivery): req/s, p50, p99, failures, and the
 *     CPU per request of the server process, of the PostgreSQL backends, and of this process
 *     (the load generator), from /proc ticks before and after each run;
 *   - the bare route (bench/bare.ts: Fastify + postgres.js running the same SQL, nothing else)
 *     for create-key, GET /key and activate, with ours ÷ bare CPU per request;
 *   - pgbench running the same SQL as each request (the ceiling), with the ratios server ÷ pgbench;
 *   - the embedded PGlite mode (no DATABASE_URL): create-key and GET /key;
 *   - the server's RSS after start and its peak (VmHWM) over the whole bench, both modes;
 *   - scaling: 1, 2 and 4 server processes on one database (the connections split across them);
 *   - a mixed profile at a fixed arrival rate (open loop): p50/p99/p999 per kind of request;
 *   - a closing summary: every goal with its figure, its target, and whether it is met.
 *
 * Environment:
 *   DATABASE_URL          the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres);
 *                         the bench makes a database of its own next to it and drops it at the end
 *   BENCH_DURATION        seconds per measured run (default 10)
 *   BENCH_WARMUP          seconds of load before each measured HTTP run, not measured (default 2)
 *   BENCH_CONNECTIONS     autocannon connections, and pgbench clients (default 50)
 *   BENCH_KEYS            keys that GET /key and activate spread over (default 200)
 *   BENCH_ONLY            a comma-separated subset of: create, idempotency, webhook, get, activate,
 *                         heartbeat, sign, scaling, mixed, pglite (default: all)
 *   BENCH_MIXED_RATE      requests per second of the mixed profile (default: 60 % of the capacity
 *                         the closed-loop GET /key, activate and create-key runs measured, else 500)
 *   BENCH_MIXED_DURATION  seconds of the mixed profile (default BENCH_DURATION)
 *   BENCH_SIGN_ITERATIONS signatures of the signing-alone ceiling (default 20000)
 *
 * The servers run at the default log level (info), as in production, except the one GET /key run
 * labelled LOG_LEVEL=warn. `npm run bench` builds first (prebench), so the servers run dist/.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { importPKCS8, SignJWT } from 'jose';
import postgres from 'postgres';
import { createFreshDatabase, freePort, request, type ServerProcess, startServer } from '../scripts/server-process.js';
import { sha256Hex } from '../src/lib/hashing.js';
import { sessionSignature } from '../src/modules/sessions/signature.js';
import {
  CLOCK_TICKS,
  cpuTicks,
  createClient,
  createTenant,
  keepLogTail,
  MB,
  machineTicks,
  openLoop,
  peakResidentSet,
  percentile,
  type Receiver,
  residentSet,
  startReceiver,
} from './shared.js';

const run = promisify(execFile);
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const KEYS = Number(process.env.BENCH_KEYS ?? 200);
const MIXED_DURATION = Number(process.env.BENCH_MIXED_DURATION ?? DURATION);
const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;
const SIGN_ITERATIONS = Number(process.env.BENCH_SIGN_ITERATIONS ?? 20_000);
// Heartbeat scenario: unlimited floating keys, and the live sessions the HTTP run rotates
// through (several per connection; each is used by one connection at a time).
const FLOATING_KEYS = 10;
const FLOATING_SESSIONS = Math.max(300, CONNECTIONS * 6);
/** Server processes of the scaling table. */
const SCALE = [1, 2, 4];

const GROUPS = [
  'create',
  'idempotency',
  'webhook',
  'get',
  'activate',
  'heartbeat',
  'sign',
  'scaling',
  'mixed',
  'pglite',
] as const;
type Group = (typeof GROUPS)[number];
const ONLY = new Set(
  (process.env.BENCH_ONLY ?? 'all')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean),
);
for (const name of ONLY) {
  if (name !== 'all' && !(GROUPS as readonly string[]).includes(name)) {
    throw new Error(`BENCH_ONLY: unknown "${name}" (one of ${GROUPS.join(', ')}, or all)`);
  }
}
const wants = (group: Group) => ONLY.has('all') || ONLY.has(group);

/** What the servers of the bench share: no rate limit in the way, no webhook worker under load. */
const SERVER_ENV = {
  ADMIN_TOKEN,
  LOG_LEVEL: 'info',
  RATE_LIMIT_PER_MINUTE: '10000000',
  WEBHOOKS_ALLOW_PRIVATE: 'true',
};

// ---------------------------------------------------------------------------------------------
// Measurement

interface Row {
  name: string;
  /** Requests (transactions) completed successfully per second (2xx answers). */
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  requests: number;
  /** Failures by kind (status code, "errors", "timeouts"), when there were any. */
  failureKinds?: Record<string, number>;
  /** CPU µs per request answered (whatever the status) of the server processes (NaN: no server, e.g. pgbench). */
  serverUs: number;
  /** CPU µs per request of the PostgreSQL processes of the bench database (NaN: PGlite). */
  pgUs: number;
  /** CPU µs per request of this process: the load generator (NaN when it is another process). */
  benchUs: number;
  /** Cores busy on the whole machine, on average over the run. */
  cores: number;
  /** Of which the server processes, PostgreSQL and this process (the rest: other jobs on the machine). */
  ownCores: number;
}

/**
 * CPU of the PostgreSQL processes that work for the bench: the backends connected to the bench
 * database and the server's own processes (WAL writer, checkpointer, …), not the backends of
 * other databases (other jobs on the machine may use the same server). Polled every 250 ms,
 * because pgbench's backends come and go with its run; a backend's CPU after its last poll is
 * lost (up to 250 ms of a 10 s run).
 */
class PostgresCpu {
  constructor(
    private readonly sql: postgres.Sql,
    private readonly database: string,
  ) {}

  private async pids(): Promise<number[]> {
    const rows = await this.sql<{ pid: number }[]>`
      select pid from pg_stat_activity
        where (datname = ${this.database} or (datname is null and backend_type <> 'client backend'))
          and pid <> pg_backend_pid()`;
    return rows.map((row) => row.pid);
  }

  /** Connections PostgreSQL would still accept (max_connections less those in use). */
  async freeConnections(): Promise<number> {
    const [row] = await this.sql<{ free: number }[]>`
      select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
        - (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as free`;
    return row!.free;
  }

  /** Starts counting; the function returned stops and gives the clock ticks used. */
  async start(): Promise<() => Promise<number>> {
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    for (const pid of await this.pids()) {
      const ticks = cpuTicks(pid);
      if (Number.isFinite(ticks)) first.set(pid, ticks);
    }
    const poll = async () => {
      for (const pid of await this.pids()) {
        const ticks = cpuTicks(pid);
        if (!Number.isFinite(ticks)) continue;
        // A backend that was not there at the start started during the run.
        if (!first.has(pid)) first.set(pid, 0);
        last.set(pid, ticks);
      }
    };
    const timer = setInterval(() => void poll().catch(() => {}), 250);
    return async () => {
      clearInterval(timer);
      await poll();
      let used = 0;
      for (const [pid, ticks] of last) used += ticks - (first.get(pid) ?? 0);
      return used;
    };
  }
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  requests: number;
  failureKinds?: Record<string, number>;
}

/** Runs `work` while counting the CPU of the server processes, PostgreSQL and this process. */
async function measure(
  name: string,
  pids: number[],
  pg: PostgresCpu | undefined,
  work: () => Promise<Load>,
  options: { benchIsLoad?: boolean } = {},
): Promise<Row> {
  const serverBefore = pids.map(cpuTicks);
  const stopPg = pg ? await pg.start() : undefined;
  const benchBefore = process.cpuUsage();
  const machineBefore = machineTicks();
  const t0 = performance.now();
  const load = await work();
  const seconds = (performance.now() - t0) / 1000;
  const machineAfter = machineTicks();
  const bench = process.cpuUsage(benchBefore);
  const pgTicks = stopPg ? await stopPg() : Number.NaN;
  const serverTicks = pids.reduce((sum, pid, i) => sum + cpuTicks(pid) - serverBefore[i]!, 0);
  const us = (ticks: number) => (ticks * 1e6) / CLOCK_TICKS / Math.max(1, load.requests);
  const benchSeconds = options.benchIsLoad === false ? 0 : (bench.user + bench.system) / 1e6;
  const ownSeconds = (serverTicks + (Number.isFinite(pgTicks) ? pgTicks : 0)) / CLOCK_TICKS + benchSeconds;
  return {
    name,
    ...load,
    serverUs: pids.length ? us(serverTicks) : Number.NaN,
    pgUs: us(pgTicks),
    benchUs: options.benchIsLoad === false ? Number.NaN : (bench.user + bench.system) / Math.max(1, load.requests),
    cores: (cpus().length * (machineAfter.busy - machineBefore.busy)) / (machineAfter.total - machineBefore.total),
    ownCores: ownSeconds / seconds,
  };
}

function failureKinds(results: autocannon.Result[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  const add = (kind: string, count: number) => {
    if (count > 0) kinds[kind] = (kinds[kind] ?? 0) + count;
  };
  for (const result of results) {
    for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {})) {
      if (!status.startsWith('2')) add(`HTTP ${status}`, count);
    }
    add('timeouts', result.timeouts);
    add('socket errors', result.errors - result.timeouts);
  }
  return kinds;
}

/** One autocannon per options object, run at once; answered requests summed. */
async function cannons(options: autocannon.Options[], duration: number): Promise<Load> {
  const results = await Promise.all(options.map((option) => autocannon({ ...option, duration })));
  const requests = results.reduce((sum, result) => sum + result.requests.total, 0);
  const refused = results.reduce((sum, result) => sum + result.non2xx, 0);
  const seconds = Math.max(...results.map((result) => result.duration));
  return {
    // Successful requests: a 503 (load shed) is not throughput.
    rps: (requests - refused) / seconds,
    // Across instances: p50 weighted by requests, p99 the worst.
    p50: results.reduce((sum, result) => sum + result.latency.p50 * result.requests.total, 0) / Math.max(1, requests),
    p99: Math.max(...results.map((result) => result.latency.p99)),
    // autocannon counts a timeout as an error too.
    failures: results.reduce((sum, result) => sum + result.non2xx + result.errors, 0),
    requests,
    failureKinds: failureKinds(results),
  };
}

/** A server (or several) to load: the URL each autocannon targets and the processes to count. */
interface Target {
  urls: string[];
  pids: number[];
}

const targetOf = (...servers: { url: string; child: ChildProcess }[]): Target => ({
  urls: servers.map((server) => server.url),
  pids: servers.map((server) => server.child.pid!),
});

type LoadOptions = (url: string) => Omit<autocannon.Options, 'url' | 'connections'> & { path?: string };

/** CONNECTIONS connections split across the target's processes: one autocannon's options each. */
const split = (target: Target, options: LoadOptions) =>
  target.urls.map((url, i) => {
    const { path = '', ...rest } = options(url);
    const share = Math.floor(CONNECTIONS / target.urls.length) + (i < CONNECTIONS % target.urls.length ? 1 : 0);
    return { ...rest, url: `${url}${path}`, connections: share };
  });

/**
 * Closed-loop HTTP load: CONNECTIONS connections split across the target's processes, one
 * autocannon each (run concurrently in this process), after a warm-up (WARMUP seconds by default)
 * that is not measured. `options(url)` makes one autocannon's options, so that each has its own
 * request state.
 */
async function http(
  name: string,
  target: Target,
  pg: PostgresCpu | undefined,
  options: LoadOptions,
  { warmup = WARMUP } = {},
): Promise<Row> {
  if (warmup > 0) await cannons(split(target, options), warmup);
  return measure(name, target.pids, pg, () => cannons(split(target, options), DURATION));
}

/**
 * pgbench of `script`, once PostgreSQL has room for its clients (other jobs may share the
 * server: up to a minute's wait). A pgbench that fails gives a row of its own with no figures
 * (its error printed), so that the rest of the bench still runs.
 */
async function pgbench(
  name: string,
  databaseUrl: string,
  pg: PostgresCpu,
  script: string,
  variables: Record<string, string>,
): Promise<Row> {
  const deadline = Date.now() + 60_000;
  while ((await pg.freeConnections()) < CONNECTIONS + 5 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  try {
    return await pgbenchOnce(name, databaseUrl, pg, script, variables);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    console.log(`${name} failed: ${stderr.trim().split('\n').slice(-2).join(' / ')}`);
    return {
      name,
      rps: Number.NaN,
      p50: Number.NaN,
      p99: Number.NaN,
      failures: 1,
      requests: 0,
      failureKinds: { 'pgbench failed': 1 },
      serverUs: Number.NaN,
      pgUs: Number.NaN,
      benchUs: Number.NaN,
      cores: Number.NaN,
      ownCores: Number.NaN,
    };
  }
}

async function pgbenchOnce(
  name: string,
  databaseUrl: string,
  pg: PostgresCpu | undefined,
  script: string,
  variables: Record<string, string>,
): Promise<Row> {
  const binDir = readdirSync('/usr/lib/postgresql').sort().reverse()[0];
  const binary = binDir ? `/usr/lib/postgresql/${binDir}/bin/pgbench` : 'pgbench';
  const dir = mkdtempSync(join(tmpdir(), 'keymint-pgbench-'));
  try {
    const file = join(dir, 'script.sql');
    writeFileSync(file, script);
    const url = new URL(databaseUrl);
    const args = [
      ...['-n', '-M', 'prepared', '-c', String(CONNECTIONS), '-j', '2', '-T', String(DURATION), '-l', '-f', file],
      ...['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres')],
      ...Object.entries(variables).flatMap(([key, value]) => ['-D', `${key}=${value}`]),
      url.pathname.slice(1),
    ];
    return await measure(
      name,
      [],
      pg,
      async () => {
        const { stdout } = await run(binary, args, {
          cwd: dir,
          env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) },
          maxBuffer: 16 * 1024 * 1024,
        });
        const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1]);
        const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
        const processed = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? 0);
        // Per-transaction log lines: client_id transaction_no latency_us script_no epoch epoch_us
        const latencies = readdirSync(dir)
          .filter((entry) => entry.startsWith('pgbench_log'))
          .flatMap((entry) => readFileSync(join(dir, entry), 'utf8').trim().split('\n'))
          .map((line) => Number(line.split(' ')[2]) / 1000)
          .filter(Number.isFinite)
          .sort((a, b) => a - b);
        return {
          rps: tps,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          failures: failed,
          requests: processed,
        };
      },
      { benchIsLoad: false },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The SQL of each request, for pgbench (and, as postgres.js queries, for bench/bare.ts)

const TOKEN_SQL =
  'SELECT id, account_id, scopes, product_ids, expires_at, revoked_at FROM access_tokens WHERE token_hash = :hash;';

// The statements one POST /create-key runs (one key, no new customer): the token lookup, then
// the single INSERT … SELECT that checks the product and the customer and inserts the key.
const CREATE_KEY_SQL = `
${TOKEN_SQL}
INSERT INTO license_keys (id, account_id, product_id, key, max_activations, expires_at, customer_id, metadata, allowed_hosts, license_type, max_concurrent_sessions, heartbeat_interval, session_lease_duration, blocked, created_at, updated_at)
  SELECT cast(substr(md5(random()::text), 1, 22) as text), products.account_id, products.id, cast(upper(substr(md5(random()::text), 1, 23)) as text), cast(5 as integer), cast(now() + interval '1 month' as timestamptz), customers.id, cast(NULL as jsonb), cast(NULL as text[]), cast('node-locked' as text), cast(NULL as integer), cast(300 as integer), cast(900 as integer), false, now(), now()
  FROM products LEFT JOIN customers ON (customers.id = NULL AND customers.account_id = products.account_id)
  WHERE products.id = :product AND products.account_id = :account AND products.active = true AND (cast(NULL as text) IS NULL OR customers.id IS NOT NULL)
  ON CONFLICT (product_id, key) DO NOTHING RETURNING key;
`;

// The statements one GET /key runs: the token lookup, the key (of an active product of the
// account) with its customer, and the key's devices. Client requests spread over KEYS keys named
// bench-get-<n>, each with two devices.
const GET_KEY_SQL = `
\\set k random(0, ${KEYS - 1})
${TOKEN_SQL}
SELECT license_keys.id AS key_id, license_keys.account_id, license_keys.product_id, license_keys.key, license_keys.max_activations, license_keys.expires_at, license_keys.customer_id, license_keys.metadata, license_keys.allowed_hosts, license_keys.license_type, license_keys.max_concurrent_sessions, license_keys.heartbeat_interval, license_keys.session_lease_duration, license_keys.blocked, license_keys.created_at, license_keys.updated_at, customers.id AS c_id, customers.name AS c_name, customers.email AS c_email, customers.active AS c_active
  FROM license_keys INNER JOIN products ON products.id = license_keys.product_id
  LEFT JOIN customers ON customers.id = license_keys.customer_id
  WHERE license_keys.product_id = :product AND license_keys.key = 'bench-get-' || :k AND license_keys.account_id = :account AND products.active = true
  LIMIT 1 \\gset g_
SELECT id, license_key_id, host_id, device_tag, ip_address, activated_at FROM devices WHERE license_key_id = :g_key_id ORDER BY activated_at, id;
`;

// The statements one POST /key/activate runs for a new device on an unlimited key without a
// customer: the token lookup, then one transaction locking the key row and inserting the device
// unless its host is already there. Spread over KEYS keys named bench-act-<n>, as the HTTP run.
const ACTIVATE_SQL = `
\\set k random(0, ${KEYS - 1})
\\set h random(1, 1000000000000)
${TOKEN_SQL}
BEGIN;
SELECT license_keys.id AS key_id, license_keys.account_id, license_keys.product_id, license_keys.key, license_keys.max_activations, license_keys.expires_at, license_keys.customer_id, license_keys.metadata, license_keys.allowed_hosts, license_keys.license_type, license_keys.max_concurrent_sessions, license_keys.heartbeat_interval, license_keys.session_lease_duration, license_keys.blocked, license_keys.created_at, license_keys.updated_at
  FROM license_keys INNER JOIN products ON products.id = license_keys.product_id
  WHERE license_keys.product_id = :product AND license_keys.key = 'bench-act-' || :k AND license_keys.account_id = :account AND products.active = true
  LIMIT 1 FOR UPDATE OF license_keys \\gset a_
INSERT INTO devices (id, license_key_id, host_id, device_tag, ip_address, activated_at)
  VALUES (substr(md5(random()::text), 1, 22), :a_key_id, 'pgbench-' || :h, NULL, '127.0.0.1', now())
  ON CONFLICT (license_key_id, host_id) DO NOTHING RETURNING id;
COMMIT;
`;

// The statements one POST /key/heartbeat runs (sessions/service.ts heartbeatSession), with no
// transaction around them: the token lookup, the read of key, customer and session, and the
// compare-and-swap of the nonce that takes the key row FOR KEY SHARE. Client i heartbeats its own
// session on key i % FLOATING_KEYS (the benchmark gives those sessions and keys predictable IDs);
// \gset after the swap makes a swap that renewed nothing fail the run.
const HEARTBEAT_SQL = `
\\set k :client_id % ${FLOATING_KEYS}
${TOKEN_SQL}
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

// ---------------------------------------------------------------------------------------------
// Scenario set-up

/** Signatures per second of the license-file JWT alone: what POST /key/sign cannot exceed. */
async function signingAlone(name: string): Promise<Row> {
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
  return measure(name, [], undefined, async () => {
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
      rps: SIGN_ITERATIONS / seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      failures: 0,
      requests: SIGN_ITERATIONS,
    };
  });
}

interface BenchSession {
  licenseKey: string;
  sessionId: string;
  secret: string;
  nonce: string;
}

/** Runs `task` for 0..count-1, `width` at a time. */
async function inBatches(count: number, width: number, task: (i: number) => Promise<void>) {
  for (let first = 0; first < count; first += width) {
    await Promise.all(Array.from({ length: Math.min(width, count - first) }, (_, j) => task(first + j)));
  }
}

/**
 * The keys GET /key and activate spread over, made through the API and then renamed (so that
 * pgbench's scripts can name them): KEYS keys bench-get-<n> with two devices each, and KEYS
 * unlimited keys bench-act-<n> without devices.
 */
async function spreadKeys(baseUrl: string, sql: postgres.Sql, token: string, productId: string) {
  const make = async (prefix: string, i: number, body: object, devices: number) => {
    const created = await request(baseUrl, 'POST', '/key', token, { productId, ...body });
    if (created.status !== 200) throw new Error(`create key failed: ${JSON.stringify(created.body)}`);
    for (let d = 0; d < devices; d++) {
      const hostId = `${prefix}${i}-host-${d}`;
      const activated = await request(baseUrl, 'POST', '/key/activate', token, {
        productId,
        licenseKey: created.body.key,
        hostId,
      });
      if (activated.status !== 200) throw new Error(`activate failed: ${JSON.stringify(activated.body)}`);
    }
    await sql`update license_keys set key = ${`${prefix}${i}`} where product_id = ${productId} and key = ${created.body.key}`;
  };
  await inBatches(KEYS, 25, (i) => make('bench-get-', i, { maxActivations: 5 }, 2));
  await inBatches(KEYS, 25, (i) => make('bench-act-', i, {}, 0));
}

/**
 * FLOATING_KEYS unlimited floating keys with FLOATING_SESSIONS live sessions for the HTTP run,
 * plus one session per pgbench client. The keys get predictable license keys and pgbench's
 * sessions predictable IDs ("pgbench-<client id>"), so that its script can name its own.
 */
async function floatingSetup(baseUrl: string, sql: postgres.Sql, token: string, productId: string) {
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
  await inBatches(FLOATING_SESSIONS, 25, async (i) => {
    sessions.push(await checkout(keys[i % FLOATING_KEYS]!, `bench-host-${i}`));
  });
  for (let client = 0; client < CONNECTIONS; client++) {
    const session = await checkout(keys[client % FLOATING_KEYS]!, `pgbench-host-${client}`);
    await sql`update floating_sessions set id = ${`pgbench-${client}`} where id = ${session.sessionId}`;
  }
  return sessions;
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
async function deliveryThroughput(databaseUrl: string, sql: postgres.Sql, receiver: Receiver): Promise<Row> {
  const pending = async () =>
    Number((await sql`select count(*)::int as n from webhook_deliveries where status = 'pending'`)[0]!.n);
  const backlog = await pending();
  const before = receiver.count();
  const worker = keepLogTail(await startServer({ ...SERVER_ENV, DATABASE_URL: databaseUrl }));
  try {
    return await measure(`webhook delivery (${backlog} queued)`, [worker.child.pid!], undefined, async () => {
      const deadline = Date.now() + 10 * 60_000;
      while ((await pending()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      const { first, last } = receiver.span();
      const delivered = receiver.count() - before;
      return {
        rps: delivered > 1 ? (delivered - 1) / ((last - first) / 1000) : Number.NaN,
        p50: Number.NaN,
        p99: Number.NaN,
        failures: await pending(),
        requests: delivered,
      };
    });
  } finally {
    await worker.stop();
  }
}

/** bench/bare.ts as a process of its own (tsx's loader only at import; no compiler at run time). */
async function startBare(databaseUrl: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./bare.ts', import.meta.url))], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), DB_POOL_SIZE: '10' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`bare server exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { url, child, stop };
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`bare server did not start:\n${output}`);
}

// ---------------------------------------------------------------------------------------------
// Request shapes

interface Api {
  productId: string;
  token: string;
}

const authHeaders = (api: Api) => ({ authorization: `Bearer ${api.token}`, 'content-type': 'application/json' });

const createKeyLoad = (api: Api) => () => ({
  method: 'POST',
  path: '/create-key',
  headers: authHeaders(api),
  body: JSON.stringify({ productId: api.productId, usesPerKey: '5' }),
});

/** GET /key over `keys`, in turn. */
const getKeyLoad = (api: Api, keys: string[]) => () => {
  let next = 0;
  const base = `/key?productId=${api.productId}&licenseKey=`;
  return {
    path: `${base}${encodeURIComponent(keys[0]!)}`,
    headers: { authorization: `Bearer ${api.token}` },
    requests: [
      {
        method: 'GET',
        setupRequest: (req: Record<string, unknown>) => ({
          ...req,
          path: `${base}${encodeURIComponent(keys[next++ % keys.length]!)}`,
        }),
      },
    ],
  };
};

/** POST /key/activate over `keys`, in turn, a new hostId each time. */
const activateLoad = (api: Api, keys: string[]) => () => {
  let next = 0;
  return {
    method: 'POST',
    path: '/key/activate',
    headers: authHeaders(api),
    requests: [
      {
        method: 'POST',
        setupRequest: (req: Record<string, unknown>) => ({
          ...req,
          body: JSON.stringify({
            productId: api.productId,
            licenseKey: keys[next++ % keys.length],
            hostId: randomBytes(12).toString('hex'),
          }),
        }),
      },
    ],
  };
};

const names = (prefix: string) => Array.from({ length: KEYS }, (_, i) => `${prefix}${i}`);

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const num = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-');
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MB).toFixed(0)} MB` : '-');

function table(headers: string[], rows: string[][]) {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(line(headers));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(line(row));
}

function printRows(rows: Row[]) {
  table(
    [
      'scenario',
      'req/s',
      'p50 ms',
      'p99 ms',
      'failed',
      'server µs/req',
      'pg µs/req',
      'bench µs/req',
      'cores: all/ours',
    ],
    rows.map((row) => [
      row.name,
      num(row.rps),
      fmt(row.p50, 1),
      fmt(row.p99, 1),
      String(row.failures),
      num(row.serverUs),
      num(row.pgUs),
      num(row.benchUs),
      `${fmt(row.cores, 2)}/${fmt(row.ownCores, 2)}`,
    ]),
  );
  for (const row of rows) {
    const kinds = Object.entries(row.failureKinds ?? {});
    if (row.failures > 0 && kinds.length)
      console.log(`  ${row.name} failures: ${kinds.map(([kind, count]) => `${count} × ${kind}`).join(', ')}`);
  }
}

/** The error lines a server logged (at most 20), if any. */
function printServerErrors(label: string, server: { errors(): string[] }) {
  const errors = server.errors();
  if (errors.length === 0) return;
  console.log(`\n${label} logged ${errors.length === 20 ? 'at least 20' : errors.length} errors; the first:`);
  for (const line of errors.slice(0, 5)) console.log(`  ${line.slice(0, 2000)}`);
}

interface Goal {
  goal: string;
  figure: string;
  target: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

const goals: Goal[] = [];
function goal(name: string, value: number | undefined, target: string, test: (value: number) => boolean, unit = '') {
  const measured = value !== undefined && Number.isFinite(value);
  goals.push({
    goal: name,
    figure: measured ? `${value! >= 100 || Number.isInteger(value) ? num(value!) : fmt(value!, 2)}${unit}` : 'not run',
    target,
    met: measured ? test(value!) : undefined,
  });
}

const section = (title: string) => console.log(`\n== ${title}`);

// ---------------------------------------------------------------------------------------------
// The run

interface PgFigures {
  rows: Map<string, Row>;
  rssStart: number;
  rssPeak: number;
  scaling: Array<{ processes: number; endpoint: string; row: Row }>;
}

async function postgresBench(): Promise<PgFigures> {
  const database = await createFreshDatabase();
  const databaseName = new URL(database.url).pathname.slice(1);
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const monitorSql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  const pg = new PostgresCpu(monitorSql, databaseName);
  const rows = new Map<string, Row>();
  const keep = (row: Row) => {
    rows.set(row.name, row);
    return row;
  };
  const stops: Array<() => Promise<unknown>> = [];
  try {
    // An API-only process: the create-key runs measure the outbox rows, not their delivery,
    // which deliveryThroughput measures in a worker process of its own.
    const server = keepLogTail(
      await startServer({ ...SERVER_ENV, DATABASE_URL: database.url, WEBHOOKS_WORKER: 'false' }),
    );
    stops.push(() => server.stop());
    const pid = server.child.pid!;
    const rssStart = residentSet(pid);
    const ours = targetOf(server);

    const { accountId, productId, token } = await createTenant(server.url, ADMIN_TOKEN, 'bench');
    const api = { productId, token };
    const hash = sha256Hex(token);
    await spreadKeys(server.url, sql, token, productId);
    const getKeys = names('bench-get-');
    const actKeys = names('bench-act-');

    console.log(
      `keymint-server bench: ${CONNECTIONS} connections, ${DURATION} s per run (+${WARMUP} s warm-up), ` +
        `PostgreSQL ${new URL(database.url).host}, ${cpus().length} cores, load average ${loadavg()
          .map((value) => value.toFixed(2))
          .join(' ')}`,
    );
    console.log(`server pid ${pid}, RSS after start ${mb(rssStart)}; GET /key and activate over ${KEYS} keys each`);

    const needBare = wants('create') || wants('get') || wants('activate');
    const bare = needBare ? await startBare(database.url) : undefined;
    if (bare) stops.push(() => bare.stop());
    const bareTarget = bare ? targetOf(bare) : undefined;

    const endpointRows: Row[] = [];
    const add = (row: Row) => endpointRows.push(keep(row));
    if (wants('create')) {
      add(await http('POST /create-key', ours, pg, createKeyLoad(api)));
      add(await http('POST /create-key (bare)', bareTarget!, pg, createKeyLoad(api)));
      add(
        await pgbench('create-key SQL (pgbench)', database.url, pg, CREATE_KEY_SQL, {
          hash,
          product: productId,
          account: accountId,
        }),
      );
    }
    if (wants('idempotency')) {
      add(
        await http('POST /create-key + Idempotency-Key', ours, pg, () => ({
          method: 'POST',
          path: '/create-key',
          headers: authHeaders(api),
          requests: [
            {
              method: 'POST',
              setupRequest: (req: Record<string, unknown>) => ({
                ...req,
                headers: { ...authHeaders(api), 'idempotency-key': randomBytes(16).toString('hex') },
                body: JSON.stringify({ productId, usesPerKey: '5' }),
              }),
            },
          ],
        })),
      );
    }
    if (wants('webhook')) {
      const receiver = await startReceiver();
      stops.push(() => receiver.close());
      const hooked = await webhookTenant(server.url, receiver.url);
      add(await http('POST /create-key + 1 webhook', ours, pg, createKeyLoad(hooked)));
      add(await deliveryThroughput(database.url, sql, receiver));
    }
    if (wants('get')) {
      add(await http('GET /key', ours, pg, getKeyLoad(api, getKeys)));
      add(await http('GET /key (bare)', bareTarget!, pg, getKeyLoad(api, getKeys)));
      add(
        await pgbench('GET /key SQL (pgbench)', database.url, pg, GET_KEY_SQL, {
          hash,
          product: productId,
          account: accountId,
        }),
      );
      const quiet = keepLogTail(
        await startServer({ ...SERVER_ENV, DATABASE_URL: database.url, WEBHOOKS_WORKER: 'false', LOG_LEVEL: 'warn' }),
      );
      try {
        // A new process: a longer warm-up, as its JIT has seen no request yet.
        add(
          await http('GET /key, LOG_LEVEL=warn', targetOf(quiet), pg, getKeyLoad(api, getKeys), { warmup: 3 * WARMUP }),
        );
      } finally {
        await quiet.stop();
      }
    }
    if (wants('activate')) {
      add(await http(`POST /key/activate (${KEYS} keys)`, ours, pg, activateLoad(api, actKeys)));
      add(await http(`POST /key/activate (bare)`, bareTarget!, pg, activateLoad(api, actKeys)));
      add(
        await pgbench('activate SQL (pgbench)', database.url, pg, ACTIVATE_SQL, {
          hash,
          product: productId,
          account: accountId,
        }),
      );
    }
    if (wants('heartbeat')) {
      const sessions = await floatingSetup(server.url, sql, token, productId);
      add(
        await http(
          'POST /key/heartbeat',
          ours,
          pg,
          () => ({
            method: 'POST',
            path: '/key/heartbeat',
            headers: authHeaders(api),
            requests: heartbeatRequests(productId, sessions),
          }),
          // No warm-up: the requests it leaves unanswered when it stops would leave their sessions'
          // nonces unknown (the server rotated them), and those sessions' heartbeats would fail.
          { warmup: 0 },
        ),
      );
      add(
        await pgbench('heartbeat SQL (pgbench)', database.url, pg, HEARTBEAT_SQL, {
          hash,
          product: productId,
          account: accountId,
        }),
      );
    }
    if (wants('sign')) {
      add(
        await http('POST /key/sign', ours, pg, () => ({
          method: 'POST',
          path: '/key/sign',
          headers: authHeaders(api),
          body: JSON.stringify({ productId, licenseKey: getKeys[0], hostId: 'bench-get-0-host-0', ttl: 86_400 }),
        })),
      );
      add(await signingAlone('signing alone (jose, one core)'));
    }
    await bare?.stop();

    if (endpointRows.length) {
      section(`Endpoints (PostgreSQL; server at LOG_LEVEL=info unless said; CPU from /proc, ${CLOCK_TICKS} ticks/s)`);
      printRows(endpointRows);
      printEndpointRatios(rows);
    }

    const scaling: PgFigures['scaling'] = [];
    if (wants('scaling')) {
      const replicas: ServerProcess[] = [];
      for (let i = 0; i < Math.max(...SCALE); i++) {
        const replica = keepLogTail(
          await startServer({ ...SERVER_ENV, DATABASE_URL: database.url, WEBHOOKS_WORKER: 'false' }),
        );
        stops.push(() => replica.stop());
        replicas.push(replica);
      }
      // New processes: warmed up together on both endpoints before the first measured run.
      if (WARMUP > 0) {
        const all = targetOf(...replicas);
        for (const load of [getKeyLoad(api, getKeys), createKeyLoad(api)]) {
          await cannons(split(all, load), 2 * WARMUP);
        }
      }
      for (const [endpoint, load] of [
        ['GET /key', getKeyLoad(api, getKeys)],
        ['POST /create-key', createKeyLoad(api)],
      ] as const) {
        for (const processes of SCALE) {
          const row = await http(`${endpoint} × ${processes}`, targetOf(...replicas.slice(0, processes)), pg, load);
          scaling.push({ processes, endpoint, row });
        }
      }
      for (const replica of replicas) await replica.stop();
      section(`Scaling out: server processes on one database, ${CONNECTIONS} connections split across them`);
      printScaling(scaling);
    }

    if (wants('mixed')) await mixedProfile(server, pg, api, getKeys, actKeys, rows);

    const rssPeak = peakResidentSet(pid);
    printServerErrors('The main server', server);
    return { rows, rssStart, rssPeak, scaling };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await sql.end({ timeout: 5 });
    await monitorSql.end({ timeout: 5 });
    await database.drop();
  }
}

function printEndpointRatios(rows: Map<string, Row>) {
  const pairs: Array<[string, string, string, number]> = [
    ['POST /create-key', 'POST /create-key (bare)', 'create-key SQL (pgbench)', 0.6],
    ['GET /key', 'GET /key (bare)', 'GET /key SQL (pgbench)', 0.5],
    [`POST /key/activate (${KEYS} keys)`, 'POST /key/activate (bare)', 'activate SQL (pgbench)', 0.6],
  ];
  const lines = pairs
    .filter(([ours]) => rows.has(ours))
    .map(([ours, bare, ceiling, target]) => {
      const a = rows.get(ours)!;
      const b = rows.get(bare);
      const c = rows.get(ceiling);
      return [
        ours,
        num(a.serverUs),
        num(b?.serverUs ?? Number.NaN),
        `${fmt(a.serverUs / (b?.serverUs ?? Number.NaN), 2)} (≤ 1.5)`,
        num(a.rps),
        num(b?.rps ?? Number.NaN),
        num(c?.rps ?? Number.NaN),
        `${fmt(a.rps / (c?.rps ?? Number.NaN), 2)} (≥ ${target})`,
        `${fmt(a.p99, 1)} (≤ 25)`,
      ];
    });
  if (lines.length === 0) return;
  section('Ours next to the bare route and pgbench (same SQL)');
  table(
    [
      'endpoint',
      'ours µs/req',
      'bare µs/req',
      'ours/bare CPU',
      'ours req/s',
      'bare req/s',
      'pgbench tps',
      'ours/pgbench',
      'p99 ms',
    ],
    lines,
  );
  const extra: string[] = [];
  const ratio = (a: string, b: string) =>
    rows.has(a) && rows.has(b) ? rows.get(a)!.rps / rows.get(b)!.rps : Number.NaN;
  if (rows.has('POST /create-key + Idempotency-Key'))
    extra.push(
      `idempotent / plain create-key ${fmt(ratio('POST /create-key + Idempotency-Key', 'POST /create-key'), 2)}`,
    );
  if (rows.has('POST /create-key + 1 webhook'))
    extra.push(`1 webhook / plain create-key ${fmt(ratio('POST /create-key + 1 webhook', 'POST /create-key'), 2)}`);
  if (rows.has('POST /key/heartbeat'))
    extra.push(`heartbeat / pgbench ${fmt(ratio('POST /key/heartbeat', 'heartbeat SQL (pgbench)'), 2)}`);
  if (rows.has('POST /key/sign'))
    extra.push(`sign / signing alone ${fmt(ratio('POST /key/sign', 'signing alone (jose, one core)'), 2)}`);
  if (rows.has('GET /key, LOG_LEVEL=warn') && rows.has('GET /key'))
    extra.push(
      `GET /key CPU at warn ${num(rows.get('GET /key, LOG_LEVEL=warn')!.serverUs)} µs vs info ${num(rows.get('GET /key')!.serverUs)} µs`,
    );
  if (extra.length) console.log(`\n${extra.join('; ')}`);
}

function printScaling(scaling: PgFigures['scaling']) {
  table(
    [
      'endpoint',
      'processes',
      'req/s',
      'speedup',
      'p99 ms',
      'server µs/req',
      'pg µs/req',
      'bench µs/req',
      'cores: all/ours',
    ],
    scaling.map(({ processes, endpoint, row }) => {
      const one = scaling.find((entry) => entry.endpoint === endpoint && entry.processes === 1)?.row;
      return [
        endpoint,
        String(processes),
        num(row.rps),
        fmt(row.rps / (one?.rps ?? Number.NaN), 2),
        fmt(row.p99, 1),
        num(row.serverUs),
        num(row.pgUs),
        num(row.benchUs),
        `${fmt(row.cores, 2)}/${fmt(row.ownCores, 2)}`,
      ];
    }),
  );
  const cores = cpus().length;
  console.log(
    `\nEach request costs CPU in the server, in PostgreSQL and in the load generator (this process); on ${cores} ` +
      'cores, req/s cannot pass the cores the bench gets ("ours") × 1e6 ÷ that sum, however many server ' +
      'processes share the load. More processes than cores add context switches and fewer requests per ' +
      'event-loop turn (fewer replies per write, fewer reads per wake-up), so the CPU per request grows:',
  );
  for (const { endpoint, processes, row } of scaling) {
    const total = row.serverUs + row.pgUs + row.benchUs;
    console.log(
      `  ${endpoint} × ${processes}: ${num(row.serverUs)} + ${num(row.pgUs)} + ${num(row.benchUs)} = ${num(total)} µs/req; ` +
        `${fmt(row.ownCores, 2)} cores → ${num((row.ownCores * 1e6) / total)} req/s (measured ${num(row.rps)})`,
    );
  }
}

interface MixedKind {
  name: string;
  weight: number;
  send(client: ReturnType<typeof createClient>): Promise<{ status: number }>;
  latencies: number[];
  errors: number;
}

/** Sockets of the mixed profile's client: below the server's MAX_CONCURRENT_REQUESTS (256). */
const MIXED_SOCKETS = 200;

async function mixedProfile(
  server: ServerProcess,
  pg: PostgresCpu,
  api: Api,
  getKeys: string[],
  actKeys: string[],
  rows: Map<string, Row>,
) {
  const get = rows.get('GET /key')?.rps;
  const activate = rows.get(`POST /key/activate (${KEYS} keys)`)?.rps;
  const create = rows.get('POST /create-key')?.rps;
  const capacity = get && activate && create ? 1 / (0.7 / get + 0.2 / activate + 0.1 / create) : undefined;
  const rate = Number(process.env.BENCH_MIXED_RATE ?? (capacity ? Math.round(capacity * 0.6) : 500));
  const rateSource = process.env.BENCH_MIXED_RATE
    ? 'BENCH_MIXED_RATE'
    : capacity
      ? `60 % of the ${num(capacity)} req/s the closed-loop runs give for this mix`
      : 'default: no closed-loop figures in this run';
  let serial = 0;
  const pick = (keys: string[]) => keys[Math.floor(Math.random() * keys.length)]!;
  const kinds: MixedKind[] = [
    {
      name: 'GET /key',
      weight: 70,
      send: (client) =>
        client.call('GET', `/key?productId=${api.productId}&licenseKey=${encodeURIComponent(pick(getKeys))}`),
      latencies: [],
      errors: 0,
    },
    {
      name: 'POST /key/activate',
      weight: 20,
      send: (client) =>
        client.call('POST', '/key/activate', {
          productId: api.productId,
          licenseKey: pick(actKeys),
          hostId: `mixed-${(serial++).toString(36)}-${randomBytes(4).toString('hex')}`,
        }),
      latencies: [],
      errors: 0,
    },
    {
      name: 'POST /create-key',
      weight: 10,
      send: (client) => client.call('POST', '/create-key', { productId: api.productId, usesPerKey: '5' }),
      latencies: [],
      errors: 0,
    },
  ];
  const choose = () => {
    let roll = Math.random() * 100;
    for (const kind of kinds) {
      roll -= kind.weight;
      if (roll < 0) return kind;
    }
    return kinds[0]!;
  };
  const total = Math.round(rate * MIXED_DURATION);
  const maxInFlight = Math.max(256, 2 * rate);
  // Requests beyond MIXED_SOCKETS wait for a socket here (their latency counts from their due
  // time), rather than being refused by the server's admission limit: the profile measures the
  // server's latency under a steady load, not its load shedding (npm run bench:overload does).
  const client = createClient({ baseUrl: server.url, token: api.token, maxSockets: MIXED_SOCKETS, timeoutMs: 15_000 });
  const statuses = new Map<string, number>();
  let skipped = 0;
  let elapsed = 0;
  try {
    const row = await measure('mixed', [server.child.pid!], pg, async () => {
      const result = await openLoop({
        rate,
        total,
        maxInFlight,
        fire: (dueAt) => {
          const kind = choose();
          return kind.send(client).then((answer) => {
            kind.latencies.push(performance.now() - dueAt);
            if (answer.status < 200 || answer.status >= 300) {
              kind.errors++;
              const label = `${kind.name} ${answer.status || 'no answer'}`;
              statuses.set(label, (statuses.get(label) ?? 0) + 1);
            }
          });
        },
        skip: () => {
          skipped++;
        },
      });
      elapsed = result.elapsed;
      const answered = kinds.reduce((sum, kind) => sum + kind.latencies.length, 0);
      return { rps: answered / elapsed, p50: Number.NaN, p99: Number.NaN, failures: 0, requests: answered };
    });
    section(
      `Mixed profile, open loop: ${num(rate)} req/s (${rateSource}) for ${MIXED_DURATION} s — 70 % GET /key, 20 % activate, 10 % create-key`,
    );
    const all = kinds.flatMap((kind) => kind.latencies).sort((a, b) => a - b);
    const line = (name: string, latencies: number[], errors: number) => {
      const sorted = [...latencies].sort((a, b) => a - b);
      return [
        name,
        String(sorted.length),
        String(errors),
        fmt(percentile(sorted, 50), 1),
        fmt(percentile(sorted, 99), 1),
        fmt(percentile(sorted, 99.9), 1),
        fmt(sorted[sorted.length - 1] ?? Number.NaN, 1),
      ];
    };
    const errors = kinds.reduce((sum, kind) => sum + kind.errors, 0) + skipped;
    table(
      ['request', 'answered', 'errors', 'p50 ms', 'p99 ms', 'p999 ms', 'max ms'],
      [...kinds.map((kind) => line(kind.name, kind.latencies, kind.errors)), line('all', all, errors)],
    );
    console.log(
      `\nachieved ${fmt(all.length / elapsed, 1)} req/s of ${num(rate)} (${all.length} answered in ${fmt(elapsed, 1)} s; ` +
        `${skipped} not sent: over ${maxInFlight} in flight); server ${num(row.serverUs)} µs/req, ` +
        `PostgreSQL ${num(row.pgUs)} µs/req, load generator ${num(row.benchUs)} µs/req, ` +
        `cores busy ${fmt(row.cores, 2)} (ours ${fmt(row.ownCores, 2)})`,
    );
    if (statuses.size)
      console.log(`errors: ${[...statuses].map(([label, count]) => `${count} × ${label}`).join(', ')}`);
    rows.set('mixed', {
      ...row,
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      failures: errors,
      rps: all.length / elapsed,
    });
    rows.set('mixed p999', { ...row, p99: percentile(all, 99.9), rps: rate });
  } finally {
    client.destroy();
  }
}

interface PgliteFigures {
  create?: Row;
  get?: Row;
  rssStart: number;
  rssPeak: number;
}

/** A PGlite server on a new DATA_DIR, its tenant, and 50 keys with one device each. */
async function pgliteServer(env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'keymint-bench-pglite-'));
  try {
    const server = keepLogTail(await startServer({ ...SERVER_ENV, DATABASE_URL: '', DATA_DIR: dataDir, ...env }));
    const rssStart = residentSet(server.child.pid!);
    const { productId, token } = await createTenant(server.url, ADMIN_TOKEN, 'bench pglite');
    const keys: string[] = [];
    await inBatches(50, 10, async () => {
      const created = await request(server.url, 'POST', '/create-key', token, { productId, usesPerKey: '5' });
      if (created.status !== 200) throw new Error(`create-key failed: ${JSON.stringify(created.body)}`);
      const activated = await request(server.url, 'POST', '/key/activate', token, {
        productId,
        licenseKey: created.body.key,
        hostId: `pglite-host-${keys.length}`,
      });
      if (activated.status !== 200) throw new Error(`activate failed: ${JSON.stringify(activated.body)}`);
      keys.push(created.body.key);
    });
    const stop = async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    return { server, rssStart, api: { productId, token }, keys, stop };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function pgliteBench(): Promise<PgliteFigures> {
  const main = await pgliteServer();
  let create: Row;
  let get: Row;
  let rssPeak: number;
  try {
    const target = targetOf(main.server);
    create = await http('PGlite POST /create-key', target, undefined, createKeyLoad(main.api));
    get = await http('PGlite GET /key', target, undefined, getKeyLoad(main.api, main.keys));
    rssPeak = peakResidentSet(main.server.child.pid!);
    printServerErrors('The PGlite server', main.server);
  } finally {
    await main.stop();
  }
  // What the commits' fsync costs: create-key with PGLITE_FSYNC=false (not the default).
  const unsynced = await pgliteServer({ PGLITE_FSYNC: 'false' });
  let createUnsynced: Row;
  try {
    createUnsynced = await http(
      'PGlite POST /create-key, PGLITE_FSYNC=false',
      targetOf(unsynced.server),
      undefined,
      createKeyLoad(unsynced.api),
    );
  } finally {
    await unsynced.stop();
  }
  section('Embedded PGlite (no DATABASE_URL; the database runs inside the server process: its CPU is the server’s)');
  console.log(`server pid ${main.server.child.pid}, RSS after start ${mb(main.rssStart)}, peak ${mb(rssPeak)}`);
  printRows([create, get, createUnsynced]);
  return { create, get, rssStart: main.rssStart, rssPeak };
}

async function main() {
  const started = performance.now();
  const postgresGroups = GROUPS.filter((group) => group !== 'pglite');
  const pgFigures = postgresGroups.some(wants) ? await postgresBench() : undefined;
  const pglite = wants('pglite') ? await pgliteBench() : undefined;

  if (pgFigures) {
    section('Memory (PostgreSQL mode): the main server process over the whole bench');
    console.log(`RSS after start ${mb(pgFigures.rssStart)}, peak (VmHWM) ${mb(pgFigures.rssPeak)}`);
  }

  const rows = pgFigures?.rows ?? new Map<string, Row>();
  const row = (name: string) => rows.get(name);
  const activateName = `POST /key/activate (${KEYS} keys)`;
  goal('GET /key server CPU µs/req (info)', row('GET /key')?.serverUs, '≤ 100', (v) => v <= 100);
  for (const [ours, bare] of [
    ['GET /key', 'GET /key (bare)'],
    ['POST /create-key', 'POST /create-key (bare)'],
    [activateName, 'POST /key/activate (bare)'],
  ] as const) {
    const a = row(ours);
    const b = row(bare);
    goal(`${ours}: CPU ours/bare`, a && b ? a.serverUs / b.serverUs : undefined, '≤ 1.5', (v) => v <= 1.5);
  }
  for (const [ours, ceiling, target] of [
    ['GET /key', 'GET /key SQL (pgbench)', 0.5],
    ['POST /create-key', 'create-key SQL (pgbench)', 0.6],
    [activateName, 'activate SQL (pgbench)', 0.6],
  ] as const) {
    const a = row(ours);
    const c = row(ceiling);
    goal(`${ours}: req/s ÷ pgbench`, a && c ? a.rps / c.rps : undefined, `≥ ${target}`, (v) => v >= target);
  }
  for (const name of ['GET /key', 'POST /create-key', activateName]) {
    goal(`${name}: p99 ms (${CONNECTIONS} connections)`, row(name)?.p99, '≤ 25', (v) => v <= 25);
  }
  goal('PGlite create-key req/s', pglite?.create?.rps, '≥ 1,000', (v) => v >= 1000);
  goal('PGlite GET /key req/s', pglite?.get?.rps, '≥ 3,000', (v) => v >= 3000);
  goal('RSS after start, PostgreSQL mode', pgFigures && pgFigures.rssStart / MB, '≤ 100 MB', (v) => v <= 100, ' MB');
  goal('RSS peak, PostgreSQL mode', pgFigures && pgFigures.rssPeak / MB, '≤ 200 MB', (v) => v <= 200, ' MB');
  goal('RSS after start, PGlite mode', pglite && pglite.rssStart / MB, '≤ 100 MB', (v) => v <= 100, ' MB');
  goal('RSS peak, PGlite mode', pglite && pglite.rssPeak / MB, '≤ 200 MB', (v) => v <= 200, ' MB');
  const failures = [...rows.values()]
    .filter((r) => r.name !== 'mixed' && r.name !== 'mixed p999')
    .reduce((sum, r) => sum + r.failures, 0);
  goal('failed requests, closed-loop PostgreSQL runs', pgFigures ? failures : undefined, '0', (v) => v === 0);
  if (pglite)
    goal(
      'failed requests, PGlite runs',
      (pglite.create?.failures ?? 0) + (pglite.get?.failures ?? 0),
      '0',
      (v) => v === 0,
    );

  section('Summary: issue 12 goals');
  table(
    ['goal', 'figure', 'target', 'met'],
    goals.map((entry) => [
      entry.goal,
      entry.figure,
      entry.target,
      entry.met === undefined ? '-' : entry.met ? 'yes' : 'NO',
    ]),
  );
  const info: string[] = [];
  const scaling = pgFigures?.scaling ?? [];
  for (const endpoint of ['GET /key', 'POST /create-key']) {
    const entries = scaling.filter((entry) => entry.endpoint === endpoint);
    if (entries.length)
      info.push(
        `${endpoint} req/s with ${entries.map((entry) => `${entry.processes}: ${num(entry.row.rps)}`).join(', ')} processes`,
      );
  }
  const mixed = rows.get('mixed');
  if (mixed)
    info.push(
      `mixed ${num(rows.get('mixed p999')!.rps)} req/s open loop: achieved ${num(mixed.rps)}, p99 ${fmt(mixed.p99, 1)} ms, ` +
        `p999 ${fmt(rows.get('mixed p999')!.p99, 1)} ms, errors ${mixed.failures}`,
    );
  for (const line of info) console.log(`(no target) ${line}`);
  console.log(
    `\nbench took ${fmt((performance.now() - started) / 60_000, 1)} min; load average now ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')} (other jobs on the machine take cores from the bench: see "cores: all/ours")`,
  );
}

await main();
