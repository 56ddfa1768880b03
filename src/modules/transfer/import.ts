import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { and, eq, sql } from 'drizzle-orm';
import { type BulkColumn, columnList, rowsOf, textArray, unnestRows } from '../../db/bulk.js';
import type { Db } from '../../db/client.js';
import { customers, devices, licenseKeys, products } from '../../db/schema/index.js';
import { withTransaction } from '../../db/unit-of-work.js';
import { newId } from '../../lib/ids.js';
import {
  type CustomerRecord,
  type DeviceRecord,
  type ImportFormat,
  type KeyRecord,
  LineError,
  type OnConflict,
  parsers,
} from './format.js';

export interface ImportOptions {
  accountId: string;
  /** Every key goes to this product (else each record names its product of the account). */
  productId?: string;
  format: ImportFormat;
  onConflict: OnConflict;
  dryRun: boolean;
  batchSize?: number;
  /** Called after each batch with the records read so far. */
  onProgress?: (summary: ImportSummary) => void;
}

interface Counts {
  created: number;
  updated: number;
  skipped: number;
}

export interface ImportSummary {
  format: ImportFormat;
  dryRun: boolean;
  onConflict: OnConflict;
  /** Records read (customers, keys and devices; a CSV row is a key and maybe a customer). */
  records: number;
  customers: Counts;
  keys: Counts;
  devices: Counts;
  /** Records refused (their lines are in `errors`, the first 100 of them). */
  failed: number;
  errors: { line: number; message: string }[];
  /** Imported as the file says, but worth a look (a key with more devices than its limit). */
  warnings: { line: number; message: string }[];
  /** `--on-conflict fail` met a conflict or a bad line: the run stopped there. */
  stopped: boolean;
  durationMs: number;
  recordsPerSecond: number;
}

/** Thrown inside a batch's transaction to stop the run (`--on-conflict fail`). */
class StopImport extends Error {
  constructor(readonly failure: LineError) {
    super(failure.message);
  }
}

class DryRunRollback extends Error {}

const MAX_LISTED = 100;
const ID = /^[0-9a-f]{22}$/;

const counts = (): Counts => ({ created: 0, updated: 0, skipped: 0 });

/** The id a customer of the file gets in the account when its own cannot be used. */
const derivedId = (accountId: string, ref: string) =>
  createHash('sha256').update(`${accountId}\u0000${ref}`).digest('hex').slice(0, 22);

/** What one batch did, applied to the summary once its transaction committed. */
interface BatchResult {
  customers: Counts;
  keys: Counts;
  devices: Counts;
  errors: LineError[];
  warnings: LineError[];
  refs: Map<string, string>;
  emails: Map<string, string>;
}

/**
 * Imports a file into an account: records are read as a stream and written in batches
 * (`batchSize`, 1,000 by default), each batch in one transaction with multi-row statements.
 * Keys are identified by (product, key), devices by (key, hostId), customers by email
 * (case-insensitive) in the account, else by their id in the file: a second run of the same
 * file changes nothing. `dryRun` runs every statement in one transaction that is rolled back.
 */
export async function importRecords(db: Db, input: Readable, options: ImportOptions): Promise<ImportSummary> {
  const started = performance.now();
  const summary: ImportSummary = {
    format: options.format,
    dryRun: options.dryRun,
    onConflict: options.onConflict,
    records: 0,
    customers: counts(),
    keys: counts(),
    devices: counts(),
    failed: 0,
    errors: [],
    warnings: [],
    stopped: false,
    durationMs: 0,
    recordsPerSecond: 0,
  };
  const note = (list: { line: number; message: string }[], error: LineError) => {
    if (list.length < MAX_LISTED) list.push({ line: error.line, message: error.message });
  };
  const fail = (error: LineError) => {
    summary.failed++;
    note(summary.errors, error);
  };
  const writer = new BatchWriter(options);
  const batchSize = options.batchSize ?? 1000;

  const run = async (inTransaction: (work: (tx: Db) => Promise<BatchResult>) => Promise<BatchResult>) => {
    const flush = async () => {
      if (writer.pending === 0) return;
      const result = await inTransaction((tx) => writer.write(tx));
      writer.commit(result);
      for (const kind of ['customers', 'keys', 'devices'] as const) {
        summary[kind].created += result[kind].created;
        summary[kind].updated += result[kind].updated;
        summary[kind].skipped += result[kind].skipped;
      }
      for (const error of result.errors) fail(error);
      for (const warning of result.warnings) note(summary.warnings, warning);
      options.onProgress?.(summary);
    };
    try {
      for await (const parsed of parsers[options.format](input)) {
        if (parsed instanceof LineError) {
          if (options.onConflict === 'fail') throw new StopImport(parsed);
          fail(parsed);
          continue;
        }
        summary.records++;
        writer.add(parsed);
        if (writer.pending >= batchSize) await flush();
      }
      await flush();
    } catch (err) {
      if (!(err instanceof StopImport)) throw err;
      summary.stopped = true;
      fail(err.failure);
    }
  };

  if (options.dryRun) {
    try {
      await db.transaction(async (tx) => {
        await run((work) => work(tx));
        throw new DryRunRollback();
      });
    } catch (err) {
      if (!(err instanceof DryRunRollback)) throw err;
    }
  } else {
    await run((work) => withTransaction(db, work));
  }
  summary.durationMs = Math.round(performance.now() - started);
  summary.recordsPerSecond = Math.round(summary.records / Math.max(summary.durationMs / 1000, 0.001));
  return summary;
}

