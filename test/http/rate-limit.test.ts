import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createAccessToken } from '../../src/modules/admin/tokens.js';
import { ADMIN_TOKEN, createTestApp, openTestDatabase, type TestApp, testConfig } from '../helpers/app.js';
import { createTenant, createToken, ERRORS, type Tenant } from '../helpers/fixtures.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisReachable(): Promise<boolean> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}
const redisUp = await redisReachable();

const LIMIT = 5;
const headersOf = (response: { headers: Record<string, unknown> }) => ({
  limit: response.headers['x-ratelimit-limit'],
  remaining: response.headers['x-ratelimit-remaining'],
  reset: response.headers['x-ratelimit-reset'],
});

/** Every test uses its own client address, so budgets never leak between tests. */
let nextAddress = 10;
const newAddress = () => `203.0.113.${nextAddress++}`;

const call = (app: FastifyInstance, url: string, remoteAddress: string, authorization?: string) =>
  app.inject({
    method: 'GET',
    url,
    remoteAddress,
    headers: authorization ? { authorization } : {},
  });

describe('rate limits in one process', () => {
  let t: TestApp;
  let tenant: Tenant;
  let lookup: string;
  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMIT_PER_MINUTE: String(LIMIT) });
    tenant = await createTenant(t.app);
    lookup = `/key?productId=${tenant.productId}&licenseKey=NOPE`;
  });
  afterAll(async () => t.close());
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts every request of an access token and answers 429/3 with Retry-After past the limit', async () => {
    const address = newAddress();
    for (let i = 1; i <= LIMIT; i++) {
      const response = await call(t.app, lookup, address, `Bearer ${tenant.token}`);
      expect(response.statusCode).toBe(404);
      expect(response.json()).toEqual(ERRORS.keyNotFound.body);
      expect(headersOf(response)).toEqual({
        limit: String(LIMIT),
        remaining: String(LIMIT - i),
        reset: expect.any(String),
      });
      expect(Number(response.headers['x-ratelimit-reset'])).toBeGreaterThanOrEqual(1);
      expect(Number(response.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(60);
    }
    const limited = await call(t.app, lookup, address, `Bearer ${tenant.token}`);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual(ERRORS.tooManyRequests.body);
    expect(limited.headers['content-type']).toBe('application/json; charset=utf-8');
    const retryAfter = limited.headers['retry-after'];
    expect(retryAfter).toMatch(/^[0-9]+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    expect(headersOf(limited)).toEqual({ limit: String(LIMIT), remaining: '0', reset: retryAfter });
  });

  it('gives each token its own budget, whatever the client address', async () => {
    const first = await createToken(t.app, tenant.accountId);
    const second = await createToken(t.app, tenant.accountId);
    for (let i = 0; i < LIMIT; i++)
      expect((await call(t.app, lookup, newAddress(), `Bearer ${first}`)).statusCode).toBe(404);
    expect((await call(t.app, lookup, newAddress(), `Bearer ${first}`)).statusCode).toBe(429);
    const other = await call(t.app, lookup, newAddress(), `Bearer ${second}`);
    expect(other.statusCode).toBe(404);
    expect(other.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1));
  });

  it('counts unauthenticated requests per client address, so a burst of 401s ends in 429', async () => {
    const address = newAddress();
    for (let i = 0; i < LIMIT; i++) {
      const response = await call(t.app, lookup, address);
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual(ERRORS.invalidToken.body);
      expect(response.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1 - i));
    }
    const limited = await call(t.app, lookup, address);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual(ERRORS.tooManyRequests.body);
    // Another address still reaches authentication.
    expect((await call(t.app, lookup, newAddress())).statusCode).toBe(401);
  });

  it('counts invalid tokens per client address: rotating made-up tokens ends in 429 too', async () => {
    for (const url of [lookup, '/admin/products']) {
      const address = newAddress();
      const wrong = () => `Bearer at_${randomBytes(24).toString('base64url')}`;
      for (let i = 0; i < LIMIT; i++) expect((await call(t.app, url, address, wrong())).statusCode).toBe(401);
      const limited = await call(t.app, url, address, wrong());
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toEqual(ERRORS.tooManyRequests.body);
      // A valid token from the same address has a budget of its own.
      const fresh = await createAccessToken(t.database.db, { name: 'fresh', accountId: tenant.accountId });
      expect((await call(t.app, lookup, address, `Bearer ${fresh.token}`)).statusCode).toBe(404);
    }
  });

  it('leaves the probes unlimited and uncounted', async () => {
    const address = newAddress();
    for (let i = 0; i < LIMIT * 2; i++) {
      for (const url of ['/healthz', '/readyz']) {
        const response = await call(t.app, url, address);
        expect(response.statusCode).toBe(200);
        expect(response.headers['x-ratelimit-limit']).toBeUndefined();
      }
    }
    expect((await call(t.app, lookup, address)).headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1));
  });

  it('counts requests to unknown paths but still answers them 404 (route match comes first)', async () => {
    const address = newAddress();
    for (let i = 0; i < LIMIT + 2; i++) {
      const response = await call(t.app, '/no-such-path', address);
      expect(response.statusCode).toBe(404);
      expect(response.json()).toEqual(ERRORS.notFound.body);
      expect(response.headers['x-ratelimit-remaining']).toBe(String(Math.max(0, LIMIT - 1 - i)));
    }
    expect((await call(t.app, lookup, address)).statusCode).toBe(429);
  });

  it('starts a fresh budget when the one-minute window is over', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const address = newAddress();
    for (let i = 0; i < LIMIT; i++) await call(t.app, lookup, address);
    expect((await call(t.app, lookup, address)).statusCode).toBe(429);
    vi.setSystemTime(Date.now() + 59_000);
    expect((await call(t.app, lookup, address)).statusCode).toBe(429);
    vi.setSystemTime(Date.now() + 1_001);
    const fresh = await call(t.app, lookup, address);
    expect(fresh.statusCode).toBe(401);
    expect(headersOf(fresh)).toEqual({ limit: String(LIMIT), remaining: String(LIMIT - 1), reset: '60' });
  });
});

