import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { type Static, Type } from '@sinclair/typebox';
import { parse as parseCsv } from 'csv-parse';
import {
  CustomerIdInputSchema,
  EmailSchema,
  HostIdSchema,
  LicenseKeyInputSchema,
  NameSchema,
  ProductIdSchema,
} from '../../http/schemas.js';
import { compileValidator } from '../../http/validation.js';
import { parseIsoDate } from '../../lib/dates.js';
import { AppError } from '../../lib/errors.js';
import {
  KEY_SETTING_DEFAULTS,
  normalizeAllowedHosts,
  resolveActivationLimit,
  resolveExpiry,
} from '../licenses/policy.js';
import { KeySettings } from '../licenses/schemas.js';

/**
 * The export format, version 1 (README, "Migrating to keymint-server"): JSON Lines, one record a
 * line, each with a `type`. A header first, then every customer, every key, every device. Field
 * names are the API's. No secret is in it (token hashes, session secrets, webhook secrets and
 * signing keys stay in the database).
 */
export const EXPORT_FORMAT = 'keymint-export';
export const EXPORT_VERSION = 1;

export type ImportFormat = 'jsonl' | 'csv' | 'keygen';
export const IMPORT_FORMATS: readonly ImportFormat[] = ['jsonl', 'csv', 'keygen'];
export type OnConflict = 'skip' | 'update' | 'fail';
export const ON_CONFLICT: readonly OnConflict[] = ['skip', 'update', 'fail'];

/** The columns of the CSV format, import and export (`allowedHosts` separated by `;`). */
export const CSV_COLUMNS = [
  'key',
  'productId',
  'customerName',
  'customerEmail',
  'maxActivations',
  'expiryDate',
  'metadata',
  'allowedHosts',
  'licenseType',
  'maxConcurrentSessions',
  'blocked',
] as const;

const Timestamp = Type.String({ minLength: 1, maxLength: 64 });

const CustomerRecordSchema = Type.Object({
  type: Type.Literal('customer'),
  id: Type.Optional(CustomerIdInputSchema),
  name: NameSchema,
  email: Type.Optional(Type.Union([EmailSchema, Type.Null()])),
  active: Type.Optional(Type.Boolean()),
  createdAt: Type.Optional(Timestamp),
});

const KeyRecordSchema = Type.Object({
  type: Type.Literal('key'),
  productId: Type.Optional(ProductIdSchema),
  key: LicenseKeyInputSchema,
  customerId: Type.Optional(Type.Union([CustomerIdInputSchema, Type.Null()])),
  customerEmail: Type.Optional(Type.Union([EmailSchema, Type.Null()])),
  usesPerKey: KeySettings.usesPerKey,
  maxActivations: KeySettings.maxActivations,
  expiryDate: KeySettings.expiryDate,
  metadata: KeySettings.metadata,
  allowedHosts: KeySettings.allowedHosts,
  licenseType: KeySettings.licenseType,
  maxConcurrentSessions: KeySettings.maxConcurrentSessions,
  heartbeatInterval: KeySettings.heartbeatInterval,
  sessionLeaseDuration: KeySettings.sessionLeaseDuration,
  blocked: Type.Optional(Type.Boolean()),
  createdAt: Type.Optional(Timestamp),
});

const DeviceRecordSchema = Type.Object({
  type: Type.Literal('device'),
  productId: Type.Optional(ProductIdSchema),
  key: LicenseKeyInputSchema,
  hostId: HostIdSchema,
  deviceTag: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
  ipAddress: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
  activatedAt: Type.Optional(Timestamp),
});

// The API's validator: the same rules and the same messages ("Invalid expiryDate", ...).
const validate = {
  customer: compileValidator(CustomerRecordSchema, 'body'),
  key: compileValidator(KeyRecordSchema, 'body'),
  device: compileValidator(DeviceRecordSchema, 'body'),
};

export interface CustomerRecord {
  kind: 'customer';
  line: number;
  /** The customer's id in the file (export format), or one derived from its name (CSV). */
  ref: string | undefined;
  name: string;
  email: string | null;
  active: boolean;
  createdAt: Date | undefined;
}

