import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppError, Errors } from '../../src/lib/errors.js';
import { recordActivation, recordActivationRefusal, recordKeysCreated } from '../../src/modules/licenses/metrics.js';
import { createTestApp, type TestApp, useTestApp } from '../helpers/app.js';
import { admin, client, createTenant, ERRORS, expectError } from '../helpers/fixtures.js';
import { sample } from '../helpers/metrics.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

describe('GET /metrics without METRICS_TOKEN', () => {
  let t: TestApp;
  const scrape = async () => {
    const response = await client(t.app).get('/metrics');
    expect(response.status).toBe(200);
    return response.body as string;
  };
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => t.close());

  it('answers in the Prometheus text format without authentication', async () => {
    const response = await client(t.app).get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(response.body).toContain('# TYPE keymint_http_requests_total counter');
    expect(response.body).toContain('# TYPE keymint_http_request_duration_seconds histogram');
    expect(response.body).toContain('# TYPE process_cpu_user_seconds_total counter');
  });

  it('counts requests and their latency per route pattern and status', async () => {
    const healthy = { method: 'GET', route: '/healthz', status_code: '200' };
    const before = await scrape();
    await client(t.app).get('/healthz');
    await client(t.app).get('/healthz');
    const after = await scrape();
    expect(
      sample(after, 'keymint_http_requests_total', healthy) - sample(before, 'keymint_http_requests_total', healthy),
    ).toBe(2);
    expect(
      sample(after, 'keymint_http_request_duration_seconds_count', healthy) -
        sample(before, 'keymint_http_request_duration_seconds_count', healthy),
    ).toBe(2);
    expect(sample(after, 'keymint_http_request_duration_seconds_bucket', { le: '+Inf', ...healthy })).toBe(
      sample(after, 'keymint_http_request_duration_seconds_count', healthy),
    );
  });

  it('counts token-cache hits and misses, and says the cache is listening', async () => {
    const tenant = await createTenant(t.app);
    const before = await scrape();
    for (let i = 0; i < 3; i++) expect((await tenant.api.get('/customer')).status).toBe(200);
    const after = await scrape();
    const lookups = (text: string, result: string) => sample(text, 'keymint_token_cache_lookups_total', { result });
    // The tenant's token was resolved once (when createTenant used it, or by the first of these).
    expect(lookups(after, 'hit') - lookups(before, 'hit')).toBeGreaterThanOrEqual(2);
    expect(lookups(after, 'miss') - lookups(before, 'miss')).toBeLessThanOrEqual(1);
    expect(sample(after, 'keymint_token_cache_listening', {})).toBe(1);
    expect(sample(after, 'keymint_token_cache_entries', {})).toBeGreaterThanOrEqual(1);
  });

  it('labels a request with its route pattern, never the raw URL', async () => {
    const missingId = 'ffffffffffffffffffffff';
    expectError(
      await admin(t.app).send('PATCH', `/admin/products/${missingId}`, { name: 'x' }),
      404,
      1,
      'Product not found',
    );
    await client(t.app).get(`/no-such-path-${missingId}`);
    const text = await scrape();
    expect(
      sample(text, 'keymint_http_requests_total', {
        method: 'PATCH',
        route: '/admin/products/:id',
        status_code: '404',
      }),
    ).toBe(1);
    expect(sample(text, 'keymint_http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' })).toBe(
      1,
    );
    expect(text).not.toContain(missingId);
  });

  it('counts refusals with their status, authentication failures included', async () => {
    const tenant = await createTenant(t.app);
    const labels = { method: 'POST', route: '/create-key', status_code: '401' };
    const before = sample(await scrape(), 'keymint_http_requests_total', labels);
    await client(t.app, 'at_wrong').post('/create-key', { productId: tenant.productId });
    expect(sample(await scrape(), 'keymint_http_requests_total', labels) - before).toBe(1);
  });

  it('reports the database pool', async () => {
    const text = await scrape();
    const driver = t.database.kind;
    expect(sample(text, 'keymint_db_pool_size', { driver })).toBe(t.database.poolStats().size);
    expect(sample(text, 'keymint_db_pool_max', { driver })).toBe(t.database.poolStats().max);
  });

  it('exposes the licensing counters the services record', async () => {
    const before = await scrape();
    recordKeysCreated(3);
    recordActivation('accepted');
    recordActivation('limit_reached');
    recordActivation('limit_reached');
    const after = await scrape();
    const delta = (name: string, labels?: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('keymint_license_keys_created_total')).toBe(3);
    expect(delta('keymint_activations_total', { outcome: 'accepted' })).toBe(1);
    expect(delta('keymint_activations_total', { outcome: 'limit_reached' })).toBe(2);
    expect(delta('keymint_activations_total', { outcome: 'blocked' })).toBe(0);
    for (const outcome of ['blocked', 'expired', 'customer_inactive', 'host_not_allowed', 'floating', 'not_found']) {
      expect(after).toContain(`keymint_activations_total{outcome="${outcome}"}`);
    }
  });

  it('counts keys created and activation outcomes of real requests', async () => {
    const tenant = await createTenant(t.app);
    const before = await scrape();
    const created = await tenant.api.post('/key', { productId: tenant.productId, usesPerKey: '1', amountKeys: 3 });
    expect(created.status).toBe(200);
    const key = created.body.key as string;
    const activate = (hostId: string) =>
      tenant.api.post('/key/activate', { productId: tenant.productId, licenseKey: key, hostId });
    expect((await activate('host-a')).status).toBe(200);
    expect((await activate('host-b')).status).toBe(403);
    expect((await activate('host-c')).status).toBe(403);
    // Bad input is not a licensing decision: not counted.
    expect((await tenant.api.post('/key/activate', { productId: tenant.productId })).status).toBe(400);
    const after = await scrape();
    const delta = (name: string, labels?: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('keymint_license_keys_created_total')).toBe(3);
    expect(delta('keymint_activations_total', { outcome: 'accepted' })).toBe(1);
    expect(delta('keymint_activations_total', { outcome: 'limit_reached' })).toBe(2);
  });

  it('labels a thrown activation refusal by its reason, and ignores other errors', async () => {
    const refusals: [AppError, string][] = [
      [Errors.activationLimitReached(), 'limit_reached'],
      [Errors.blocked(), 'blocked'],
      [Errors.expired(), 'expired'],
      [Errors.customerInactive(), 'customer_inactive'],
      [Errors.hostNotAllowed(), 'host_not_allowed'],
      [Errors.floatingMustCheckout(), 'floating'],
      [Errors.licenseKeyNotFound(), 'not_found'],
    ];
    const before = await scrape();
    for (const [error] of refusals) recordActivationRefusal(error);
    recordActivationRefusal(Errors.missingParams());
    recordActivationRefusal(Errors.invalidToken());
    recordActivationRefusal(new Error('Activation limit reached'));
    const after = await scrape();
    const total = (text: string) =>
      [...text.matchAll(/^keymint_activations_total\{[^}]*\} (\S+)$/gm)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
    expect(total(after) - total(before)).toBe(refusals.length);
    for (const [, outcome] of refusals) {
      const labels = { outcome };
      expect(
        sample(after, 'keymint_activations_total', labels) - sample(before, 'keymint_activations_total', labels),
      ).toBe(1);
    }
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  const t = useTestApp({ METRICS_TOKEN });

  it('requires the token: missing, wrong or another credential gets 401/1', async () => {
    const tenant = await createTenant(t.app);
    expectError(await client(t.app).get('/metrics'), ERRORS.invalidToken);
    expectError(await client(t.app, `${METRICS_TOKEN}x`).get('/metrics'), ERRORS.invalidToken);
    expectError(await client(t.app, tenant.token).get('/metrics'), ERRORS.invalidToken);
    expectError(
      await client(t.app).get('/metrics', undefined, { authorization: `Basic ${METRICS_TOKEN}` }),
      ERRORS.invalidToken,
    );
  });

  it('answers with the token', async () => {
    const response = await client(t.app, METRICS_TOKEN).get('/metrics');
    expect(response.status).toBe(200);
    expect(response.body).toContain('keymint_http_requests_total{method="GET",route="/metrics",status_code="401"} 4');
    const lowerCaseScheme = await client(t.app).get('/metrics', undefined, {
      authorization: `bearer ${METRICS_TOKEN}`,
    });
    expect(lowerCaseScheme.status).toBe(200);
  });
});
