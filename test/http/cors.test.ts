import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, useTestApp } from '../helpers/app.js';
import { type ApiResponse, client, createTenant, ERRORS, expectError } from '../helpers/fixtures.js';

/**
 * CORS (README, "Security"): off unless CORS_ORIGINS is set; then the public API answers the
 * listed origins (or any, with `*`), and never on the operator's paths (/admin, /metrics).
 */

const APP_ORIGIN = 'https://app.example.com';
const OTHER_ORIGIN = 'https://evil.example';

const accessControl = (response: { headers: Record<string, unknown> }) =>
  Object.fromEntries(Object.entries(response.headers).filter(([name]) => name.startsWith('access-control-')));

const preflight = (t: { app: FastifyInstance }, url: string, origin: string) =>
  t.app.inject({
    method: 'OPTIONS',
    url,
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type,idempotency-key',
    },
  });

const EXPOSED =
  'Idempotent-Replayed, X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After';

describe('CORS_ORIGINS unset: CORS is off', () => {
  const t = useTestApp();

  it('no Access-Control-* header, whatever the Origin; a preflight is 404 as any OPTIONS', async () => {
    const tenant = await createTenant(t.app);
    const answer = await tenant.api.post('/key', { productId: tenant.productId }, { origin: APP_ORIGIN });
    expect(answer.status).toBe(200);
    expect(accessControl(answer)).toEqual({});
    expect(answer.headers.vary).toBeUndefined();
    const response = await preflight(t, '/key/activate', APP_ORIGIN);
    expect({ status: response.statusCode, body: response.json() }).toEqual(ERRORS.notFound);
    expect(accessControl(response)).toEqual({});
  });
});

describe('CORS_ORIGINS=<list>', () => {
  const t = useTestApp({ CORS_ORIGINS: `${APP_ORIGIN},http://localhost:5173` });

  it('a preflight from a listed origin: 204 with the methods, headers and max-age', async () => {
    const response = await preflight(t, '/key/activate', APP_ORIGIN);
    expect(response.statusCode).toBe(204);
    expect(response.body).toBe('');
    expect(accessControl(response)).toEqual({
      'access-control-allow-origin': APP_ORIGIN,
      'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
      'access-control-allow-headers': 'Authorization, Content-Type, Idempotency-Key, X-Request-Id',
      'access-control-expose-headers': EXPOSED,
      'access-control-max-age': '600',
    });
    expect(response.headers.vary).toContain('Origin');
    // Answered before the rate limiter: not counted.
    expect(response.headers['x-ratelimit-remaining']).toBeUndefined();
    const local = await preflight(t, '/customer/by-id', 'http://localhost:5173');
    expect(local.statusCode).toBe(204);
    expect(local.headers['access-control-allow-origin']).toBe('http://localhost:5173');
  });

  it('answers to a listed origin carry its Allow-Origin and the exposed headers, errors included', async () => {
    const tenant = await createTenant(t.app);
    const answers = [
      await tenant.api.post('/key', { productId: tenant.productId }, { origin: APP_ORIGIN }),
      await tenant.api.post('/key', { productId: 'nope' }, { origin: APP_ORIGIN }),
      await client(t.app, 'wrong').get('/customer', undefined, { origin: APP_ORIGIN }),
      await client(t.app).get('/.well-known/jwks.json', undefined, { origin: APP_ORIGIN }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([200, 400, 401, 200]);
    for (const answer of answers) {
      expect(accessControl(answer)).toEqual({
        'access-control-allow-origin': APP_ORIGIN,
        'access-control-expose-headers': EXPOSED,
      });
      expect(answer.headers.vary).toContain('Origin');
    }
    expect(answers[2]!.body).toEqual(ERRORS.invalidToken.body);
  });

  it('another origin, no Origin, or an OPTIONS that is no preflight: no CORS header, answered as without CORS', async () => {
    const tenant = await createTenant(t.app);
    for (const origin of [OTHER_ORIGIN, `${APP_ORIGIN}.evil.example`, 'null', 'https://APP.example.com']) {
      const answer = await tenant.api.post('/key', { productId: tenant.productId }, { origin });
      expect(answer.status).toBe(200);
      expect(accessControl(answer)).toEqual({});
      // Cacheable answers vary by Origin: a cache must not hand this one to a listed origin.
      expect(answer.headers.vary).toContain('Origin');
      const response = await preflight(t, '/key/activate', origin);
      expect({ status: response.statusCode, body: response.json() }).toEqual(ERRORS.notFound);
      expect(accessControl(response)).toEqual({});
    }
    expect(accessControl(await tenant.api.post('/key', { productId: tenant.productId }))).toEqual({});
    const notPreflight = await t.app.inject({ method: 'OPTIONS', url: '/key', headers: { origin: APP_ORIGIN } });
    expect({ status: notPreflight.statusCode, body: notPreflight.json() }).toEqual(ERRORS.notFound);
    expect(accessControl(notPreflight)).toEqual({});
  });

  it('never on /admin or /metrics: the operator credentials are not for browsers', async () => {
    for (const path of ['/admin/products', '/admin/tokens', '/ad%6din/products', '/metrics']) {
      const response = await preflight(t, path, APP_ORIGIN);
      expect({ status: response.statusCode, body: response.json() }, path).toEqual(ERRORS.notFound);
      expect(accessControl(response)).toEqual({});
    }
    for (const path of ['/admin/products', '/ad%6din/products']) {
      const answer = await client(t.app, ADMIN_TOKEN).get(path, undefined, { origin: APP_ORIGIN });
      expect(answer.status, path).toBe(200);
      expect(accessControl(answer)).toEqual({});
    }
    expectError(
      await client(t.app, 'wrong').get('/admin/products', undefined, { origin: APP_ORIGIN }),
      ERRORS.invalidToken,
    );
    expect(accessControl(await client(t.app).get('/metrics', undefined, { origin: APP_ORIGIN }))).toEqual({});
  });
});

describe('CORS_ORIGINS=*', () => {
  const t = useTestApp({ CORS_ORIGINS: '*', RATE_LIMIT_PER_MINUTE: '3' });

  it('any origin gets Allow-Origin *, without credentials; a 429 is readable with its Retry-After', async () => {
    const response = await preflight(t, '/key/activate', OTHER_ORIGIN);
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect(response.headers['access-control-allow-credentials']).toBeUndefined();
    const answers: ApiResponse[] = [];
    for (let i = 0; i < 4; i++) answers.push(await client(t.app).get('/customer', undefined, { origin: OTHER_ORIGIN }));
    expect(answers.map((answer) => answer.status)).toEqual([401, 401, 401, 429]);
    const limited = answers[3]!;
    expect(limited.body).toEqual(ERRORS.tooManyRequests.body);
    expect(limited.headers['access-control-allow-origin']).toBe('*');
    expect(limited.headers['access-control-expose-headers']).toContain('Retry-After');
    expect(limited.headers['retry-after']).toBeDefined();
    expect(
      accessControl(await client(t.app, ADMIN_TOKEN).get('/admin/products', undefined, { origin: OTHER_ORIGIN })),
    ).toEqual({});
  });
});
