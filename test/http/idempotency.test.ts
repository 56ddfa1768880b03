import { randomBytes } from 'node:crypto';
import { count, eq, type SQL, sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessTokens, idempotencyKeys, products } from '../../src/db/schema/index.js';
import { sha256Hex } from '../../src/lib/hashing.js';
import { pruneIdempotencyKeys } from '../../src/modules/idempotency/prune.js';
import { storeIdempotentResponse } from '../../src/modules/idempotency/store.js';
import { ADMIN_TOKEN, createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import {
  addCustomer,
  createKey,
  createTenant,
  createToken,
  ERRORS,
  expectError,
  getLicense,
  storedRows,
  type Tenant,
  uniqueEmail,
} from '../helpers/fixtures.js';

const t = useTestApp();
const stored = storedRows(t);
let tenant: Tenant;
beforeAll(async () => {
  tenant = await createTenant(t.app);
});

const IN_PROGRESS = { status: 409, body: { message: 'A request with this Idempotency-Key is in progress', code: 1 } };
const MISMATCH = { status: 422, body: { message: 'Idempotency-Key reused with a different request', code: 1 } };
const INVALID_KEY = { status: 400, body: { message: 'Invalid Idempotency-Key', code: 1 } };

/** A key no other test uses. */
const newKey = () => `key-${randomBytes(8).toString('hex')}`;

type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET';

/** One request through app.inject; `body` is JSON-encoded unless it is already a string. */
async function call(
  method: Method,
  url: string,
  options: { key?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const token = options.token ?? tenant.token;
  const response = await t.app.inject({
    method,
    url,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(options.key === undefined ? {} : { 'idempotency-key': options.key }),
      ...options.headers,
    },
    payload:
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
  });
  return { status: response.statusCode, body: parse(response), headers: response.headers, raw: response };
}

const parse = (response: LightMyRequestResponse): unknown => {
  try {
    return response.json();
  } catch {
    return response.body;
  }
};

const replayed = (response: { headers: Record<string, unknown> }) => response.headers['idempotent-replayed'];

/** Expects a replay: the same status and the very same bytes, marked as replayed. */
function expectReplay(
  replay: { status: number; raw: LightMyRequestResponse; headers: Record<string, unknown> },
  original: { status: number; raw: LightMyRequestResponse; headers: Record<string, unknown> },
) {
  expect(replayed(original)).toBeUndefined();
  expect(replay.status).toBe(original.status);
  expect(replayed(replay)).toBe('true');
  expect(replay.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(replay.raw.rawPayload.equals(original.raw.rawPayload)).toBe(true);
}

const recordsOf = (key: string) => t.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));

type RecordChanges = {
  [K in keyof typeof idempotencyKeys.$inferInsert]?: (typeof idempotencyKeys.$inferInsert)[K] | SQL;
};
const setRecord = (key: string, changes: RecordChanges) =>
  t.database.db.update(idempotencyKeys).set(changes).where(eq(idempotencyKeys.key, key));

const minutesAgo = (minutes: number) => sql`statement_timestamp() - ${minutes} * interval '1 minute'`;

async function tokenIdOf(token: string): Promise<string> {
  const [row] = await t.database.db
    .select({ id: accessTokens.id })
    .from(accessTokens)
    .where(eq(accessTokens.tokenHash, sha256Hex(token)));
  return row!.id;
}

async function productCount(accountId: string): Promise<number> {
  const [row] = await t.database.db.select({ n: count() }).from(products).where(eq(products.accountId, accountId));
  return row!.n;
}

