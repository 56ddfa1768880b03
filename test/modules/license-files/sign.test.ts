import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/client.js';
import { customers } from '../../../src/db/schema/index.js';
import { useTestApp } from '../../helpers/app.js';
import {
  admin,
  client,
  createKey,
  createProduct,
  createTenant,
  createToken,
  expectError,
  type Tenant,
} from '../../helpers/fixtures.js';
import {
  appOn,
  decode,
  jwksOf,
  KID,
  openIsolatedDatabase,
  sign,
  signFile,
  signingKeyRows,
  verifyWithApp,
} from './helpers.js';

const t = useTestApp();

const PAST = '2020-01-01T00:00:00Z';
const FAR = '2099-03-31T23:59:59.789Z';
const HOUR = 3600;
const DAY = 86_400;
const nowSeconds = () => Math.floor(Date.now() / 1000);

const block = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: key });
  expect(response.status).toBe(200);
};

/** A key assigned to a new customer, which is then disabled. */
async function keyOfDisabledCustomer(tenant: Tenant, body: Record<string, unknown> = {}) {
  const key = await createKey(tenant, { newCustomer: { name: 'Ada Park' }, ...body });
  const read = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
  const customerId = read.body.data.customer.id as string;
  await t.database.db.update(customers).set({ active: false }).where(eq(customers.id, customerId));
  return key;
}

const base64url = (bytes: Buffer) => bytes.toString('base64url');
/** The token with one byte of one of its three parts changed. */
function tamper(token: string, part: 0 | 1 | 2, byte: number): string {
  const parts = token.split('.');
  const bytes = Buffer.from(parts[part]!, 'base64url');
  bytes[byte] = bytes[byte]! ^ 0x01;
  parts[part] = base64url(bytes);
  return parts.join('.');
}

