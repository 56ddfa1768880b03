import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, createTestApp } from '../helpers/app.js';
import { admin, createKey, createProduct, createTenant, createToken, uniqueEmail } from '../helpers/fixtures.js';
import { checkedOut, sign } from '../helpers/floating.js';
import {
  type Credentials,
  describeRequest,
  JsonObject,
  type Operation,
  type Pools,
  requestsFor,
  type Schema,
} from './arbitraries.js';
import { changedTables, checksummer, errorProblem, schemaProblem, tablesOf } from './oracle.js';

/**
 * Hostile input, generated (issue 11, item 9): every operation of the app's own OpenAPI document
 * gets fast-check requests of wrong types, huge and deep values, Unicode edge cases, duplicate
 * keys, edge numbers, broken JSON, odd Content-Types and Authorization / Idempotency-Key
 * variants, mixed with real ids of a seeded tenant so that requests get past validation into the
 * services. Every answer must be a documented 2xx (its body matching the documented schema) or
 * an error of the contract in the `{message, code}` envelope — never a 5xx — and a rejected
 * request (and any GET) must leave every table as it was (row count and newest row version, see checksummer).
 *
 * Bounded for `npm test`; longer: `FUZZ_RUNS=2000 FUZZ_SEED=$RANDOM npx vitest run test/fuzz`.
 * FUZZ_RUNS is per operation. A failure prints its seed and path: rerun with FUZZ_SEED=<seed>
 * FUZZ_PATH=<path> and `-t '<METHOD> <path>'` to replay exactly that case.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 20);
const SEED = process.env.FUZZ_SEED === undefined ? 20251111 : Number(process.env.FUZZ_SEED);
const PATH = process.env.FUZZ_PATH;
const METRICS_TOKEN = 'fuzz-metrics-token-0123456789';

// The endpoints come from the app itself, at collection time: a new one is fuzzed with no edit here.
const t = await createTestApp({ RATE_LIMIT_PER_MINUTE: '10000000', METRICS_TOKEN }, { ownDatabase: true });
afterAll(() => t.close());

type OpenApiOperation = {
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
};
const document = (await t.app.inject({ url: '/openapi.json' })).json() as {
  paths: Record<string, Record<string, OpenApiOperation>>;
};
const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, spec]) => {
    const scheme = Object.keys(spec.security?.[0] ?? {})[0];
    const params = (where: string) =>
      (spec.parameters ?? []).filter((p) => p.in === where).map(({ name, schema }) => ({ name, schema }));
    const operation: Operation = {
      method: method.toUpperCase(),
      path,
      security: scheme === 'bearerAuth' || scheme === 'adminToken' ? scheme : 'none',
      pathParams: params('path'),
      queryParams: params('query'),
      body: spec.requestBody?.content['application/json']?.schema,
      idempotent: (spec.parameters ?? []).some((p) => p.in === 'header' && p.name === 'Idempotency-Key'),
    };
    return { operation, spec };
  }),
);

// The first read of the JWKS makes the first signing key; after that, reads write nothing.
expect((await t.app.inject({ url: '/.well-known/jwks.json' })).statusCode).toBe(200);
const checksum = checksummer(t.database.db, await tablesOf(t.database.db));

interface World {
  pools: Pools;
  credentials: Credentials;
}

/**
 * The tenants, tokens and webhook every operation uses: two tenants (for another tenant's ids),
 * a token restricted to one scope and product, a revoked token.
 */
async function seedTenants() {
  const app = t.app;
  const webhook = await admin(app).post('/admin/webhooks', { url: 'http://93.184.216.34/hook' });
  expect(webhook.status).toBe(201);
  const a = await createTenant(app);
  const b = await createTenant(app);
  const restricted = await createToken(app, a.accountId, { scopes: ['licenses:read'], productIds: [a.productId] });
  const revoked = await admin(app).post('/admin/tokens', { name: 'revoked', accountId: a.accountId });
  await admin(app).send('DELETE', `/admin/tokens/${revoked.body.id}`);
  return {
    a,
    b,
    webhookId: webhook.body.id as string,
    restricted,
    revoked: revoked.body as { id: string; token: string },
  };
}
type Tenants = Awaited<ReturnType<typeof seedTenants>>;

