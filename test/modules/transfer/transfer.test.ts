import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, useTestApp } from '../../helpers/app.js';
import { runCli, useCliDataDir } from '../../helpers/cli.js';
import { admin, createTenant, type Tenant } from '../../helpers/fixtures.js';

const t = useTestApp({ WEBHOOKS_ALLOW_PRIVATE: 'true' });

type Summary = {
  records: number;
  customers: { created: number; updated: number; skipped: number };
  keys: { created: number; updated: number; skipped: number };
  devices: { created: number; updated: number; skipped: number };
  failed: number;
  errors: { line: number; message: string }[];
  warnings: { line: number; message: string }[];
  stopped: boolean;
  dryRun: boolean;
};

async function importFile(
  body: string,
  query: Record<string, string>,
  contentType = 'application/x-ndjson',
): Promise<{ status: number; summary: Summary }> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/admin/import',
    query,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': contentType },
    payload: body,
  });
  return { status: response.statusCode, summary: response.json() };
}

async function exportOf(accountId: string, extra: Record<string, string> = {}) {
  const response = await t.app.inject({
    method: 'GET',
    url: '/admin/export',
    query: { accountId, ...extra },
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(response.statusCode).toBe(200);
  return response.body;
}

const lines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));

/** An export's records without what differs between accounts: ids, the product, dates of now. */
function comparable(text: string) {
  const records = lines(text).filter((record) => record.type !== 'header');
  const emailOf = new Map(records.filter((r) => r.type === 'customer').map((r) => [r.id, r.email ?? r.name]));
  return records
    .map(({ id: _id, productId: _p, updatedAt: _u, customerId, ...record }) => ({
      ...record,
      ...(customerId !== undefined ? { customer: customerId === null ? null : emailOf.get(customerId) } : {}),
    }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

async function counts(accountId: string) {
  const text = await exportOf(accountId);
  const records = lines(text);
  return {
    customers: records.filter((r) => r.type === 'customer').length,
    keys: records.filter((r) => r.type === 'key').length,
    devices: records.filter((r) => r.type === 'device').length,
  };
}

/** A tenant with keys of every kind through the API: customers, limits, expiry, floating, devices. */
async function populated(): Promise<Tenant> {
  const tenant = await createTenant(t.app);
  const customer = await tenant.api.post('/customer', { name: 'Zoë Ünicode "Q"', email: 'Zoe@Example.com' });
  expect(customer.status).toBe(201);
  const customerId = customer.body.id as string;
  const noEmail = await tenant.api.post('/customer', { name: 'No Email Ltd' });
  const keys = [
    { productId: tenant.productId, maxActivations: '2', expiryDate: '2030-01-02T03:04:05.000Z', customerId },
    { productId: tenant.productId, metadata: { plan: 'pro', seats: [1, 2] }, allowedHosts: ['a', 'b'] },
    { productId: tenant.productId, licenseType: 'floating', maxConcurrentSessions: 3, customerId: noEmail.body.id },
  ];
  const made: string[] = [];
  for (const body of keys) {
    const response = await tenant.api.post('/create-key', body);
    expect(response.status).toBe(200);
    made.push(response.body.key);
  }
  for (const hostId of ['host-1', 'host-2']) {
    const activated = await tenant.api.post('/key/activate', {
      productId: tenant.productId,
      licenseKey: made[0],
      hostId,
    });
    expect(activated.status).toBe(200);
  }
  expect((await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: made[1] })).status).toBe(200);
  return tenant;
}

describe('export and import through the admin API', () => {
  it('round trip: export, import into an empty account, export again gives the same records; a re-run changes nothing', async () => {
    const source = await populated();
    const first = await exportOf(source.accountId);
    const header = lines(first)[0];
    expect(header).toMatchObject({ type: 'header', format: 'keymint-export', version: 1, accountId: source.accountId });
    expect(await counts(source.accountId)).toEqual({ customers: 2, keys: 3, devices: 2 });

    const target = await createTenant(t.app);
    const imported = await importFile(first, { accountId: target.accountId, productId: target.productId });
    expect(imported.status).toBe(200);
    expect(imported.summary).toMatchObject({
      records: 7,
      customers: { created: 2, updated: 0, skipped: 0 },
      keys: { created: 3, updated: 0, skipped: 0 },
      devices: { created: 2, updated: 0, skipped: 0 },
      failed: 0,
      stopped: false,
    });
    const second = await exportOf(target.accountId);
    expect(comparable(second)).toEqual(comparable(first));

    // The imported keys work through the API as they did: the limit of 2 is reached.
    const full = lines(second).find((r) => r.type === 'key' && r.maxActivations === 2);
    const third = await target.api.post('/key/activate', {
      productId: target.productId,
      licenseKey: full.key,
      hostId: 'host-3',
    });
    expect(third.body).toEqual({ code: 2, message: 'Activation limit reached' });

    const again = await importFile(first, { accountId: target.accountId, productId: target.productId });
    expect(again.summary).toMatchObject({
      customers: { created: 0, updated: 0, skipped: 2 },
      keys: { created: 0, updated: 0, skipped: 3 },
      devices: { created: 0, updated: 0, skipped: 2 },
      failed: 0,
    });
    expect(await counts(target.accountId)).toEqual({ customers: 2, keys: 3, devices: 2 });
  });

  it('exports no secret: no token, token hash, webhook secret or session secret', async () => {
    const tenant = await populated();
    const webhook = await admin(t.app).post('/admin/webhooks', {
      url: 'http://127.0.0.1:9/hook',
      accountId: tenant.accountId,
    });
    expect(webhook.status).toBe(201);
    const text = await exportOf(tenant.accountId);
    expect(text).not.toContain(tenant.token);
    expect(text).not.toContain(webhook.body.secret);
    expect(text).not.toMatch(/at_|whsec_|tokenHash|secret/i);
  });

  it('CSV: quoting, embedded newlines, unicode, bad lines reported by line number, the rest imported', async () => {
    const tenant = await createTenant(t.app);
    const csv = [
      'key,customerName,customerEmail,usesPerKey,expiryDate,metadata,allowedHosts,blocked',
      `OLD-KEY-0001,"Smith, Jane",jane@example.com,3,2031-05-06,"{""tier"":""gold""}",host-a;host-b,false`,
      `"old key ""two""","Müller
GmbH",MULLER@example.com,,,,,true`,
      'OLD-KEY-0003,Jane again,JANE@example.com,0,,,,',
      'OLD-KEY-0004,,,,not-a-date,,,',
      'OLD-KEY-0005,,,,,{not json},,',
      ',Nobody,,,,,,',
      'キー-0007,,,,,,,',
    ].join('\n');
    const { status, summary } = await importFile(
      csv,
      { accountId: tenant.accountId, productId: tenant.productId },
      'text/csv',
    );
    expect(status).toBe(200);
    expect(summary.errors).toEqual([
      { line: 5, message: 'Invalid usesPerKey' },
      { line: 6, message: 'Invalid expiryDate' },
      { line: 7, message: 'Invalid metadata' },
      { line: 8, message: 'Missing required params' },
    ]);
    expect(summary).toMatchObject({ failed: 4, keys: { created: 3 }, customers: { created: 2 } });
    const records = lines(await exportOf(tenant.accountId));
    const customers = records.filter((r) => r.type === 'customer');
    expect(customers.map((c) => c.name).sort()).toEqual(['Müller\nGmbH', 'Smith, Jane']);
    const keys = new Map(records.filter((r) => r.type === 'key').map((r) => [r.key, r]));
    expect([...keys.keys()].sort()).toEqual(['OLD-KEY-0001', 'old key "two"', 'キー-0007'].sort());
    expect(keys.get('OLD-KEY-0001')).toMatchObject({
      maxActivations: 3,
      expiryDate: '2031-05-06T00:00:00.000Z',
      metadata: { tier: 'gold' },
      allowedHosts: ['host-a', 'host-b'],
      blocked: false,
    });
    expect(keys.get('old key "two"')).toMatchObject({ blocked: true, expiryDate: null, maxActivations: null });
    // The customer is matched by email, case-insensitively.
    const jane = customers.find((c) => c.email === 'jane@example.com');
    expect(keys.get('OLD-KEY-0001').customerId).toBe(jane.id);
  });

  it('--dry-run validates and counts like a run, and writes nothing', async () => {
    const source = await populated();
    const file = await exportOf(source.accountId);
    const target = await createTenant(t.app);
    const dry = await importFile(file, { accountId: target.accountId, productId: target.productId, dryRun: 'true' });
    expect(dry.summary).toMatchObject({
      dryRun: true,
      keys: { created: 3 },
      customers: { created: 2 },
      devices: { created: 2 },
    });
    expect(await counts(target.accountId)).toEqual({ customers: 0, keys: 0, devices: 0 });
  });

  it('onConflict=update changes what differs; onConflict=fail stops at the first conflict and keeps its batch out', async () => {
    const tenant = await createTenant(t.app);
    const base = { accountId: tenant.accountId, productId: tenant.productId };
    const key = (fields: object) => JSON.stringify({ type: 'key', key: 'K-1', ...fields });
    expect((await importFile(key({ maxActivations: 1 }), base)).summary.keys.created).toBe(1);
    const updated = await importFile(`${key({ maxActivations: 5, blocked: true })}\n${key({})}`, {
      ...base,
      onConflict: 'update',
    });
    // The second line is the same key again in the file: refused.
    expect(updated.summary).toMatchObject({ keys: { created: 0, updated: 1 }, failed: 1 });
    expect(updated.summary.errors).toEqual([{ line: 2, message: 'License key already in this file (line 1)' }]);
    const same = await importFile(key({ maxActivations: 5, blocked: true }), { ...base, onConflict: 'update' });
    expect(same.summary.keys).toEqual({ created: 0, updated: 0, skipped: 1 });
    const exported = lines(await exportOf(tenant.accountId)).find((r) => r.type === 'key');
    expect(exported).toMatchObject({ key: 'K-1', maxActivations: 5, blocked: true });

    const failing = await importFile(
      [JSON.stringify({ type: 'key', key: 'K-2' }), key({ maxActivations: 9 })].join('\n'),
      { ...base, onConflict: 'fail' },
    );
    expect(failing.summary).toMatchObject({
      stopped: true,
      failed: 1,
      errors: [{ line: 2, message: 'License key already exists' }],
    });
    const keys = lines(await exportOf(tenant.accountId)).filter((r) => r.type === 'key');
    expect(keys.map((k) => k.key)).toEqual(['K-1']);
    expect(keys[0].maxActivations).toBe(5);
  });

  it('devices over a key limit are imported as the file says, and reported', async () => {
    const tenant = await createTenant(t.app);
    const file = [
      { type: 'key', key: 'LIMITED', maxActivations: 1 },
      { type: 'device', key: 'LIMITED', hostId: 'h1', activatedAt: '2024-01-01T00:00:00.000Z' },
      { type: 'device', key: 'LIMITED', hostId: 'h2' },
      { type: 'device', key: 'MISSING', hostId: 'h3' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n');
    const { summary } = await importFile(file, { accountId: tenant.accountId, productId: tenant.productId });
    expect(summary).toMatchObject({ devices: { created: 2 }, failed: 1 });
    expect(summary.errors).toEqual([{ line: 4, message: 'License key not found' }]);
    expect(summary.warnings).toEqual([{ line: 3, message: 'License key LIMITED has 2 devices, over its limit of 1' }]);
    const device = lines(await exportOf(tenant.accountId)).find((r) => r.type === 'device' && r.hostId === 'h1');
    expect(device.activatedAt).toBe('2024-01-01T00:00:00.000Z');
  });

  it('a full batch (1,000 records: 100 customers, 450 keys, 450 devices) in one transaction; a re-run skips all', async () => {
    const tenant = await createTenant(t.app);
    const records: Record<string, unknown>[] = [];
    for (let i = 0; i < 100; i++)
      records.push({ type: 'customer', id: `c${i}`, name: `C ${i}`, email: `C${i}@Example.com` });
    for (let i = 0; i < 450; i++) records.push({ type: 'key', key: `BATCH-${i}`, customerId: `c${i % 100}` });
    for (let i = 0; i < 450; i++) records.push({ type: 'device', key: `BATCH-${i}`, hostId: `host-${i}` });
    const file = records.map((r) => JSON.stringify(r)).join('\n');
    const query = { accountId: tenant.accountId, productId: tenant.productId };
    const first = await importFile(file, query);
    expect(first.status).toBe(200);
    expect(first.summary).toMatchObject({
      customers: { created: 100 },
      keys: { created: 450 },
      devices: { created: 450 },
      failed: 0,
    });
    const again = await importFile(file, query);
    expect(again.summary).toMatchObject({
      customers: { created: 0, skipped: 100 },
      keys: { created: 0, skipped: 450 },
      devices: { created: 0, skipped: 450 },
    });
    expect(await counts(tenant.accountId)).toEqual({ customers: 100, keys: 450, devices: 450 });
  });

  it('a Keygen export: licenses, their users and machines', async () => {
    const tenant = await createTenant(t.app);
    const keygen = JSON.parse(readFileSync(new URL('./keygen-export.json', import.meta.url), 'utf8'));
    const { summary } = await importFile(
      JSON.stringify(keygen),
      { accountId: tenant.accountId, productId: tenant.productId },
      'application/vnd.api+json',
    );
    expect(summary).toMatchObject({
      customers: { created: 1 },
      keys: { created: 2 },
      devices: { created: 1 },
      failed: 1,
    });
    expect(summary.errors).toEqual([{ line: 5, message: 'License key not found' }]);
    const records = lines(await exportOf(tenant.accountId));
    const keys = new Map(records.filter((r) => r.type === 'key').map((r) => [r.key, r]));
    expect(keys.get('KG-AAAA-BBBB')).toMatchObject({
      maxActivations: 3,
      expiryDate: '2030-06-01T00:00:00.000Z',
      metadata: { plan: 'team' },
      blocked: false,
    });
    expect(keys.get('KG-CCCC-DDDD')).toMatchObject({
      blocked: true,
      licenseType: 'floating',
      maxConcurrentSessions: 5,
    });
    expect(records.find((r) => r.type === 'customer')).toMatchObject({
      name: 'Ada Lovelace',
      email: 'ada@example.com',
    });
    expect(records.find((r) => r.type === 'device')).toMatchObject({
      hostId: 'fp-1',
      deviceTag: 'Ada laptop',
      ipAddress: '10.0.0.1',
    });
  });

  it('refuses without the admin token, an unknown product, and a body that is not an import', async () => {
    const tenant = await createTenant(t.app);
    const noAuth = await t.app.inject({ method: 'GET', url: '/admin/export' });
    expect(noAuth.statusCode).toBe(401);
    const withToken = await t.app.inject({
      method: 'POST',
      url: '/admin/import',
      headers: { authorization: `Bearer ${tenant.token}`, 'content-type': 'text/csv' },
      payload: 'key\nA',
    });
    expect(withToken.statusCode).toBe(401);
    const product = await importFile('key\nA', { accountId: tenant.accountId, productId: 'x'.repeat(22) }, 'text/csv');
    expect(product).toMatchObject({ status: 404, summary: { code: 1, message: 'Product not found' } });
    const expected = {
      code: 1,
      message: 'Content-Type must be application/x-ndjson, text/csv or application/vnd.api+json',
    };
    const json = await importFile('{"a":1}', { accountId: tenant.accountId }, 'application/json');
    expect(json).toEqual({ status: 415, summary: expected });
    const bodiless = await t.app.inject({
      method: 'POST',
      url: '/admin/import',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect([bodiless.statusCode, bodiless.json()]).toEqual([415, expected]);
    const garbage = await importFile('not json at all\n{"type":"key"}', {
      accountId: tenant.accountId,
      productId: tenant.productId,
    });
    expect(garbage.summary.errors).toEqual([
      { line: 1, message: 'Invalid JSON' },
      { line: 2, message: 'Missing required params' },
    ]);
    expect(await counts(tenant.accountId)).toEqual({ customers: 0, keys: 0, devices: 0 });
  });

  it('CSV export: a row a key with its customer, read back by the CSV import', async () => {
    const source = await populated();
    const csv = await exportOf(source.accountId, { format: 'csv' });
    expect(csv.split('\n')[0]).toBe(
      'key,productId,customerName,customerEmail,maxActivations,expiryDate,metadata,allowedHosts,licenseType,maxConcurrentSessions,blocked',
    );
    const target = await createTenant(t.app);
    const { summary } = await importFile(csv, { accountId: target.accountId, productId: target.productId }, 'text/csv');
    expect(summary).toMatchObject({ keys: { created: 3 }, failed: 0 });
  });
});

describe('keymint-server export and import', () => {
  const cli = useCliDataDir('keymint-transfer-cli-');
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'keymint-transfer-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('imports a CSV file with a JSON summary and exports it to a file (0600)', async () => {
    const products = await runCli(['products', 'create', '--name', 'Moved in', '--json'], cli.env);
    expect(products.code).toBe(0);
    const productId = JSON.parse(products.stdout).id as string;
    const file = join(root, 'keys.csv');
    // On PostgreSQL the default account is shared with every run of the suite: an email of its own.
    const email = `moved-${randomUUID()}@example.com`;
    writeFileSync(file, `key,customerEmail,maxActivations\nMOVE-1,${email},2\nMOVE-2,,\nMOVE-3,,x\n`);
    const imported = await runCli(['import', file, '--product', productId, '--json'], cli.env);
    // A failed line: exit 1, after the summary.
    expect(imported.code).toBe(1);
    expect(JSON.parse(imported.stdout)).toMatchObject({
      format: 'csv',
      keys: { created: 2 },
      customers: { created: 1 },
      failed: 1,
      errors: [{ line: 4, message: 'Invalid maxActivations' }],
    });
    expect(imported.stderr).toBe('');
    const out = join(root, 'export.jsonl');
    const exported = await runCli(['export', '--product', productId, '--out', out, '--json'], cli.env);
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ keys: 2, customers: 1, devices: 0, file: out });
    const records = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(records.map((r) => r.type)).toEqual(['header', 'customer', 'key', 'key']);
    expect(await runCli(['import', file, '--on-conflict', 'sometimes'], cli.env)).toMatchObject({ code: 2 });
  });
});
