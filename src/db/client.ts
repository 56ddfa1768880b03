import { connect, type Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { acquireDataDirLock, type DataDirLock, type StaleLock } from './data-dir-lock.js';
import { createPglite } from './pglite-durability.js';
import * as schema from './schema/index.js';

export type Schema = typeof schema;
/** Either driver's database; transactions (PgTransaction) are assignable to it too. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface PoolStats {
  /** Connections open now. */
  size: number;
  /** Connections the pool may open. */
  max: number;
}

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly db: Db;
  ping(): Promise<void>;
  close(): Promise<void>;
  poolStats(): PoolStats;
  /** Embedded database: the data-directory lock was left by a process that is gone (log it). */
  readonly lockTakenOverFrom?: StaleLock;
}

export interface PostgresOptions {
  url: string;
  poolSize?: number;
}

interface SocketOptions {
  host: string[];
  port: number[];
  path?: string | false;
  connect_timeout?: number;
}

/**
 * postgres.js exposes no pool counters, so the pool's sockets are opened here (its `socket`
 * option) and counted while open. Hosts of a multi-host URL are tried in order; TLS, when
 * configured, is negotiated by postgres.js on the connected socket.
 */
function countedSockets(counter: { open: number }) {
  const open = (options: SocketOptions, index: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = options.path
        ? connect(options.path)
        : connect({ host: options.host[index] ?? 'localhost', port: options.port[index] ?? 5432 });
      const timer = setTimeout(
        () => socket.destroy(new Error('connect timeout')),
        (options.connect_timeout ?? 30) * 1000,
      );
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', reject);
        counter.open++;
        socket.once('close', () => counter.open--);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  return async (options: SocketOptions): Promise<Socket> => {
    const hosts = options.path ? 1 : Math.max(options.host.length, 1);
    for (let index = 0; ; index++) {
      try {
        return await open(options, index);
      } catch (err) {
        if (index + 1 >= hosts) throw err;
      }
    }
  };
}

/**
 * Queries built with drizzle's `.prepare()` run as named statements that each connection keeps
 * (the hot paths); every other query is an unnamed statement, so statements of variable shape
 * (a bulk insert of 1–1000 keys) never pile up in a connection's statement cache.
 */
export function openPostgres(options: PostgresOptions): Database {
  const max = options.poolSize ?? 10;
  const counter = { open: 0 };
  const client = postgres(options.url, {
    max,
    onnotice: () => {},
    // Timestamps come back as text that JavaScript parses; in a zone other than UTC, PostgreSQL
    // writes old dates with a local-mean-time offset (+00:19:32) that Date cannot read.
    connection: { application_name: 'keymint-server', TimeZone: 'UTC' },
    ...({ socket: countedSockets(counter) } as object),
  });
  const db = drizzlePostgres(client, { schema, casing: 'snake_case' }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    async ping() {
      await db.execute(sql`select 1`);
    },
    async close() {
      await client.end({ timeout: 5 });
    },
    poolStats() {
      return { size: counter.open, max };
    },
  };
}

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
  };
}