export interface KeyRecord {
  kind: 'key';
  line: number;
  productId: string | undefined;
  key: string;
  /** The customer's id in the file, or its email (matched in the account). */
  customerRef: string | null;
  customerEmail: string | null;
  maxActivations: number | null;
  expiresAt: Date | null;
  metadata: Record<string, unknown> | null;
  allowedHosts: string[] | null;
  licenseType: (typeof KEY_SETTING_DEFAULTS)['licenseType'];
  maxConcurrentSessions: number | null;
  heartbeatInterval: number;
  sessionLeaseDuration: number;
  blocked: boolean;
  createdAt: Date | undefined;
}

export interface DeviceRecord {
  kind: 'device';
  line: number;
  productId: string | undefined;
  key: string;
  hostId: string;
  deviceTag: string | null;
  ipAddress: string | null;
  activatedAt: Date | undefined;
}

export type ImportRecord = CustomerRecord | KeyRecord | DeviceRecord;

/** A line the import refuses: its number (1-based, as an editor shows it) and why. */
export class LineError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a parser yields: a record, or a line it could not read. */
export type Parsed = ImportRecord | LineError;

const dateOf = (value: string | undefined, field: string, line: number): Date | undefined => {
  if (value === undefined) return undefined;
  const date = parseIsoDate(value);
  if (!date) throw new LineError(line, `Invalid ${field}`);
  return date;
};

function checked<T>(check: (input: unknown) => { value?: unknown; error?: AppError }, input: unknown, line: number): T {
  const result = check(input);
  if (result.error) throw new LineError(line, result.error.message);
  return result.value as T;
}

/** One record of the export format (or a hand-written one), checked by the API's rules. */
export function recordOf(value: unknown, line: number): ImportRecord | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new LineError(line, 'Invalid JSON');
  const type = (value as { type?: unknown }).type;
  if (type === 'header') return undefined;
  if (type === 'customer') {
    const c = checked<Static<typeof CustomerRecordSchema>>(validate.customer, value, line);
    return {
      kind: 'customer',
      line,
      ref: c.id,
      name: c.name,
      email: c.email ?? null,
      active: c.active ?? true,
      createdAt: dateOf(c.createdAt, 'createdAt', line),
    };
  }
  if (type === 'key') return keyRecordOf(checked<Static<typeof KeyRecordSchema>>(validate.key, value, line), line);
  if (type === 'device') {
    const d = checked<Static<typeof DeviceRecordSchema>>(validate.device, value, line);
    return {
      kind: 'device',
      line,
      productId: d.productId,
      key: d.key,
      hostId: d.hostId,
      deviceTag: d.deviceTag ?? null,
      ipAddress: d.ipAddress ?? null,
      activatedAt: dateOf(d.activatedAt, 'activatedAt', line),
    };
  }
  throw new LineError(line, 'Invalid type');
}

/**
 * A key's settings resolved by the licensing rules. Unlike create-key, a key without an expiry
 * date never expires: it is an existing key, and its customers already have it.
 */
function keyRecordOf(k: Static<typeof KeyRecordSchema>, line: number): KeyRecord {
  let maxActivations: number | null;
  let expiresAt: Date | null;
  try {
    maxActivations = resolveActivationLimit(k.usesPerKey, k.maxActivations) ?? null;
    expiresAt = resolveExpiry(k.expiryDate) ?? null;
  } catch (err) {
    throw new LineError(line, err instanceof AppError ? err.message : 'Invalid key');
  }
  return {
    kind: 'key',
    line,
    productId: k.productId,
    key: k.key,
    customerRef: k.customerId ?? null,
    customerEmail: k.customerEmail ?? null,
    maxActivations,
    expiresAt,
    metadata: k.metadata ?? null,
    allowedHosts: normalizeAllowedHosts(k.allowedHosts),
    licenseType: k.licenseType ?? KEY_SETTING_DEFAULTS.licenseType,
    maxConcurrentSessions: k.maxConcurrentSessions ?? null,
    heartbeatInterval: k.heartbeatInterval ?? KEY_SETTING_DEFAULTS.heartbeatInterval,
    sessionLeaseDuration: k.sessionLeaseDuration ?? KEY_SETTING_DEFAULTS.sessionLeaseDuration,
    blocked: k.blocked ?? false,
    createdAt: dateOf(k.createdAt, 'createdAt', line),
  };
}

