import { stringify } from 'csv-stringify/sync';
import { type AnyColumn, and, asc, eq, gt, type SQL, sql } from 'drizzle-orm';
import { rowsOf } from '../../db/bulk.js';
import type { Db } from '../../db/client.js';
import { customers, devices, licenseKeys } from '../../db/schema/index.js';
import { CSV_COLUMNS, EXPORT_FORMAT, EXPORT_VERSION } from './format.js';

export interface ExportOptions {
  accountId: string;
  /** Only this product's keys and devices, and the customers of those keys. */
  productId?: string;
  format: 'jsonl' | 'csv';
  batchSize?: number;
}

export interface ExportCounts {
  customers: number;
  keys: number;
  devices: number;
}

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

/**
 * Every page of a table in primary-key order (keyset pagination, `batchSize` rows a query):
 * memory stays one page whatever the size, on PGlite and on PostgreSQL alike.
 */
async function* pages<Row extends { id: string }>(
  fetch: (after: string, limit: number) => Promise<Row[]>,
  batchSize: number,
): AsyncGenerator<Row[]> {
  let after = '';
  for (;;) {
    const rows = await fetch(after, batchSize);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < batchSize) return;
    after = rows.at(-1)!.id;
  }
}

/**
 * The account's customers, keys and devices as text chunks (a line each in JSON Lines; CSV: one
 * row a key with its customer, no devices). `counts` is filled in as it goes.
 */
export async function* exportRecords(db: Db, options: ExportOptions, counts: ExportCounts): AsyncGenerator<string> {
  const { accountId, productId, format } = options;
  const batchSize = options.batchSize ?? 1000;
  const keyFilter = productId === undefined ? undefined : eq(licenseKeys.productId, productId);

  if (format === 'csv') {
    yield stringify([CSV_COLUMNS as unknown as string[]]);
    for await (const rows of pages(
      (after, limit) =>
        db
          .select({ key: licenseKeys, customerName: customers.name, customerEmail: customers.email })
          .from(licenseKeys)
          .leftJoin(customers, eq(customers.id, licenseKeys.customerId))
          .where(and(eq(licenseKeys.accountId, accountId), keyFilter, gt(licenseKeys.id, after)))
          .orderBy(asc(licenseKeys.id))
          .limit(limit)
          .then((found) => found.map((row) => ({ id: row.key.id, ...row }))),
      batchSize,
    )) {
      counts.keys += rows.length;
      yield stringify(
        rows.map(({ key, customerName, customerEmail }) => [
          key.key,
          key.productId,
          customerName ?? '',
          customerEmail ?? '',
          key.maxActivations ?? '',
          iso(key.expiresAt) ?? '',
          key.metadata === null ? '' : JSON.stringify(key.metadata),
          (key.allowedHosts ?? []).join(';'),
          key.licenseType,
          key.maxConcurrentSessions ?? '',
          String(key.blocked),
        ]),
      );
    }
    return;
  }

  const line = (record: object) => `${JSON.stringify(record)}\n`;
  yield line({
    type: 'header',
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportedAt: new Date().toISOString(),
    accountId,
    productId: productId ?? null,
  });

  const customersOfProduct =
    productId === undefined
      ? undefined
      : sql`${customers.id} in (select ${licenseKeys.customerId} from ${licenseKeys}
          where ${licenseKeys.accountId} = ${accountId} and ${licenseKeys.productId} = ${productId})`;
  for await (const page of jsonPages(
    db,
    customers.id,
    sql`cast('customer' as text) as "type", ${customers.id} as "id", ${customers.name} as "name",
      ${customers.email} as "email", ${customers.active} as "active", ${iso8601(customers.createdAt)} as "createdAt",
      ${iso8601(customers.updatedAt)} as "updatedAt"`,
    sql`${customers}`,
    and(eq(customers.accountId, accountId), customersOfProduct),
    batchSize,
  )) {
    counts.customers += page.count;
    yield page.lines;
  }

  const keysWhere = and(eq(licenseKeys.accountId, accountId), keyFilter);
  for await (const page of jsonPages(
    db,
    licenseKeys.id,
    sql`cast('key' as text) as "type", ${licenseKeys.productId} as "productId", ${licenseKeys.key} as "key",
      ${licenseKeys.customerId} as "customerId", ${licenseKeys.maxActivations} as "maxActivations",
      ${iso8601(licenseKeys.expiresAt)} as "expiryDate", ${licenseKeys.metadata} as "metadata",
      ${licenseKeys.allowedHosts} as "allowedHosts", ${licenseKeys.licenseType} as "licenseType",
      ${licenseKeys.maxConcurrentSessions} as "maxConcurrentSessions",
      ${licenseKeys.heartbeatInterval} as "heartbeatInterval",
      ${licenseKeys.sessionLeaseDuration} as "sessionLeaseDuration", ${licenseKeys.blocked} as "blocked",
      ${iso8601(licenseKeys.createdAt)} as "createdAt", ${iso8601(licenseKeys.updatedAt)} as "updatedAt"`,
    sql`${licenseKeys}`,
    keysWhere,
    batchSize,
  )) {
    counts.keys += page.count;
    yield page.lines;
  }

  for await (const page of jsonPages(
    db,
    devices.id,
    sql`cast('device' as text) as "type", ${licenseKeys.productId} as "productId", ${licenseKeys.key} as "key",
      ${devices.hostId} as "hostId", ${devices.deviceTag} as "deviceTag", ${devices.ipAddress} as "ipAddress",
      ${iso8601(devices.activatedAt)} as "activatedAt"`,
    sql`${devices} join ${licenseKeys} on ${licenseKeys.id} = ${devices.licenseKeyId}`,
    keysWhere,
    batchSize,
  )) {
    counts.devices += page.count;
    yield page.lines;
  }
}

