import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/client.js';
import { createTestApp, type TestApp, useTestApp } from '../../helpers/app.js';
import { client, createKey, createTenant, expectError } from '../../helpers/fixtures.js';
import { appOn, JWKS_PATH, jwksOf, KID, openIsolatedDatabase, signFile, signingKeyRows } from './helpers.js';

const t = useTestApp();

// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const kidOfX = (x: string) =>
  createHash('sha256')
    .update(Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(x, 'base64url')]))
    .digest('base64url');

describe('GET /.well-known/jwks.json (§4.2)', () => {
  it('needs no credentials and answers the key set with code 0 and Cache-Control: public, max-age=300', async () => {
    const response = await client(t.app).get(JWKS_PATH);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.headers['cache-control']).toBe('public, max-age=300');
    expect(response.body).toEqual({
      keys: [
        {
          kty: 'OKP',
          crv: 'Ed25519',
          alg: 'EdDSA',
          use: 'sig',
          kid: expect.stringMatching(KID),
          x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        },
      ],
      code: 0,
    });
    expect(Object.keys(response.body.keys[0])).toEqual(['kty', 'crv', 'alg', 'use', 'kid', 'x']);
  });

  it('kid is base64url(SHA-256(SPKI DER)) of the key x, and the key signs the files', async () => {
    const [jwk] = (await jwksOf(t.app)).keys;
    expect(kidOfX(jwk!.x as string)).toBe(jwk!.kid);
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    expect((await signFile(tenant, key)).keyId).toBe(jwk!.kid);
  });

  it('ignores any Authorization header, valid or not', async () => {
    const tenant = await createTenant(t.app);
    for (const token of [tenant.token, 'at_not-a-token', 'garbage']) {
      const response = await client(t.app, token).get(JWKS_PATH);
      expect(response.status).toBe(200);
      expect(response.body.keys).toHaveLength(1);
    }
  });

  it('is GET only; other methods and a trailing slash are unknown routes', async () => {
    expectError(await client(t.app).post(JWKS_PATH, {}), 404, 1, 'Not found');
    expectError(await client(t.app).get(`${JWKS_PATH}/`), 404, 1, 'Not found');
  });
});

describe('GET /.well-known/jwks.json — the first request creates the key pair', () => {
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

  it('on a database without keys it creates exactly one, which later requests and signs use', async () => {
    expect(await signingKeyRows(database)).toEqual([]);
    const [first, second] = await Promise.all([jwksOf(app), jwksOf(app)]);
    expect(first.keys).toHaveLength(1);
    expect(second).toEqual(first);
    expect((await signingKeyRows(database)).map((row) => row.kid)).toEqual([first.keys[0]!.kid]);
    const tenant = await createTenant(app);
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    expect((await signFile(tenant, key)).keyId).toBe(first.keys[0]!.kid);
    expect(await signingKeyRows(database)).toHaveLength(1);
  });
});

describe('GET /.well-known/jwks.json — rate limit', () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await createTestApp({ RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => limited?.close());

  it('is counted per client IP: over the limit → 429/3 with Retry-After; another IP is not affected', async () => {
    const from = (remoteAddress: string) =>
      limited.app.inject({ method: 'GET', url: JWKS_PATH, remoteAddress }).then((response) => response);
    for (let i = 0; i < 3; i++) expect((await from('198.51.100.7')).statusCode).toBe(200);
    const refused = await from('198.51.100.7');
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({ message: 'Too many requests', code: 3 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['cache-control']).toBeUndefined();
    expect((await from('198.51.100.8')).statusCode).toBe(200);
  });
});
