import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { products } from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import { resolveAccountId } from '../admin/accounts.js';
import { type ExportCounts, exportRecords, exportSize } from './export.js';
import { detectFormat, type ImportFormat, type OnConflict } from './format.js';
import { type ImportSummary, importRecords } from './import.js';

/** Where a command reports progress: a terminal gets a bar, anything else a line now and then. */
export interface ProgressOutput {
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  /** --json: nothing but the summary. */
  quiet: boolean;
}

const PLAIN_EVERY_MS = 2000;

/** A progress bar on a TTY (cli-progress), else a line every 2 s; nothing when quiet. */
async function progressReporter(output: ProgressOutput, total: number, unit: string) {
  if (output.quiet) return { update: (_value: number) => {}, stop: () => {} };
  if (output.stream.isTTY) {
    const { SingleBar, Presets } = await import('cli-progress');
    const bar = new SingleBar(
      {
        format: `{bar} {percentage}% | {value}/{total} ${unit} | {duration}s`,
        stream: output.stream as NodeJS.WriteStream,
      },
      Presets.shades_classic,
    );
    bar.start(total, 0);
    return { update: (value: number) => bar.update(Math.min(value, total)), stop: () => bar.stop() };
  }
  let last = Date.now();
  return {
    update(value: number) {
      if (Date.now() - last < PLAIN_EVERY_MS) return;
      last = Date.now();
      output.stream.write(`${value} of ${total} ${unit}\n`);
    },
    stop() {},
  };
}

/** Refuses a product that is not the account's (404 Product not found). */
export async function checkProduct(db: Db, accountId: string, productId: string | undefined) {
  if (productId === undefined) return;
  const [row] = await db
    .select({ id: products.id })
    .from(products)
    .where(and(eq(products.id, productId), eq(products.accountId, accountId)));
  if (!row) throw Errors.productNotFound();
}

export interface ExportCommandOptions {
  account?: string;
  product?: string;
  format: 'jsonl' | 'csv';
  /** A file (written with mode 0600), or the stream given. */
  out: string | Writable;
}

export async function exportCommand(db: Db, options: ExportCommandOptions, progress: ProgressOutput) {
  const accountId = await resolveAccountId(db, options.account);
  await checkProduct(db, accountId, options.product);
  const started = performance.now();
  const counts: ExportCounts = { customers: 0, keys: 0, devices: 0 };
  const toFile = typeof options.out === 'string';
  // Progress goes to stderr; with the data on stdout it is shown only for a file.
  const reporter = await progressReporter(
    { ...progress, quiet: progress.quiet || !toFile },
    await exportSize(db, { accountId, productId: options.product }),
    'keys',
  );
  const source = Readable.from(
    exportRecords(db, { accountId, productId: options.product, format: options.format }, counts),
  );
  source.on('data', () => reporter.update(counts.keys));
  const target = typeof options.out === 'string' ? createWriteStream(options.out, { mode: 0o600 }) : options.out;
  try {
    await pipeline(source, target, { end: toFile });
  } finally {
    reporter.stop();
  }
  const durationMs = Math.round(performance.now() - started);
  const records = counts.customers + counts.keys + counts.devices;
  const json = {
    accountId,
    productId: options.product ?? null,
    format: options.format,
    file: toFile ? options.out : null,
    ...counts,
    durationMs,
    recordsPerSecond: Math.round(records / Math.max(durationMs / 1000, 0.001)),
  };
  const human = `Exported ${counts.customers} customers, ${counts.keys} keys and ${counts.devices} devices in ${(durationMs / 1000).toFixed(1)} s`;
  return { human, json };
}

export interface ImportCommandOptions {
  account?: string;
  product?: string;
  format?: ImportFormat;
  onConflict: OnConflict;
  dryRun: boolean;
}

/** Reads the first bytes of a file (to tell its format). */
async function headOf(file: string): Promise<string> {
  const stream = createReadStream(file, { start: 0, end: 4095, encoding: 'utf8' });
  let head = '';
  for await (const chunk of stream) head += chunk;
  return head;
}

export async function importCommand(db: Db, file: string, options: ImportCommandOptions, progress: ProgressOutput) {
  const accountId = await resolveAccountId(db, options.account);
  await checkProduct(db, accountId, options.product);
  const format = options.format ?? detectFormat(basename(file), await headOf(file));
  const size = statSync(file).size;
  const reporter = await progressReporter(progress, size, 'bytes');
  let read = 0;
  const counter = new PassThrough();
  counter.on('data', (chunk: Buffer) => {
    read += chunk.length;
  });
  const input = createReadStream(file).pipe(counter);
  let summary: ImportSummary;
  try {
    summary = await importRecords(db, input, {
      accountId,
      productId: options.product,
      format,
      onConflict: options.onConflict,
      dryRun: options.dryRun,
      onProgress: () => reporter.update(read),
    });
    reporter.update(size);
  } finally {
    reporter.stop();
  }
  return { human: describeImport(summary), json: { accountId, file, ...summary } };
}

/** The summary as a person reads it: what happened to each record type, then the lines refused. */
export function describeImport(summary: ImportSummary): string {
  const part = (name: string, c: { created: number; updated: number; skipped: number }) =>
    `${name}: ${c.created} created, ${c.updated} updated, ${c.skipped} skipped`;
  const lines = [
    `${summary.dryRun ? 'Dry run (nothing written): ' : ''}${summary.records} records (${summary.format}) in ${(summary.durationMs / 1000).toFixed(1)} s, ${summary.recordsPerSecond} records/s`,
    part('customers', summary.customers),
    part('keys', summary.keys),
    part('devices', summary.devices),
    `failed: ${summary.failed}${summary.stopped ? ' (stopped at the first, --on-conflict fail)' : ''}`,
    ...summary.errors.map((error) => `  line ${error.line}: ${error.message}`),
    ...(summary.failed > summary.errors.length ? [`  … and ${summary.failed - summary.errors.length} more`] : []),
    ...summary.warnings.map((warning) => `warning: line ${warning.line}: ${warning.message}`),
  ];
  return lines.join('\n');
}
