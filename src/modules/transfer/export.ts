import { stringify } from 'csv-stringify/sync';
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
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
      : inArray(
          customers.id,
          db
            .select({ id: licenseKeys.customerId })
            .from(licenseKeys)
            .where(and(eq(licenseKeys.accountId, accountId), eq(licenseKeys.productId, productId))),
        );
  for await (const rows of pages(
    (after, limit) =>
      db
        .select()
        .from(customers)
        .where(and(eq(customers.accountId, accountId), customersOfProduct, gt(customers.id, after)))
        .orderBy(asc(customers.id))
        .limit(limit),
    batchSize,
  )) {
    counts.customers += rows.length;
    yield rows
      .map((c) =>
        line({
          type: 'customer',
          id: c.id,
          name: c.name,
          email: c.email,
          active: c.active,
          createdAt: iso(c.createdAt),
          updatedAt: iso(c.updatedAt),
        }),
      )
      .join('');
  }

  for await (const rows of pages(
    (after, limit) =>
      db
        .select()
        .from(licenseKeys)
        .where(and(eq(licenseKeys.accountId, accountId), keyFilter, gt(licenseKeys.id, after)))
        .orderBy(asc(licenseKeys.id))
        .limit(limit),
    batchSize,
  )) {
    counts.keys += rows.length;
    yield rows
      .map((k) =>
        line({
          type: 'key',
          productId: k.productId,
          key: k.key,
          customerId: k.customerId,
          maxActivations: k.maxActivations,
          expiryDate: iso(k.expiresAt),
          metadata: k.metadata,
          allowedHosts: k.allowedHosts,
          licenseType: k.licenseType,
          maxConcurrentSessions: k.maxConcurrentSessions,
          heartbeatInterval: k.heartbeatInterval,
          sessionLeaseDuration: k.sessionLeaseDuration,
          blocked: k.blocked,
          createdAt: iso(k.createdAt),
          updatedAt: iso(k.updatedAt),
        }),
      )
      .join('');
  }

  for await (const rows of pages(
    (after, limit) =>
      db
        .select({
          id: devices.id,
          productId: licenseKeys.productId,
          key: licenseKeys.key,
          hostId: devices.hostId,
          deviceTag: devices.deviceTag,
          ipAddress: devices.ipAddress,
          activatedAt: devices.activatedAt,
        })
        .from(devices)
        .innerJoin(licenseKeys, eq(licenseKeys.id, devices.licenseKeyId))
        .where(and(eq(licenseKeys.accountId, accountId), keyFilter, gt(devices.id, after)))
        .orderBy(asc(devices.id))
        .limit(limit),
    batchSize,
  )) {
    counts.devices += rows.length;
    yield rows
      .map(({ id: _id, activatedAt, ...d }) => line({ type: 'device', ...d, activatedAt: iso(activatedAt) }))
      .join('');
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
