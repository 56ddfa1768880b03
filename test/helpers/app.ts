import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, inject } from 'vitest';
import { createFreshDatabase } from '../../scripts/server-process.js';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { type Database, openPostgres } from '../../src/db/client.js';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { openPglite } from '../../src/db/pglite.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export const usingPostgres = Boolean(process.env.DATABASE_URL);

export interface TestApp {
  app: FastifyInstance;
  database: Database;
  config: Config;
  close(): Promise<void>;
}

/**
 * The configuration of a test app. No webhook worker unless `env` asks for one: on PostgreSQL
 * every test file shares one database, and a worker would deliver the other files' webhooks.
 * No event-loop-delay shedding unless asked for (test/http/admission.test.ts): a test process
 * stalls its event loop for seconds creating PGlite databases, which reads as an overloaded server.
 */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    LOG_LEVEL: 'silent',
    ADMIN_TOKEN,
    WEBHOOKS_WORKER: 'false',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...env,
  });
}

/** A database for one test file: a copy of the migrated PGlite template, or PostgreSQL. */
export async function openTestDatabase(): Promise<Database & { cleanup?: () => void }> {
  if (process.env.DATABASE_URL) return openPostgres({ url: process.env.DATABASE_URL, poolSize: 10 });
  const dir = mkdtempSync(join(tmpdir(), 'keymint-test-'));
  cpSync(inject('pgliteTemplateDir'), dir, { recursive: true });
  const database = await openPglite({ instance: await PGlite.create(dir) });
  return {
    ...database,
    async close() {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A database of the test's own, for tests whose state is server-wide (signing keys, SECRET_KEY,
 * the webhook worker): on PostgreSQL every test file otherwise shares one database. PGlite: a
 * fresh copy of the migrated template; PostgreSQL: a new database, dropped by `close()`.
 */
export async function openIsolatedDatabase(): Promise<Database & { url?: string }> {
  if (!usingPostgres) return openTestDatabase();
  const fresh = await createFreshDatabase();
  await migratePostgresDatabase(fresh.url);
  const database = openPostgres({ url: fresh.url, poolSize: 5 });
  return {
    ...database,
    url: fresh.url,
    async close() {
      await database.close();
      await fresh.drop();
    },
  };
}

export interface TestAppOptions {
  /** A database of the app's own (openIsolatedDatabase); required to run the webhook worker. */
  ownDatabase?: boolean;
}

/** Builds the app on a fresh test database; `env` overrides configuration variables. */
export async function createTestApp(env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const config = testConfig(env);
  if (config.webhooks.worker && usingPostgres && !options.ownDatabase) {
    throw new Error(
      "createTestApp: a webhook worker needs { ownDatabase: true } (the shared database has every file's deliveries)",
    );
  }
  const database = options.ownDatabase ? await openIsolatedDatabase() : await openTestDatabase();
  const app = await buildApp({ config, database });
  await app.ready();
  return {
    app,
    database,
    config,
    async close() {
      await app.close();
      await database.close();
    },
  };
}

/**
 * The app of one test file (or describe block): built before its tests, closed after them.
 * Call it at the top of the file or describe body.
 */
export function useTestApp(env: Record<string, string> = {}, options: TestAppOptions = {}): TestApp {
  let current: TestApp | undefined;
  beforeAll(async () => {
    current = await createTestApp(env, options);
  });
  afterAll(async () => current?.close());
  const started = (): TestApp => {
    if (!current) throw new Error('useTestApp: the app is built in beforeAll; use it inside tests and hooks');
    return current;
  };
  return {
    get app() {
      return started().app;
    },
    get database() {
      return started().database;
    },
    get config() {
      return started().config;
    },
    close: () => started().close(),
  };
}