describe('a retried request is answered from the record, and nothing runs again', () => {
  it('POST /key: the same status, bytes and Idempotent-Replayed: true; one key', async () => {
    const key = newKey();
    const before = await stored.keyCount(tenant.accountId);
    const body = { productId: tenant.productId, amountKeys: 2 };
    const first = await call('POST', '/key', { key, body });
    expect(first.status).toBe(200);
    const again = await call('POST', '/key', { key, body });
    expectReplay(again, first);
    expect(again.headers['content-length']).toBe(first.headers['content-length']);
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 2);
    const [record] = await recordsOf(key);
    expect(record).toMatchObject({
      scope: `token:${await tokenIdOf(tenant.token)}`,
      responseStatus: 200,
      responseBody: first.raw.body,
    });
    expect(record!.expiresAt.getTime() - record!.createdAt.getTime()).toBe(24 * 3600_000);
  });

  it('POST /create-key (v1 path) likewise', async () => {
    const key = newKey();
    const before = await stored.keyCount(tenant.accountId);
    const first = await call('POST', '/create-key', { key, body: { productId: tenant.productId } });
    expect(first.status).toBe(200);
    expectReplay(await call('POST', '/create-key', { key, body: { productId: tenant.productId } }), first);
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
  });

  it('POST /customer: 201, replayed as 201; one customer', async () => {
    const key = newKey();
    const before = await stored.customerCount(tenant.accountId);
    const body = { name: 'Ada Park', email: uniqueEmail('ada') };
    const first = await call('POST', '/customer', { key, body });
    expect(first.status).toBe(201);
    // Without the record the retry would be 409 "Customer with this email already exists".
    expectReplay(await call('POST', '/customer', { key, body }), first);
    expect(await stored.customerCount(tenant.accountId)).toBe(before + 1);
  });

  it('PATCH /key with a new customer: replayed, not 409/2; one customer', async () => {
    const licenseKey = await createKey(tenant);
    const key = newKey();
    const before = await stored.customerCount(tenant.accountId);
    const body = { productId: tenant.productId, licenseKey, newCustomer: { name: 'N', email: uniqueEmail('n') } };
    const first = await call('PATCH', '/key', { key, body });
    expect(first.status).toBe(200);
    expectReplay(await call('PATCH', '/key', { key, body }), first);
    expect(await stored.customerCount(tenant.accountId)).toBe(before + 1);
  });

  it('DELETE /customer/by-id: replayed, not 404', async () => {
    const customerId = await addCustomer(tenant);
    const key = newKey();
    const first = await call('DELETE', `/customer/by-id?customerId=${customerId}`, { key });
    expect(first.status).toBe(200);
    expectReplay(await call('DELETE', `/customer/by-id?customerId=${customerId}`, { key }), first);
  });

  it('POST /key/activate without hostId: the same generated hostId, one device', async () => {
    const licenseKey = await createKey(tenant);
    const key = newKey();
    const body = { productId: tenant.productId, licenseKey };
    const first = await call('POST', '/key/activate', { key, body });
    expect(first.status).toBe(200);
    expectReplay(await call('POST', '/key/activate', { key, body }), first);
    const { license } = await getLicense(tenant, licenseKey);
    expect(license.devices.map((d: { hostId: string }) => d.hostId)).toEqual([(first.body as any).hostId]);
  });

  it('POST /admin/products (admin token): 201 replayed; one product, in scope "admin"', async () => {
    const key = newKey();
    const before = await productCount(tenant.accountId);
    const body = { name: 'Idempotent product', accountId: tenant.accountId };
    const first = await call('POST', '/admin/products', { key, body, token: ADMIN_TOKEN });
    expect(first.status).toBe(201);
    expectReplay(await call('POST', '/admin/products', { key, body, token: ADMIN_TOKEN }), first);
    expect(await productCount(tenant.accountId)).toBe(before + 1);
    expect((await recordsOf(key)).map((record) => record.scope)).toEqual(['admin']);
  });

  it('POST /admin/tokens is never replayed: the token is stored only as its hash', async () => {
    const key = newKey();
    const body = { name: 'retried token', accountId: tenant.accountId };
    const first = await call('POST', '/admin/tokens', { key, body, token: ADMIN_TOKEN });
    expect(first.status).toBe(201);
    expect(await recordsOf(key)).toEqual([]);
    const retry = await call('POST', '/admin/tokens', { key, body, token: ADMIN_TOKEN });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect((retry.body as any).token).not.toBe((first.body as any).token);
    expect(await recordsOf(key)).toEqual([]);
  });

  it('a bodiless POST counts as {}: an empty body and "{}" are the same request', async () => {
    const customerId = await addCustomer(tenant);
    const key = newKey();
    const first = await call('POST', `/customer/disable?customerId=${customerId}`, { key });
    expect(first.body).toMatchObject({ message: 'Customer disabled' });
    // Run again, this would enable the customer.
    expectReplay(await call('POST', `/customer/disable?customerId=${customerId}`, { key, body: {} }), first);
  });

  it('replays the stored text verbatim: no serializer rewrites it', async () => {
    const key = newKey();
    const first = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(first.status).toBe(200);
    const text = '{ "code" : 0,\n  "key": "AS-STORED", "extra": [1.50] }';
    await setRecord(key, { responseBody: text });
    const again = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(again.status).toBe(200);
    expect(replayed(again)).toBe('true');
    expect(again.raw.body).toBe(text);
  });

  it('a stored 404 is replayed as is', async () => {
    const key = newKey();
    const body = { productId: tenant.productId, licenseKey: 'NO-SUCH-KEY' };
    const first = await call('POST', '/key/activate', { key, body });
    expectError(first, ERRORS.keyNotFound);
    const again = await call('POST', '/key/activate', { key, body });
    expectReplay(again, first);
    expectError(again, ERRORS.keyNotFound);
  });

  it('a 400 of field validation is stored: validation runs after idempotency', async () => {
    const key = newKey();
    const first = await call('POST', '/key', { key, body: { usesPerKey: '3' } });
    expectError(first, ERRORS.missingParams);
    const again = await call('POST', '/key', { key, body: { usesPerKey: '3' } });
    expectReplay(again, first);
    expect(await recordsOf(key)).toMatchObject([{ responseStatus: 400 }]);
  });

  it('a body nested 100k levels deep in an ignored field is fingerprinted, not a 500', async () => {
    const key = newKey();
    const levels = 100_000;
    const body = `{"productId":"${tenant.productId}","versionId":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}`;
    const first = await call('POST', '/key', { key, body });
    expect(first.status).toBe(200);
    expectReplay(await call('POST', '/key', { key, body }), first);
  });

  it('the same body with its keys in another order is the same request (canonical JSON)', async () => {
    const key = newKey();
    const body = { productId: tenant.productId, usesPerKey: '3', format: { sections: 2, prefix: 'A' } };
    const first = await call('POST', '/key', { key, body });
    expect(first.status).toBe(200);
    const reordered = `{"format":{"prefix":"A","sections":2},\n "usesPerKey":"3", "productId":"${tenant.productId}"}`;
    expectReplay(await call('POST', '/key', { key, body: reordered }), first);
  });
});

