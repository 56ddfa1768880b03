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
