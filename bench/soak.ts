/**
 * `npm run soak`: mixed traffic at a steady rate against a real server process for a long time
 * (10 minutes by default), watching the server's memory and latency for a trend.
 *
 *   npm run soak                                   # 10 min, 200 req/s, PostgreSQL if DATABASE_URL is set
 *   npm run soak -- --duration 2m --rate 100 --db pglite
 *
 * Options (each also an environment variable):
 *   --duration  SOAK_DURATION  run length: 90s, 10m, 1h or seconds (default 10m)
 *   --rate      SOAK_RATE      requests per second, open loop (default 200)
 *   --db        SOAK_DB        pglite | postgres (default postgres when DATABASE_URL is set)
 *   --warmup    SOAK_WARMUP    left out of the RSS trend and the p99 verdict (default 2m, at most
 *                              a third of the run)
 *   --window    SOAK_WINDOW    one report line per window (default 1m)
 *   --sample    SOAK_SAMPLE    RSS sampling period (default 5s)
 *   --max-slope SOAK_MAX_SLOPE RSS trend above which the run fails, MB/min (default 1)
 *   --max-growth SOAK_MAX_GROWTH last window's mean RSS over the first post-warm-up window's,
 *                              above which the run fails, MB (default 24)
 *   --p99-factor SOAK_P99_FACTOR largest window p99 / median window p99 above which the run
 *                              fails (default 3)
 *   --no-webhooks              no webhook subscription (default: one, delivered to a loopback receiver)
 *
 * The load is open loop: request i is due at i / rate seconds, whether or not earlier ones have
 * answered, so a slow server cannot slow the load down; latency counts from the moment a request
 * was due (a request kept waiting for a free socket counts its wait). The mix, per 100 requests:
 * 10 create-key, 5 create-key with a new customer, 20 GET /key, 15 activate, 8 deactivate,
 * 4 customer create, 8 customer list, 8 customer get, 4 customer update, 18 floating
 * (checkout, heartbeat, checkin). The server is a real process (scripts/server-process.ts) on a
 * fresh PostgreSQL database next to DATABASE_URL, or on the embedded PGlite in a temporary
 * DATA_DIR; its resident set (VmRSS of /proc/<pid>/status) and V8 heap (its /metrics) are sampled.
 *
 * Exit code 1 when any request failed (a 5xx, a timeout, a refused connection, or a 4xx that the
 * mix does not expect), when the rate was not held, when RSS grows, or when p99 is not steady.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../scripts/server-process.js';
import { sessionSignature } from '../src/modules/sessions/signature.js';
import {
  type Answer,
  type Client,
  cpuSeconds,
  createClient,
  createTenant,
  MB,
  openLoop,
  type Receiver,
  residentSet,
  percentile as sortedPercentile,
  startReceiver,
} from './shared.js';

// ---------------------------------------------------------------------------------------------
// Options

function seconds(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`soak: --${name} must be a duration like 90s, 10m or 1h (got "${text}")`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

function positive(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`soak: --${name} must be a positive number (got "${text}")`);
  return value;
}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string' },
    rate: { type: 'string' },
    db: { type: 'string' },
    warmup: { type: 'string' },
    window: { type: 'string' },
    sample: { type: 'string' },
    'max-slope': { type: 'string' },
    'max-growth': { type: 'string' },
    'p99-factor': { type: 'string' },
    'no-webhooks': { type: 'boolean' },
  },
});
const env = process.env;
const DURATION = seconds(args.duration ?? env.SOAK_DURATION ?? '10m', 'duration');
const RATE = positive(args.rate ?? env.SOAK_RATE ?? '200', 'rate');
const DB = args.db ?? env.SOAK_DB ?? (env.DATABASE_URL ? 'postgres' : 'pglite');
if (DB !== 'pglite' && DB !== 'postgres') throw new Error(`soak: --db must be pglite or postgres (got "${DB}")`);
if (DB === 'postgres' && !env.DATABASE_URL) throw new Error('soak: --db postgres needs DATABASE_URL');
const WARMUP = Math.min(seconds(args.warmup ?? env.SOAK_WARMUP ?? '2m', 'warmup'), DURATION / 3);
const WINDOW = seconds(args.window ?? env.SOAK_WINDOW ?? '1m', 'window');
const SAMPLE = seconds(args.sample ?? env.SOAK_SAMPLE ?? '5s', 'sample');
const MAX_SLOPE = positive(args['max-slope'] ?? env.SOAK_MAX_SLOPE ?? '1', 'max-slope');
const MAX_GROWTH = positive(args['max-growth'] ?? env.SOAK_MAX_GROWTH ?? '24', 'max-growth');
const P99_FACTOR = positive(args['p99-factor'] ?? env.SOAK_P99_FACTOR ?? '3', 'p99-factor');
const WEBHOOKS = !args['no-webhooks'];
/** A request unanswered after this long failed (the server's own database timeout is 10 s). */
const REQUEST_TIMEOUT_MS = 15_000;
/** More requests in flight than this means the server is not keeping up: the run fails. */
const MAX_IN_FLIGHT = Math.max(256, Math.ceil(RATE * 2));
const ADMIN_TOKEN = `soak-admin-${randomBytes(12).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// HTTP

let client: Client | undefined;
let baseUrl = '';
let token = '';
let productId = '';

/** One request with the tenant's token; resolves with status 0 on a network error or timeout. */
function call(method: string, path: string, body?: unknown): Promise<Answer> {
  client ??= createClient({ baseUrl, token, maxSockets: 64, timeoutMs: REQUEST_TIMEOUT_MS });
  return client.call(method, path, body);
}

// ---------------------------------------------------------------------------------------------
// The traffic's state: bounded pools of what earlier requests created

/** A ring of at most `size` items; `take` removes a random one (so no two requests share it). */
class Pool<T> {
  private items: T[] = [];
  constructor(private readonly size: number) {}
  get length() {
    return this.items.length;
  }
  add(item: T) {
    if (this.items.length >= this.size) this.items.splice(Math.floor(Math.random() * this.items.length), 1);
    this.items.push(item);
  }
  pick(): T | undefined {
    return this.items[Math.floor(Math.random() * this.items.length)];
  }
  take(): T | undefined {
    if (this.items.length === 0) return undefined;
    const index = Math.floor(Math.random() * this.items.length);
    const [item] = this.items.splice(index, 1);
    return item;
  }
}

interface Session {
  licenseKey: string;
  sessionId: string;
  secret: string;
  nonce: string;
}

/** Node-locked keys, 3 activations each: activations fill them up, the limit answers 403. */
const keys = new Pool<string>(2000);
/** Devices activated and not deactivated yet (taken out while their deactivation runs). */
const devices = new Pool<{ licenseKey: string; hostId: string }>(2000);
const customers = new Pool<string>(2000);
/** Unlimited floating keys, and the live sessions on them (taken out while a call uses them). */
const floatingKeys: string[] = [];
const sessions = new Pool<Session>(1000);
const SESSIONS_LOW = 20;
const SESSIONS_HIGH = 60;
let serial = 0;
const unique = () => `${Date.now().toString(36)}-${(serial++).toString(36)}`;

/**
 * One operation of the mix: the request it sends, and what it makes of the answer. An answer
 * is expected when it is a 2xx, or one of the operation's `expected` refusals.
 */
interface Operation {
  name: string;
  weight: number;
  send(): Promise<Answer>;
  /** 4xx answers that are part of the traffic (status and message). */
  expected?: Array<{ status: number; message: string }>;
}

const lookup = (licenseKey: string) =>
  `?productId=${encodeURIComponent(productId)}&licenseKey=${encodeURIComponent(licenseKey)}`;

function signed(session: Session) {
  return {
    productId,
    licenseKey: session.licenseKey,
    sessionId: session.sessionId,
    timestamp: session.nonce,
    signature: sessionSignature(session.secret, session.sessionId, session.nonce).toString('hex'),
  };
}

async function createKey(newCustomer: boolean): Promise<Answer> {
  const id = unique();
  const answer = await call('POST', '/create-key', {
    productId,
    usesPerKey: '3',
    ...(newCustomer ? { newCustomer: { name: `Soak ${id}`, email: `soak-${id}@example.com` } } : {}),
  });
  if (answer.status === 200) keys.add(answer.body.key);
  return answer;
}

async function activate(): Promise<Answer> {
  const licenseKey = keys.pick()!;
  const hostId = `host-${unique()}`;
  const answer = await call('POST', '/key/activate', { productId, licenseKey, hostId });
  if (answer.status === 200) devices.add({ licenseKey, hostId });
  return answer;
}

async function deactivate(): Promise<Answer> {
  const device = devices.take();
  if (!device) return activate();
  const answer = await call('POST', '/key/deactivate', { productId, ...device });
  // Without an answer the device may be gone or not: it is not used again.
  if (answer.status !== 200 && answer.status !== 0) devices.add(device);
  return answer;
}

async function createCustomer(): Promise<Answer> {
  const id = unique();
  const answer = await call('POST', '/customer', { name: `Soak ${id}`, email: `soak-c-${id}@example.com` });
  if (answer.status === 201) customers.add(answer.body.data.id);
  return answer;
}

function updateCustomer(): Promise<Answer> {
  const customerId = customers.pick()!;
  const id = unique();
  // Every other update moves the email to a new one; an email is never reused.
  return call(
    'PUT',
    '/customer/by-id',
    serial % 2 ? { customerId, name: `Soak ${id}` } : { customerId, email: `soak-u-${id}@example.com` },
  );
}

async function checkout(): Promise<Answer> {
  const licenseKey = floatingKeys[Math.floor(Math.random() * floatingKeys.length)]!;
  const answer = await call('POST', '/key/checkout', { productId, licenseKey, hostId: `fhost-${unique()}` });
  if (answer.status === 200) {
    const { sessionId, sessionSecret: secret, nextNonce: nonce } = answer.body;
    sessions.add({ licenseKey, sessionId, secret, nonce });
  }
  return answer;
}

async function floating(): Promise<Answer> {
  if (sessions.length < SESSIONS_LOW) return checkout();
  const roll = Math.random();
  if (roll < 0.15 && sessions.length < SESSIONS_HIGH) return checkout();
  const session = sessions.take()!;
  if (roll < 0.3 || sessions.length >= SESSIONS_HIGH) {
    // Checkin: the session ends (not put back, whatever the answer).
    return call('POST', '/key/checkin', signed(session));
  }
  const answer = await call('POST', '/key/heartbeat', signed(session));
  if (answer.status === 200) session.nonce = answer.body.nextNonce;
  // A session whose heartbeat failed is not put back: its nonce is no longer known to be current.
  if (answer.status === 200) sessions.add(session);
  return answer;
}

const operations: Operation[] = [
  { name: 'create-key', weight: 10, send: () => createKey(false) },
  { name: 'create-key+customer', weight: 5, send: () => createKey(true) },
  { name: 'GET /key', weight: 20, send: () => call('GET', `/key${lookup(keys.pick()!)}`) },
  {
    name: 'activate',
    weight: 15,
    send: activate,
    expected: [{ status: 403, message: 'Activation limit reached' }],
  },
  {
    name: 'deactivate',
    weight: 8,
    send: deactivate,
    // With no device to deactivate it activates instead.
    expected: [{ status: 403, message: 'Activation limit reached' }],
  },
  { name: 'customer create', weight: 4, send: createCustomer },
  { name: 'customer list', weight: 8, send: () => call('GET', '/customer?page=1&limit=20') },
  { name: 'customer get', weight: 8, send: () => call('GET', `/customer/by-id?customerId=${customers.pick()!}`) },
  { name: 'customer update', weight: 4, send: updateCustomer },
  { name: 'floating', weight: 18, send: floating },
];
const totalWeight = operations.reduce((sum, operation) => sum + operation.weight, 0);

function chooseOperation(): Operation {
  let roll = Math.random() * totalWeight;
  for (const operation of operations) {
    roll -= operation.weight;
    if (roll < 0) return operation;
  }
  return operations[operations.length - 1]!;
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Window {
  index: number;
  requests: number;
  expected4xx: number;
  errors: number;
  latencies: number[];
  rss: number[];
  heap: number[];
  deliveries: number;
  /** Server CPU seconds used in the window. */
  cpu: number;
}

const newWindow = (index: number): Window => ({
  index,
  requests: 0,
  expected4xx: 0,
  errors: 0,
  latencies: [],
  rss: [],
  heap: [],
  deliveries: 0,
  cpu: 0,
});

const errorSamples = new Map<string, number>();
function recordError(operation: string, answer: Answer) {
  const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
  const label = `${operation}: ${answer.status} ${body.slice(0, 160)}`;
  errorSamples.set(label, (errorSamples.get(label) ?? 0) + 1);
}

const percentile = (values: number[], p: number): number =>
  sortedPercentile(
    [...values].sort((a, b) => a - b),
    p,
  );

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const median = (values: number[]) => percentile(values, 50);
/** Seconds as m:ss. */
const clock = (t: number) => `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, '0')}`;
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MB).toFixed(1)} MB` : '-');

