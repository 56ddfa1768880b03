/** POST /create-key and POST /key: key format (§1.8), amountKeys, key uniqueness and generation in a fresh process. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { request, startServer } from '../../../scripts/server-process.js';
import { ADMIN_TOKEN, useTestApp, usingPostgres } from '../../helpers/app.js';
import {
  createKey,
  createProduct,
  createTenant,
  DEFAULT_KEY,
  expectError,
  getLicense,
  keyCreator,
  storedRows,
  type Tenant,
  uniqueEmail,
} from '../../helpers/fixtures.js';

const t = useTestApp();
const { customerCount, keyCount } = storedRows(t);

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const { create, createOk } = keyCreator(path);

  describe('format (§1.8)', () => {
    const keyOf = async (tenant: Tenant, format: Record<string, unknown>) =>
      (await createOk(tenant, { format })).body.key as string;

    it('applies every field; prefix and suffix have no extra separator', async () => {
      const tenant = await createTenant(t.app);
      const key = await keyOf(tenant, {
        sections: 3,
        sectionLength: 4,
        separator: '.',
        charset: 'ABC123',
        prefix: 'PRO',
        suffix: '-EU',
      });
      expect(key).toMatch(/^PRO[ABC123]{4}\.[ABC123]{4}\.[ABC123]{4}-EU$/);
    });

    it('sections and sectionLength bounds, empty and multi-char separators', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { sections: 1, sectionLength: 1 })).toMatch(/^[A-Z0-9]$/);
      expect(await keyOf(tenant, { sections: 10, sectionLength: 32 })).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
      expect(await keyOf(tenant, { separator: '' })).toMatch(/^[A-Z0-9]{20}$/);
      expect(await keyOf(tenant, { separator: '::-', sections: 2 })).toMatch(/^[A-Z0-9]{5}::-[A-Z0-9]{5}$/);
    });

    it('case upper / lower / mixed transform the charset; prefix and suffix stay as given', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { charset: 'abc', case: 'upper', prefix: 'p-', suffix: '-s' })).toMatch(
        /^p-[ABC]{5}(-[ABC]{5}){3}-s$/,
      );
      expect(await keyOf(tenant, { case: 'lower', prefix: 'KEY_' })).toMatch(/^KEY_[a-z0-9]{5}(-[a-z0-9]{5}){3}$/);
      const mixed = await createOk(tenant, {
        format: { charset: 'ab', case: 'mixed', sections: 1, sectionLength: 8 },
        amountKeys: 50,
      });
      const chars = new Set((mixed.body.keys as string[]).join(''));
      expect([...chars].sort()).toEqual(['A', 'B', 'a', 'b']);
    });

    it('the default case upper-cases a lower-case charset', async () => {
      const tenant = await createTenant(t.app);
      expect(await keyOf(tenant, { charset: 'xyz' })).toMatch(/^[XYZ]{5}(-[XYZ]{5}){3}$/);
    });

    it('fewer than 2 distinct chars after case and dedupe is Invalid format.charset', async () => {
      const tenant = await createTenant(t.app);
      for (const format of [
        { charset: 'aA' },
        { charset: 'aaaa', case: 'lower' },
        { charset: 'Aa', case: 'lower' },
        { charset: '11' },
      ]) {
        expectError(await create(tenant, { format }), 400, 1, 'Invalid format.charset');
      }
      expect(await keyOf(tenant, { charset: 'aA', case: 'mixed', sections: 1, sectionLength: 3 })).toMatch(/^[aA]{3}$/);
    });

    it.each([
      ['sections', 0],
      ['sections', 11],
      ['sections', 2.5],
      ['sections', '4'],
      ['sectionLength', 0],
      ['sectionLength', 33],
      ['separator', '----'],
      ['separator', 5],
      ['charset', 'A'],
      ['charset', 'A B'],
      ['charset', 'AB\t'],
      ['charset', 'x'.repeat(101)],
      ['charset', ''],
      ['prefix', 'p'.repeat(17)],
      ['suffix', 's'.repeat(17)],
      ['case', 'title'],
      ['case', 'UPPER'],
    ])('rejects format.%s = %j', async (field, value) => {
      const tenant = await createTenant(t.app);
      expectError(await create(tenant, { format: { [field]: value } }), 400, 1, `Invalid format.${field}`);
    });

    it('format must be an object', async () => {
      const tenant = await createTenant(t.app);
      for (const format of ['XXXXX-XXXXX', ['a'], 5]) {
        expectError(await create(tenant, { format }), 400, 1, 'Invalid format');
      }
    });

    it('a format that cannot yield enough unique keys is Invalid format', async () => {
      const tenant = await createTenant(t.app);
      const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
      expectError(await create(tenant, { format: tiny, amountKeys: 3 }), 400, 1, 'Invalid format');
      const both = await createOk(tenant, { format: tiny, amountKeys: 2 });
      expect([...both.body.keys].sort()).toEqual(['A', 'B']);
      // The key space is now used up in this product.
      expectError(await create(tenant, { format: tiny }), 400, 1, 'Invalid format');
      expect(await keyCount(tenant.accountId)).toBe(2);
    });
  });

  describe('amountKeys', () => {
    it('amountKeys 1 (integer or string) adds keys: [key]', async () => {
      const tenant = await createTenant(t.app);
      for (const amountKeys of [1, '1', '0001']) {
        const { body } = await createOk(tenant, { amountKeys });
        expect(body).toEqual({ code: 0, key: expect.stringMatching(DEFAULT_KEY), keys: [body.key] });
      }
    });

    it('creates N keys with the same settings and the same single customer', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail();
      const { body } = await createOk(tenant, {
        amountKeys: '5',
        usesPerKey: '2',
        expiryDate: '2031-01-01',
        metadata: { batch: 1 },
        newCustomer: { name: 'Batch', email },
      });
      expect(body.keys).toHaveLength(5);
      expect(body.keys[0]).toBe(body.key);
      expect(new Set(body.keys).size).toBe(5);
      const licenses = await Promise.all((body.keys as string[]).map((key) => getLicense(tenant, key)));
      const customerIds = new Set(licenses.map(({ customer }) => customer?.id));
      expect(customerIds.size).toBe(1);
      for (const { license, customer } of licenses) {
        expect(license).toMatchObject({
          maxActivations: 2,
          expirationDate: '2031-01-01T00:00:00.000Z',
          metadata: { batch: 1 },
        });
        expect(customer).toMatchObject({ name: 'Batch', email });
      }
      expect(await customerCount(tenant.accountId)).toBe(1);
      expect(await keyCount(tenant.accountId)).toBe(5);
    });

    it.each([[0], ['0'], [1001], ['1001'], [-1], ['abc'], [''], [1.5], ['2.0'], [true], [[2]]])(
      'rejects %j',
      async (amountKeys) => {
        const tenant = await createTenant(t.app);
        expectError(await create(tenant, { amountKeys }), 400, 1, 'Invalid amountKeys');
      },
    );

    it('1000 keys in one request are all distinct and all stored', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { amountKeys: 1000 });
      expect(body.keys).toHaveLength(1000);
      expect(new Set(body.keys).size).toBe(1000);
      for (const key of body.keys) expect(key).toMatch(DEFAULT_KEY);
      expect(await keyCount(tenant.accountId)).toBe(1000);
      expect((await getLicense(tenant, body.keys[999])).license.key).toBe(body.keys[999]);
    });

    it('fills a small key space exactly, without duplicates', async () => {
      const tenant = await createTenant(t.app);
      // 3^4 = 81 possible keys: random draws collide often, the server must redraw.
      const { body } = await createOk(tenant, {
        format: { charset: 'ABC', sections: 1, sectionLength: 4 },
        amountKeys: 60,
      });
      expect(new Set(body.keys).size).toBe(60);
    });
  });
});

describe('key uniqueness', () => {
  it('keys are unique per product, not across products', async () => {
    const tenant = await createTenant(t.app);
    const second = await createProduct(t.app, tenant.accountId);
    const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
    const first = await tenant.api.post('/key', { productId: tenant.productId, format: tiny, amountKeys: 2 });
    const other = await tenant.api.post('/key', { productId: second, format: tiny, amountKeys: 2 });
    expect([...first.body.keys].sort()).toEqual(['A', 'B']);
    expect([...other.body.keys].sort()).toEqual(['A', 'B']);
  });

  it('keys created by separate requests on both paths never repeat', async () => {
    const tenant = await createTenant(t.app);
    const small = { charset: 'ABCD', sections: 1, sectionLength: 4 }; // 256 possible keys
    const seen: string[] = [];
    for (let i = 0; i < 16; i++) {
      const response = await tenant.api.post(i % 2 ? '/key' : '/create-key', {
        productId: tenant.productId,
        format: small,
        amountKeys: 4,
      });
      expect(response.status).toBe(200);
      seen.push(...response.body.keys);
    }
    expect(new Set(seen).size).toBe(64);
    expect(await keyCount(tenant.accountId)).toBe(64);
  });

  it('a key made through /create-key is found through /key paths and vice versa', async () => {
    const tenant = await createTenant(t.app);
    const v1 = (await tenant.api.post('/create-key', { productId: tenant.productId })).body.key;
    const v2 = await createKey(tenant);
    expect((await getLicense(tenant, v1)).license.key).toBe(v1);
    const legacy = await tenant.api.post('/get-key', { productId: tenant.productId, licenseKey: v2 });
    expect(legacy.body.data.license.key).toBe(v2);
  });
});

describe('key generation in a fresh server process', () => {
  it('the longest format (10 x 32) as the first key of a process works, and so do the keys after it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'keymint-keygen-'));
    const server = await startServer({ ADMIN_TOKEN, ...(usingPostgres ? {} : { DATA_DIR: dataDir }) });
    try {
      const account = await request(server.url, 'POST', '/admin/accounts', ADMIN_TOKEN, { name: 'Key generation' });
      const accountId = account.body.id;
      const product = await request(server.url, 'POST', '/admin/products', ADMIN_TOKEN, { name: 'P', accountId });
      const token = await request(server.url, 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 't', accountId });
      const productId = product.body.id;
      const longest = await request(server.url, 'POST', '/create-key', token.body.token, {
        productId,
        format: { sections: 10, sectionLength: 32 },
      });
      expect(longest.status, JSON.stringify(longest.body)).toBe(200);
      expect(longest.body.key).toMatch(/^[A-Z0-9]{32}(-[A-Z0-9]{32}){9}$/);
      const next = await request(server.url, 'POST', '/key', token.body.token, { productId, amountKeys: 3 });
      expect(next.status, JSON.stringify(next.body)).toBe(200);
      for (const key of next.body.keys) expect(key).toMatch(DEFAULT_KEY);
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
