import { expect } from 'vitest';
import { request, type ServerProcess } from '../../scripts/server-process.js';

/**
 * The load of the kill -9 tests (PostgreSQL and embedded): create-key with a new customer, and
 * activations of the keys created so far, over HTTP with `concurrency` requests in flight. Once
 * `killAfter` requests have been acknowledged the server gets SIGKILL; the requests in flight
 * then fail, which is expected. Every 200 is recorded, for `verifyAcknowledged`.
 */

/** Acknowledged requests before the kill: KILL_LOAD_ACKS, default 800 (about 1,100 requests sent). */
export const KILL_AFTER = Number(process.env.KILL_LOAD_ACKS ?? 800);

/** Each key allows two devices and is tried from three hosts, then from the first one again. */
export const MAX_ACTIVATIONS = 2;
const HOSTS = ['host-a', 'host-b', 'host-c', 'host-a'];

export interface Tenant {
  accountId: string;
  productId: string;
  token: string;
}

export interface LoadRecord {
  /** Acknowledged keys and the email of the customer created with each. */
  keys: Map<string, string>;
  /** Acknowledged activations: key → hostIds. */
  activations: Map<string, Set<string>>;
  /** Emails of the create-key requests that got no 200 (failed in flight, or not answered). */
  unacknowledgedEmails: string[];
  sent: number;
  acknowledged: number;
  /** 403 Activation limit reached (a third host). */
  refused: number;
  /** Refused with 503 Service unavailable (load shed on a starved machine): not acknowledged, nothing written. */
  shed: number;
  /** Requests that got no answer (the server died under them). */
  failed: number;
}

export interface LoadOptions {
  server: ServerProcess;
  tenant: Tenant;
  /** The customers' emails are `<emailPrefix>-<n>@kill.example`. */
  emailPrefix: string;
  killAfter: number;
  concurrency?: number;
  /** Upper bound on requests, should the kill not come. */
  maxRequests?: number;
}

const isFailure = (status: number) => status !== 200 && status !== 403;
const isShed = (response: { status: number; body: any } | undefined) =>
  response?.status === 503 && response.body?.message === 'Service unavailable' && response.body?.code === 1;

