/** POST /create-key and POST /key: customerId / newCustomer, and what a failed request leaves behind. */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import {
  createProduct,
  createTenant,
  customerView,
  ERRORS,
  expectError,
  fullCustomerView,
  getLicense,
  keyCreator,
  storedRows,
  uniqueEmail,
} from '../../helpers/fixtures.js';

const t = useTestApp();
const { customerCount, disableCustomer, keyCount } = storedRows(t);

describe.each(['/create-key', '/key'])('POST %s', (path) => {
  const { create, createOk } = keyCreator(path);

  describe('customerId / newCustomer', () => {
    it('both given is 400/1, checked before the product', async () => {
      const tenant = await createTenant(t.app);
      const body = { customerId: 'cust_abc123', newCustomer: { name: 'Both', email: uniqueEmail() } };
      expectError(await create(tenant, body), 400, 1, 'Cannot specify both customerId and newCustomer');
      expectError(
        await tenant.api.post(path, { productId: 'f'.repeat(22), ...body }),
        400,
        1,
        'Cannot specify both customerId and newCustomer',
      );
      expect(await customerCount(tenant.accountId)).toBe(0);
    });

    it('an unknown product is reported before an unknown customer', async () => {
      const tenant = await createTenant(t.app);
      expectError(
        await tenant.api.post(path, { productId: 'f'.repeat(22), customerId: 'cust_abc123' }),
        ERRORS.productNotFound,
      );
    });

    it('customerId "" or null means no customer', async () => {
      const tenant = await createTenant(t.app);
      for (const customerId of ['', null]) {
        const { body } = await createOk(tenant, { customerId });
        expect((await getLicense(tenant, body.key)).customer).toBeNull();
      }
      const { body } = await createOk(tenant, { customerId: '', newCustomer: { name: 'Only new' } });
      expect((await getLicense(tenant, body.key)).customer?.name).toBe('Only new');
    });

    it('customerId must be a string of at most 256 chars', async () => {
      const tenant = await createTenant(t.app);
      for (const customerId of [123, {}, ['a'], 'c'.repeat(257)]) {
        expectError(await create(tenant, { customerId }), 400, 1, 'Invalid customerId');
      }
      expectError(
        await create(tenant, { customerId: 'c'.repeat(256) }),
        404,
        2,
        `Customer with ID ${'c'.repeat(256)} not found`,
      );
    });

    it("another account's customer is 404/2 with the ID as sent", async () => {
      const tenant = await createTenant(t.app);
      const other = await createTenant(t.app);
      const { body } = await other.api.post(path, { productId: other.productId, newCustomer: { name: 'Theirs' } });
      const theirs = (await getLicense(other, body.key)).customer!.id;
      expectError(await create(tenant, { customerId: theirs }), 404, 2, `Customer with ID ${theirs} not found`);
      expect(await keyCount(tenant.accountId)).toBe(0);
    });

    it('an inactive customer may be assigned', async () => {
      const tenant = await createTenant(t.app);
      const first = await createOk(tenant, { newCustomer: { name: 'Dormant' } });
      const customerId = (await getLicense(tenant, first.body.key)).customer!.id;
      await disableCustomer(customerId);
      const { body } = await createOk(tenant, { customerId });
      expect((await getLicense(tenant, body.key)).customer).toEqual(
        customerView({ id: customerId, name: 'Dormant', email: null, active: false }),
      );
    });

    it('newCustomer without name (absent, null, "") is Missing required params', async () => {
      const tenant = await createTenant(t.app);
      for (const newCustomer of [{}, { email: uniqueEmail() }, { name: null }, { name: '' }]) {
        expectError(await create(tenant, { newCustomer }), ERRORS.missingParams);
      }
      expect(await customerCount(tenant.accountId)).toBe(0);
    });

    it('newCustomer null is omitted; any non-object is Invalid newCustomer', async () => {
      const tenant = await createTenant(t.app);
      const { body } = await createOk(tenant, { newCustomer: null });
      expect((await getLicense(tenant, body.key)).customer).toBeNull();
      for (const newCustomer of ['John', ['John'], 5, true]) {
        expectError(await create(tenant, { newCustomer }), 400, 1, 'Invalid newCustomer');
      }
    });

    it('validates name and email', async () => {
      const tenant = await createTenant(t.app);
      for (const name of ['n'.repeat(256), 5, ['a']]) {
        expectError(await create(tenant, { newCustomer: { name } }), 400, 1, 'Invalid newCustomer.name');
      }
      const local = 'l'.repeat(64);
      const ofLength = (n: number) => `${local}@${'d'.repeat(n - local.length - 5)}.com`;
      for (const email of [
        'no-at-sign',
        'a@nodot',
        'a b@example.com',
        '@example.com',
        'a@@example.com',
        ' a@example.com',
        ofLength(255),
        5,
      ]) {
        expectError(await create(tenant, { newCustomer: { name: 'x', email } }), 400, 1, 'Invalid newCustomer.email');
      }
      expect(await customerCount(tenant.accountId)).toBe(0);
      expect(ofLength(254)).toHaveLength(254);
      await createOk(tenant, { newCustomer: { name: 'n'.repeat(255), email: ofLength(254) } });
    });

    it('email "" (or null) creates a customer without email; several may exist', async () => {
      const tenant = await createTenant(t.app);
      for (const email of ['', null, '']) {
        const { body } = await createOk(tenant, { newCustomer: { name: 'No mail', email } });
        expect((await getLicense(tenant, body.key)).customer).toMatchObject({ name: 'No mail', email: null });
      }
      expect(await customerCount(tenant.accountId)).toBe(3);
    });

    it('an email already used (case-insensitively) is 409/2 with the email as sent, and creates nothing', async () => {
      const tenant = await createTenant(t.app);
      const base = uniqueEmail('Ada');
      await createOk(tenant, { newCustomer: { name: 'Ada', email: base } });
      const again = base.toLowerCase().replace('example.com', 'EXAMPLE.com');
      const keysBefore = await keyCount(tenant.accountId);
      expectError(
        await create(tenant, { newCustomer: { name: 'Ada again', email: again } }),
        409,
        2,
        `CONFLICT: Customer email ${again} already exists.`,
      );
      expectError(
        await create(tenant, { newCustomer: { name: 'Ada again', email: base }, amountKeys: 5 }),
        409,
        2,
        `CONFLICT: Customer email ${base} already exists.`,
      );
      expect(await keyCount(tenant.accountId)).toBe(keysBefore);
      expect(await customerCount(tenant.accountId)).toBe(1);
    });

    it('email uniqueness is per account', async () => {
      const email = uniqueEmail();
      const first = await createTenant(t.app);
      const second = await createTenant(t.app);
      await createOk(first, { newCustomer: { name: 'One', email } });
      await createOk(second, { newCustomer: { name: 'Two', email } });
    });

    it('the new customer is stored as sent and listed by GET /customer', async () => {
      const tenant = await createTenant(t.app);
      const email = uniqueEmail('Mixed.Case');
      await createOk(tenant, { newCustomer: { name: '  Ada Park  ', email } });
      const response = await tenant.api.get('/customer');
      expect(response.status).toBe(200);
      expect(response.body).toEqual({
        action: 'getCustomers',
        status: true,
        data: [fullCustomerView(tenant, { name: '  Ada Park  ', email })],
        meta: { total: 1, page: 1, limit: 10, totalPages: 1 },
        code: 0,
      });
    });
  });

  describe('atomicity', () => {
    it('a newCustomer request failing on the product leaves no customer', async () => {
      const tenant = await createTenant(t.app);
      const inactive = await createProduct(t.app, tenant.accountId, false);
      const newCustomer = { name: 'Ghost', email: uniqueEmail() };
      expectError(await tenant.api.post(path, { productId: inactive, newCustomer }), ERRORS.productNotFound);
      expectError(await tenant.api.post(path, { productId: 'f'.repeat(22), newCustomer }), ERRORS.productNotFound);
      expect(await customerCount(tenant.accountId)).toBe(0);
      // The email is still free.
      await createOk(tenant, { newCustomer });
    });

    it('a newCustomer request failing on key generation rolls the customer back', async () => {
      const tenant = await createTenant(t.app);
      const tiny = { charset: 'AB', sections: 1, sectionLength: 1 };
      await createOk(tenant, { format: tiny, amountKeys: 2 });
      const newCustomer = { name: 'Rolled back', email: uniqueEmail() };
      expectError(await create(tenant, { format: tiny, newCustomer }), 400, 1, 'Invalid format');
      expect(await customerCount(tenant.accountId)).toBe(0);
      expect(await keyCount(tenant.accountId)).toBe(2);
    });

    it('a database failure during the insert is 500 Server error and persists nothing', async () => {
      const tenant = await createTenant(t.app);
      const suffix = randomBytes(6).toString('hex');
      const fn = `fail_keys_${suffix}`;
      await t.database.db.execute(
        sql.raw(`create function ${fn}() returns trigger language plpgsql as $$
          begin
            if new.product_id = '${tenant.productId}' then raise exception 'injected failure'; end if;
            return new;
          end $$`),
      );
      await t.database.db.execute(
        sql.raw(`create trigger ${fn} before insert on license_keys for each row execute function ${fn}()`),
      );
      try {
        const email = uniqueEmail();
        const response = await create(tenant, { newCustomer: { name: 'Lost', email }, amountKeys: 3 });
        expect(response.status).toBe(500);
        expect(response.body).toEqual(ERRORS.serverError.body);
        expect(await customerCount(tenant.accountId)).toBe(0);
        expect(await keyCount(tenant.accountId)).toBe(0);
      } finally {
        await t.database.db.execute(sql.raw(`drop trigger ${fn} on license_keys`));
        await t.database.db.execute(sql.raw(`drop function ${fn}()`));
      }
      await createOk(tenant);
    });
  });
});