/** The server's V8 heap in use (bytes), from its own /metrics; NaN when that fails. */
async function heapUsed(): Promise<number> {
  try {
    const response = await fetch(`${baseUrl}/metrics`);
    const text = await response.text();
    return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1]);
  } catch {
    return Number.NaN;
  }
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = mean(points.map(([x]) => x));
  const my = mean(points.map(([, y]) => y));
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxy / sxx;
}

// ---------------------------------------------------------------------------------------------
// The run

async function setUp(server: ServerProcess, receiver: Receiver | undefined) {
  baseUrl = server.url;
  const tenant = await createTenant(server.url, ADMIN_TOKEN, 'soak');
  token = tenant.token;
  productId = tenant.productId;
  if (receiver) {
    const webhook = await request(server.url, 'POST', '/admin/webhooks', ADMIN_TOKEN, {
      url: receiver.url,
      accountId: tenant.accountId,
    });
    if (webhook.status !== 201) throw new Error(`webhook registration failed: ${JSON.stringify(webhook.body)}`);
  }
  for (let i = 0; i < 50; i++) {
    const answer = await createKey(i % 2 === 0);
    if (answer.status !== 200) throw new Error(`set-up create-key failed: ${JSON.stringify(answer.body)}`);
  }
  for (let i = 0; i < 20; i++) {
    const answer = await createCustomer();
    if (answer.status !== 201) throw new Error(`set-up customer failed: ${JSON.stringify(answer.body)}`);
  }
  for (let i = 0; i < 5; i++) {
    const answer = await call('POST', '/key', { productId, licenseType: 'floating' });
    if (answer.status !== 200) throw new Error(`set-up floating key failed: ${JSON.stringify(answer.body)}`);
    floatingKeys.push(answer.body.key);
  }
  for (let i = 0; i < SESSIONS_LOW; i++) {
    const answer = await checkout();
    if (answer.status !== 200) throw new Error(`set-up checkout failed: ${JSON.stringify(answer.body)}`);
  }
}