/** A timestamp as JavaScript's `toISOString()` writes it (UTC, milliseconds, `Z`), or null. */
const iso8601 = (column: AnyColumn) => sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * The pages of a JSON Lines export, each written by the database as one string: `fields` (the
 * record's columns, in order, named as in the file) of the rows of `from` that match `where`,
 * `batchSize` rows a query in `id` order (keyset pagination). One string a page and no object a
 * row: memory is a page's text whatever the table's size, and the JSON costs the server no CPU.
 * The page's ids come first: a JSON record is built for the rows of the page only, never for every
 * row the planner sorts to find them.
 */
async function* jsonPages(
  db: Db,
  id: AnyColumn,
  fields: SQL,
  from: SQL,
  where: SQL | undefined,
  batchSize: number,
): AsyncGenerator<{ count: number; lines: string }> {
  let after = '';
  for (;;) {
    const [page] = rowsOf<{ last: string | null; count: number; lines: string | null }>(
      await db.execute(sql`
        with page as materialized (
          select ${id} as id from ${from} where ${and(where, gt(id, after))} order by ${id} limit ${batchSize}
        )
        select max(${id}) as last, cast(count(*) as integer) as count,
          string_agg(to_json(record)::text || chr(10), '' order by ${id}) as lines
        from ${from} cross join lateral (select ${fields}) as record
        where ${id} in (select id from page)`),
    );
    if (!page || page.count === 0 || page.lines === null || page.last === null) return;
    yield { count: page.count, lines: page.lines };
    if (page.count < batchSize) return;
    after = page.last;
  }
}

/** How many keys (and customers, devices) an export of these options holds: for the progress bar. */
export async function exportSize(db: Db, options: Pick<ExportOptions, 'accountId' | 'productId'>): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`cast(count(*) as integer)` })
    .from(licenseKeys)
    .where(
      and(
        eq(licenseKeys.accountId, options.accountId),
        options.productId === undefined ? undefined : eq(licenseKeys.productId, options.productId),
      ),
    );
  return row?.count ?? 0;
}
