/** POST /create-key and POST /key: expiryDate, its default and how it reads back. */
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFreshDatabase } from '../../../scripts/server-process.js';
import { buildApp } from '../../../src/app.js';
import { openPostgres } from '../../../src/db/client.js';
import { migratePostgresDatabase } from '../../../src/db/migrate.js';
import { testConfig, useTestApp, usingPostgres } from '../../helpers/app.js';
import { createKey, createTenant, expectError, getLicense, ISO_MS, keyCreator } from '../../helpers/fixtures.js';

const t = useTestApp();

/** One calendar month later, clamped to the target month's last day: written independently of src/lib/dates. */
function oneMonthAfter(date: Date): Date {
  const year = date.getUTCFullYear() + (date.getUTCMonth() === 11 ? 1 : 0);
  const month = (date.getUTCMonth() + 1) % 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const result = new Date(date.getTime());
  result.setUTCFullYear(year, month, Math.min(date.getUTCDate(), lastDay));
  return result;
}

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const { create, createOk } = keyCreator(path);

  describe('expiryDate', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('defaults to one calendar month after creation', async () => {
      const tenant = await createTenant(t.app);
      const before = new Date();
      const { body } = await createOk(tenant);
      const after = new Date();
      const { license } = await getLicense(tenant, body.key);
      const expiry = new Date(license.expirationDate).getTime();
      expect(license.expirationDate).toMatch(ISO_MS);
      expect(expiry).toBeGreaterThanOrEqual(oneMonthAfter(before).getTime());
      expect(expiry).toBeLessThanOrEqual(oneMonthAfter(after).getTime());
    });

    it.each([
      ['2025-01-31T10:20:30.456Z', '2025-02-28T10:20:30.456Z'],
      ['2024-01-31T00:00:00.000Z', '2024-02-29T00:00:00.000Z'],
      ['2025-03-31T23:59:59.999Z', '2025-04-30T23:59:59.999Z'],
      ['2025-12-15T08:00:00.000Z', '2026-01-15T08:00:00.000Z'],
    ])('the default from %s is %s (clamped to the month end)', async (now, expected) => {
      const tenant = await createTenant(t.app);
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date(now));
      const { body } = await createOk(tenant);
      vi.useRealTimers();
      const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: body.key });
      expect(response.body.data.license.expirationDate).toBe(expected);
    });

    it('null means never expires', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: null });
      const { license } = await getLicense(tenant, body.key);
      expect(license.expirationDate).toBeNull();
      expect(license.activated).toBe(true);
    });

    it.each([
      ['2030-12-31T23:59:59Z', '2030-12-31T23:59:59.000Z'],
      ['2030-12-31', '2030-12-31T00:00:00.000Z'],
      ['2030-06-30T23:59:59+02:00', '2030-06-30T21:59:59.000Z'],
      ['2030-06-30T23:59:59-05:30', '2030-07-01T05:29:59.000Z'],
      ['2030-06-30T23:59:59.5Z', '2030-06-30T23:59:59.500Z'],
      ['2030-06-30T23:59:59.123456789Z', '2030-06-30T23:59:59.123Z'],
      ['2030-06-30T12:00Z', '2030-06-30T12:00:00.000Z'],
      ['2028-02-29', '2028-02-29T00:00:00.000Z'],
      ['2030-01-01T00:30:00+01:00', '2029-12-31T23:30:00.000Z'],
      ['1000-01-01T00:00:00Z', '1000-01-01T00:00:00.000Z'],
      ['1000-01-01T00:30:00+00:30', '1000-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ])('accepts %s and returns %s', async (input, output) => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: input });
      expect((await getLicense(tenant, body.key)).license.expirationDate).toBe(output);
    });

    it('accepts a past date; the key then reads as not activated', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { expiryDate: '2020-01-01T00:00:00Z' });
      const { license } = await getLicense(tenant, body.key);
      expect(license.expirationDate).toBe('2020-01-01T00:00:00.000Z');
      expect(license.activated).toBe(false);
    });

    it.each([
      ['2024-13-45'],
      ['2025-02-30'],
      ['2025-02-29'],
      ['2025-04-31T00:00:00Z'],
      ['2025-06-30T23:59:59'],
      ['2025-06-30T24:00:00Z'],
      ['2025-06-30T23:60:00Z'],
      ['2025-06-30T23:59:60Z'],
      ['2025-06-30T23:59:59+2400'],
      ['2025-06-30T23:59:59+24:00'],
      ['2025-6-30'],
      ['30/06/2025'],
      ['June 30, 2025'],
      ['tomorrow'],
      [''],
      ['0000-01-01'],
      ['0001-01-01T00:00:00Z'],
      ['0999-12-31'],
      ['1000-01-01T00:00:00+01:00'],
      ['9999-12-31T23:59:59-01:00'],
      [1751327999000],
      [true],
      [{}],
    ])('rejects %j', async (value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { expiryDate: value }), 400, 1, 'Invalid expiryDate');
    });
  });
});

describe.skipIf(!usingPostgres)('on a PostgreSQL database whose time zone is not UTC', () => {
  it('expiry dates of any accepted year read back exactly', async () => {
    const fresh = await createFreshDatabase();
    const zoned = new URL(fresh.url).pathname.slice(1);
    const database = openPostgres({ url: fresh.url, poolSize: 2 });
    try {
      await t.database.db.execute(sql.raw(`alter database ${zoned} set timezone = 'Europe/Amsterdam'`));
      await migratePostgresDatabase(fresh.url);
      const app = await buildApp({ config: testConfig(), database });
      try {
        const tenant = await createTenant(app);
        for (const [input, output] of [
          ['1000-06-15T12:00:00Z', '1000-06-15T12:00:00.000Z'],
          ['1800-01-01', '1800-01-01T00:00:00.000Z'],
          ['2030-07-01T12:00:00+02:00', '2030-07-01T10:00:00.000Z'],
        ]) {
          const key = await createKey(tenant, { expiryDate: input });
          const response = await tenant.api.get('/key', { productId: tenant.productId, licenseKey: key });
          expect({
            input,
            status: response.status,
            expirationDate: response.body.data?.license.expirationDate,
          }).toEqual({
            input,
            status: 200,
            expirationDate: output,
          });
        }
      } finally {
        await app.close();
      }
    } finally {
      await database.close();
      await fresh.drop();
    }
  }, 60_000);
});