class BatchWriter {
  #customers: CustomerRecord[] = [];
  #keys: KeyRecord[] = [];
  #devices: DeviceRecord[] = [];
  /** File customer ref → customer id in the account, and lower(email) → id (committed batches). */
  #refs = new Map<string, string>();
  #emails = new Map<string, string>();
  /** Products of the account, by id (true) or not (false). */
  #products = new Map<string, boolean>();

  constructor(private readonly options: ImportOptions) {}

  get pending() {
    return this.#customers.length + this.#keys.length + this.#devices.length;
  }

  add(record: CustomerRecord | KeyRecord | DeviceRecord) {
    if (record.kind === 'customer') this.#customers.push(record);
    else if (record.kind === 'key') this.#keys.push(record);
    else this.#devices.push(record);
  }

  /** Writes the pending records in `tx`; re-runnable (a transaction retried after a deadlock). */
  async write(tx: Db): Promise<BatchResult> {
    const result: BatchResult = {
      customers: counts(),
      keys: counts(),
      devices: counts(),
      errors: [],
      warnings: [],
      refs: new Map(),
      emails: new Map(),
    };
    await this.#writeCustomers(tx, result);
    await this.#writeKeys(tx, result);
    await this.#writeDevices(tx, result);
    return result;
  }

  commit(result: BatchResult) {
    for (const [ref, id] of result.refs) this.#refs.set(ref, id);
    for (const [email, id] of result.emails) this.#emails.set(email, id);
    this.#customers = [];
    this.#keys = [];
    this.#devices = [];
  }

