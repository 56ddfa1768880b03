import { and, asc, count, eq, inArray, notInArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { customers, devices, licenseKeys, products, type Customer } from '../db/schema/index.js';
import { Errors, isUniqueViolation, type AppError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { AuthContext } from '../lib/scopes.js';
import type { CreateCustomerBody, UpdateCustomerBody } from '../schemas/customers.js';
import { toLicenseView } from './keys.js';

export interface CustomerView {
  id: string;
  name: string;
  email: string | null;
  active: boolean;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
}

export const toCustomerView = (customer: Customer): CustomerView => ({
  id: customer.id,
  name: customer.name,
  email: customer.email,
  active: customer.active,
  createdAt: customer.createdAt.toISOString(),
  updatedAt: customer.updatedAt.toISOString(),
  createdBy: customer.accountId,
});

const ownCustomer = (accountId: string, customerId: string) =>
  and(eq(customers.id, customerId), eq(customers.accountId, accountId));

const sameEmail = (email: string) => sql`lower(${customers.email}) = lower(${email})`;

/**
 * `keyShare` locks the row against a concurrent delete until the transaction ends: a caller
 * that goes on to reference the customer (assign a key) then gets either the row or nothing,
 * never a foreign-key violation.
 */
export async function findCustomer(
  db: Db,
  accountId: string,
  customerId: string,
  options: { keyShare?: boolean } = {},
): Promise<Customer | undefined> {
  const query = db.select().from(customers).where(ownCustomer(accountId, customerId)).limit(1);
  const [row] = options.keyShare ? await query.for('key share') : await query;
  return row;
}

/** `keyShare`: as for findCustomer. */
export async function findCustomerByEmail(
  db: Db,
  accountId: string,
  email: string,
  options: { keyShare?: boolean } = {},
): Promise<Customer | undefined> {
  const query = db
    .select()
    .from(customers)
    .where(and(eq(customers.accountId, accountId), sameEmail(email)))
    .limit(1);
  const [row] = options.keyShare ? await query.for('key share') : await query;
  return row;
}

/**
 * Inserts a customer. The unique index on (account, lower(email)) is the arbiter: a clash,
 * whether seen by the pre-check or raised by a concurrent insert, becomes `conflict()`.
 */
export async function insertCustomer(
  db: Db,
  accountId: string,
  input: { name: string; email?: string | null },
  conflict: () => AppError,
): Promise<Customer> {
  const email = input.email ?? null;
  if (email !== null && (await findCustomerByEmail(db, accountId, email))) throw conflict();
  try {
    const now = new Date();
    const [row] = await db
      .insert(customers)
      .values({ id: newId(), accountId, name: input.name, email, createdAt: now, updatedAt: now })
      .returning();
    return row!;
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict();
    throw err;
  }
}

export interface ListCustomersQuery {
  page: number;
  limit: number;
  email?: string;
}

/** `GET /customer` (§5.2): one page, oldest first; a page past the end is empty. */
export async function listCustomers(db: Db, accountId: string, query: ListCustomersQuery) {
  const where = query.email
    ? and(eq(customers.accountId, accountId), sameEmail(query.email))
    : eq(customers.accountId, accountId);
  const [totals] = await db.select({ total: count() }).from(customers).where(where);
  const rows = await db
    .select()
    .from(customers)
    .where(where)
    .orderBy(asc(customers.createdAt), asc(customers.id))
    .limit(query.limit)
    .offset((query.page - 1) * query.limit);
  const total = totals?.total ?? 0;
  return {
    data: rows.map(toCustomerView),
    meta: { total, page: query.page, limit: query.limit, totalPages: Math.ceil(total / query.limit) },
  };
}

export const newCustomerConflict = (email: string | undefined) => () => Errors.newCustomerEmailConflict(email ?? '');

/** `POST /customer` (§5.1): an email clash, also a concurrent one, is 409/1. */
export async function createCustomer(db: Db, accountId: string, body: CreateCustomerBody): Promise<Customer> {
  return db.transaction((tx) => insertCustomer(tx, accountId, body, Errors.customerEmailConflict));
}

/** `GET /customer/by-id` (§5.3). */
export async function getCustomer(db: Db, accountId: string, customerId: string): Promise<Customer> {
  const customer = await findCustomer(db, accountId, customerId);
  if (!customer) throw Errors.customerNotFound();
  return customer;
}

/** `PUT /customer/by-id` (§5.4): only the fields present change; `email: null` clears it. */
export async function updateCustomer(db: Db, accountId: string, body: UpdateCustomerBody): Promise<Customer> {
  const { customerId, name, email, active } = body;
  return db.transaction(async (tx) => {
    const [current] = await tx.select().from(customers).where(ownCustomer(accountId, customerId)).for('update');
    if (!current) throw Errors.customerNotFound();
    if (name === undefined && email === undefined && active === undefined) return current;
    try {
      const [updated] = await tx
        .update(customers)
        .set({ name, email, active, updatedAt: new Date() })
        .where(eq(customers.id, current.id))
        .returning();
      return updated!;
    } catch (err) {
      // The unique index on (account, lower(email)) decides, also against concurrent writers.
      if (isUniqueViolation(err)) throw Errors.customerEmailConflict();
      throw err;
    }
  });
}

/**
 * `DELETE /customer/by-id` (§5.5): the customer's keys and their devices go with it (ON DELETE
 * CASCADE). The customer row stays locked from the product check to the delete, so no key of
 * another product can be assigned to it in between.
 */
export async function deleteCustomer(db: Db, auth: AuthContext, customerId: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [customer] = await tx
      .select({ id: customers.id })
      .from(customers)
      .where(ownCustomer(auth.accountId, customerId))
      .for('update');
    if (!customer) throw Errors.customerNotFound();
    if (auth.productIds !== null) {
      const [foreignKey] = await tx
        .select({ id: licenseKeys.id })
        .from(licenseKeys)
        .where(and(eq(licenseKeys.customerId, customer.id), notInArray(licenseKeys.productId, [...auth.productIds])))
        .limit(1);
      if (foreignKey) throw Errors.forbidden();
    }
    await tx.delete(customers).where(eq(customers.id, customer.id));
  });
}

