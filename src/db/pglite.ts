import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { Database, Db } from './client.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { MIGRATIONS_FOLDER } from './migrate.js';
import { createPglite } from './pglite-durability.js';
import * as schema from './schema/index.js';

/**
 * The embedded database (PGlite, PostgreSQL compiled to WASM). A module of its own, imported only
 * when it is used: a server on PostgreSQL never loads PGlite.
 */

export interface PgliteOptions {
  /** Directory of the embedded database; omitted = in memory. */
  dataDir?: string;
  /** An already open instance (tests clone a migrated template). */
  instance?: PGlite;
  /** fsync the WAL on every commit (PGLITE_FSYNC); default true. */
  fsync?: boolean;
}

export async function openPglite(options: PgliteOptions): Promise<Database & { client: PGlite }> {
  let lock: DataDirLock | undefined;
  let client = options.instance;
  if (!client) {
    if (options.dataDir) lock = acquireDataDirLock(options.dataDir);
    try {
      client = options.dataDir
        ? await createPglite(options.dataDir, { fsync: options.fsync ?? true })
        : await PGlite.create();
    } catch (err) {
      lock?.release();
      throw err;
    }
  }
  const pglite = client;
  const db = drizzlePglite(pglite, { schema, casing: 'snake_case' }) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    client: pglite,
    lockTakenOverFrom: lock?.takenOverFrom,
    async ping() {
      await db.execute(sql`select 1`);
    },
    async close() {
      try {
        if (!pglite.closed) await pglite.close();
      } finally {
        lock?.release();
      }
    },
    poolStats() {
      // One embedded connection, open while the database is.
      return { size: pglite.closed ? 0 : 1, max: 1 };
    },
    // One process, one connection: listening never stops while the database is open.
    async listen(channel, listener) {
      const unlisten = await pglite.listen(channel, (payload) => listener.notify(payload));
      listener.up();
      return async () => {
        listener.down();
        if (!pglite.closed) await unlisten();
      };
    },
  };
}

/** PGlite is single-process (the data-dir lock guards it), so no advisory lock is needed. */
export async function migratePgliteDatabase(client: PGlite): Promise<void> {
  await migratePglite(drizzlePglite(client), { migrationsFolder: MIGRATIONS_FOLDER });
}