describe('the same key for a different request: 422/1', () => {
  const body = () => ({ productId: tenant.productId });
  let key: string;
  let keysBefore: number;
  beforeAll(async () => {
    key = newKey();
    expect((await call('POST', '/key', { key, body: body() })).status).toBe(200);
    keysBefore = await stored.keyCount(tenant.accountId);
  });
  afterAll(async () => {
    expect(await stored.keyCount(tenant.accountId)).toBe(keysBefore);
  });

  it('another body', async () => {
    expectError(await call('POST', '/key', { key, body: { ...body(), usesPerKey: '2' } }), MISMATCH);
  });

  it('another path (the v1 alias of the same operation)', async () => {
    expectError(await call('POST', '/create-key', { key, body: body() }), MISMATCH);
  });

  it('another query string', async () => {
    expectError(await call('POST', '/key?versionId=1', { key, body: body() }), MISMATCH);
  });

  it('another method', async () => {
    expectError(await call('PATCH', '/key', { key, body: body() }), MISMATCH);
  });

  it('the body as sent is fingerprinted, before a route moves query values into it', async () => {
    const customerId = await addCustomer(tenant);
    const other = newKey();
    const url = `/customer/by-id?customerId=${customerId}`;
    expect((await call('DELETE', url, { key: other })).status).toBe(200);
    // The route copies customerId from the query into the body: both requests reach the
    // handler with the same body, but the client sent different ones.
    expectError(await call('DELETE', url, { key: other, body: { customerId } }), MISMATCH);
  });
});