describe('POST /key/sign — the license file (§4.1)', () => {
  it('answers {code: 0, file: {licenseToken, signedKey, signedDate, keyId}}', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const before = nowSeconds();
    const response = await sign(tenant, key, { ttl: HOUR });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.body).toEqual({
      code: 0,
      file: {
        licenseToken: expect.stringMatching(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/),
        signedKey: key,
        signedDate: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
        keyId: expect.stringMatching(KID),
      },
    });
    const { header, payload } = decode(response.body.file.licenseToken);
    expect(response.body.file.keyId).toBe(header.kid);
    expect(response.body.file.signedDate).toBe(new Date(payload.iat! * 1000).toISOString());
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(nowSeconds());
  });

  it('header is exactly {"alg":"EdDSA","kid":<kid>}; claims exactly sub, key, productId, machine, type, iat, nbf, exp', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const file = await signFile(tenant, key, { hostId: 'machine-42', ttl: HOUR });
    const [headerPart] = file.licenseToken.split('.');
    expect(Buffer.from(headerPart!, 'base64url').toString('utf8')).toBe(`{"alg":"EdDSA","kid":"${file.keyId}"}`);
    const { payload } = decode(file.licenseToken);
    expect(payload).toEqual({
      sub: key,
      key,
      productId: tenant.productId,
      machine: 'machine-42',
      type: 'offline',
      iat: payload.iat,
      nbf: payload.iat,
      exp: payload.iat! + HOUR,
    });
    for (const claim of ['iat', 'nbf', 'exp'] as const) expect(Number.isInteger(payload[claim])).toBe(true);
  });

  it('verifies with jose against the JWKS the app serves', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const file = await signFile(tenant, key, { ttl: DAY });
    const { payload, protectedHeader } = await verifyWithApp(t.app, file.licenseToken);
    expect(protectedHeader).toEqual({ alg: 'EdDSA', kid: file.keyId });
    expect(payload).toMatchObject({
      sub: key,
      key,
      productId: tenant.productId,
      machine: 'host-7f3a',
      type: 'offline',
    });
    const jwks = await jwksOf(t.app);
    expect(jwks.keys.map((jwk) => jwk.kid)).toContain(file.keyId);
  });

  it('exp is the key expiry (floored) when it comes before now + ttl', async () => {
    const tenant = await createTenant(t.app);
    const expiry = new Date((nowSeconds() + 2 * HOUR) * 1000 + 789);
    const key = await createKey(tenant, { expiryDate: expiry.toISOString() });
    const { payload } = decode((await signFile(tenant, key, { ttl: DAY })).licenseToken);
    expect(payload.exp).toBe(Math.floor(expiry.getTime() / 1000));
  });

  it('exp is now + ttl when it comes before the key expiry', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: new Date(Date.now() + 30 * DAY * 1000).toISOString() });
    const { payload } = decode((await signFile(tenant, key, { ttl: DAY })).licenseToken);
    expect(payload.exp).toBe(payload.iat! + DAY);
  });

  it('a key without expiry: exp is now + ttl (the smallest ttl, 60, included)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: null });
    for (const ttl of [60, 7 * DAY]) {
      const { payload } = decode((await signFile(tenant, key, { ttl })).licenseToken);
      expect(payload.exp).toBe(payload.iat! + ttl);
    }
  });

  it('a key with expiry and no ttl: exp is the key expiry', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const { payload } = decode((await signFile(tenant, key)).licenseToken);
    expect(payload.exp).toBe(Math.floor(Date.parse(FAR) / 1000));
  });

  it('a token with one byte changed in its header, claims or signature does not verify', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const file = await signFile(tenant, key, { ttl: DAY });
    const keySet = createLocalJWKSet(await jwksOf(t.app));
    await expect(jwtVerify(file.licenseToken, keySet)).resolves.toBeTruthy();

    // A claim changed by one byte: "host-7f3a" → "host-7f3`" … the signature no longer matches.
    const claims = Buffer.from(file.licenseToken.split('.')[1]!, 'base64url');
    const machineAt = claims.indexOf('host-7f3a');
    expect(machineAt).toBeGreaterThan(0);
    await expect(jwtVerify(tamper(file.licenseToken, 1, machineAt + 8), keySet)).rejects.toBeInstanceOf(
      joseErrors.JWSSignatureVerificationFailed,
    );
    for (const byte of [0, 31, 63]) {
      await expect(jwtVerify(tamper(file.licenseToken, 2, byte), keySet)).rejects.toBeInstanceOf(
        joseErrors.JWSSignatureVerificationFailed,
      );
    }
    // A header byte: "alg" no longer names the algorithm, or the kid matches no published key.
    for (const byte of [2, 30]) await expect(jwtVerify(tamper(file.licenseToken, 0, byte), keySet)).rejects.toThrow();
  });

  it('changes nothing on the key: no device, same document', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR, usesPerKey: '1' });
    const read = () => tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
    const before = (await read()).body;
    await signFile(tenant, key, { hostId: 'a' });
    await signFile(tenant, key, { hostId: 'b' });
    expect((await read()).body).toEqual(before);
    expect(before.data.license.activations).toBe(0);
  });

  it('signs floating keys and hosts listed in allowedHosts', async () => {
    const tenant = await createTenant(t.app);
    const floating = await createKey(tenant, { licenseType: 'floating', expiryDate: FAR });
    expect(decode((await signFile(tenant, floating)).licenseToken).payload.key).toBe(floating);
    const locked = await createKey(tenant, { expiryDate: FAR, allowedHosts: ['host-7f3a', 'other'] });
    expect(decode((await signFile(tenant, locked, { hostId: 'other' })).licenseToken).payload.machine).toBe('other');
  });

  it('ignores unknown body fields (the Node SDK sends more than it needs)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    expect((await sign(tenant, key, { version: '1.4.0', versionId: 'v' })).status).toBe(200);
  });
});

