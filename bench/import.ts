/**
 * `npm run bench:import`: a generated file of BENCH_IMPORT_KEYS license keys (default 100,000),
 * with a customer for every 5 keys and a device on every third key, imported through
 * POST /admin/import and exported back through GET /admin/export, on PostgreSQL (a database of its
 * own next to DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres) and on embedded
 * PGlite (a temporary DATA_DIR). Prints records/s and keys/s each way, and the server process's
 * resident set: after start, its peak during the import (VmHWM), and during two exports, which
 * run in a freshly started server (after one small export that warms it up) so their peak is the
 * export's alone. BENCH_IMPORT_SKIP_PG=1 measures PGlite only.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFreshDatabase, type ServerProcess, startServer } from '../scripts/server-process.js';
import { createTenant, keepLogTail, MB, peakResidentSet, residentSet } from './shared.js';

const KEYS = Number(process.env.BENCH_IMPORT_KEYS ?? 100_000);
const KEYS_PER_CUSTOMER = 5;
const DEVICE_EVERY = 3;
const ADMIN_TOKEN = `bench-admin-${randomBytes(12).toString('hex')}`;
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';

/** Writes the import file (this server's export format, version 1); returns its record count. */
async function writeFile(path: string, productId: string): Promise<{ records: number; devices: number }> {
  const out = createWriteStream(path);
  let records = 0;
  let devices = 0;
  const write = async (record: unknown) => {
    records++;
    if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
  };
  await write({ type: 'header', format: 'keymint-export', version: 1 });
  const customerId = (i: number) => `c${String(i).padStart(21, '0')}`;
  for (let i = 0; i < KEYS / KEYS_PER_CUSTOMER; i++) {
    await write({
      type: 'customer',
      id: customerId(i),
      name: `Customer ${i}`,
      email: `customer${i}@example.com`,
      active: true,
      createdAt: '2025-01-01T00:00:00.000Z',
    });
  }
  const key = (i: number) => `LEGACY-${String(i).padStart(8, '0')}-${(i * 2_654_435_761) % 1_000_003}`;
  for (let i = 0; i < KEYS; i++) {
    await write({
      type: 'key',
      productId,
      key: key(i),
      customerId: customerId(Math.floor(i / KEYS_PER_CUSTOMER)),
      maxActivations: 3,
      expiryDate: i % 2 === 0 ? '2030-01-01T00:00:00.000Z' : null,
      metadata: { plan: i % 10 === 0 ? 'pro' : 'basic', seats: (i % 7) + 1 },
      allowedHosts: null,
      licenseType: 'node-locked',
      blocked: i % 97 === 0,
      createdAt: '2025-01-02T00:00:00.000Z',
    });
  }
  for (let i = 0; i < KEYS; i += DEVICE_EVERY) {
    devices++;
    await write({
      type: 'device',
      productId,
      key: key(i),
      hostId: `host-${i}`,
      deviceTag: `Laptop ${i}`,
      ipAddress: '192.0.2.1',
      activatedAt: '2025-02-01T00:00:00.000Z',
    });
  }
  out.end();
  await once(out, 'finish');
  return { records, devices };
}

/** Samples a process's resident set every 20 ms; `stop()` gives the largest one seen. */
function sampleResidentSet(pid: number) {
  let peak = residentSet(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, residentSet(pid));
    } catch {
      // The process is gone.
    }
  }, 20);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

interface ExportFigures {
  records: number;
  bytes: number;
  seconds: number;
  againSeconds: number;
  startedMb: number;
  idleMb: number;
  peakMb: number;
}

interface Figures {
  importSeconds: number;
  importRecords: number;
  idleImportMb: number;
  peakImportMb: number;
  export: ExportFigures;
  /** The same export in a server whose young generation is capped (--max-semi-space-size). */
  cappedExport: ExportFigures;
}

/** The young generation's cap of the second export run, in MB a semi-space (V8's default is 16). */
const SEMI_SPACE_MB = 2;

async function postFile(server: ServerProcess, path: string, query: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${server.url}/admin/import?${query}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-ndjson' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`import answered ${res.statusCode}: ${text}`));
          else resolve(JSON.parse(text));
        });
      },
    );
    req.on('error', reject);
    createReadStream(path).pipe(req);
  });
}

