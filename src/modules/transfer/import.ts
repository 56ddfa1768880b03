import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { and, eq, inArray, sql } from 'drizzle-orm';
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
          sql`(lower(${customers.email}) in ${emails.length > 0 ? emails : ['']} or ${customers.id} in ${refIds.length > 0 ? refIds : ['']})`,
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
    const row = (c: CustomerRecord, id: string) => ({
      id,
      accountId,
      name: c.name,
      email: c.email,
      active: c.active,
      createdAt: c.createdAt ?? now,
      updatedAt: now,
    });
    // A customer keeps its id from the file when it is free; else one derived from the account
    // and that id (the same on every run).
    const derived = (c: CustomerRecord) => derivedId(accountId, c.ref ?? c.email!);
    const preferred = (c: CustomerRecord) => (c.ref && ID.test(c.ref) ? c.ref : derived(c));
    const first = await tx
      .insert(customers)
      .values(fresh.map((c) => row(c, preferred(c))))
      .onConflictDoNothing()
      .returning({ id: customers.id });
    const inserted = new Set(first.map((r) => r.id));
    const again = fresh.filter((c) => !inserted.has(preferred(c)));
    for (const c of fresh) {
      const id = preferred(c);
      if (inserted.has(id)) {
        remember(c, id);
        result.customers.created++;
      }
    }
    if (again.length === 0) return;
    const second = await tx
      .insert(customers)
      .values(again.map((c) => row(c, derived(c))))
      .onConflictDoNothing()
      .returning({ id: customers.id });
    const secondIds = new Set(second.map((r) => r.id));
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
    const rows: (typeof licenseKeys.$inferInsert & { line: number })[] = [];
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
                .where(and(eq(customers.accountId, accountId), inArray(customers.id, unknownRefs)))
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
        id: newId(),
        accountId,
        productId,
        key: k.key,
        customerId,
        maxActivations: k.maxActivations,
        expiresAt: k.expiresAt,
        metadata: k.metadata,
        allowedHosts: k.allowedHosts,
        licenseType: k.licenseType,
        maxConcurrentSessions: k.maxConcurrentSessions,
        heartbeatInterval: k.heartbeatInterval,
        sessionLeaseDuration: k.sessionLeaseDuration,
        blocked: k.blocked,
        createdAt: k.createdAt ?? now,
        updatedAt: now,
      });
    }
    if (rows.length === 0) return;
    const values = rows.map(({ line: _line, ...row }) => row);
    const target = [licenseKeys.productId, licenseKeys.key];
    const lineOf = new Map(rows.map((row) => [`${row.productId}\u0000${row.key}`, row.line]));
    const written =
      onConflict === 'update'
        ? await tx
            .insert(licenseKeys)
            .values(values)
            .onConflictDoUpdate({
              target,
              set: {
                ...Object.fromEntries(UPDATED_KEY_COLUMNS.map((column) => [column, excluded(column)])),
                updatedAt: excluded('updatedAt'),
              },
              setWhere: sql`(${sql.join(
                UPDATED_KEY_COLUMNS.map((column) => sql`${licenseKeys[column]}`),
                sql`, `,
              )}) is distinct from (${sql.join(UPDATED_KEY_COLUMNS.map(excluded), sql`, `)})`,
            })
            .returning({ productId: licenseKeys.productId, key: licenseKeys.key, inserted: sql<boolean>`xmax = 0` })
        : await tx
            .insert(licenseKeys)
            .values(values)
            .onConflictDoNothing({ target })
            .returning({ productId: licenseKeys.productId, key: licenseKeys.key, inserted: sql<boolean>`true` });
    const done = new Set<string>();
    for (const row of written) {
      done.add(`${row.productId}\u0000${row.key}`);
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
    const pairs = [...new Map(wanted.map((w) => [`${w.productId}\u0000${w.device.key}`, w])).values()];
    const keyRows = await tx
      .select({
        id: licenseKeys.id,
        productId: licenseKeys.productId,
        key: licenseKeys.key,
        limit: licenseKeys.maxActivations,
      })
      .from(licenseKeys)
      .where(
        sql`(${licenseKeys.productId}, ${licenseKeys.key}) in (${sql.join(
          pairs.map((w) => sql`(${w.productId}, ${w.device.key})`),
          sql`, `,
        )})`,
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
    const written = await tx
      .insert(devices)
      .values(rows.map(({ line: _line, ...row }) => row))
      .onConflictDoNothing({ target: [devices.licenseKeyId, devices.hostId] })
      .returning({ licenseKeyId: devices.licenseKeyId, hostId: devices.hostId });
    const done = new Set(written.map((row) => `${row.licenseKeyId}\u0000${row.hostId}`));
    result.devices.created += written.length;
    const lastLine = new Map<string, number>();
    for (const row of rows) {
      lastLine.set(row.licenseKeyId, row.line);
      if (done.has(`${row.licenseKeyId}\u0000${row.hostId}`)) continue;
      if (onConflict === 'fail') throw new StopImport(new LineError(row.line, 'Device already exists'));
      result.devices.skipped++;
    }
    // The limit holds as through the API unless the file says otherwise: then it is reported.
    const limited = [...new Set(written.map((row) => row.licenseKeyId))].filter((id) => keyById.get(id)?.limit != null);
    if (limited.length === 0) return;
    const totals = await tx
      .select({ licenseKeyId: devices.licenseKeyId, count: sql<number>`cast(count(*) as integer)` })
      .from(devices)
      .where(inArray(devices.licenseKeyId, limited))
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

/** The value an upsert would have inserted into a column (PostgreSQL's `excluded` row). */
const excluded = (column: string) =>
  sql`excluded.${sql.identifier(column.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`))}`;

/** The columns `--on-conflict update` sets from the file (not the key's id, account or dates). */
const UPDATED_KEY_COLUMNS = [
  'customerId',
  'maxActivations',
  'expiresAt',
  'metadata',
  'allowedHosts',
  'licenseType',
  'maxConcurrentSessions',
  'heartbeatInterval',
  'sessionLeaseDuration',
  'blocked',
] as const;