describe('POST /key/sign — the checks, in order (§4.1)', () => {
  it('1. unknown key, key of another product, inactive product → 404/1 License key not found', async () => {
    const tenant = await createTenant(t.app);
    expectError(await sign(tenant, 'NOPE-NOPE', { ttl: HOUR }), 404, 1, 'License key not found');

    const key = await createKey(tenant, { expiryDate: FAR });
    expectError(await sign(tenant, key.toLowerCase()), 404, 1, 'License key not found');
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const otherKey = await createKey({ ...tenant, productId: otherProduct }, { expiryDate: FAR });
    expectError(await sign(tenant, otherKey), 404, 1, 'License key not found');

    const patch = await admin(t.app).send('PATCH', `/admin/products/${tenant.productId}`, { active: false });
    expect(patch.status).toBe(200);
    expectError(await sign(tenant, key), 404, 1, 'License key not found');
  });

  it("1. another tenant's key, and a key outside the token's products → 404/1 (before any state check)", async () => {
    const owner = await createTenant(t.app);
    const stranger = await createTenant(t.app);
    const key = await createKey(owner, { expiryDate: PAST });
    await block(owner, key);
    expectError(await sign({ ...stranger, productId: owner.productId }, key), 404, 1, 'License key not found');

    const restricted = await createTenant(t.app, { productIds: 'own' });
    const otherProduct = await createProduct(t.app, restricted.accountId);
    const unrestricted = await createToken(t.app, restricted.accountId);
    const created = await client(t.app, unrestricted).post('/key', { productId: otherProduct, expiryDate: FAR });
    expect(created.status).toBe(200);
    expectError(
      await sign({ ...restricted, productId: otherProduct }, created.body.key),
      404,
      1,
      'License key not found',
    );
  });

  it('2. blocked → 403/2 License key is blocked (checked before expiry)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    await block(tenant, key);
    expectError(await sign(tenant, key, { ttl: HOUR }), 403, 2, 'License key is blocked');

    const expired = await createKey(tenant, { expiryDate: PAST });
    await block(tenant, expired);
    expectError(await sign(tenant, expired, { ttl: HOUR }), 403, 2, 'License key is blocked');
  });

  it('3. expired → 403/2 License key has expired (checked before the customer); a moment ago counts', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: PAST });
    expectError(await sign(tenant, key, { ttl: HOUR }), 403, 2, 'License key has expired');
    const justNow = await createKey(tenant, { expiryDate: new Date(Date.now() - 1000).toISOString() });
    expectError(await sign(tenant, justNow, { ttl: HOUR }), 403, 2, 'License key has expired');
    const ofDisabled = await keyOfDisabledCustomer(tenant, { expiryDate: PAST });
    expectError(await sign(tenant, ofDisabled, { ttl: HOUR }), 403, 2, 'License key has expired');
  });

  it("4. the key's customer inactive → 403/2 Customer is inactive (checked before allowedHosts)", async () => {
    const tenant = await createTenant(t.app);
    const key = await keyOfDisabledCustomer(tenant, { expiryDate: FAR, allowedHosts: ['somewhere-else'] });
    expectError(await sign(tenant, key, { hostId: 'host-7f3a' }), 403, 2, 'Customer is inactive');
  });

  it('5. allowedHosts set and hostId not in it → 403/2 Host not allowed (checked before the ttl rule)', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: null, allowedHosts: ['only-this'] });
    expectError(await sign(tenant, key, { hostId: 'not-this' }), 403, 2, 'Host not allowed for this license');
    const limited = await createKey(tenant, { expiryDate: FAR, allowedHosts: ['only-this'] });
    expectError(await sign(tenant, limited, { hostId: 'ONLY-THIS' }), 403, 2, 'Host not allowed for this license');
  });

  it('6. a key without expiry and no ttl (or ttl null) → 400/1 ttl is required', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: null, allowedHosts: ['host-7f3a'] });
    expectError(await sign(tenant, key), 400, 1, 'ttl is required for keys without an expiration date');
    expectError(await sign(tenant, key, { ttl: null }), 400, 1, 'ttl is required for keys without an expiration date');
    expect((await sign(tenant, key, { ttl: 60 })).status).toBe(200);
  });

  it('scope licenses:write: without it → 403/1 (before validation); with only it → 200', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const others = ['licenses:read', 'licenses:activate', 'licenses:block', 'customers:read', 'customers:write'];
    const without = client(t.app, await createToken(t.app, tenant.accountId, { scopes: others }));
    const forbidden = 'Insufficient permissions for this operation';
    expectError(
      await without.post('/key/sign', { productId: tenant.productId, licenseKey: key, hostId: 'h' }),
      403,
      1,
      forbidden,
    );
    expectError(await without.post('/key/sign', {}), 403, 1, forbidden);
    const writer = client(t.app, await createToken(t.app, tenant.accountId, { scopes: ['licenses:write'] }));
    expect((await writer.post('/key/sign', { productId: tenant.productId, licenseKey: key, hostId: 'h' })).status).toBe(
      200,
    );
    expectError(await client(t.app).post('/key/sign', {}), 401, 1, 'Invalid access token');
    expectError(await client(t.app, 'at_nope').post('/key/sign', {}), 401, 1, 'Invalid access token');
  });
});

