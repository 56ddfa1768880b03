/** POST /create-key and POST /key: activation limit, metadata, allowedHosts, license type and floating settings. */
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import { createTenant, expectError, getLicense, keyCreator, storedRows } from '../../helpers/fixtures.js';

const t = useTestApp();
const { keyCount, keyRow } = storedRows(t);

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const { create, createOk } = keyCreator(path);

  describe('usesPerKey / maxActivations (D2)', () => {
    it('accepts digit strings and integers', async () => {
      const tenant = await createTenant(t.app);
      const cases: [Record<string, unknown>, number][] = [
        [{ usesPerKey: '5' }, 5],
        [{ usesPerKey: 7 }, 7],
        [{ maxActivations: '2' }, 2],
        [{ maxActivations: 1 }, 1],
        [{ usesPerKey: '4', maxActivations: 4 }, 4],
        [{ usesPerKey: '06' }, 6],
        [{ maxActivations: '00000000000000000003' }, 3],
        [{ usesPerKey: '2147483647' }, 2147483647],
        [{ usesPerKey: 9, maxActivations: null }, 9],
        [{ usesPerKey: null, maxActivations: '8' }, 8],
      ];
      for (const [body, expected] of cases) {
        const { body: created } = await createOk(tenant, body);
        const { license } = await getLicense(tenant, created.key);
        expect(license.maxActivations, JSON.stringify(body)).toBe(expected);
      }
    });

    it('null or omitted means unlimited and reads back as null, never a string', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [
        {},
        { usesPerKey: null },
        { maxActivations: null },
        { usesPerKey: null, maxActivations: null },
      ]) {
        const { body: created } = await createOk(tenant, body);
        const { license } = await getLicense(tenant, created.key);
        expect(license.maxActivations).toBeNull();
      }
    });

    it.each([
      ['0'],
      ['-1'],
      ['1.5'],
      ['abc'],
      [''],
      [' 5'],
      ['5 '],
      ['+5'],
      ['1e3'],
      [1.5],
      [0],
      [-3],
      [true],
      [[5]],
      [{}],
      ['2147483648'],
      ['000000000000002147483648'],
      [2147483648],
    ])('rejects %j', async (value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { usesPerKey: value }), 400, 1, 'Invalid usesPerKey');
      expectError(await create(tenant, { maxActivations: value }), 400, 1, 'Invalid maxActivations');
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('both given and different is 400/1', async () => {
      const tenant = await createTenant(t.app);
      for (const body of [
        { usesPerKey: '3', maxActivations: '4' },
        { usesPerKey: 3, maxActivations: '5' },
        { usesPerKey: '10', maxActivations: 1 },
      ]) {
        expectError(await create(tenant, body), 400, 1, 'usesPerKey and maxActivations must match');
      }
      expect(await keyCount(tenant.accountId)).toBe(0);
    });
  });

  describe('metadata', () => {
    const nested = (levels: number): Record<string, unknown> => {
      let value: Record<string, unknown> = { leaf: true };
      for (let i = 1; i < levels; i++) value = { next: value };
      return value;
    };

    it('stores an object and returns it as given', async () => {
      const tenant = await createTenant(t.app);
      const metadata = {
        plan: 'pro',
        seats: 5,
        ratio: 0.25,
        flags: [true, false, null],
        nested: { 'unicode ✓': 'ünïcødé 🚀', empty: {}, list: [] },
        productId: 'not renamed',
      };
      const { body } = await createOk(tenant, { metadata });
      expect((await getLicense(tenant, body.key)).license.metadata).toEqual(metadata);
    });

    it('null and {} are stored as given', async () => {
      const tenant = await createTenant(t.app);
      const none = await createOk(tenant, { metadata: null });
      expect((await getLicense(tenant, none.body.key)).license.metadata).toBeNull();
      const empty = await createOk(tenant, { metadata: {} });
      expect((await getLicense(tenant, empty.body.key)).license.metadata).toEqual({});
    });

    it('accepts 8 levels and exactly 16 KiB', async () => {
      const tenant = await createTenant(t.app);
      await createOk(tenant, { metadata: nested(8) });
      const filler = 'x'.repeat(16 * 1024 - JSON.stringify({ s: '' }).length);
      expect(Buffer.byteLength(JSON.stringify({ s: filler }))).toBe(16 * 1024);
      await createOk(tenant, { metadata: { s: filler } });
    });

    it.each([
      ['9 levels', nested(9)],
      ['more than 16 KiB', { s: 'x'.repeat(16 * 1024) }],
      ['more than 16 KiB in UTF-8 bytes', { s: 'é'.repeat(8200) }],
      ['an array', [{ a: 1 }]],
      ['a string', '{"a":1}'],
      ['a number', 5],
      ['arrays nested 9 levels', { a: [[[[[[[[1]]]]]]]] }],
    ])('rejects %s', async (_label, metadata) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { metadata }), 400, 1, 'Invalid metadata');
    });
  });

  describe('allowedHosts', () => {
    it('stores the list; [] and null are stored as null', async () => {
      const tenant = await createTenant(t.app);
      const hosts = ['host-a', 'h'.repeat(256)];
      const listed = await createOk(tenant, { allowedHosts: hosts });
      expect((await getLicense(tenant, listed.body.key)).license.allowedHosts).toEqual(hosts);
      for (const allowedHosts of [[], null]) {
        const { body } = await createOk(tenant, { allowedHosts });
        expect((await getLicense(tenant, body.key)).license.allowedHosts).toBeNull();
      }
    });

    it('accepts 1000 items and rejects 1001, empty or over-long items and non-arrays', async () => {
      const tenant = await createTenant(t.app);
      const many = Array.from({ length: 1000 }, (_, i) => `host-${i}`);
      const { body } = await createOk(tenant, { allowedHosts: many });
      expect((await getLicense(tenant, body.key)).license.allowedHosts).toHaveLength(1000);
      for (const allowedHosts of [[...many, 'one-more'], [''], ['h'.repeat(257)], 'host-a', [5], {}]) {
        expectError(await create(tenant, { allowedHosts }), 400, 1, 'Invalid allowedHosts');
      }
    });
  });

  describe('license type and floating settings', () => {
    it('stores licenseType and the floating settings', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, {
        licenseType: 'floating',
        maxConcurrentSessions: 3,
        heartbeatInterval: 60,
        sessionLeaseDuration: 300,
      });
      expect((await getLicense(tenant, body.key)).license.licenseType).toBe('floating');
      expect(await keyRow(tenant, body.key)).toMatchObject({
        licenseType: 'floating',
        maxConcurrentSessions: 3,
        heartbeatInterval: 60,
        sessionLeaseDuration: 300,
      });
    });

    it('defaults: node-locked, unlimited seats, 300 s heartbeat, 900 s lease', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { maxConcurrentSessions: null });
      expect(await keyRow(tenant, body.key)).toMatchObject({
        licenseType: 'node-locked',
        maxConcurrentSessions: null,
        heartbeatInterval: 300,
        sessionLeaseDuration: 900,
      });
    });

    it.each([
      ['licenseType', 'bogus'],
      ['licenseType', 'FLOATING'],
      ['licenseType', ''],
      ['maxConcurrentSessions', 0],
      ['maxConcurrentSessions', '3'],
      ['heartbeatInterval', 59],
      ['heartbeatInterval', 60.5],
      ['sessionLeaseDuration', 299],
      ['sessionLeaseDuration', '900'],
    ])('rejects %s = %j', async (field, value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { [field]: value }), 400, 1, `Invalid ${field}`);
    });
  });
});
