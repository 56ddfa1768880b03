import { randomBytes } from 'node:crypto';
import { and, count, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { customers, licenseKeys } from '../../src/db/schema/index.js';
import { useTestApp, usingPostgres } from '../helpers/app.js';
import { createTenant, type Tenant } from '../helpers/fixtures.js';

const PARALLEL = 20;

type Outcome = { status: number; body: any };

/** Counts outcomes as "200" or "409/2 <message>" so a failure shows the whole distribution. */
const tally = (responses: Outcome[]) => {
  const counts: Record<string, number> = {};
  for (const { status, body } of responses) {
    const outcome = status === 200 ? '200' : `${status}/${body?.code} ${body?.message}`;
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }
  return counts;
};

const uniqueEmail = () => `race.${randomBytes(5).toString('hex')}@example.com`;

// PGlite runs one query at a time, so nothing contends there: these tests need PostgreSQL.
describe.skipIf(!usingPostgres)('create-key races (PostgreSQL)', () => {
  const t = useTestApp();

  const customersWithEmail = async (tenant: Tenant, email: string) =>
    t.database.db
      .select()
      .from(customers)
      .where(and(eq(customers.accountId, tenant.accountId), sql`lower(${customers.email}) = lower(${email})`));

  const keysOf = async (tenant: Tenant) =>
    t.database.db.select().from(licenseKeys).where(eq(licenseKeys.accountId, tenant.accountId));

  /** 20 distinct spellings of one email, differing only in letter case. */
  const caseVariants = (email: string) =>
    Array.from({ length: PARALLEL }, (_, i) =>
      [...email].map((c, j) => ((i >> (j % 5)) & 1 ? c.toUpperCase() : c)).join(''),
    );

  describe('in one process (app.inject, pool of 10 connections)', () => {
    it(`${PARALLEL} parallel create-key calls with one newCustomer email: one 200, the rest 409/2, one customer`, async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail();
      const responses = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          tenant.api.post(i % 2 ? '/key' : '/create-key', {
            productId: tenant.productId,
            newCustomer: { name: `racer ${i}`, email },
          }),
        ),
      );
      expect(tally(responses)).toEqual({
        '200': 1,
        [`409/2 CONFLICT: Customer email ${email} already exists.`]: PARALLEL - 1,
      });
      for (const response of responses) {
        if (response.status !== 200) expect(Object.keys(response.body).sort()).toEqual(['code', 'message']);
      }
      const rows = await customersWithEmail(tenant, email);
      expect(rows).toHaveLength(1);
      const keys = await keysOf(tenant);
      expect(keys.map((key) => key.key)).toEqual([responses.find((r) => r.status === 200)!.body.key]);
      expect(keys[0]!.customerId).toBe(rows[0]!.id);
    });

    it('letter-case variants of the email race the same way; each loser sees its own spelling', async () => {
      const tenant = await createTenant(t.app);
      const emails = caseVariants(uniqueEmail());
      expect(new Set(emails).size).toBe(PARALLEL);
      const responses = await Promise.all(
        emails.map((email, i) =>
          tenant.api.post('/create-key', { productId: tenant.productId, newCustomer: { name: `racer ${i}`, email } }),
        ),
      );
      expect(responses.filter((r) => r.status === 200)).toHaveLength(1);
      responses.forEach((response, i) => {
        if (response.status === 200) return;
        expect(response.body).toEqual({ message: `CONFLICT: Customer email ${emails[i]} already exists.`, code: 2 });
        expect(response.status).toBe(409);
      });
      expect(await customersWithEmail(tenant, emails[0]!)).toHaveLength(1);
      expect(await keysOf(tenant)).toHaveLength(1);
    });

    it('with amountKeys the winner writes all its keys and the losers none', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail();
      const responses = await Promise.all(
        Array.from({ length: PARALLEL }, () =>
          tenant.api.post('/key', {
            productId: tenant.productId,
            amountKeys: 5,
            newCustomer: { name: 'Batch', email },
          }),
        ),
      );
      expect(tally(responses)).toEqual({
        '200': 1,
        [`409/2 CONFLICT: Customer email ${email} already exists.`]: PARALLEL - 1,
      });
      const winner = responses.find((r) => r.status === 200)!.body;
      const keys = await keysOf(tenant);
      expect(keys.map((key) => key.key).sort()).toEqual([...winner.keys].sort());
      expect(new Set(keys.map((key) => key.customerId)).size).toBe(1);
    });

    it('parallel requests filling a small key space never store a key twice', async () => {
      const tenant = await createTenant(t.app);
      // 4^4 = 256 possible keys; 20 x 5 = 100 keys drawn at once collide often.
      const format = { charset: 'ABCD', sections: 1, sectionLength: 4 };
      const responses = await Promise.all(
        Array.from({ length: PARALLEL }, () =>
          tenant.api.post('/key', { productId: tenant.productId, amountKeys: 5, format }),
        ),
      );
      expect(tally(responses)).toEqual({ '200': PARALLEL });
      const returned = responses.flatMap((response) => response.body.keys as string[]);
      expect(new Set(returned).size).toBe(PARALLEL * 5);
      const [stored] = await t.database.db
        .select({ n: count() })
        .from(licenseKeys)
        .where(eq(licenseKeys.productId, tenant.productId));
      expect(stored!.n).toBe(PARALLEL * 5);
    });
  });

  describe('across two server processes', () => {
    let servers: ServerProcess[] = [];
    beforeAll(async () => {
      const env = { DATABASE_URL: process.env.DATABASE_URL!, DB_POOL_SIZE: '10' };
      servers = await Promise.all([startServer(env), startServer(env)]);
    }, 120_000);
    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()));
    });

    it(`${PARALLEL} create-key calls with one email spread over both servers: one 200, the rest 409/2`, async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail();
      const responses = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          request(servers[i % 2]!.url, 'POST', i % 4 < 2 ? '/create-key' : '/key', tenant.token, {
            productId: tenant.productId,
            newCustomer: { name: `racer ${i}`, email },
          }),
        ),
      );
      expect(tally(responses)).toEqual({
        '200': 1,
        [`409/2 CONFLICT: Customer email ${email} already exists.`]: PARALLEL - 1,
      });
      expect(await customersWithEmail(tenant, email)).toHaveLength(1);
      expect(await keysOf(tenant)).toHaveLength(1);
    });

    it('keys drawn in parallel on both servers from a small space are all distinct', async () => {
      const tenant = await createTenant(t.app);
      const format = { charset: 'ABCD', sections: 1, sectionLength: 4 };
      const responses = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          request(servers[i % 2]!.url, 'POST', '/create-key', tenant.token, {
            productId: tenant.productId,
            amountKeys: '5',
            format,
          }),
        ),
      );
      expect(tally(responses)).toEqual({ '200': PARALLEL });
      const returned = responses.flatMap((response) => response.body.keys as string[]);
      expect(new Set(returned).size).toBe(PARALLEL * 5);
      expect(await keysOf(tenant)).toHaveLength(PARALLEL * 5);
    });
  });
});
