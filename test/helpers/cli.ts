import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, inject } from 'vitest';
import { usingPostgres } from './app.js';

const BIN = fileURLToPath(new URL('../../bin/keymint-server.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `keymint-server <args>` as a real process, as a user would, with `env` over this
 * process's environment (logging silenced). Never rejects: a failed run has its exit code.
 */
export function runCli(args: string[], env: Record<string, string>, timeout = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      // The PostgreSQL test database holds every test's accounts: lists can be megabytes.
      { env: { ...process.env, LOG_LEVEL: 'silent', ...env }, timeout, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * The database the CLI runs of one test file use: on PGlite a data directory of the file's own
 * (one for the whole file: CLI runs are sequential, as its lock requires), a copy of the migrated
 * template made before its tests and removed after; on PostgreSQL the test database. `env` points a run (or a server) at it.
 */
export function useCliDataDir(prefix: string): { readonly env: Record<string, string> } {
  let root = '';
  let env: Record<string, string> = {};
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), prefix));
    if (usingPostgres) {
      env = {};
      return;
    }
    // A copy of the migrated template: a first run spares initdb in WASM (~5 s).
    cpSync(inject('pgliteTemplateDir'), join(root, 'data'), { recursive: true });
    env = { DATA_DIR: join(root, 'data') };
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return {
    get env() {
      return env;
    },
  };
}