describe.skipIf(!redisUp)('rate limits shared through Redis', () => {
  const prefix = `keymint-test:${randomBytes(8).toString('hex')}:`;
  const redis = new Redis(REDIS_URL);
  const apps: TestApp[] = [];
  beforeAll(async () => {
    const env = { RATE_LIMIT_PER_MINUTE: '3', REDIS_URL, REDIS_KEY_PREFIX: prefix };
    apps.push(await createTestApp(env), await createTestApp(env));
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('two app instances on one Redis share one budget', async () => {
    const [a, b] = apps.map((t) => t.app) as [FastifyInstance, FastifyInstance];
    const address = newAddress();
    expect((await call(a, '/key', address)).headers['x-ratelimit-remaining']).toBe('2');
    expect((await call(b, '/key', address)).headers['x-ratelimit-remaining']).toBe('1');
    expect((await call(a, '/key', address)).headers['x-ratelimit-remaining']).toBe('0');
    const limitedB = await call(b, '/key', address);
    expect(limitedB.statusCode).toBe(429);
    expect(Number(limitedB.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await call(a, '/key', address)).statusCode).toBe(429);
  });

  it('keys the counters by token ID or client address, never by a secret', async () => {
    const t0 = apps[0]!;
    const valid = await createAccessToken(t0.database.db, { name: 'rate-limit keys' });
    const wrong = `at_${randomBytes(32).toString('base64url')}`;
    const address = newAddress();
    await call(t0.app, '/key', newAddress(), `Bearer ${valid.token}`);
    await call(t0.app, '/key', address, `Bearer ${wrong}`);
    await call(t0.app, '/admin/products', newAddress(), `Bearer ${ADMIN_TOKEN}`);
    const keys = await redis.keys(`${prefix}*`);
    expect(keys).toContain(`${prefix}rate-limit:token:${valid.id}`);
    expect(keys).toContain(`${prefix}rate-limit:ip:${address}`);
    expect(keys).toContain(`${prefix}rate-limit:admin`);
    expect(keys.some((key) => key.includes(valid.token) || key.includes(wrong) || key.includes(ADMIN_TOKEN))).toBe(
      false,
    );
    const ttl = await redis.pttl(`${prefix}rate-limit:token:${valid.id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});

/** A TCP relay to Redis that can be cut, to play a Redis outage. */
async function startRelay(): Promise<{ url: string; cut(): Promise<void> }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const server = createServer((incoming) => {
    const outgoing = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [incoming, outgoing]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    incoming.pipe(outgoing).pipe(incoming);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

describe.skipIf(!redisUp)('a Redis outage', () => {
  it('lets requests through instead of failing them', async () => {
    const relay = await startRelay();
    const prefix = `keymint-test:${randomBytes(8).toString('hex')}:`;
    const t = await createTestApp({ RATE_LIMIT_PER_MINUTE: '3', REDIS_URL: relay.url, REDIS_KEY_PREFIX: prefix });
    try {
      const address = newAddress();
      expect((await call(t.app, '/key', address)).headers['x-ratelimit-remaining']).toBe('2');
      await relay.cut();
      for (let i = 0; i < 5; i++) {
        const response = await call(t.app, '/key', address);
        expect(response.statusCode).toBe(401);
        expect(response.headers['x-ratelimit-limit']).toBeUndefined();
      }
    } finally {
      await t.close();
      const cleanup = new Redis(REDIS_URL);
      const keys = await cleanup.keys(`${prefix}*`);
      if (keys.length > 0) await cleanup.del(...keys);
      cleanup.disconnect();
    }
  });
});

describe('Redis configuration', () => {
  it('stops start-up when REDIS_URL cannot be reached, naming the variable', async () => {
    const database = await openTestDatabase();
    try {
      await expect(buildApp({ config: testConfig({ REDIS_URL: 'redis://127.0.0.1:1' }), database })).rejects.toThrow(
        /REDIS_URL/,
      );
    } finally {
      await database.close();
    }
  });
});