describe('POST /key/sign — validation', () => {
  it('answers 400/1 for missing or invalid fields, the first in table order', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: FAR });
    const { api, productId } = tenant;
    const valid = { productId, licenseKey: key, hostId: 'h' };
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'Missing required params'],
      [{ productId, licenseKey: key }, 'Missing required params'],
      [{ ...valid, hostId: '' }, 'Missing required params'],
      [{ ...valid, hostId: null }, 'Missing required params'],
      [{ productId, hostId: 'h', ttl: 10 }, 'Missing required params'],
      [{ ...valid, productId: 'short' }, 'Invalid productId'],
      [{ ...valid, productId: 'short', ttl: 1 }, 'Invalid productId'],
      [{ ...valid, licenseKey: 'K'.repeat(513) }, 'Invalid licenseKey'],
      [{ ...valid, hostId: 'h'.repeat(257) }, 'Invalid hostId'],
      [{ ...valid, hostId: 7 }, 'Invalid hostId'],
      [{ ...valid, hostId: 'h'.repeat(257), ttl: 1 }, 'Invalid hostId'],
      [{ ...valid, ttl: 59 }, 'Invalid ttl'],
      [{ ...valid, ttl: 0 }, 'Invalid ttl'],
      [{ ...valid, ttl: -3600 }, 'Invalid ttl'],
      [{ ...valid, ttl: 3600.5 }, 'Invalid ttl'],
      [{ ...valid, ttl: '3600' }, 'Invalid ttl'],
      [{ ...valid, ttl: true }, 'Invalid ttl'],
      [{ ...valid, ttl: 2 ** 31 }, 'Invalid ttl'],
    ];
    for (const [body, message] of cases) expectError(await api.post('/key/sign', body), 400, 1, message);
    expect((await api.post('/key/sign', { ...valid, hostId: 'h'.repeat(256), ttl: 2 ** 31 - 1 })).status).toBe(200);
  });

  it('answers 400/1 Invalid JSON body and 415 for a non-JSON body', async () => {
    const tenant = await createTenant(t.app);
    expectError(await tenant.api.post('/key/sign', '{"productId":'), 400, 1, 'Invalid JSON body');
    expectError(await tenant.api.post('/key/sign', '[]'), 400, 1, 'Invalid JSON body');
    expectError(
      await tenant.api.post('/key/sign', 'productId=x', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      1,
      'Content-Type must be application/json',
    );
  });
});

describe('POST /key/sign — refusals write nothing; the first sign creates the key pair', () => {
  let database: Database;
  let app: FastifyInstance;
  beforeAll(async () => {
    database = await openIsolatedDatabase();
    app = await appOn(database);
  });
  afterAll(async () => {
    await app?.close();
    await database?.close();
  });

  it('no signing key exists after bad input and refused signs; the first file signed creates one', async () => {
    const tenant = await createTenant(app);
    const key = await createKey(tenant, { expiryDate: null });
    const blocked = await createKey(tenant, { expiryDate: FAR });
    await block(tenant, blocked);
    const refusals = [
      await sign(tenant, key, { ttl: 59 }),
      await sign(tenant, key, { hostId: 'h'.repeat(257) }),
      await sign(tenant, key, { ttl: 3600.5 }),
      await tenant.api.post('/key/sign', { productId: tenant.productId, licenseKey: key }),
      await sign(tenant, 'NOPE'),
      await sign(tenant, blocked, { ttl: HOUR }),
      await sign(tenant, key),
    ];
    expect(refusals.map((response) => response.status)).toEqual([400, 400, 400, 400, 404, 403, 400]);
    expect(await signingKeyRows(database)).toEqual([]);

    const file = await signFile(tenant, key, { ttl: HOUR });
    const rows = await signingKeyRows(database);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kid: file.keyId, encrypted: false, retiredAt: null });
    expect(rows[0]!.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(rows[0]!.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);

    // Later signs use the same key.
    expect((await signFile(tenant, key, { ttl: HOUR })).keyId).toBe(file.keyId);
    expect(await signingKeyRows(database)).toHaveLength(1);
  });
});