/** GETs the export and counts its lines and bytes without keeping them (node:http: undici's fetch is slower than the server). */
async function readExport(server: ServerProcess, query: string): Promise<{ records: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${server.url}/admin/export?${query}`,
      { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`export answered ${res.statusCode}`));
          return;
        }
        let records = 0;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) records++;
        });
        res.on('end', () => resolve({ records, bytes }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function measure(label: string, env: Record<string, string>, file: string): Promise<Figures> {
  const serverEnv = { ...env, ADMIN_TOKEN, WEBHOOKS_WORKER: 'false', RATE_LIMIT_PER_MINUTE: '10000000' };
  const server = keepLogTail(await startServer(serverEnv));
  const pid = server.child.pid!;
  const tenant = await createTenant(server.url, ADMIN_TOKEN, `import-${label}`);
  const empty = await createTenant(server.url, ADMIN_TOKEN, `import-${label}-empty`);
  const generated = await writeFile(file, tenant.productId);
  const idleImport = residentSet(pid);
  const started = performance.now();
  const summary = await postFile(server, file, `accountId=${tenant.accountId}`).catch((err) => {
    console.error(server.errors().join('\n'));
    throw err;
  });
  const importSeconds = (performance.now() - started) / 1000;
  const peakImport = peakResidentSet(pid);
  const keys = summary.keys as { created: number };
  if (summary.failed !== 0 || keys.created !== KEYS) {
    throw new Error(`${label}: the import did not create every key: ${JSON.stringify(summary).slice(0, 2000)}`);
  }
  await server.stop();

  const exported = await measureExport(serverEnv, tenant.accountId, empty.accountId);
  // Header + customers + keys + devices, as generated.
  if (exported.records !== generated.records) {
    throw new Error(`${label}: exported ${exported.records} records, imported ${generated.records}`);
  }
  const capped = await measureExport(
    { ...serverEnv, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=${SEMI_SPACE_MB}` },
    tenant.accountId,
    empty.accountId,
  );
  return {
    importSeconds,
    importRecords: summary.records as number,
    idleImportMb: idleImport / MB,
    peakImportMb: peakImport / MB,
    export: exported,
    cappedExport: capped,
  };
}

/**
 * Two exports of the account in a fresh process, so its high-water mark is theirs and not the
 * import's: one small export first warms the process up (lazy modules, compiled code, the pool);
 * the first full export after a bulk load also sets the rows' hint bits (writes pages), the
 * second reads them only.
 */
async function measureExport(env: Record<string, string>, accountId: string, emptyId: string): Promise<ExportFigures> {
  const server = keepLogTail(await startServer(env));
  try {
    const pid = server.child.pid!;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const startedMb = residentSet(pid) / MB;
    await readExport(server, `accountId=${emptyId}`);
    const idleMb = residentSet(pid) / MB;
    const stopSampling = sampleResidentSet(pid);
    let started = performance.now();
    const first = await readExport(server, `accountId=${accountId}`);
    const seconds = (performance.now() - started) / 1000;
    started = performance.now();
    const again = await readExport(server, `accountId=${accountId}`);
    const againSeconds = (performance.now() - started) / 1000;
    const peakMb = Math.max(stopSampling(), peakResidentSet(pid)) / MB;
    if (again.bytes !== first.bytes) throw new Error(`two exports of ${first.bytes} and ${again.bytes} bytes`);
    return { records: first.records, bytes: first.bytes, seconds, againSeconds, startedMb, idleMb, peakMb };
  } finally {
    await server.stop();
  }
}

function print(label: string, f: Figures) {
  const n = (value: number) => Math.round(value).toLocaleString('en-US').padStart(8);
  console.log(
    `${label.padEnd(10)} import ${n(f.importRecords / f.importSeconds)} records/s ${n(KEYS / f.importSeconds)} keys/s ` +
      `(${f.importSeconds.toFixed(1)} s)  RSS after start ${n(f.idleImportMb)} MB, peak ${n(f.peakImportMb)} MB`,
  );
  // The header line is not a record.
  const records = f.export.records - 1;
  for (const [name, e] of [
    ['export', f.export],
    [`--max-semi-space-size=${SEMI_SPACE_MB}`, f.cappedExport],
  ] as const) {
    console.log(
      `${''.padEnd(10)} ${name}: ${n(records / e.seconds)} records/s ${n(KEYS / e.seconds)} keys/s ` +
        `(${e.seconds.toFixed(1)} s, ${(e.bytes / MB).toFixed(0)} MB), again ${n(records / e.againSeconds)} records/s; ` +
        `RSS after start ${n(e.startedMb)} MB, after a first request ${n(e.idleMb)} MB, ` +
        `peak ${n(e.peakMb)} MB (+${Math.round(e.peakMb - e.idleMb)} MB)`,
    );
  }
}

async function main() {
  const scratch = mkdtempSync(join(tmpdir(), 'keymint-bench-import-'));
  const file = join(scratch, 'import.jsonl');
  console.log(
    `keymint-server import/export: ${KEYS.toLocaleString('en-US')} keys, ${(KEYS / KEYS_PER_CUSTOMER).toLocaleString('en-US')} customers, ` +
      `${Math.ceil(KEYS / DEVICE_EVERY).toLocaleString('en-US')} devices (JSON Lines, POST /admin/import, GET /admin/export)`,
  );
  try {
    if (process.env.BENCH_IMPORT_SKIP_PG !== '1') {
      const database = await createFreshDatabase();
      try {
        print('PostgreSQL', await measure('postgres', { DATABASE_URL: database.url }, file));
      } finally {
        await database.drop();
      }
      console.log(`${''.padEnd(10)} file ${(statSync(file).size / MB).toFixed(0)} MB`);
    }
    const dataDir = join(scratch, 'data');
    print('PGlite', await measure('pglite', { DATABASE_URL: '', DATA_DIR: dataDir }, file));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