describe('an invalid Idempotency-Key: 400/1, nothing runs or is stored', () => {
  for (const [name, value] of [
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
    ['non-ASCII', 'clé-1'],
    ['a control character (tab)', 'a\tb'],
    ['DEL', 'a\x7fb'],
  ] as const) {
    it(name, async () => {
      const before = await stored.keyCount(tenant.accountId);
      const response = await call('POST', '/key', { key: value, body: { productId: tenant.productId } });
      expectError(response, INVALID_KEY);
      expect(await stored.keyCount(tenant.accountId)).toBe(before);
      expect(await recordsOf(value)).toEqual([]);
    });
  }

  it('255 printable characters, space and ~ included, are valid', async () => {
    const key = ` ~${randomBytes(8).toString('hex')}`.padEnd(255, 'z');
    const response = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(response.status).toBe(200);
    expect(await recordsOf(key)).toHaveLength(1);
  });

  it('GET ignores the header, even an invalid one', async () => {
    const licenseKey = await createKey(tenant);
    const response = await call('GET', `/key?productId=${tenant.productId}&licenseKey=${licenseKey}`, { key: '' });
    expect(response.status).toBe(200);
    expect(replayed(response)).toBeUndefined();
    expect(await recordsOf('')).toEqual([]);
  });

  it('an unknown path answers 404, whatever the header', async () => {
    expectError(await call('POST', '/no-such-path', { key: '' }), ERRORS.notFound);
  });
});

describe('requests refused before the idempotency layer store nothing', () => {
  const valid = () => call('POST', '/key', { key: refusedKey, body: { productId: tenant.productId } });
  let refusedKey: string;

  const expectNothingStored = async () => {
    expect(await recordsOf(refusedKey)).toEqual([]);
    // The key is still free: a valid request with it runs.
    const response = await valid();
    expect(response.status).toBe(200);
    expect(replayed(response)).toBeUndefined();
  };

  it('401', async () => {
    refusedKey = newKey();
    const response = await call('POST', '/key', {
      key: refusedKey,
      token: `at_${randomBytes(32).toString('base64url')}`,
      body: { productId: tenant.productId },
    });
    expectError(response, ERRORS.invalidToken);
    await expectNothingStored();
  });

  it('401 even with an invalid key: authentication comes first', async () => {
    expectError(await call('POST', '/key', { key: '', token: 'at_wrong', body: {} }), ERRORS.invalidToken);
  });

  it('403/1 (token without the scope)', async () => {
    refusedKey = newKey();
    const reader = await createToken(t.app, tenant.accountId, { scopes: ['licenses:read'] });
    const response = await call('POST', '/key', {
      key: refusedKey,
      token: reader,
      body: { productId: tenant.productId },
    });
    expectError(response, ERRORS.forbidden);
    await expectNothingStored();
  });

  it('415', async () => {
    refusedKey = newKey();
    const response = await call('POST', '/key', {
      key: refusedKey,
      body: 'productId=x',
      headers: { 'content-type': 'text/plain' },
    });
    expectError(response, 415, 1, 'Content-Type must be application/json');
    await expectNothingStored();
  });

  it('413', async () => {
    refusedKey = newKey();
    const response = await call('POST', '/key', {
      key: refusedKey,
      body: { productId: tenant.productId, pad: 'x'.repeat(1024 * 1024) },
    });
    expectError(response, 413, 1, 'Request body too large');
    await expectNothingStored();
  });

  it('malformed JSON', async () => {
    refusedKey = newKey();
    expectError(await call('POST', '/key', { key: refusedKey, body: '{"productId":' }), ERRORS.invalidJson);
    await expectNothingStored();
  });
});

describe('429', () => {
  let limited: TestApp;
  afterAll(async () => limited?.close());

  it('a rate-limited request stores nothing', async () => {
    limited = await createTestApp({ RATE_LIMIT_PER_MINUTE: '4' });
    const own = await createTenant(limited.app);
    for (let i = 0; i < 4; i++) expect((await own.api.get('/customer')).status).toBe(200);
    const key = newKey();
    const response = await own.api.post('/key', { productId: own.productId }, { 'idempotency-key': key });
    expectError(response, ERRORS.tooManyRequests);
    const records = await limited.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
    expect(records).toEqual([]);
  });
});

