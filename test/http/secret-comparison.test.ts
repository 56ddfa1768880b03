import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, useTestApp } from '../helpers/app.js';
import { type ApiResponse, client, createTenant, ERRORS, expectError } from '../helpers/fixtures.js';
import { checkedOut, createFloatingKey, sign } from '../helpers/floating.js';

/**
 * Every presented secret is compared in constant time over equal-length digests (README,
 * "Security"), so a wrong one of any length or encoding is simply wrong: the same answer as any
 * other wrong one, never a 500 (a raw timingSafeEqual throws on buffers of different lengths).
 */

const METRICS_TOKEN = 'metrics-token-for-comparison-0123';

const t = useTestApp({ METRICS_TOKEN });

/** Near misses of `secret`: one character off, shorter, longer, multi-byte; `huge` adds a 10,000-char one. */
const nearMisses = (secret: string, huge = true) => [
  `${secret.slice(0, -1)}${secret.endsWith('x') ? 'y' : 'x'}`,
  secret.slice(0, -1),
  secret.slice(0, 1),
  `${secret}x`,
  `${secret}${secret}`,
  `${secret.slice(0, -1)}é`, // same length in characters, one byte longer in UTF-8
  'é'.repeat(secret.length),
  ...(huge ? ['x'.repeat(10_000)] : []),
];

/** The answer's header names, less those that differ from request to request. */
const headerNames = (response: ApiResponse) =>
  Object.keys(response.headers)
    .filter((name) => !['date', 'x-request-id', 'content-length'].includes(name))
    .sort();

describe('a wrong secret of any length gets the same 401 envelope as any other', () => {
  it.each([
    ['ADMIN_TOKEN', ADMIN_TOKEN, '/admin/products'],
    ['METRICS_TOKEN', METRICS_TOKEN, '/metrics'],
  ])('%s', async (_name, secret, path) => {
    expect((await client(t.app, secret).get(path)).status).toBe(200);
    const reference = await client(t.app, 'wrong').get(path);
    expectError(reference, ERRORS.invalidToken);
    for (const presented of nearMisses(secret)) {
      const response = await client(t.app, presented).get(path);
      expectError(response, ERRORS.invalidToken);
      expect(headerNames(response)).toEqual(headerNames(reference));
    }
  });

  it('an access token (looked up by its SHA-256)', async () => {
    const tenant = await createTenant(t.app);
    expect((await tenant.api.get('/customer')).status).toBe(200);
    const reference = await client(t.app, 'at_wrong').get('/customer');
    expectError(reference, ERRORS.invalidToken);
    for (const presented of nearMisses(tenant.token)) {
      const response = await client(t.app, presented).get('/customer');
      expectError(response, ERRORS.invalidToken);
      expect(headerNames(response)).toEqual(headerNames(reference));
    }
  });
});

describe('a session signature or nonce of any length or encoding is refused with 403/2', () => {
  it('signatures and nonces that are near misses of the current ones', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const { session } = await checkedOut(tenant, key);
    const call = (timestamp: string, signature: string) =>
      tenant.api.post('/key/heartbeat', {
        productId: tenant.productId,
        licenseKey: key,
        sessionId: session.sessionId,
        timestamp,
        signature,
      });
    const good = sign(session.sessionSecret, session.sessionId, session.nonce);
    // (Over the fields' size limits, 256 and 1024 chars, the body is refused first: 400/1.)
    for (const signature of nearMisses(good, false)) {
      expectError(await call(session.nonce, signature), 403, 2, 'Invalid session signature');
    }
    // A nonce other than the current one, each correctly signed: refused the same way.
    for (const nonce of nearMisses(session.nonce, false)) {
      const signature = sign(session.sessionSecret, session.sessionId, nonce);
      expectError(await call(nonce, signature), 403, 2, 'Invalid session signature');
    }
    // None of the refusals consumed the nonce.
    expect((await call(session.nonce, good)).status).toBe(200);
  });
});
