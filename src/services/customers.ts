import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { customers, type Customer } from '../db/schema/index.js';
import { Errors, isUniqueViolation, type AppError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';

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

export async function findCustomer(db: Db, accountId: string, customerId: string): Promise<Customer | undefined> {
  const [row] = await db
    .select()
    .from(customers)
    .where(and(eq(customers.id, customerId), eq(customers.accountId, accountId)))
    .limit(1);
  return row;
}

export async function findCustomerByEmail(db: Db, accountId: string, email: string): Promise<Customer | undefined> {
  const [row] = await db
    .select()
    .from(customers)
    .where(and(eq(customers.accountId, accountId), sql`lower(${customers.email}) = lower(${email})`))
    .limit(1);
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

export async function listCustomers(db: Db, accountId: string, query: ListCustomersQuery) {
  const where = query.email
    ? and(eq(customers.accountId, accountId), sql`lower(${customers.email}) = lower(${query.email})`)
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