describe('records are per caller', () => {
  it('the same key from two tokens of one account: two requests, two keys', async () => {
    const key = newKey();
    const second = await createToken(t.app, tenant.accountId);
    const before = await stored.keyCount(tenant.accountId);
    const body = { productId: tenant.productId };
    const first = await call('POST', '/key', { key, body });
    const other = await call('POST', '/key', { key, body, token: second });
    expect([first.status, other.status]).toEqual([200, 200]);
    expect(replayed(other)).toBeUndefined();
    expect((other.body as any).key).not.toBe((first.body as any).key);
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 2);
    expect((await recordsOf(key)).map((record) => record.scope).sort()).toEqual(
      [`token:${await tokenIdOf(tenant.token)}`, `token:${await tokenIdOf(second)}`].sort(),
    );
  });

  it("the admin token's records are separate from a token's", async () => {
    const key = newKey();
    const product = await call('POST', '/admin/products', {
      key,
      token: ADMIN_TOKEN,
      body: { name: 'P', accountId: tenant.accountId },
    });
    expect(product.status).toBe(201);
    // Another request under the same key: no 422, it is another caller's record.
    const created = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(created.status).toBe(200);
    expect(replayed(created)).toBeUndefined();
  });
});

describe('concurrent requests with one key', () => {
  it('two in parallel: one runs, the other gets 409/1 or the replay; one key created', async () => {
    const key = newKey();
    const before = await stored.keyCount(tenant.accountId);
    const body = { productId: tenant.productId };
    const responses = await Promise.all([call('POST', '/key', { key, body }), call('POST', '/key', { key, body })]);
    const original = responses.filter((r) => r.status === 200 && replayed(r) === undefined);
    expect(original).toHaveLength(1);
    for (const response of responses.filter((r) => r !== original[0])) {
      if (response.status === 409) expectError(response, IN_PROGRESS);
      else expectReplay(response, original[0]!);
    }
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
  });

  it('five in parallel: still exactly one key', async () => {
    const key = newKey();
    const before = await stored.keyCount(tenant.accountId);
    const body = { productId: tenant.productId };
    const responses = await Promise.all(Array.from({ length: 5 }, () => call('POST', '/key', { key, body })));
    const ran = responses.filter((r) => r.status === 200 && replayed(r) === undefined);
    expect(ran).toHaveLength(1);
    for (const response of responses) {
      if (response.status === 409) expectError(response, IN_PROGRESS);
      else expect(response.raw.body).toBe(ran[0]!.raw.body);
    }
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
  });
});

describe('in-flight, abandoned and expired records', () => {
  /** A finished record of a POST /key made into one still in flight, as if its holder were running. */
  async function inFlight(lockedMinutesAgo: number) {
    const key = newKey();
    const first = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(first.status).toBe(200);
    await setRecord(key, { responseStatus: null, responseBody: null, lockedAt: minutesAgo(lockedMinutesAgo) });
    return key;
  }

  it('a running request (in flight for 4 minutes): 409/1, nothing runs', async () => {
    const key = await inFlight(4);
    const before = await stored.keyCount(tenant.accountId);
    expectError(await call('POST', '/key', { key, body: { productId: tenant.productId } }), IN_PROGRESS);
    expect(await stored.keyCount(tenant.accountId)).toBe(before);
  });

  it('an in-flight record with another request: 422/1, not 409', async () => {
    const key = await inFlight(1);
    expectError(await call('POST', '/key', { key, body: { productId: tenant.productId, usesPerKey: '1' } }), MISMATCH);
  });

  it('abandoned (in flight for over 5 minutes): the retry takes it over and runs', async () => {
    const key = await inFlight(6);
    const [abandoned] = await recordsOf(key);
    const before = await stored.keyCount(tenant.accountId);
    const retry = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(retry.status).toBe(200);
    expect(replayed(retry)).toBeUndefined();
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
    const [record] = await recordsOf(key);
    expect(record!.lockToken).not.toBe(abandoned!.lockToken);
    expect(record).toMatchObject({ responseStatus: 200, responseBody: retry.raw.body });
    // The abandoned holder finishing late cannot overwrite the record it lost.
    await storeIdempotentResponse(t.database.db, abandoned!, 200, '{"code":0,"stale":true}');
    expectReplay(await call('POST', '/key', { key, body: { productId: tenant.productId } }), retry);
  });

  it('an abandoned record of another request is not taken over: 422/1', async () => {
    const key = await inFlight(6);
    expectError(await call('POST', '/key', { key, body: { productId: tenant.productId, usesPerKey: '1' } }), MISMATCH);
  });

  it('expired (past 24 hours): the key runs anew, with any request', async () => {
    const key = newKey();
    expect((await call('POST', '/key', { key, body: { productId: tenant.productId } })).status).toBe(200);
    await setRecord(key, { expiresAt: minutesAgo(1) });
    const before = await stored.keyCount(tenant.accountId);
    const anew = await call('POST', '/key', { key, body: { productId: tenant.productId, usesPerKey: '2' } });
    expect(anew.status).toBe(200);
    expect(replayed(anew)).toBeUndefined();
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
    const [record] = await recordsOf(key);
    expect(record!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);
  });
});