/**
 * What an operation may use up or change — a product, a customer, keys in every state, an
 * activation, floating sessions (one on a blocked key), a pending delivery — made afresh after
 * an operation that writes: a previous one may have blocked, deactivated or deleted them.
 */
async function seedWorld({ a, b, webhookId, restricted, revoked }: Tenants): Promise<World> {
  const app = t.app;
  const [product, inactive] = await Promise.all([
    createProduct(app, a.accountId),
    createProduct(app, a.accountId, false),
  ]);
  const tenant = { ...a, productId: product };
  const email = uniqueEmail('fuzz');
  const customer = await a.api.post('/customer', { name: 'Ada Park', email });
  const nodeLocked = await createKey(tenant, {
    maxActivations: 2,
    customerId: customer.body.data.id,
    expiryDate: '2099-01-01',
  });
  await a.api.post('/key/activate', { productId: product, licenseKey: nodeLocked, hostId: 'host-1' });
  const floating = await createKey(tenant, {
    licenseType: 'floating',
    maxConcurrentSessions: 2,
    allowedHosts: ['host-1', 'host-2'],
  });
  const { session } = await checkedOut(tenant, floating);
  const blockedFloating = await createKey(tenant, { licenseType: 'floating' });
  const { session: blockedSession } = await checkedOut(tenant, blockedFloating, { hostId: 'host-2' });
  await a.api.post('/key/block', { productId: product, licenseKey: blockedFloating });
  // Settings at their bounds, for whatever computes with them (leases, file lifetimes, key length).
  const extreme = await createKey(tenant, {
    licenseType: 'floating',
    maxConcurrentSessions: 2_147_483_647,
    heartbeatInterval: 2_147_483_647,
    sessionLeaseDuration: 2_147_483_647,
    expiryDate: '9999-12-31T23:59:59.999Z',
    format: { sections: 10, sectionLength: 32, separator: '---', prefix: 'p'.repeat(16), suffix: 's'.repeat(16) },
  });
  const deliveries = await admin(app).get(`/admin/webhooks/${webhookId}/deliveries`, { limit: '1' });
  const deliveryId = (deliveries.body.data?.[0]?.id as string | undefined) ?? 'none';
  const signature = (s: typeof session) => sign(s.sessionSecret, s.sessionId, s.nonce);
  return {
    pools: {
      productId: [product, product, a.productId, inactive, b.productId],
      licenseKey: [nodeLocked, floating, blockedFloating, extreme],
      customerId: [customer.body.data.id],
      hostId: ['host-1', 'host-2', 'host-3'],
      sessionId: [session.sessionId, blockedSession.sessionId],
      timestamp: [session.nonce, blockedSession.nonce, Number(session.nonce)],
      signature: [signature(session), signature(blockedSession)],
      accountId: [a.accountId, b.accountId],
      id: [product, revoked.id, webhookId, deliveryId],
      deliveryId: [deliveryId],
      url: ['http://93.184.216.34/hook', 'https://[2606:4700:4700::1111]/w', 'http://127.0.0.1/x', 'http://[::1]/'],
      email: [email, email.toUpperCase(), uniqueEmail('new')],
      name: ['Ada Park'],
      amountKeys: [1, 2, '3'],
      ttl: [60, 3600],
      licensee: [
        new JsonObject([
          ['name', 'Lee'],
          ['email', uniqueEmail('lee')],
        ]),
      ],
    },
    credentials: {
      bearerAuth: [a.token],
      adminToken: [ADMIN_TOKEN],
      metrics: [METRICS_TOKEN],
      others: [restricted, revoked.token, b.token],
    },
  };
}

let tenants: Tenants | undefined;
let world: World | undefined;

/** Refusals that the contract says do write: the session a key's state refuses is ended. */
const documentedWrites = (op: Operation, status: number, body: string): string[] => {
  const ended = ['License key is blocked', 'License key has expired', 'Customer is inactive'];
  if (
    (op.path === '/key/heartbeat' || op.path === '/key/checkin') &&
    status === 403 &&
    ended.some((message) => body.includes(message))
  ) {
    return ['floating_sessions'];
  }
  return [];
};

