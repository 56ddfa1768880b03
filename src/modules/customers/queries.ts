import { and, asc, count, eq, inArray, notInArray, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { type Customer, customers, devices, licenseKeys, products } from '../../db/schema/index.js';
import { type AppError, isUniqueViolation } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';

/** Data access of customers. Other modules (license keys) use these to find and assign them. */

const ownCustomer = (accountId: string, customerId: string) =>
  and(eq(customers.id, customerId), eq(customers.accountId, accountId));

const sameEmail = (email: string) => sql`lower(${customers.email}) = lower(${email})`;

type RowLock = 'update' | 'key share';

/**
 * `lock: 'key share'` holds the row against a concurrent delete until the transaction ends: a
 * caller that goes on to reference the customer (assign a key) then gets either the row or
 * nothing, never a foreign-key violation. `'update'` also holds it against concurrent updates.
 */
export async function findCustomer(
  db: Db,
  accountId: string,
  customerId: string,
  options: { lock?: RowLock } = {},
): Promise<Customer | undefined> {
  const query = db.select().from(customers).where(ownCustomer(accountId, customerId)).limit(1);
  const [row] = options.lock ? await query.for(options.lock) : await query;
  return row;
}

/** By email, case-insensitive; `lock` as for findCustomer. */
export async function findCustomerByEmail(
  db: Db,
  accountId: string,
  email: string,
  options: { lock?: RowLock } = {},
): Promise<Customer | undefined> {
  const query = db
    .select()
    .from(customers)
    .where(and(eq(customers.accountId, accountId), sameEmail(email)))
    .limit(1);
  const [row] = options.lock ? await query.for(options.lock) : await query;
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

/** Writes the fields given; a clash of emails (also a concurrent one) becomes `conflict()`. */
export async function updateCustomerRow(
  tx: Db,
  customerId: string,
  changes: { name?: string; email?: string | null; active?: boolean },
  conflict: () => AppError,
): Promise<Customer> {
  try {
    const [updated] = await tx
      .update(customers)
      .set({ ...changes, updatedAt: new Date() })
      .where(eq(customers.id, customerId))
      .returning();
    return updated!;
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict();
    throw err;
  }
}

/** Flips `active` in one statement; the new state, or undefined when there is no such customer. */
export async function toggleActive(db: Db, accountId: string, customerId: string) {
  const [row] = await db
    .update(customers)
    .set({ active: sql`not ${customers.active}`, updatedAt: new Date() })
    .where(ownCustomer(accountId, customerId))
    .returning({ id: customers.id, active: customers.active });
  return row;
}

export async function countAndPageCustomers(
  db: Db,
  accountId: string,
  page: { offset: number; limit: number; email?: string },
) {
  const where = page.email
    ? and(eq(customers.accountId, accountId), sameEmail(page.email))
    : eq(customers.accountId, accountId);
  const [totals] = await db.select({ total: count() }).from(customers).where(where);
  const rows = await db
    .select()
    .from(customers)
    .where(where)
    .orderBy(asc(customers.createdAt), asc(customers.id))
    .limit(page.limit)
    .offset(page.offset);
  return { total: totals?.total ?? 0, rows };
}

/** Whether the customer has a key of a product outside `productIds`. */
export async function hasKeyOutside(tx: Db, customerId: string, productIds: readonly string[]): Promise<boolean> {
  const [row] = await tx
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.customerId, customerId), notInArray(licenseKeys.productId, [...productIds])))
    .limit(1);
  return row !== undefined;
}

/** Deletes the customer with its keys (their devices go with them); the IDs of the keys deleted. */
export async function deleteCustomerWithKeys(tx: Db, customerId: string): Promise<string[]> {
  const keys = await tx
    .delete(licenseKeys)
    .where(eq(licenseKeys.customerId, customerId))
    .returning({ id: licenseKeys.id });
  await tx.delete(customers).where(eq(customers.id, customerId));
  return keys.map((key) => key.id);
}

/**
 * The customer's keys of active products that `productIds` allows (null = all), oldest first,
 * each with its device count (keys and counts come from one statement).
 */
export async function keysOfCustomer(db: Db, customerId: string, productIds: readonly string[] | null) {
  const visible: SQL | undefined = productIds === null ? undefined : inArray(licenseKeys.productId, [...productIds]);
  return db
    .select({
      key: licenseKeys,
      activations:
        sql<number>`(select count(*) from ${devices} where ${devices.licenseKeyId} = ${licenseKeys.id})`.mapWith(
          Number,
        ),
    })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .where(and(eq(licenseKeys.customerId, customerId), eq(products.active, true), visible))
    .orderBy(asc(licenseKeys.createdAt), asc(licenseKeys.id));
}
