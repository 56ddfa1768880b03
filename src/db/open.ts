import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { type Database, openPostgres } from './client.js';
import { migratePostgresDatabase } from './migrate.js';

/**
 * Opens the configured database and brings its schema up to date: PostgreSQL when
 * DATABASE_URL is set (migrations under an advisory lock), else embedded PGlite in DATA_DIR
 * (its module loaded only then).
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolSize'> &
    Partial<Pick<Config, 'requestTimeoutMs' | 'pgliteFsync'>>,
): Promise<Database> {
  if (config.databaseUrl) {
    await migratePostgresDatabase(config.databaseUrl);
    return openPostgres({ url: config.databaseUrl, poolSize: config.dbPoolSize, timeoutMs: config.requestTimeoutMs });
  }
  const { openPglite, migratePgliteDatabase } = await import('./pglite.js');
  const database = await openPglite({ dataDir: resolve(config.dataDir), fsync: config.pgliteFsync });
  try {
    await migratePgliteDatabase(database.client);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}