let total = 0;
const statuses = new Map<number, number>();
afterAll(() => {
  console.log(
    `hostile-input fuzz: ${total} requests over ${operations.length} operations (seed ${SEED}, ${RUNS} runs each); statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
  );
});

describe('every endpoint under hostile input', () => {
  it('covers the whole API: public v2 and v1 paths, customers, floating, license files, admin, webhooks, health, metrics', () => {
    const listed = operations.map(({ operation }) => `${operation.method} ${operation.path}`);
    for (const expected of [
      'POST /key',
      'POST /create-key',
      'POST /activate-key',
      'POST /key/checkout',
      'PUT /customer/by-id',
      'POST /key/sign',
      'POST /admin/tokens',
      'POST /admin/webhooks',
      'POST /admin/webhooks/{id}/deliveries/{deliveryId}/retry',
      'GET /healthz',
      'GET /metrics',
    ]) {
      expect(listed).toContain(expected);
    }
    expect(listed.length).toBeGreaterThan(40);
  });

  for (const { operation: op, spec } of operations) {
    const success = Object.entries(spec.responses).filter(([status]) => /^2\d\d$/.test(status));

    it(
      `${op.method} ${op.path}`,
      async () => {
        tenants ??= await seedTenants();
        world ??= await seedWorld(tenants);
        const { pools, credentials } = world;
        // Reads change nothing (asserted below): the next operation may reuse this world.
        if (op.method !== 'GET') world = undefined;

        // Built inside the test: a schema the generators do not know fails this endpoint's test.
        const requests = requestsFor(op, pools, credentials);
        let before = await checksum();
        await fc.assert(
          fc.asyncProperty(requests, async (request) => {
            const response = await t.app.inject({
              method: request.method as 'GET',
              url: request.url,
              headers: request.headers,
              payload: request.payload,
            });
            const after = await checksum();
            const changed = changedTables(before, after);
            before = after;
            total++;
            statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
            const problem = (() => {
              const status = response.statusCode;
              if (status >= 500) return `answered ${status}: ${response.body.slice(0, 300)}`;
              if (status >= 400) {
                const envelope = errorProblem(
                  status,
                  response.headers['content-type'],
                  response.body,
                  request.method === 'HEAD',
                );
                if (envelope) return envelope;
                const allowed = [
                  ...(request.validIdempotencyKey ? ['idempotency_keys'] : []),
                  ...documentedWrites(op, status, response.body),
                ];
                const unexpected = changed.filter((table) => !allowed.includes(table));
                if (unexpected.length > 0)
                  return `a rejected request (${status} ${response.body}) changed ${unexpected}`;
                return undefined;
              }
              if (request.method === 'GET' || request.method === 'HEAD') {
                if (changed.length > 0) return `a read changed ${changed}`;
              }
              const documented = success.find(([code]) => Number(code) === status);
              if (!documented) return `answered an undocumented ${status}: ${response.body.slice(0, 300)}`;
              const schema = documented[1].content?.['application/json']?.schema;
              if (request.method === 'HEAD') return undefined;
              if (!schema) {
                // A documented non-JSON answer (GET /admin/backup's file, /metrics' text) has that type.
                const type = String(response.headers['content-type']);
                const mediaTypes = Object.keys(documented[1].content ?? {});
                const expected = mediaTypes.length > 0 ? mediaTypes : ['text/plain'];
                return expected.some((mediaType) => type.startsWith(mediaType))
                  ? undefined
                  : `a ${status} of Content-Type ${type}`;
              }
              let body: unknown;
              try {
                body = JSON.parse(response.body);
              } catch {
                return `a ${status} whose body is not JSON: ${response.body.slice(0, 300)}`;
              }
              return schemaProblem(schema, body);
            })();
            if (problem) throw new Error(`${problem}\n--- request\n${describeRequest(request)}`);
          }),
          // A backup snapshots the whole database (seconds each): a few runs suffice there.
          {
            numRuns: op.path === '/admin/backup' ? Math.min(RUNS, 4) : RUNS,
            seed: SEED,
            ...(PATH ? { path: PATH } : {}),
          },
        );
      },
      Math.max(60_000, RUNS * 500),
    );
  }
});
