import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import type { Database } from '../../src/db/client.js';

/**
 * Holds the row lock of one license key (SELECT … FOR UPDATE in a transaction of its own) until
 * `release()`, so that requests that change the key wait. On PGlite, whose one connection runs a
 * transaction at a time, every query of the app waits.
 */
export async function holdKeyLock(database: Database, key: string): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  if (database.kind === 'pglite') {
    const client = (database as Database & { client: PGlite }).client;
    const done = client.transaction(async (tx) => {
      await tx.query('select id from license_keys where key = $1 for update', [key]);
      locked();
      await released;
    });
    await isLocked;
    return {
      async release() {
        release();
        await done;
      },
    };
  }
  const sql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  const done = sql.begin(async (tx) => {
    await tx`select id from license_keys where key = ${key} for update`;
    locked();
    await released;
  });
  await isLocked;
  return {
    async release() {
      release();
      await done;
      await sql.end({ timeout: 5 });
    },
  };
}
