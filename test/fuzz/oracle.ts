import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { Errors } from '../../src/lib/errors.js';
import type { Schema } from './arbitraries.js';

/**
 * What every answer of the fuzzed API must be: an error of the contract (a known status, code
 * and message in the `{message, code}` envelope), or a 2xx the operation documents whose body
 * matches its documented schema. And the database checksum a rejected request must not move.
 */

// ---------------------------------------------------------------- the error envelope

interface ErrorTemplate {
  status: number;
  code: number;
  message: RegExp;
}

const SENTINEL = '\u0007';
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Every refusal of `Errors` (src/lib/errors.ts), with its argument as a wildcard: `Invalid <a
 * field path>`, `Customer with ID <id> not found`, `CONFLICT: Customer email <email> ...`.
 */
export const ERROR_TEMPLATES: ErrorTemplate[] = Object.entries(Errors).map(([name, make]) => {
  const error = (make as (arg: string) => { statusCode: number; code: number; message: string })(SENTINEL);
  const wildcard = name === 'invalidField' ? '[A-Za-z][A-Za-z0-9]*(?:\\.[A-Za-z][A-Za-z0-9]*)*' : '[^]+';
  return {
    status: error.statusCode,
    code: error.code,
    message: new RegExp(`^${escapeRegExp(error.message).replace(SENTINEL, wildcard)}$`),
  };
});

/** A problem with an error answer, or undefined when it is one of the contract's. */
export function errorProblem(status: number, contentType: unknown, text: string, head = false): string | undefined {
  if (contentType !== 'application/json; charset=utf-8') return `error with Content-Type ${String(contentType)}`;
  if (head) return text === '' ? undefined : 'a HEAD answer with a body';
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'error body is not JSON';
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'error body is not an object';
  const keys = Object.keys(body).sort();
  if (keys.join(',') !== 'code,message') return `error body has the keys ${keys.join(',')}`;
  const { message, code } = body as { message: unknown; code: unknown };
  if (typeof message !== 'string' || !Number.isInteger(code)) return 'error body has the wrong types';
  const known = ERROR_TEMPLATES.some((t) => t.status === status && t.code === code && t.message.test(message));
  return known ? undefined : `not an error of the contract: ${status} ${JSON.stringify(body)}`;
}

// ---------------------------------------------------------------- documented 2xx bodies

const RESPONSE_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'anyOf',
  'enum',
  'pattern',
  'format',
  'description',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
]);

const typeOf = (value: unknown): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'array'
      : typeof value === 'number' && Number.isInteger(value)
        ? 'integer'
        : typeof value;

/**
 * Where the value breaks the (OpenAPI 3.1 / JSON Schema) response schema, or undefined. Only the
 * keywords the app's response schemas use; any other throws, so it is never silently skipped.
 */
export function schemaProblem(schema: Schema, value: unknown, where = '$'): string | undefined {
  for (const keyword of Object.keys(schema)) {
    if (!RESPONSE_KEYWORDS.has(keyword))
      throw new Error(`response schema keyword "${keyword}" at ${where} is not checked`);
  }
  if (schema.anyOf) {
    const problems = (schema.anyOf as Schema[]).map((branch) => schemaProblem(branch, value, where));
    return problems.every(Boolean) ? problems.join(' / ') : undefined;
  }
  if (schema.enum && !(schema.enum as unknown[]).some((option) => JSON.stringify(option) === JSON.stringify(value))) {
    return `${where}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`;
  }
  if (schema.type !== undefined) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = typeOf(value);
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) {
      return `${where}: a ${actual}, not ${types.join('|')}`;
    }
  }
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value))
      return `${where}: ${JSON.stringify(value)} !~ ${schema.pattern}`;
    if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) return `${where}: not a date-time`;
    if (schema.minLength !== undefined && value.length < schema.minLength) return `${where}: too short`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `${where}: too long`;
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${where}: below the minimum`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${where}: above the maximum`;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return `${where}: too few items`;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${where}: too many items`;
    if (schema.items) {
      for (const [index, item] of value.entries()) {
        const problem = schemaProblem(schema.items, item, `${where}[${index}]`);
        if (problem) return problem;
      }
    }
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    for (const name of (schema.required ?? []) as string[]) {
      if (!(name in object)) return `${where}: ${name} is missing`;
    }
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const [name, child] of Object.entries(object)) {
      const property = properties[name];
      if (property) {
        const problem = schemaProblem(property, child, `${where}.${name}`);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return `${where}: ${name} is not documented`;
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- the database checksum

/** Per table: its row count and the newest row version (see checksummer). */
export type Checksum = Map<string, string>;

export async function tablesOf(db: Db): Promise<string[]> {
  const result = await db.execute(
    sql`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
  );
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { name: string }[];
  return rows.map((row) => row.name);
}

/**
 * One statement over every table: `count:max(xmin)`. The fuzz sends one request at a time, so
 * every committed INSERT or UPDATE writes a row version whose xmin is a transaction id newer
 * than every existing row's, and a DELETE
 * lowers the count unless the same transaction inserts (which raises the max), so the pair
 * changes exactly when the table's committed rows do, like an md5 of the rows' text, at a sixth
 * of its cost on PGlite (6 ms against 36 ms with a thousand keys). Row locks (FOR UPDATE) set
 * xmax, not xmin: a read that locks writes nothing, and is not counted as a write.
 */
export function checksummer(db: Db, tables: string[]) {
  const statement = sql.raw(
    tables
      .map(
        (table) =>
          `select '${table}' as name, count(*) || ':' || coalesce(max(xmin::text::bigint), 0) as sum from "${table}"`,
      )
      .join(' union all '),
  );
  return async (): Promise<Checksum> => {
    const result = await db.execute(statement);
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
      name: string;
      sum: string;
    }[];
    return new Map(rows.map((row) => [row.name, row.sum]));
  };
}

/** The tables whose checksum differs. */
export function changedTables(before: Checksum, after: Checksum): string[] {
  return [...after.keys()].filter((table) => before.get(table) !== after.get(table));
}
