/**
 * `npm run bench:overload`: far more connections than the pool (BENCH_OVERLOAD_CONNECTIONS,
 * default 1000, against DB_POOL_SIZE=10) on GET /key, once with the default admission limits and
 * once with them off (MAX_CONCURRENT_REQUESTS=0, MAX_EVENT_LOOP_DELAY_MS=0). Prints how many
 * requests were served and refused (503), the latency, and what the server's /metrics saw
 * (requests shed by reason, event-loop delay). PostgreSQL from DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres; a database of its own, dropped at the end);
 * BENCH_DURATION seconds per run (default 15).
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { createFreshDatabase, request, startServer } from '../scripts/server-process.js';
import { createTenant } from './shared.js';

process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
const DURATION = Number(process.env.BENCH_DURATION ?? 15);
const CONNECTIONS = Number(process.env.BENCH_OVERLOAD_CONNECTIONS ?? 1000);
const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;

const metric = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? Number.NaN);

async function run(label: string, databaseUrl: string, env: Record<string, string>) {
  const server = await startServer({
    DATABASE_URL: databaseUrl,
    ADMIN_TOKEN,
    DB_POOL_SIZE: '10',
    RATE_LIMIT_PER_MINUTE: '10000000',
    WEBHOOKS_WORKER: 'false',
    ...env,
  });
  try {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, 'overload');
    const created = await request(server.url, 'POST', '/create-key', tenant.token, { productId: tenant.productId });
    const url = `${server.url}/key?productId=${tenant.productId}&licenseKey=${encodeURIComponent(created.body.key)}`;
    // Give the admission's event-loop check its start-up grace (2 s) before the load.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const result = await autocannon({
      url,
      connections: CONNECTIONS,
      duration: DURATION,
      headers: { authorization: `Bearer ${tenant.token}` },
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const served = result.requests.total - result.non2xx;
    const refused = result.non2xx;
    console.log(
      `${label.padEnd(28)} served ${String(served).padStart(7)} (${(served / DURATION).toFixed(0).padStart(5)}/s)  ` +
        `503 ${String(refused).padStart(7)} (${((100 * refused) / Math.max(1, served + refused)).toFixed(1).padStart(5)} %)  ` +
        `errors ${result.errors}  latency p50 ${result.latency.p50} ms p99 ${result.latency.p99} ms max ${result.latency.max} ms`,
    );
    console.log(
      `${''.padEnd(28)} shed: concurrency ${metric(metrics, /^keymint_http_requests_shed_total\{reason="concurrency"\} (\S+)$/m)}, ` +
        `event loop ${metric(metrics, /^keymint_http_requests_shed_total\{reason="event_loop_delay"\} (\S+)$/m)}; ` +
        `timeouts ${metric(metrics, /^keymint_http_request_timeouts_total (\S+)$/m)}; ` +
        `event-loop delay p99 ${(1000 * metric(metrics, /^nodejs_eventloop_lag_p99_seconds (\S+)$/m)).toFixed(0)} ms`,
    );
  } finally {
    await server.stop();
  }
}

async function main() {
  const database = await createFreshDatabase();
  try {
    console.log(`keymint-server overload: ${CONNECTIONS} connections on GET /key, pool of 10, ${DURATION} s per run`);
    await run('admission limits (default)', database.url, {});
    await run('admission limits off', database.url, { MAX_CONCURRENT_REQUESTS: '0', MAX_EVENT_LOOP_DELAY_MS: '0' });
  } finally {
    await database.drop();
  }
}

await main();
