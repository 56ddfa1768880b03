import { type SQL, sql } from 'drizzle-orm';

/** drizzle's `execute` answers postgres.js's row list or PGlite's `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

export type BulkType = 'text' | 'integer' | 'boolean' | 'timestamptz' | 'jsonb' | 'text[]';

/** A column of a bulk statement: its SQL name and type. */
export interface BulkColumn {
  name: string;
  type: BulkType;
}

/** A value as the text its column's cast reads (arrays as JSON, see `unnestRows`). */
function asText(value: unknown, type: BulkType): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (type === 'jsonb' || type === 'text[]') return JSON.stringify(value);
  return String(value);
}

/**
 * `select ... from unnest($1, $2, ...)`: many rows as one array parameter a column, whatever
 * their number. A multi-row VALUES list has a parameter a value, which drizzle builds one by one
 * (most of a bulk import's CPU) and PostgreSQL caps at 65,535. Every array travels as text[] and
 * is cast column by column (a text[] column as a JSON array: unnest cannot take ragged arrays).
 */
export function unnestRows(columns: readonly BulkColumn[], rows: readonly (readonly unknown[])[]): SQL {
  const arrays = columns.map(
    (column, index) => sql`cast(${sql.param(rows.map((row) => asText(row[index], column.type)))} as text[])`,
  );
  const names = columns.map((column) => sql.identifier(column.name));
  const read = columns.map((column) => {
    const value = sql`v.${sql.identifier(column.name)}`;
    if (column.type === 'text') return value;
    if (column.type === 'text[]') {
      return sql`case when ${value} is null then null else array(select jsonb_array_elements_text(cast(${value} as jsonb))) end`;
    }
    return sql`cast(${value} as ${sql.raw(column.type)})`;
  });
  return sql`select ${sql.join(read, sql`, `)} from unnest(${sql.join(arrays, sql`, `)}) as v(${sql.join(names, sql`, `)})`;
}

/** The column list of an insert fed by `unnestRows`. */
export const columnList = (columns: readonly BulkColumn[]) =>
  sql`(${sql.join(
    columns.map((column) => sql.identifier(column.name)),
    sql`, `,
  )})`;

/** A text[] parameter (one bound value, whatever the length): `= any(...)`, a join on `unnest`. */
export const textArray = (values: readonly string[]) => sql`cast(${sql.param(values)} as text[])`;
