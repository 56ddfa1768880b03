import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { ADMIN_TOKEN, openTestDatabase, testConfig } from '../helpers/app.js';
import { admin, client, createTenant, ERRORS, type Tenant } from '../helpers/fixtures.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

let lines: string[] = [];
const stream = { write: (line: string) => void lines.push(line) };
const records = () => lines.map((line) => JSON.parse(line) as Record<string, any>);
const completions = () => records().filter((record) => record.msg === 'request completed');

let app: FastifyInstance;
let closeDatabase: () => Promise<void>;
let tenant: Tenant;

beforeAll(async () => {
  const database = await openTestDatabase();
  closeDatabase = () => database.close();
  app = await buildApp({
    config: testConfig({ METRICS_TOKEN }),
    database,
    logger: { level: 'trace', stream },
  });
  await app.ready();
  tenant = await createTenant(app);
});
afterAll(async () => {
  await app.close();
  await closeDatabase();
});
beforeEach(() => {
  lines = [];
});

describe('request logs', () => {
  it('write one JSON line per request with request id, route, status and latency', async () => {
    const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: 'SECRET-LICENSE-KEY' });
    expect(response.status).toBe(404);
    const [line, ...others] = completions();
    expect(others).toEqual([]);
    expect(line).toMatchObject({
      level: 30,
      reqId: response.headers['x-request-id'],
      method: 'GET',
      url: '/key',
      route: '/key',
      statusCode: 404,
      responseTime: expect.any(Number),
    });
    // Queries carry license keys, emails and customer IDs: only the path is logged.
    expect(lines.join('\n')).not.toContain('SECRET-LICENSE-KEY');
  });

  it('log the route pattern of parameterised paths and null for unknown paths', async () => {
    await admin(app).send('PATCH', '/admin/products/ffffffffffffffffffffff', { name: 'x' });
    await client(app).get('/no-such-path');
    expect(completions().map(({ route, statusCode }) => ({ route, statusCode }))).toEqual([
      { route: '/admin/products/:id', statusCode: 404 },
      { route: null, statusCode: 404 },
    ]);
  });

  it('never print a presented token: access, admin, metrics, wrong or newly created', async () => {
    const wrongToken = `at_${randomBytes(32).toString('base64url')}`;
    await tenant.api.post('/key', { productId: tenant.productId });
    await client(app, wrongToken).post('/key', { productId: tenant.productId });
    await client(app, 'not-even-a-token').get('/key');
    const created = await admin(app).post('/admin/tokens', { name: 'logged?', accountId: tenant.accountId });
    expect(created.status).toBe(201);
    await client(app, METRICS_TOKEN).get('/metrics');
    await client(app, `${METRICS_TOKEN}-wrong`).get('/metrics');

    const output = lines.join('\n');
    expect(completions()).toHaveLength(6);
    for (const secret of [
      tenant.token,
      wrongToken,
      'not-even-a-token',
      ADMIN_TOKEN,
      created.body.token,
      METRICS_TOKEN,
    ]) {
      expect(output).not.toContain(secret);
    }
  });

  it("never print an Idempotency-Key: like the query string, it is the client's own text", async () => {
    const key = `order-4711-ada@example.com-${randomBytes(4).toString('hex')}`;
    const body = { productId: tenant.productId };
    const first = await tenant.api.post('/key', body, { 'idempotency-key': key });
    const replay = await tenant.api.post('/key', body, { 'idempotency-key': key });
    expect([first.status, replay.status, replay.headers['idempotent-replayed']]).toEqual([200, 200, 'true']);
    expect(completions().map(({ route, statusCode }) => ({ route, statusCode }))).toEqual([
      { route: '/key', statusCode: 200 },
      { route: '/key', statusCode: 200 },
    ]);
    expect(lines.join('\n')).not.toContain(key);
  });

  it('redact tokens and authorization headers in any logged object', () => {
    const token = `at_${randomBytes(32).toString('base64url')}`;
    app.log.info(
      {
        token,
        response: { token, data: { token } },
        req: { headers: { authorization: `Bearer ${token}` } },
        headers: { authorization: `Bearer ${token}` },
        config: { adminToken: token, metricsToken: token, secretKey: token, databaseUrl: `postgres://u:${token}@h/db` },
        webhook: { secret: token },
      },
      'something with secrets',
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(token);
    const [record] = records();
    expect(record).toMatchObject({
      token: '[redacted]',
      response: { token: '[redacted]', data: { token: '[redacted]' } },
      req: { headers: { authorization: '[redacted]' } },
      headers: { authorization: '[redacted]' },
      config: {
        adminToken: '[redacted]',
        metricsToken: '[redacted]',
        secretKey: '[redacted]',
        databaseUrl: '[redacted]',
      },
      webhook: { secret: '[redacted]' },
    });
  });

  it('log a server error with its request id; the response carries no internals', async () => {
    const brokenLines: string[] = [];
    const database = await openTestDatabase();
    const broken = await buildApp({
      config: testConfig(),
      database,
      logger: { level: 'info', stream: { write: (line: string) => void brokenLines.push(line) } },
    });
    await broken.ready();
    await database.close();
    try {
      const response = await client(broken, tenant.token).get('/key', { productId: tenant.productId, licenseKey: 'K' });
      expect(response.status).toBe(500);
      expect(response.body).toEqual(ERRORS.serverError.body);
      const logged = brokenLines.map((line) => JSON.parse(line) as Record<string, any>);
      const failure = logged.find((record) => record.level === 50);
      expect(failure).toMatchObject({ reqId: response.headers['x-request-id'], err: { message: expect.any(String) } });
      expect(logged.find((record) => record.msg === 'request completed')).toMatchObject({
        reqId: response.headers['x-request-id'],
        statusCode: 500,
      });
      expect(brokenLines.join('\n')).not.toContain(tenant.token);
    } finally {
      await broken.close();
    }
  });
});