export async function runLoadAndKill(options: LoadOptions): Promise<LoadRecord> {
  const { server, tenant, emailPrefix, killAfter, concurrency = 32, maxRequests = 4 * killAfter } = options;
  const record: LoadRecord = {
    keys: new Map(),
    activations: new Map(),
    unacknowledgedEmails: [],
    sent: 0,
    acknowledged: 0,
    refused: 0,
    shed: 0,
    failed: 0,
  };
  // Activations to try, each queued when its key was acknowledged.
  const pending: { key: string; hostId: string }[] = [];
  const unexpected: string[] = [];
  let killed = false;
  let customers = 0;
  const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));

  const kill = () => {
    if (killed) return;
    killed = true;
    server.child.kill('SIGKILL');
  };

  const send = async (path: string, body: Record<string, unknown>) => {
    record.sent++;
    try {
      return await request(server.url, 'POST', path, tenant.token, body);
    } catch {
      record.failed++;
      return undefined;
    }
  };

  const createKey = async () => {
    const email = `${emailPrefix}-${customers++}@kill.example`;
    const response = await send('/create-key', {
      productId: tenant.productId,
      maxActivations: MAX_ACTIVATIONS,
      newCustomer: { name: `Kill customer ${email}`, email },
    });
    if (response?.status === 200) {
      record.acknowledged++;
      record.keys.set(response.body.key, email);
      for (const hostId of HOSTS) pending.push({ key: response.body.key, hostId });
      return;
    }
    record.unacknowledgedEmails.push(email);
    if (isShed(response)) record.shed++;
    else if (response && isFailure(response.status))
      unexpected.push(`create-key ${response.status} ${JSON.stringify(response.body)}`);
  };

  const activate = async ({ key, hostId }: { key: string; hostId: string }) => {
    const response = await send('/activate-key', { productId: tenant.productId, licenseKey: key, hostId });
    if (response?.status === 200) {
      record.acknowledged++;
      const hosts = record.activations.get(key) ?? new Set<string>();
      hosts.add(response.body.host_id);
      record.activations.set(key, hosts);
    } else if (response?.status === 403 && response.body.message === 'Activation limit reached') {
      record.refused++;
    } else if (isShed(response)) {
      record.shed++;
    } else if (response) {
      unexpected.push(`activate-key ${response.status} ${JSON.stringify(response.body)}`);
    }
  };

  const worker = async () => {
    while (!killed && record.sent < maxRequests) {
      const next = pending.shift();
      await (next ? activate(next) : createKey());
      if (record.acknowledged >= killAfter) kill();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  kill();
  await exited;
  expect(server.child.signalCode).toBe('SIGKILL');
  expect(unexpected, 'answers other than 200, 403 Activation limit reached and 503').toEqual([]);
  return record;
}

/** Runs `fn` over `items` with `concurrency` calls in flight. */
async function forEachConcurrently<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * Through a restarted server's HTTP API: every acknowledged key exists with its customer and
 * every acknowledged activation's device, no key has more devices than its limit, and every
 * create-key that got no answer either wrote its key and its customer, or neither.
 */
export async function verifyAcknowledged(url: string, tenant: Tenant, record: LoadRecord) {
  let devices = 0;
  await forEachConcurrently([...record.keys], 16, async ([key, email]) => {
    const query = new URLSearchParams({ productId: tenant.productId, licenseKey: key });
    const response = await request(url, 'GET', `/key?${query}`, tenant.token);
    expect(response.status, `acknowledged key ${key}`).toBe(200);
    const { license, customer } = response.body.data;
    expect(customer?.email, `customer of ${key}`).toBe(email);
    const hostIds = (license.devices as { hostId: string }[]).map((device) => device.hostId);
    expect(hostIds.length).toBeLessThanOrEqual(MAX_ACTIVATIONS);
    for (const hostId of record.activations.get(key) ?? []) expect(hostIds, `device of ${key}`).toContain(hostId);
    devices += hostIds.length;
  });
  let halfWritten = 0;
  let writtenUnanswered = 0;
  await forEachConcurrently(record.unacknowledgedEmails, 16, async (email) => {
    const found = await request(url, 'GET', `/customer?${new URLSearchParams({ email })}`, tenant.token);
    expect(found.status).toBe(200);
    const customer = found.body.data[0];
    if (!customer) return;
    const keys = await request(url, 'GET', `/customer/keys?customerId=${customer.id}`, tenant.token);
    expect(keys.status).toBe(200);
    if (keys.body.data.licenseKeys.length === 0) halfWritten++;
    else writtenUnanswered++;
  });
  expect(halfWritten, 'customers of a new-customer create-key without their key').toBe(0);
  return { keys: record.keys.size, devices, writtenUnanswered };
}

/** SQL that finds half-written requests; each must count 0 rows. */
export const INTEGRITY_QUERIES = {
  keysWithoutTheirCustomer: `select count(*)::int as n from license_keys k
    where k.customer_id is not null and not exists (select 1 from customers c where c.id = k.customer_id)`,
  loadCustomersWithoutKey: `select count(*)::int as n from customers c
    where c.email like '%@kill.example' and not exists (select 1 from license_keys k where k.customer_id = c.id)`,
  keysOverTheirLimit: `select count(*)::int as n from license_keys k
    where k.max_activations is not null
      and (select count(*) from devices d where d.license_key_id = k.id) > k.max_activations`,
};

/** Runs INTEGRITY_QUERIES with `query` (postgres.js or PGlite) and expects no row to be found. */
export async function expectNoHalfWrites(query: (text: string) => Promise<{ n: number }[]>) {
  for (const [name, text] of Object.entries(INTEGRITY_QUERIES)) {
    const rows = await query(text);
    expect(rows[0]?.n, name).toBe(0);
  }
}

/** The number of keys and devices of the load's customers, for the report. */
export const COUNT_QUERY = `select
    (select count(*)::int from license_keys k join customers c on c.id = k.customer_id
      where c.email like '%@kill.example') as keys,
    (select count(*)::int from devices) as devices`;
