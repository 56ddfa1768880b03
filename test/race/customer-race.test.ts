import { and, eq, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { customers, licenseKeys } from '../../src/db/schema/index.js';
import { useTestApp, usingPostgres } from '../helpers/app.js';
import { client, createProduct, createTenant, createToken, type Tenant } from '../helpers/fixtures.js';

const PARALLEL = 20;

// PGlite runs one query at a time, so nothing contends there: these tests need PostgreSQL.
describe.skipIf(!usingPostgres)('customer races (PostgreSQL)', () => {
  const t = useTestApp();

  const rowsWithEmail = async (tenant: Tenant, email: string) =>
    t.database.db
      .select()
      .from(customers)
      .where(and(eq(customers.accountId, tenant.accountId), sql`lower(${customers.email}) = lower(${email})`));

  const tally = (responses: { status: number; body: any }[]) => {
    const counts = new Map<string, number>();
    for (const { status, body } of responses) {
      const outcome = status < 300 ? String(status) : `${status}/${body.code} ${body.message}`;
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    }
    return Object.fromEntries(counts);
  };

  it(`${PARALLEL} parallel creates with one email in different letter cases: one 201, the rest 409/1`, async () => {
    const tenant = await createTenant(t.app);
    const emails = Array.from({ length: PARALLEL }, (_, i) =>
      [...'race@example.com'].map((c, j) => ((i >> (j % 5)) & 1 ? c.toUpperCase() : c)).join(''),
    );
    expect(new Set(emails).size).toBe(PARALLEL);
    const responses = await Promise.all(
      emails.map((email, i) => tenant.api.post('/customer', { name: `racer ${i}`, email })),
    );
    expect(tally(responses)).toEqual({
      '201': 1,
      '409/1 Customer with this email already exists': PARALLEL - 1,
    });
    const rows = await rowsWithEmail(tenant, 'race@example.com');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).toBe(responses.find((r) => r.status === 201)!.body.id);
  });

  it(`${PARALLEL} customers taking one email by update at once: one 200, the rest 409/1`, async () => {
    const tenant = await createTenant(t.app);
    const ids: string[] = [];
    for (let i = 0; i < PARALLEL; i++) {
      const created = await tenant.api.post('/customer', { name: `racer ${i}` });
      ids.push(created.body.id);
    }
    const responses = await Promise.all(
      ids.map((customerId, i) =>
        tenant.api.send('PUT', '/customer/by-id', {
          customerId,
          email: i % 2 ? 'TAKEN@example.com' : 'taken@example.com',
        }),
      ),
    );
    expect(tally(responses)).toEqual({
      '200': 1,
      '409/1 Customer with this email already exists': PARALLEL - 1,
    });
    const rows = await rowsWithEmail(tenant, 'taken@example.com');
    expect(rows.map((row) => row.id)).toEqual([responses.find((r) => r.status === 200)!.body.data.id]);
  });

  it(`${PARALLEL} parallel toggles flip the customer exactly ${PARALLEL} times`, async () => {
    const tenant = await createTenant(t.app);
    const created = await tenant.api.post('/customer', { name: 'Toggled' });
    const customerId = created.body.id as string;
    const responses = await Promise.all(
      Array.from({ length: PARALLEL }, () => tenant.api.post(`/customer/disable?customerId=${customerId}`)),
    );
    const messages = responses.map((r) => r.body.message);
    expect(messages.filter((m) => m === 'Customer disabled')).toHaveLength(PARALLEL / 2);
    expect(messages.filter((m) => m === 'Customer enabled')).toHaveLength(PARALLEL / 2);
    const stored = await tenant.api.get('/customer/by-id', { customerId });
    expect(stored.body.data[0].active).toBe(true);
  });

  it('a product-restricted delete racing a key of another product never deletes that key', async () => {
    const tenant = await createTenant(t.app, { productIds: 'own' });
    const otherProduct = await createProduct(t.app, tenant.accountId);
    const unrestricted = client(t.app, await createToken(t.app, tenant.accountId));
    for (let round = 0; round < PARALLEL; round++) {
      const created = await tenant.api.post('/customer', { name: `round ${round}` });
      const customerId = created.body.id as string;
      const [removed, key] = await Promise.all([
        tenant.api.send('DELETE', `/customer/by-id?customerId=${customerId}`),
        unrestricted.post('/key', { productId: otherProduct, customerId }),
      ]);
      const foreignKeys = await t.database.db
        .select({ id: licenseKeys.id })
        .from(licenseKeys)
        .where(and(eq(licenseKeys.customerId, customerId), eq(licenseKeys.productId, otherProduct)));
      const customerRows = await t.database.db.select().from(customers).where(eq(customers.id, customerId));
      if (removed.status === 200) {
        // The key request lost the race: it must not report a key that the delete took away.
        expect(key.status).not.toBe(200);
        expect(customerRows).toEqual([]);
      } else {
        expect(removed.body).toEqual({ message: 'Insufficient permissions for this operation', code: 1 });
        expect(key.status).toBe(200);
        expect(customerRows).toHaveLength(1);
        expect(foreignKeys).toHaveLength(1);
      }
    }
  });
});