describe('server errors are not stored', () => {
  const suffix = randomBytes(4).toString('hex');
  const fn = `idem_test_explode_${suffix}`;
  const trigger = `idem_test_explode_${suffix}`;
  const explode = `explode-${suffix}`;
  afterAll(async () => {
    await t.database.db.execute(sql.raw(`drop trigger if exists ${trigger} on customers`));
    await t.database.db.execute(sql.raw(`drop function if exists ${fn}()`));
  });

  it('a 5xx drops the record: the retry runs again, and succeeds once the fault is gone', async () => {
    await t.database.db.execute(
      sql.raw(`create function ${fn}() returns trigger language plpgsql as $$
        begin
          if new.name = '${explode}' then raise exception 'test fault'; end if;
          return new;
        end $$`),
    );
    await t.database.db.execute(
      sql.raw(`create trigger ${trigger} before insert on customers for each row execute function ${fn}()`),
    );
    const key = newKey();
    const before = await stored.customerCount(tenant.accountId);
    const body = { name: explode };
    const failed = await call('POST', '/customer', { key, body });
    expectError(failed, ERRORS.serverError);
    expect(await recordsOf(key)).toEqual([]);
    const again = await call('POST', '/customer', { key, body });
    expectError(again, ERRORS.serverError);
    expect(replayed(again)).toBeUndefined();

    await t.database.db.execute(sql.raw(`drop trigger ${trigger} on customers`));
    const succeeded = await call('POST', '/customer', { key, body });
    expect(succeeded.status).toBe(201);
    expect(replayed(succeeded)).toBeUndefined();
    expect(await stored.customerCount(tenant.accountId)).toBe(before + 1);
    expectReplay(await call('POST', '/customer', { key, body }), succeeded);
  });

  it('when the answer cannot be stored, it is still sent; the record stays in flight', async () => {
    const key = newKey();
    await t.database.db.execute(
      sql.raw(`create or replace function ${fn}() returns trigger language plpgsql as $$
        begin raise exception 'test fault'; end $$`),
    );
    await t.database.db.execute(
      sql.raw(`create trigger ${trigger}_store before update on idempotency_keys for each row
        when (new.key = '${key}') execute function ${fn}()`),
    );
    try {
      const before = await stored.customerCount(tenant.accountId);
      const response = await call('POST', '/customer', { key, body: { name: 'Stored later' } });
      expect(response.status).toBe(201);
      expect(await stored.customerCount(tenant.accountId)).toBe(before + 1);
      expect(await recordsOf(key)).toMatchObject([{ responseStatus: null }]);
      expectError(await call('POST', '/customer', { key, body: { name: 'Stored later' } }), IN_PROGRESS);
    } finally {
      await t.database.db.execute(sql.raw(`drop trigger ${trigger}_store on idempotency_keys`));
    }
  });

  it('one-key create-key stores its answer in the statement of the key: a failing store creates no key', async () => {
    const key = newKey();
    await t.database.db.execute(
      sql.raw(`create or replace function ${fn}() returns trigger language plpgsql as $$
        begin raise exception 'test fault'; end $$`),
    );
    await t.database.db.execute(
      sql.raw(`create trigger ${trigger}_store before update on idempotency_keys for each row
        when (new.key = '${key}') execute function ${fn}()`),
    );
    const before = await stored.keyCount(tenant.accountId);
    try {
      expectError(await call('POST', '/key', { key, body: { productId: tenant.productId } }), ERRORS.serverError);
      expect(await stored.keyCount(tenant.accountId)).toBe(before);
      expect(await recordsOf(key)).toEqual([]);
    } finally {
      await t.database.db.execute(sql.raw(`drop trigger ${trigger}_store on idempotency_keys`));
    }
    const first = await call('POST', '/key', { key, body: { productId: tenant.productId } });
    expect(first.status).toBe(200);
    expect(await recordsOf(key)).toMatchObject([{ responseStatus: 200, responseBody: first.raw.body }]);
    expectReplay(await call('POST', '/key', { key, body: { productId: tenant.productId } }), first);
    expect(await stored.keyCount(tenant.accountId)).toBe(before + 1);
  });
});

