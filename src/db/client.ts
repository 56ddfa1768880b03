import { connect, type Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { StaleLock } from './data-dir-lock.js';
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
  /**
   * LISTENs on `channel` (PostgreSQL's NOTIFY, delivered when the notifying transaction commits)
   * until the returned function stops it. Never throws: while no connection listens, the
   * listener is told `down()` and the connection is retried.
   */
  listen(channel: string, listener: NotificationListener): Promise<() => Promise<void>>;
}

/** What a LISTEN tells its listener; `up` and `down` may repeat. */
export interface NotificationListener {
  /** A notification's payload. */
  notify(payload: string): void;
  /** Listening: every notification committed from now on arrives. */
  up(): void;
  /** Not listening: notifications committed from now on may be lost until the next `up()`. */
  down(): void;
}

export interface PostgresOptions {
  url: string;
  poolSize?: number;
  /**
   * Bounds every wait on the server (default 10 s): connecting, and each statement
   * (statement_timeout, lock waits included). A transaction left idle this long (plus 5 s) by a
   * client that stopped is ended by the server (idle_in_transaction_session_timeout).
   */
  timeoutMs?: number;
}

interface SocketOptions {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * postgres.js exposes no pool counters, so the pool's sockets are opened here (its `socket`
 * option) and counted while connected. The socket is handed over at once, still connecting:
 * postgres.js buffers its first bytes, times the connection out itself (connect_timeout), and
 * learns of a failure from the socket's 'error' and 'close' events, which put the connection
 * back in its pool. (Rejecting instead would leave that pool slot stuck in "connecting" for
 * good: after a few failed connects, the server would never reach the database again.) Hosts of
 * a multi-host URL are tried in turn, moving on after a failed connect; TLS, when configured, is
 * negotiated by postgres.js on the socket.
 */
function countedSockets(counter: { open: number }) {
  let next = 0;
  return (options: SocketOptions): Socket => {
    const hosts = options.path ? 1 : Math.max(options.host.length, 1);
    const index = next % hosts;
    const socket = options.path
      ? connect(options.path)
      : connect({ host: options.host[index] ?? 'localhost', port: options.port[index] ?? 5432 });
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      counter.open++;
    });
    socket.once('close', () => {
      if (connected) counter.open--;
      else next = index + 1;
    });
    return socket;
  };
}

/**
 * Queries built with drizzle's `.prepare()` run as named statements that each connection keeps
 * (the hot paths); every other query is an unnamed statement, so statements of variable shape
 * (a bulk insert of 1–1000 keys) never pile up in a connection's statement cache.
 */
export function openPostgres(options: PostgresOptions): Database {
  const max = options.poolSize ?? 10;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const counter = { open: 0 };
  const client = postgres(options.url, {
    max,
    onnotice: () => {},
    connect_timeout: Math.ceil(timeoutMs / 1000),
    // Reconnect delay after failed connections, in seconds: postgres.js's own grows to 20 s,
    // so a server would go on refusing requests long after PostgreSQL came back. At most ~1 s.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1),
    connection: {
      application_name: 'keymint-server',
      // Timestamps come back as text that JavaScript parses; in a zone other than UTC, PostgreSQL
      // writes old dates with a local-mean-time offset (+00:19:32) that Date cannot read.
      TimeZone: 'UTC',
      statement_timeout: timeoutMs,
      idle_in_transaction_session_timeout: timeoutMs + 5000,
    },
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
    listen: (channel, listener) => listenPostgres(options.url, timeoutMs, channel, listener),
  };
}

const RELISTEN_DELAY_MS = 1000;

/**
 * LISTEN on a connection of its own (outside the pool, which would hand it to queries). When it
 * closes — PostgreSQL restarted, the network dropped it — the listener is told `down()` at once
 * and the LISTEN is issued again (postgres.js reconnects for it) until it succeeds: `up()`.
 */
async function listenPostgres(
  url: string,
  timeoutMs: number,
  channel: string,
  listener: NotificationListener,
): Promise<() => Promise<void>> {
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const schedule = (delayMs: number) => {
    if (stopped || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void attempt();
    }, delayMs);
  };
  const client = postgres(url, {
    max: 1,
    max_lifetime: null,
    onnotice: () => {},
    connect_timeout: Math.ceil(timeoutMs / 1000),
    // Named with the pid: an operator (or a test) can tell the processes' listeners apart.
    connection: { application_name: `keymint-server listener ${process.pid}` },
    onclose: () => {
      listener.down();
      schedule(0);
    },
    // Untyped in postgres.js: every notification of the connection (its listen() hides onclose).
    ...({
      onnotify: (from: string, payload: string) => {
        if (from === channel) listener.notify(payload);
      },
    } as object),
  });
  const attempt = async () => {
    try {
      await client.unsafe(`listen "${channel.replaceAll('"', '""')}"`);
      if (!stopped) listener.up();
    } catch {
      listener.down();
      schedule(RELISTEN_DELAY_MS);
    }
  };
  await attempt();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    listener.down();
    await client.end({ timeout: 1 });
  };
}
