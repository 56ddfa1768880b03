import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { TestProject } from 'vitest/node';
import { migratePostgresDatabase } from '../../src/db/migrate.js';
import { migratePgliteDatabase } from '../../src/db/pglite.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplateDir: string;
  }
}

/**
 * Runs once per test run: migrates PostgreSQL (DATABASE_URL) or builds one migrated PGlite
 * template directory that every test file copies (initdb in WASM is too slow per file).
 */
export default async function setup(project: TestProject) {
  // The servers and CLI runs that tests spawn run bin/keymint-server.js, which runs the compiled
  // dist/ when it is up to date (else the sources through tsx, ~0.8 s and ~100 MB more a run).
  // A type error fails `npm run typecheck`, not the tests: tsc still emits, and bin checks dates.
  try {
    execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'ignore' });
  } catch {
    console.warn('npm run build failed: spawned servers and CLI runs use tsx');
  }
  if (process.env.DATABASE_URL) {
    await migratePostgresDatabase(process.env.DATABASE_URL);
    project.provide('pgliteTemplateDir', '');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'keymint-template-'));
  const template = await PGlite.create(join(dir, 'db'));
  await migratePgliteDatabase(template);
  await template.close();
  project.provide('pgliteTemplateDir', join(dir, 'db'));
  return () => rmSync(dir, { recursive: true, force: true });
}
