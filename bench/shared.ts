/**
 * What the benchmarks (run.ts, overload.ts) and the soak (soak.ts) share: the tenant they drive
 * traffic for, a loopback webhook receiver, the server processes' CPU and memory as /proc tells,
 * a keep-alive HTTP client, and the open-loop scheduler (requests sent at a fixed rate).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request, type ServerProcess } from '../scripts/server-process.js';

export interface Tenant {
  accountId: string;
  productId: string;
  /** An access token of the account with every scope. */
  token: string;
}

/** A new account with one product and one access token, made through the admin API. */
export async function createTenant(baseUrl: string, adminToken: string, name: string): Promise<Tenant> {
  const account = await request(baseUrl, 'POST', '/admin/accounts', adminToken, { name });
  if (account.status !== 201 && account.status !== 200) {
    throw new Error(`account creation failed: ${JSON.stringify(account.body)}`);
  }
  const accountId = account.body.id as string;
  const product = await request(baseUrl, 'POST', '/admin/products', adminToken, { name, accountId });
  const token = await request(baseUrl, 'POST', '/admin/tokens', adminToken, { name, accountId });
  if (typeof product.body.id !== 'string' || typeof token.body.token !== 'string') {
    throw new Error(`tenant set-up failed: ${JSON.stringify({ product: product.body, token: token.body })}`);
  }
  return { accountId, productId: product.body.id, token: token.body.token };
}

export interface Receiver {
  url: string;
  /** Deliveries received (POSTs answered 200). */
  count(): number;
  /** performance.now() of the first and the last delivery received. */
  span(): { first: number; last: number };
  close(): Promise<void>;
}

/** A webhook receiver on loopback that answers every POST with 200. */
export async function startReceiver(): Promise<Receiver> {
  let received = 0;
  let first = 0;
  let last = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      last = performance.now();
      if (received === 1) first = last;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  receiver.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    count: () => received,
    span: () => ({ first, last }),
    close: () =>
      new Promise((resolve) => {
        receiver.closeAllConnections();
        receiver.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of a process

/** USER_HZ, the unit of /proc/<pid>/stat's times (`getconf CLK_TCK`; 100 on every Linux Node runs on). */
export const CLOCK_TICKS = (() => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

/** CPU the process has used, user + system, in clock ticks (/proc/<pid>/stat); NaN when it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (in parentheses, which may hold spaces): utime is the 14th
    // field of the line, the 12th after the name.
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds the process has used (user + system). */
export const cpuSeconds = (pid: number): number => cpuTicks(pid) / CLOCK_TICKS;

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (!kb) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** The process's resident set now, in bytes (VmRSS). */
export const residentSet = (pid: number): number => statusField(pid, 'VmRSS');
/** The largest resident set the process has had, in bytes (VmHWM, its high-water mark). */
export const peakResidentSet = (pid: number): number => statusField(pid, 'VmHWM');

/** The whole machine's CPU time so far (/proc/stat, clock ticks): busy and total, over all cores. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user already)
  const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

export const MB = 1024 * 1024;

/** The p-th percentile of values sorted ascending (NaN for none). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Stops keeping a server process's log in memory (startServer collects all of it, which at the
 * info level is hundreds of megabytes over a benchmark): the pipes are still read, only the last
 * 64 kB are kept for output(), and the first 20 lines logged at level error or fatal for errors().
 */
export function keepLogTail(server: ServerProcess): ServerProcess & { errors(): string[] } {
  let tail = '';
  let partial = '';
  const errors: string[] = [];
  const keep = (chunk: Buffer) => {
    const text = chunk.toString();
    tail = (tail + text).slice(-65_536);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > 65_536) partial = '';
    for (const line of lines) {
      if (errors.length < 20 && /"level":(50|60)[,}]/.test(line)) errors.push(line.slice(0, 2000));
    }
  };
  for (const stream of [server.child.stdout, server.child.stderr]) {
    stream?.removeAllListeners('data');
    stream?.on('data', keep);
  }
  return { ...server, output: () => tail, errors: () => errors };
}

// ---------------------------------------------------------------------------------------------
// HTTP client (keep-alive, one request at a time per socket)

export interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, read field by field
  body: any;
}

export interface Client {
  /** One request with the client's token; resolves with status 0 on a network error or timeout. */
  call(method: string, path: string, body?: unknown): Promise<Answer>;
  destroy(): void;
}

export function createClient(options: {
  baseUrl: string;
  token: string;
  maxSockets: number;
  timeoutMs: number;
}): Client {
  // Idle sockets are closed here after 10 s, well before the server's keep-alive timeout (72 s):
  // a socket the server closes while a request is being written to it would fail that request
  // (ECONNRESET) through no fault of the server. Sockets opened during a burst otherwise sit idle.
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets, timeout: 10_000 });
  const authorization = `Bearer ${options.token}`;
  const call = (method: string, path: string, body?: unknown): Promise<Answer> =>
    new Promise((resolve) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpRequest(
        `${options.baseUrl}${path}`,
        {
          method,
          agent,
          headers: { authorization, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
          timeout: options.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // Kept as text for the error report.
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', (err) => resolve({ status: 0, body: String(err) }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer in ${options.timeoutMs} ms`)));
      req.on('error', (err) => resolve({ status: 0, body: String(err) }));
      req.end(payload);
    });
  return { call, destroy: () => agent.destroy() };
}

// ---------------------------------------------------------------------------------------------
// Open loop: request i is due at i / rate seconds, whether or not earlier ones have answered

export interface OpenLoopOptions {
  rate: number;
  /** Requests to send in all (the run lasts total / rate seconds). */
  total: number;
  /** With this many requests in flight, a due request is not sent: `skip` is told instead. */
  maxInFlight: number;
  /**
   * Sends one request, due at `dueAt` (performance.now() time; latency counts from then, so a
   * request kept waiting for a free socket counts its wait).
   */
  fire(dueAt: number): Promise<unknown>;
  /** A due request was not sent: more than maxInFlight were in flight (the server is not keeping up). */
  skip?(dueAt: number): void;
  /** Called every few milliseconds with the seconds since the start. */
  tick?(elapsed: number): void;
  /** performance.now() of request 0's due time (default: now). */
  started?: number;
}

/**
 * Drives `fire` at a fixed rate (every 5 ms, it sends the requests that are due by then) and
 * resolves once every request was sent and answered. A slow server cannot slow the load down.
 */
export async function openLoop(
  options: OpenLoopOptions,
): Promise<{ started: number; elapsed: number; skipped: number }> {
  const { rate, total, maxInFlight } = options;
  let sent = 0;
  let inFlight = 0;
  let skipped = 0;
  const pending = new Set<Promise<unknown>>();
  const started = options.started ?? performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const due = Math.min(total, Math.floor(elapsed * rate));
      for (; sent < due; sent++) {
        const dueAt = started + (sent / rate) * 1000;
        if (inFlight >= maxInFlight) {
          skipped++;
          options.skip?.(dueAt);
          continue;
        }
        inFlight++;
        const promise = options.fire(dueAt).finally(() => {
          inFlight--;
          pending.delete(promise);
        });
        pending.add(promise);
      }
      options.tick?.(elapsed);
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  await Promise.all(pending);
  return { started, elapsed: (performance.now() - started) / 1000, skipped };
}