  #refuse(result: BatchResult, error: LineError) {
    if (this.options.onConflict === 'fail') throw new StopImport(error);
    result.errors.push(error);
  }

  async #writeCustomers(tx: Db, result: BatchResult) {
    const { accountId, onConflict } = this.options;
    if (this.#customers.length === 0) return;
    const lower = (email: string) => email.toLowerCase();
    const emails = [...new Set(this.#customers.flatMap((c) => (c.email ? [lower(c.email)] : [])))];
    const refIds = this.#customers.flatMap((c) => (c.ref && !c.email ? [c.ref, derivedId(accountId, c.ref)] : []));
    const existing = await tx
      .select({ id: customers.id, email: customers.email, name: customers.name, active: customers.active })
      .from(customers)
      .where(
        and(
          eq(customers.accountId, accountId),
          sql`(lower(${customers.email}) = any(${textArray(emails)}) or ${customers.id} = any(${textArray(refIds)}))`,
        ),
      );
    const byEmail = new Map(existing.flatMap((row) => (row.email ? [[lower(row.email), row] as const] : [])));
    const byId = new Map(existing.map((row) => [row.id, row]));
    const remember = (c: CustomerRecord, id: string) => {
      if (c.ref) result.refs.set(c.ref, id);
      if (c.email) result.emails.set(lower(c.email), id);
    };
    const fresh: CustomerRecord[] = [];
    const seen = new Map<string, number>();
    for (const c of this.#customers) {
      const identity = c.email ? `email:${lower(c.email)}` : `ref:${c.ref ?? ''}`;
      const earlier = seen.get(identity);
      if (earlier !== undefined) {
        // The same customer twice in one file (a CSV row per key): the first one stands.
        const id = result.refs.get(c.ref ?? '') ?? result.emails.get(lower(c.email ?? ''));
        if (id) remember(c, id);
        result.customers.skipped++;
        continue;
      }
      seen.set(identity, c.line);
      const found = c.email
        ? byEmail.get(lower(c.email))
        : c.ref
          ? (byId.get(c.ref) ?? byId.get(derivedId(accountId, c.ref)))
          : undefined;
      if (!found) {
        if (!c.email && !c.ref) {
          this.#refuse(result, new LineError(c.line, 'Missing required params'));
          continue;
        }
        fresh.push(c);
        continue;
      }
      remember(c, found.id);
      if (onConflict === 'fail') throw new StopImport(new LineError(c.line, 'Customer already exists'));
      if (onConflict === 'update' && (found.name !== c.name || found.active !== c.active)) {
        await tx
          .update(customers)
          .set({ name: c.name, active: c.active, updatedAt: new Date() })
          .where(eq(customers.id, found.id));
        result.customers.updated++;
      } else {
        result.customers.skipped++;
      }
    }
    if (fresh.length === 0) return;
    const now = new Date();
    const insert = async (rows: { c: CustomerRecord; id: string }[]) =>
      new Set(
        rowsOf<{ id: string }>(
          await tx.execute(sql`
            insert into ${customers} ${columnList(CUSTOMER_COLUMNS)}
            ${unnestRows(
              CUSTOMER_COLUMNS,
              rows.map(({ c, id }) => [id, accountId, c.name, c.email, c.active, c.createdAt ?? now, now]),
            )}
            on conflict do nothing
            returning id`),
        ).map((row) => row.id),
      );
    // A customer keeps its id from the file when it is free; else one derived from the account
    // and that id (the same on every run).
    const derived = (c: CustomerRecord) => derivedId(accountId, c.ref ?? c.email!);
    const preferred = (c: CustomerRecord) => (c.ref && ID.test(c.ref) ? c.ref : derived(c));
    const inserted = await insert(fresh.map((c) => ({ c, id: preferred(c) })));
    const again = fresh.filter((c) => !inserted.has(preferred(c)));
    for (const c of fresh) {
      const id = preferred(c);
      if (inserted.has(id)) {
        remember(c, id);
        result.customers.created++;
      }
    }
    if (again.length === 0) return;
    const secondIds = await insert(again.map((c) => ({ c, id: derived(c) })));
    for (const c of again) {
      const id = derived(c);
      if (secondIds.has(id)) {
        remember(c, id);
        result.customers.created++;
      } else {
        this.#refuse(result, new LineError(c.line, 'Customer could not be created (email or id taken)'));
      }
    }
  }

  async #productOf(tx: Db, record: { productId: string | undefined; line: number }): Promise<string | LineError> {
    const productId = this.options.productId ?? record.productId;
    if (productId === undefined) return new LineError(record.line, 'Missing required params');
    let known = this.#products.get(productId);
    if (known === undefined) {
      const [row] = await tx
        .select({ id: products.id })
        .from(products)
        .where(and(eq(products.id, productId), eq(products.accountId, this.options.accountId)));
      known = row !== undefined;
      this.#products.set(productId, known);
    }
    return known ? productId : new LineError(record.line, 'Product not found');
  }

  async #writeKeys(tx: Db, result: BatchResult) {
    const { accountId, onConflict } = this.options;
    if (this.#keys.length === 0) return;
    const now = new Date();
    const rows: { line: number; productId: string; key: string; values: unknown[] }[] = [];
    const inBatch = new Map<string, number>();
    // Customers the records name by an id the file does not hold: looked up in the account.
    const unknownRefs = this.#keys.flatMap((k) =>
      k.customerRef && !this.#customerId(result, k.customerRef, null) ? [k.customerRef] : [],
    );
    const accountCustomers =
      unknownRefs.length > 0
        ? new Set(
            (
              await tx
                .select({ id: customers.id })
                .from(customers)
                .where(and(eq(customers.accountId, accountId), sql`${customers.id} = any(${textArray(unknownRefs)})`))
            ).map((row) => row.id),
          )
        : new Set<string>();
    for (const k of this.#keys) {
      const productId = await this.#productOf(tx, k);
      if (productId instanceof LineError) {
        this.#refuse(result, productId);
        continue;
      }
      let customerId: string | null = null;
      if (k.customerRef || k.customerEmail) {
        customerId =
          this.#customerId(result, k.customerRef, k.customerEmail) ??
          (k.customerRef && accountCustomers.has(k.customerRef) ? k.customerRef : null);
        if (!customerId) {
          this.#refuse(result, new LineError(k.line, 'Customer not found'));
          continue;
        }
      }
      const identity = `${productId}\u0000${k.key}`;
      const earlier = inBatch.get(identity);
      if (earlier !== undefined) {
        this.#refuse(result, new LineError(k.line, `License key already in this file (line ${earlier})`));
        continue;
      }
      inBatch.set(identity, k.line);
      rows.push({
        line: k.line,
        productId,
        key: k.key,
        // In KEY_COLUMNS' order.
        values: [
          newId(),
          accountId,
          productId,
          k.key,
          customerId,
          k.maxActivations,
          k.expiresAt,
          k.metadata,
          k.allowedHosts,
          k.licenseType,
          k.maxConcurrentSessions,
          k.heartbeatInterval,
          k.sessionLeaseDuration,
          k.blocked,
          k.createdAt ?? now,
          now,
        ],
      });
    }
    if (rows.length === 0) return;
    const lineOf = new Map(rows.map((row) => [`${row.productId}\u0000${row.key}`, row.line]));
    const updated = KEY_COLUMNS.filter((column) => UPDATED_KEY_COLUMNS.includes(column.name));
    const existing = (column: BulkColumn) => sql`${licenseKeys}.${sql.identifier(column.name)}`;
    const incoming = (column: BulkColumn) => sql`excluded.${sql.identifier(column.name)}`;
    const conflictAction =
      onConflict === 'update'
        ? // Only a key the file changes is written (and counted as updated).
          sql`do update set ${sql.join(
            [...updated, UPDATED_AT].map((column) => sql`${sql.identifier(column.name)} = ${incoming(column)}`),
            sql`, `,
          )}
          where (${sql.join(updated.map(existing), sql`, `)}) is distinct from (${sql.join(updated.map(incoming), sql`, `)})`
        : sql`do nothing`;
    const written = rowsOf<{ product_id: string; key: string; inserted: boolean }>(
      await tx.execute(sql`
        insert into ${licenseKeys} ${columnList(KEY_COLUMNS)}
        ${unnestRows(
          KEY_COLUMNS,
          rows.map((row) => row.values),
        )}
        on conflict (product_id, key) ${conflictAction}
        returning product_id, key, (xmax = 0) as inserted`),
    );
    const done = new Set<string>();
    for (const row of written) {
      done.add(`${row.product_id}\u0000${row.key}`);
      if (row.inserted) result.keys.created++;
      else result.keys.updated++;
    }
    for (const [identity, line] of lineOf) {
      if (done.has(identity)) continue;
      if (onConflict === 'fail') throw new StopImport(new LineError(line, 'License key already exists'));
      result.keys.skipped++;
    }
  }

  #customerId(result: BatchResult, ref: string | null, email: string | null): string | undefined {
    if (ref) {
      const id = result.refs.get(ref) ?? this.#refs.get(ref);
      if (id) return id;
    }
    if (email) {
      const lower = email.toLowerCase();
      return result.emails.get(lower) ?? this.#emails.get(lower);
    }
    return undefined;
  }

  async #writeDevices(tx: Db, result: BatchResult) {
    const { onConflict } = this.options;
    if (this.#devices.length === 0) return;
    const wanted: { device: DeviceRecord; productId: string }[] = [];
    for (const device of this.#devices) {
      const productId = await this.#productOf(tx, device);
      if (productId instanceof LineError) this.#refuse(result, productId);
      else wanted.push({ device, productId });
    }
    if (wanted.length === 0) return;
    // By (product, key): the unique index answers it (a product is known to be the account's).
    // Two arrays unnested, not `(product_id, key) in ((...), ...)`: PGlite 0.5 answers a long
    // row-value IN list with no rows and then fails the COMMIT ("bad buffer ID").
    const pairs = [...new Map(wanted.map((w) => [`${w.productId}\u0000${w.device.key}`, w])).values()];
    const keyRows = await tx
      .select({
        id: licenseKeys.id,
        productId: licenseKeys.productId,
        key: licenseKeys.key,
        limit: licenseKeys.maxActivations,
      })
      .from(licenseKeys)
      .innerJoin(
        sql`unnest(${textArray(pairs.map((w) => w.productId))}, ${textArray(pairs.map((w) => w.device.key))}) as wanted(product_id, key)`,
        sql`${licenseKeys.productId} = wanted.product_id and ${licenseKeys.key} = wanted.key`,
      );
    const keyOf = new Map(keyRows.map((row) => [`${row.productId}\u0000${row.key}`, row]));
    const keyById = new Map(keyRows.map((row) => [row.id, row]));
    const now = new Date();
    const rows: {
      line: number;
      id: string;
      licenseKeyId: string;
      hostId: string;
      deviceTag: string | null;
      ipAddress: string | null;
      activatedAt: Date;
    }[] = [];
    const inBatch = new Set<string>();
    for (const { device: d, productId } of wanted) {
      const key = keyOf.get(`${productId}\u0000${d.key}`);
      if (!key) {
        this.#refuse(result, new LineError(d.line, 'License key not found'));
        continue;
      }
      const identity = `${key.id}\u0000${d.hostId}`;
      if (inBatch.has(identity)) {
        result.devices.skipped++;
        continue;
      }
      inBatch.add(identity);
      rows.push({
        line: d.line,
        id: newId(),
        licenseKeyId: key.id,
        hostId: d.hostId,
        deviceTag: d.deviceTag,
        ipAddress: d.ipAddress,
        activatedAt: d.activatedAt ?? now,
      });
    }
    if (rows.length === 0) return;
    const written = rowsOf<{ license_key_id: string; host_id: string }>(
      await tx.execute(sql`
        insert into ${devices} ${columnList(DEVICE_COLUMNS)}
        ${unnestRows(
          DEVICE_COLUMNS,
          rows.map((row) => [row.id, row.licenseKeyId, row.hostId, row.deviceTag, row.ipAddress, row.activatedAt]),
        )}
        on conflict (license_key_id, host_id) do nothing
        returning license_key_id, host_id`),
    );
    const done = new Set(written.map((row) => `${row.license_key_id}\u0000${row.host_id}`));
    result.devices.created += written.length;
    const lastLine = new Map<string, number>();
    for (const row of rows) {
      lastLine.set(row.licenseKeyId, row.line);
      if (done.has(`${row.licenseKeyId}\u0000${row.hostId}`)) continue;
      if (onConflict === 'fail') throw new StopImport(new LineError(row.line, 'Device already exists'));
      result.devices.skipped++;
    }
    // The limit holds as through the API unless the file says otherwise: then it is reported.
    const limited = [...new Set(written.map((row) => row.license_key_id))].filter(
      (id) => keyById.get(id)?.limit != null,
    );
    if (limited.length === 0) return;
    const totals = await tx
      .select({ licenseKeyId: devices.licenseKeyId, count: sql<number>`cast(count(*) as integer)` })
      .from(devices)
      .where(sql`${devices.licenseKeyId} = any(${textArray(limited)})`)
      .groupBy(devices.licenseKeyId);
    for (const total of totals) {
      const key = keyById.get(total.licenseKeyId)!;
      if (key.limit !== null && total.count > key.limit) {
        result.warnings.push(
          new LineError(
            lastLine.get(key.id)!,
            `License key ${key.key} has ${total.count} devices, over its limit of ${key.limit}`,
          ),
        );
      }
    }
  }
}