/**
 * `GET /customer/keys` (§5.6): keys of active products the token may see, oldest first, each
 * with its device count (keys and counts come from one statement).
 */
export async function getCustomerWithKeys(db: Db, auth: AuthContext, customerId: string) {
  const customer = await getCustomer(db, auth.accountId, customerId);
  const visible = auth.productIds === null ? undefined : inArray(licenseKeys.productId, [...auth.productIds]);
  const rows = await db
    .select({
      key: licenseKeys,
      activations: sql<number>`(select count(*) from ${devices} where ${devices.licenseKeyId} = ${licenseKeys.id})`.mapWith(
        Number,
      ),
    })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .where(and(eq(licenseKeys.customerId, customer.id), eq(products.active, true), visible))
    .orderBy(asc(licenseKeys.createdAt), asc(licenseKeys.id));
  const now = Date.now();
  return {
    customer,
    licenseKeys: rows.map((row) => toLicenseView(row.key, row.activations, now)),
  };
}

/** `POST /customer/disable` (§5.7): one atomic flip; the new state decides the message. */
export async function toggleCustomerActive(db: Db, accountId: string, customerId: string): Promise<boolean> {
  const [row] = await db
    .update(customers)
    .set({ active: sql`not ${customers.active}`, updatedAt: new Date() })
    .where(ownCustomer(accountId, customerId))
    .returning({ active: customers.active });
  if (!row) throw Errors.customerNotFound();
  return row.active;
}

/**
 * The customer a key is assigned to on create / update (§2.1, §2.3): an existing one by ID
 * (404/2 when unknown; key-share locked, so a concurrent delete waits instead of breaking the
 * key's foreign key) or a new one (409/2 when its email is taken). undefined when neither is given.
 */
export async function resolveKeyCustomer(
  tx: Db,
  accountId: string,
  input: { customerId?: string; newCustomer?: { name: string; email?: string } },
): Promise<Customer | undefined> {
  if (input.customerId !== undefined) {
    const customer = await findCustomer(tx, accountId, input.customerId, { keyShare: true });
    if (!customer) throw Errors.customerIdNotFound(input.customerId);
    return customer;
  }
  if (input.newCustomer !== undefined) {
    return insertCustomer(tx, accountId, input.newCustomer, newCustomerConflict(input.newCustomer.email));
  }
  return undefined;
}