interface Sample {
  t: number;
  rss: number;
  /** V8 heap in use (NaN when /metrics did not answer). */
  heap: number;
}

async function drive(server: ServerProcess, receiver: Receiver | undefined) {
  const pid = server.child.pid!;
  const windows: Window[] = [];
  const samples: Sample[] = [];
  const windowCount = Math.ceil(DURATION / WINDOW);
  for (let i = 0; i < windowCount; i++) windows.push(newWindow(i));
  const windowAt = (elapsed: number) => windows[Math.min(windowCount - 1, Math.floor(elapsed / WINDOW))]!;

  const total = Math.floor(DURATION * RATE);
  const started = performance.now();

  const sample = async () => {
    const t = (performance.now() - started) / 1000;
    const rss = residentSet(pid);
    const window = windowAt(t);
    window.rss.push(rss);
    const heap = await heapUsed();
    window.heap.push(heap);
    samples.push({ t, rss, heap });
  };
  await sample();
  const sampler = setInterval(() => void sample(), SAMPLE * 1000);
  let delivered = receiver?.count() ?? 0;
  let cpuBefore = cpuSeconds(pid);
  let reported = 0;

  const report = (window: Window) => {
    const cpuNow = cpuSeconds(pid);
    window.cpu = cpuNow - cpuBefore;
    cpuBefore = cpuNow;
    if (receiver) {
      const now = receiver.count();
      window.deliveries = now - delivered;
      delivered = now;
    }
    const rss = window.rss.length ? window.rss[window.rss.length - 1]! : Number.NaN;
    const heap = window.heap.filter(Number.isFinite);
    console.log(
      [
        `[${clock(window.index * WINDOW)}–${clock(Math.min(DURATION, (window.index + 1) * WINDOW))}]`,
        `${String(window.requests).padStart(6)} req (${(window.requests / WINDOW).toFixed(1)}/s)`,
        `${String(window.errors).padStart(3)} errors`,
        `${String(window.expected4xx).padStart(4)} expected 4xx`,
        `p50 ${percentile(window.latencies, 50).toFixed(1).padStart(6)} ms`,
        `p99 ${percentile(window.latencies, 99).toFixed(1).padStart(6)} ms`,
        `RSS ${mb(rss)} (max ${mb(Math.max(...window.rss))})`,
        `heap ${mb(heap.length ? heap[heap.length - 1]! : Number.NaN)}`,
        `server CPU ${((100 * window.cpu) / WINDOW).toFixed(0)}% (${((1000 * window.cpu) / Math.max(1, window.requests)).toFixed(1)} ms/req)`,
        ...(receiver ? [`${window.deliveries} webhooks`] : []),
      ].join('  '),
    );
  };

  const fire = (due: number) => {
    const operation = chooseOperation();
    return operation.send().then((answer) => {
      const done = performance.now();
      const window = windowAt((due - started) / 1000);
      window.requests++;
      window.latencies.push(done - due);
      if (answer.status >= 200 && answer.status < 300) return;
      const expected = operation.expected?.some(
        (refusal) => refusal.status === answer.status && answer.body?.message === refusal.message,
      );
      if (expected) window.expected4xx++;
      else {
        window.errors++;
        recordError(operation.name, answer);
      }
    });
  };

  // Every few milliseconds, send the requests that are due by now (request i at i / RATE s).
  const { skipped: overflow } = await openLoop({
    rate: RATE,
    total,
    maxInFlight: MAX_IN_FLIGHT,
    started,
    fire,
    skip: (dueAt) => {
      const window = windowAt((dueAt - started) / 1000);
      window.requests++;
      window.errors++;
      recordError('(load)', { status: 0, body: `over ${MAX_IN_FLIGHT} requests in flight: not sent` });
    },
    // A window is reported once every request due in it has been sent (its latecomers still count).
    tick: (elapsed) => {
      while (reported < windowCount && elapsed >= (reported + 1) * WINDOW + 1) report(windows[reported++]!);
    },
  });
  clearInterval(sampler);
  await sample();
  while (reported < windowCount) report(windows[reported++]!);
  return { windows, samples, elapsed: (performance.now() - started) / 1000, overflow };
}