/** JSON Lines: one record a line; blank lines are skipped. */
export async function* parseJsonLines(input: Readable): AsyncGenerator<Parsed> {
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    line++;
    if (text.trim() === '') continue;
    try {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new LineError(line, 'Invalid JSON');
      }
      const record = recordOf(value, line);
      if (record) yield record;
    } catch (err) {
      yield asLineError(err);
    }
  }
}

const asLineError = (err: unknown): LineError => {
  if (err instanceof LineError) return err;
  throw err;
};

/** A stable customer id for a CSV customer that has a name and no email (re-runs find it). */
const nameRef = (name: string) => `csv-${createHash('sha256').update(name).digest('hex').slice(0, 22)}`;

const blankAsUndefined = (value: string | undefined) =>
  value === undefined || value.trim() === '' ? undefined : value.trim();

/**
 * CSV with a header row (RFC 4180 quoting: commas, quotes and newlines inside quoted fields).
 * Columns: CSV_COLUMNS (`usesPerKey` is another name for `maxActivations`); unknown columns are
 * ignored. A row is a key, with its customer when it names one. Line numbers are the file's.
 */
export async function* parseCsvRows(input: Readable): AsyncGenerator<Parsed> {
  const parser = input.pipe(
    parseCsv({
      columns: (header: string[]) => header.map((name) => name.trim()),
      bom: true,
      info: true,
      skip_empty_lines: true,
      relax_column_count: true,
    }),
  );
  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: Record<string, string>;
      info: { lines: number };
    }>) {
      // info.lines is the line the record ends on; a quoted newline makes a record span lines.
      const line = info.lines;
      try {
        yield* csvRecords(record, line);
      } catch (err) {
        yield asLineError(err);
      }
    }
  } catch (err) {
    const lines = (err as { lines?: number }).lines;
    yield new LineError(lines ?? 0, `Invalid CSV: ${(err as Error).message.replace(/^Invalid /, '')}`);
  }
}

function* csvRecords(row: Record<string, string>, line: number): Generator<ImportRecord> {
  const field = (name: string) => blankAsUndefined(row[name]);
  const name = field('customerName');
  const email = field('customerEmail');
  let metadata: unknown;
  const metadataText = field('metadata');
  if (metadataText !== undefined) {
    try {
      metadata = JSON.parse(metadataText);
    } catch {
      throw new LineError(line, 'Invalid metadata');
    }
  }
  const blocked = field('blocked');
  if (blocked !== undefined && !/^(true|false)$/i.test(blocked)) throw new LineError(line, 'Invalid blocked');
  const hosts = field('allowedHosts');
  const sessions = field('maxConcurrentSessions');
  // The key first: a row that fails adds no customer either.
  const key = recordOf(
    {
      type: 'key',
      productId: field('productId'),
      key: row.key ?? '',
      customerId: email === undefined && name !== undefined ? nameRef(name) : undefined,
      customerEmail: email ?? null,
      usesPerKey: field('usesPerKey'),
      maxActivations: field('maxActivations'),
      expiryDate: field('expiryDate') ?? null,
      metadata,
      allowedHosts: hosts
        ?.split(';')
        .map((host) => host.trim())
        .filter(Boolean),
      licenseType: field('licenseType'),
      maxConcurrentSessions: sessions === undefined ? undefined : /^\d+$/.test(sessions) ? Number(sessions) : sessions,
      blocked: blocked === undefined ? undefined : blocked.toLowerCase() === 'true',
    },
    line,
  ) as KeyRecord;
  if (name !== undefined || email !== undefined) {
    const customer = recordOf({ type: 'customer', name: name ?? email, email: email ?? null }, line) as CustomerRecord;
    customer.ref = email === undefined ? nameRef(customer.name) : undefined;
    yield customer;
  }
  yield key;
}