describe('pruning', () => {
  it('deletes expired records in batches and keeps the others', async () => {
    const expired = [newKey(), newKey(), newKey()];
    const live = newKey();
    for (const key of [...expired, live]) {
      expect((await call('POST', '/customer/disable', { key, body: { customerId: 'none' } })).status).toBe(404);
    }
    for (const key of expired) await setRecord(key, { expiresAt: minutesAgo(1) });

    expect(await pruneIdempotencyKeys(t.database.db, { batchSize: 2, maxBatches: 1 })).toBe(2);
    expect(await pruneIdempotencyKeys(t.database.db, { batchSize: 2, maxBatches: 10 })).toBe(1);
    for (const key of expired) expect(await recordsOf(key)).toEqual([]);
    expect(await recordsOf(live)).toHaveLength(1);
  });
});

describe('metrics', () => {
  it('count requests with a key by outcome', async () => {
    const values = async () => {
      const metric = await t.app.metricsRegistry.getSingleMetric('keymint_idempotency_requests_total')!.get();
      return Object.fromEntries(metric.values.map((v) => [v.labels.outcome, v.value]));
    };
    const before = await values();
    expect(Object.keys(before).sort()).toEqual(['first', 'in_progress', 'invalid', 'mismatch', 'replayed']);
    const key = newKey();
    const body = { productId: tenant.productId };
    await call('POST', '/key', { key, body });
    await call('POST', '/key', { key, body });
    await call('POST', '/create-key', { key, body });
    await call('POST', '/key', { key: '', body });
    await call('POST', '/key', { body });
    const after = await values();
    expect({
      first: after.first! - before.first!,
      replayed: after.replayed! - before.replayed!,
      mismatch: after.mismatch! - before.mismatch!,
      invalid: after.invalid! - before.invalid!,
      in_progress: after.in_progress! - before.in_progress!,
    }).toEqual({ first: 1, replayed: 1, mismatch: 1, invalid: 1, in_progress: 0 });
  });
});

describe('without the header', () => {
  it('a POST runs every time and leaves no record', async () => {
    const scope = `token:${await tokenIdOf(tenant.token)}`;
    const records = async () => {
      const [row] = await t.database.db
        .select({ n: count() })
        .from(idempotencyKeys)
        .where(eq(idempotencyKeys.scope, scope));
      return row!.n;
    };
    const [keysBefore, recordsBefore] = [await stored.keyCount(tenant.accountId), await records()];
    await tenant.api.post('/key', { productId: tenant.productId });
    await tenant.api.post('/key', { productId: tenant.productId });
    expect(await stored.keyCount(tenant.accountId)).toBe(keysBefore + 2);
    expect(await records()).toBe(recordsBefore);
  });
});