const CUSTOMER_COLUMNS: readonly BulkColumn[] = [
  { name: 'id', type: 'text' },
  { name: 'account_id', type: 'text' },
  { name: 'name', type: 'text' },
  { name: 'email', type: 'text' },
  { name: 'active', type: 'boolean' },
  { name: 'created_at', type: 'timestamptz' },
  { name: 'updated_at', type: 'timestamptz' },
];

const UPDATED_AT: BulkColumn = { name: 'updated_at', type: 'timestamptz' };

const KEY_COLUMNS: readonly BulkColumn[] = [
  { name: 'id', type: 'text' },
  { name: 'account_id', type: 'text' },
  { name: 'product_id', type: 'text' },
  { name: 'key', type: 'text' },
  { name: 'customer_id', type: 'text' },
  { name: 'max_activations', type: 'integer' },
  { name: 'expires_at', type: 'timestamptz' },
  { name: 'metadata', type: 'jsonb' },
  { name: 'allowed_hosts', type: 'text[]' },
  { name: 'license_type', type: 'text' },
  { name: 'max_concurrent_sessions', type: 'integer' },
  { name: 'heartbeat_interval', type: 'integer' },
  { name: 'session_lease_duration', type: 'integer' },
  { name: 'blocked', type: 'boolean' },
  { name: 'created_at', type: 'timestamptz' },
  UPDATED_AT,
];

/** The columns `--on-conflict update` sets from the file (not the key's id, account or dates). */
const UPDATED_KEY_COLUMNS: readonly string[] = [
  'customer_id',
  'max_activations',
  'expires_at',
  'metadata',
  'allowed_hosts',
  'license_type',
  'max_concurrent_sessions',
  'heartbeat_interval',
  'session_lease_duration',
  'blocked',
];

const DEVICE_COLUMNS: readonly BulkColumn[] = [
  { name: 'id', type: 'text' },
  { name: 'license_key_id', type: 'text' },
  { name: 'host_id', type: 'text' },
  { name: 'device_tag', type: 'text' },
  { name: 'ip_address', type: 'text' },
  { name: 'activated_at', type: 'timestamptz' },
];