/**
 * A Keygen export (JSON:API): `data` holds `licenses`, `included` their `users` and `machines`.
 * Mapping (README): license `key` → key, `expiry` → expiryDate, `maxMachines` → maxActivations,
 * `metadata` → metadata, `suspended` → blocked, `floating` + `maxProcesses` → floating with
 * maxConcurrentSessions; user `email`, `firstName` `lastName` → customer; machine `fingerprint` →
 * hostId, `name` → deviceTag, `ip` → ipAddress, `created` → activatedAt. The document is read
 * whole (Keygen's exports are one JSON document). Line numbers are record positions (1 = the
 * first record of `data`, then `included`).
 */
export async function* parseKeygen(input: Readable): AsyncGenerator<Parsed> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  let document: { data?: unknown; included?: unknown };
  try {
    document = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    yield new LineError(1, 'Invalid JSON');
    return;
  }
  const data = Array.isArray(document.data) ? document.data : [];
  const included = Array.isArray(document.included) ? document.included : [];
  type Resource = {
    type?: string;
    id?: string;
    attributes?: Record<string, unknown>;
    relationships?: Record<string, { data?: { id?: string } | null }>;
  };
  const all = [...data, ...included] as Resource[];
  const position = new Map(all.map((resource, i) => [resource, i + 1]));
  const users = new Map<string, Resource>();
  for (const resource of all) if (resource.type === 'users' && resource.id) users.set(resource.id, resource);
  const licenses = new Map<string, Resource>();
  const used = new Set<string>();
  for (const resource of all) {
    if (resource.type !== 'licenses') continue;
    const line = position.get(resource)!;
    try {
      const a = resource.attributes ?? {};
      const userId = resource.relationships?.user?.data?.id;
      const user = userId ? users.get(userId) : undefined;
      if (user && !used.has(userId!)) {
        used.add(userId!);
        const u = user.attributes ?? {};
        const fullName = [u.firstName, u.lastName].filter((part) => typeof part === 'string' && part).join(' ');
        yield recordOf(
          { type: 'customer', id: user.id, name: fullName || u.email, email: u.email ?? null },
          position.get(user)!,
        )!;
      }
      if (resource.id) licenses.set(resource.id, resource);
      yield recordOf(
        {
          type: 'key',
          key: a.key,
          customerId: user?.id ?? null,
          maxActivations: a.maxMachines ?? null,
          expiryDate: a.expiry ?? null,
          metadata: a.metadata && Object.keys(a.metadata).length > 0 ? a.metadata : null,
          licenseType: a.floating === true && a.maxProcesses ? 'floating' : undefined,
          maxConcurrentSessions: a.floating === true && a.maxProcesses ? a.maxProcesses : undefined,
          blocked: a.suspended === true,
          createdAt: a.created,
        },
        line,
      )!;
    } catch (err) {
      yield asLineError(err);
    }
  }
  for (const resource of all) {
    if (resource.type !== 'machines') continue;
    const line = position.get(resource)!;
    try {
      const a = resource.attributes ?? {};
      const licenseId = resource.relationships?.license?.data?.id;
      const license = licenseId ? licenses.get(licenseId) : undefined;
      if (!license) throw new LineError(line, 'License key not found');
      yield recordOf(
        {
          type: 'device',
          key: license.attributes?.key,
          hostId: a.fingerprint,
          deviceTag: a.name ?? null,
          ipAddress: a.ip ?? null,
          activatedAt: a.created,
        },
        line,
      )!;
    } catch (err) {
      yield asLineError(err);
    }
  }
}

/** The format of a file: by its name, else by its first character ('{' JSON, else CSV). */
export function detectFormat(name: string | undefined, head: string): ImportFormat {
  if (name?.endsWith('.csv')) return 'csv';
  if (name?.endsWith('.jsonl') || name?.endsWith('.ndjson')) return 'jsonl';
  const start = head.trimStart();
  if (start.startsWith('{')) {
    // One JSON document with `data` is Keygen's; a line with `type` is ours.
    const firstLine = start.split('\n', 1)[0]!;
    try {
      const value = JSON.parse(firstLine);
      if (value && typeof value === 'object' && 'type' in value) return 'jsonl';
    } catch {
      // a document over several lines
    }
    return 'keygen';
  }
  return 'csv';
}

export const parsers: Record<ImportFormat, (input: Readable) => AsyncGenerator<Parsed>> = {
  jsonl: parseJsonLines,
  csv: parseCsvRows,
  keygen: parseKeygen,
};