function summarize(result: Awaited<ReturnType<typeof drive>>) {
  const { windows, samples } = result;
  const requests = windows.reduce((sum, window) => sum + window.requests, 0);
  const errors = windows.reduce((sum, window) => sum + window.errors, 0);
  const expected4xx = windows.reduce((sum, window) => sum + window.expected4xx, 0);
  const all = windows.flatMap((window) => window.latencies);
  const afterWarmup = samples.filter((s) => s.t >= WARMUP);
  const rssSlope = slope(afterWarmup.map((s) => [s.t / 60, s.rss / MB])); // MB per minute
  const heaps = afterWarmup.filter((s) => Number.isFinite(s.heap));
  const heapSlope = slope(heaps.map((s) => [s.t / 60, s.heap / MB]));
  const start = samples[0]!.rss;
  const end = samples[samples.length - 1]!.rss;
  const peak = Math.max(...samples.map((s) => s.rss));
  const warmed = afterWarmup[0]?.rss ?? Number.NaN;
  // Window means smooth out the garbage collector's saw-tooth: the first whole window after the
  // warm-up against the last window.
  const steadyWindows = windows.filter((window) => window.index * WINDOW >= WARMUP);
  const firstSteady = steadyWindows[0];
  const lastWindow = windows[windows.length - 1]!;
  const growth = firstSteady && firstSteady !== lastWindow ? mean(lastWindow.rss) - mean(firstSteady.rss) : 0;
  const p99s = steadyWindows.map((window) => percentile(window.latencies, 99)).filter(Number.isFinite);
  const p99Median = median(p99s);
  const p99Max = Math.max(...p99s);
  const p99Ratio = p99Max / p99Median;
  const rates = windows.map((window, i) => {
    const length = Math.min(WINDOW, DURATION - i * WINDOW);
    return window.requests / length;
  });
  const lowestRate = Math.min(...rates);

  console.log('');
  console.log(
    `requests ${requests} in ${result.elapsed.toFixed(0)} s (${(requests / DURATION).toFixed(1)}/s, target ${RATE}/s), ` +
      `errors ${errors}, expected 4xx ${expected4xx}, p50 ${percentile(all, 50).toFixed(1)} ms, p99 ${percentile(all, 99).toFixed(1)} ms`,
  );
  console.log(
    `RSS start ${mb(start)}, after warm-up (${WARMUP.toFixed(0)} s) ${mb(warmed)}, end ${mb(end)}, peak ${mb(peak)}`,
  );
  console.log(
    `RSS trend after warm-up ${rssSlope.toFixed(2)} MB/min (limit ${MAX_SLOPE}); ` +
      `last window ${growth >= 0 ? '+' : ''}${(growth / MB).toFixed(1)} MB over the first after warm-up (limit ${MAX_GROWTH})`,
  );
  console.log(
    `V8 heap used after warm-up ${mb(heaps[0]?.heap ?? Number.NaN)}, end ${mb(heaps[heaps.length - 1]?.heap ?? Number.NaN)}, ` +
      `max ${mb(Math.max(...heaps.map((s) => s.heap)))}, trend ${heapSlope.toFixed(2)} MB/min (not judged: the RSS is)`,
  );
  console.log(
    `p99 per window (ms): ${windows.map((window) => percentile(window.latencies, 99).toFixed(0)).join(' ')}; ` +
      `after warm-up max ${p99Max.toFixed(1)} / median ${p99Median.toFixed(1)} = ${p99Ratio.toFixed(2)} (limit ${P99_FACTOR})`,
  );
  if (errorSamples.size > 0) {
    console.log('errors:');
    for (const [label, count] of [...errorSamples].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
      console.log(`  ${String(count).padStart(6)} × ${label}`);
    }
  }

  const failures: string[] = [];
  if (errors > 0) failures.push(`${errors} errors`);
  if (lowestRate < RATE * 0.95) failures.push(`rate not held (lowest window ${lowestRate.toFixed(1)}/s)`);
  if (!(rssSlope <= MAX_SLOPE)) failures.push(`RSS grows ${rssSlope.toFixed(2)} MB/min`);
  if (growth / MB > MAX_GROWTH) failures.push(`RSS grew ${(growth / MB).toFixed(1)} MB after warm-up`);
  if (!(p99Ratio <= P99_FACTOR)) failures.push(`p99 not steady (max/median ${p99Ratio.toFixed(2)})`);
  console.log(failures.length === 0 ? 'verdict: PASS' : `verdict: FAIL (${failures.join('; ')})`);
  return failures.length === 0;
}

