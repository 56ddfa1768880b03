import { and, asc, count, desc, eq, gt, ilike, isNull, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { customers, devices, floatingSessions, licenseKeys, products } from '../../db/schema/index.js';

/**
 * What the console reads and the API has no endpoint for: totals and daily counts, searches
 * across keys and customers, a key by its ID. Every change the console makes goes through the
 * API's services instead (routes.ts).
 */

export const PAGE_SIZE = 25;

/** `like` with the user's text taken literally. */
const containing = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Rows of db.execute: postgres.js answers an array, PGlite an object with `rows`. */
const rowsOf = <T>(result: unknown): T[] => (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];

export async function overviewTotals(db: Db, accountId: string) {
  const [row] = rowsOf<Record<'keys' | 'customers' | 'activations' | 'live_sessions', string | number>>(
    await db.execute(sql`
      select
        (select count(*) from license_keys where account_id = ${accountId}) as keys,
        (select count(*) from customers where account_id = ${accountId}) as customers,
        (select count(*) from devices d join license_keys k on k.id = d.license_key_id
          where k.account_id = ${accountId}) as activations,
        (select count(*) from floating_sessions s join license_keys k on k.id = s.license_key_id
          where k.account_id = ${accountId} and s.checked_in_at is null and s.expires_at > now()) as live_sessions`),
  );
  return {
    keys: Number(row!.keys),
    customers: Number(row!.customers),
    activations: Number(row!.activations),
    liveSessions: Number(row!.live_sessions),
  };
}

/** Per UTC day over the last `days` days (oldest first, days without any included): keys created and activations. */
export async function dailyCounts(db: Db, accountId: string, days: number) {
  const rows = rowsOf<{ day: string; keys: string | number; activations: string | number }>(
    await db.execute(sql`
      with days as (
        select generate_series(date_trunc('day', now(), 'UTC') - make_interval(days => ${days - 1}),
          date_trunc('day', now(), 'UTC'), interval '1 day') as day
      ),
      created as (
        select date_trunc('day', created_at, 'UTC') as day, count(*) as n from license_keys
        where account_id = ${accountId} and created_at >= (select min(day) from days)
        group by 1
      ),
      activated as (
        select date_trunc('day', d.activated_at, 'UTC') as day, count(*) as n
        from devices d join license_keys k on k.id = d.license_key_id
        where k.account_id = ${accountId} and d.activated_at >= (select min(day) from days)
        group by 1
      )
      select to_char(days.day at time zone 'UTC', 'YYYY-MM-DD') as day,
        coalesce(created.n, 0) as keys, coalesce(activated.n, 0) as activations
      from days left join created using (day) left join activated using (day)
      order by days.day`),
  );
  return rows.map((row) => ({ day: row.day, keys: Number(row.keys), activations: Number(row.activations) }));
}

export interface KeySearch {
  q?: string;
  productId?: string;
  page: number;
}

/** Keys whose string or customer email contains `q`, of one product or all, newest first. */
export async function searchKeys(db: Db, accountId: string, search: KeySearch) {
  const conditions: (SQL | undefined)[] = [eq(licenseKeys.accountId, accountId)];
  if (search.productId) conditions.push(eq(licenseKeys.productId, search.productId));
  if (search.q) {
    const pattern = containing(search.q);
    conditions.push(sql`(${ilike(licenseKeys.key, pattern)} or ${ilike(customers.email, pattern)})`);
  }
  const where = and(...conditions);
  const [totals] = await db
    .select({ total: count() })
    .from(licenseKeys)
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(where);
  const rows = await db
    .select({
      id: licenseKeys.id,
      key: licenseKeys.key,
      productName: products.name,
      customerEmail: customers.email,
      customerName: customers.name,
      blocked: licenseKeys.blocked,
      maxActivations: licenseKeys.maxActivations,
      expiresAt: licenseKeys.expiresAt,
      activations:
        sql<number>`(select count(*) from ${devices} where ${devices.licenseKeyId} = ${licenseKeys.id})`.mapWith(
          Number,
        ),
    })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(where)
    .orderBy(desc(licenseKeys.createdAt), desc(licenseKeys.id))
    .limit(PAGE_SIZE)
    .offset((search.page - 1) * PAGE_SIZE);
  return { rows, total: totals?.total ?? 0 };
}

/** Customers whose name or email contains `q`, oldest first, with their number of keys. */
export async function searchCustomers(db: Db, accountId: string, search: { q?: string; page: number }) {
  const conditions: (SQL | undefined)[] = [eq(customers.accountId, accountId)];
  if (search.q) {
    const pattern = containing(search.q);
    conditions.push(sql`(${ilike(customers.name, pattern)} or ${ilike(customers.email, pattern)})`);
  }
  const where = and(...conditions);
  const [totals] = await db.select({ total: count() }).from(customers).where(where);
  const rows = await db
    .select({
      customer: customers,
      keys: sql<number>`(select count(*) from ${licenseKeys} where ${licenseKeys.customerId} = ${customers.id})`.mapWith(
        Number,
      ),
    })
    .from(customers)
    .where(where)
    .orderBy(asc(customers.createdAt), asc(customers.id))
    .limit(PAGE_SIZE)
    .offset((search.page - 1) * PAGE_SIZE);
  return { rows, total: totals?.total ?? 0 };
}

/** A key of the account by its ID, with its product, its customer, its devices and its live sessions. */
export async function keyDetails(db: Db, accountId: string, id: string) {
  const [row] = await db
    .select({ key: licenseKeys, product: products, customer: customers })
    .from(licenseKeys)
    .innerJoin(products, eq(products.id, licenseKeys.productId))
    .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
    .where(and(eq(licenseKeys.id, id), eq(licenseKeys.accountId, accountId)))
    .limit(1);
  if (!row) return undefined;
  const keyDevices = await db
    .select()
    .from(devices)
    .where(eq(devices.licenseKeyId, id))
    .orderBy(asc(devices.activatedAt), asc(devices.id));
  const sessions = await db
    .select({
      id: floatingSessions.id,
      hostId: floatingSessions.hostId,
      deviceTag: floatingSessions.deviceTag,
      userIdentifier: floatingSessions.userIdentifier,
      createdAt: floatingSessions.createdAt,
      expiresAt: floatingSessions.expiresAt,
    })
    .from(floatingSessions)
    .where(
      and(
        eq(floatingSessions.licenseKeyId, id),
        isNull(floatingSessions.checkedInAt),
        gt(floatingSessions.expiresAt, sql`now()`),
      ),
    )
    .orderBy(asc(floatingSessions.createdAt));
  return { ...row, devices: keyDevices, sessions };
}

/** How many keys a customer of the account has (all products): what its deletion takes with it. */
export async function countCustomerKeys(db: Db, customerId: string): Promise<number> {
  const [row] = await db.select({ total: count() }).from(licenseKeys).where(eq(licenseKeys.customerId, customerId));
  return row?.total ?? 0;
}

/** The ID of a key just created (the service answers with key strings). */
export async function findKeyId(
  db: Db,
  accountId: string,
  productId: string,
  key: string,
): Promise<string | undefined> {
  const [row] = await db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.accountId, accountId), eq(licenseKeys.productId, productId), eq(licenseKeys.key, key)))
    .limit(1);
  return row?.id;
}
