import type { Db } from './client.js';

/**
 * A statement built once per database instance (drizzle's `.prepare()`): hot queries skip
 * drizzle's query building on every request, and PostgreSQL keeps their plans.
 */
export function preparedOnce<T>(build: (db: Db) => T): (db: Db) => T {
  const statements = new WeakMap<Db, T>();
  return (db) => {
    let statement = statements.get(db);
    if (statement === undefined) {
      statement = build(db);
      statements.set(db, statement);
    }
    return statement;
  };
}

interface Preparable<T> {
  prepare(name: string): { execute(): Promise<T> };
}

/**
 * Runs a query of fixed shape as a named statement that the connection keeps: inside a
 * transaction (where `preparedOnce` does not apply) the hot path's queries skip PostgreSQL's
 * describe round trip on every execution after the first.
 */
export const executePrepared = <T>(query: Preparable<T>, name: string): Promise<T> => query.prepare(name).execute();