async function main() {
  const database = DB === 'postgres' ? await createFreshDatabase() : undefined;
  const dataDir = DB === 'pglite' ? mkdtempSync(join(tmpdir(), 'keymint-soak-')) : undefined;
  const receiver = WEBHOOKS ? await startReceiver() : undefined;
  let server: ServerProcess | undefined;
  try {
    server = await startServer({
      ...(database ? { DATABASE_URL: database.url } : { DATABASE_URL: '', DATA_DIR: dataDir! }),
      ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '10000000',
      WEBHOOKS_ALLOW_PRIVATE: 'true',
    });
    await setUp(server, receiver);
    console.log(
      `keymint-server soak: ${RATE} req/s for ${DURATION} s on ${DB === 'postgres' ? `PostgreSQL ${new URL(database!.url).host}` : 'embedded PGlite'}` +
        `${receiver ? ', one webhook subscription' : ''}; server pid ${server.child.pid}, window ${WINDOW} s, warm-up ${WARMUP} s`,
    );
    const result = await drive(server, receiver);
    const passed = summarize(result);
    const log = server.output().trim();
    if (log) console.log(`server log (warnings and errors, last lines):\n${log.split('\n').slice(-20).join('\n')}`);
    process.exitCode = passed ? 0 : 1;
  } finally {
    client?.destroy();
    await server?.stop();
    await receiver?.close();
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
