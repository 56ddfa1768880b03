import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { acquireDataDirLock, DataDirInUseError, processIdentity } from '../../src/db/data-dir-lock.js';
import { runCli } from '../helpers/cli.js';

const onLinux = process.platform === 'linux';

/** A live process other than this one (a pid the lock must respect, or judge reused). */
function spawnSleeper(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child));
    child.once('error', reject);
  });
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

// Embedded-database only: the PGlite pass runs it; the PostgreSQL pass (DATABASE_URL) would repeat it.
describe.skipIf(Boolean(process.env.DATABASE_URL))('the embedded data-directory lock', () => {
  let dir: string;
  let sleeper: ChildProcess;
  const lockFile = () => join(dir, 'keymint-server.pid');
  const writeLock = (text: string) => writeFileSync(lockFile(), text);

  beforeAll(async () => {
    sleeper = await spawnSleeper();
  });
  afterAll(() => {
    sleeper.kill();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keymint-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('records the pid with its boot and start time, and removes the file on release', () => {
    const lock = acquireDataDirLock(dir);
    const identity = processIdentity(process.pid);
    expect(lock.takenOverFrom).toBeUndefined();
    expect(readFileSync(lockFile(), 'utf8')).toBe(
      `${process.pid}\n${identity ? `${identity.bootId} ${identity.startTime}\n` : ''}`,
    );
    lock.release();
    expect(existsSync(lockFile())).toBe(false);
  });

  it.runIf(onLinux)('reads the identity of a process from /proc', () => {
    const mine = processIdentity(process.pid)!;
    const other = processIdentity(sleeper.pid!)!;
    expect(mine.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(mine.startTime).toMatch(/^[0-9]+$/);
    expect(other.bootId).toBe(mine.bootId);
    expect(Number(other.startTime)).toBeGreaterThanOrEqual(Number(mine.startTime));
  });

  it('refuses a directory this process holds already', () => {
    const lock = acquireDataDirLock(dir);
    expect(() => acquireDataDirLock(dir)).toThrow(DataDirInUseError);
    lock.release();
  });

  it.runIf(onLinux)('refuses a directory held by another live process, naming its pid', () => {
    const { bootId, startTime } = processIdentity(sleeper.pid!)!;
    writeLock(`${sleeper.pid}\n${bootId} ${startTime}\n`);
    expect(() => acquireDataDirLock(dir)).toThrow(new DataDirInUseError(dir, sleeper.pid!).message);
    expect(readFileSync(lockFile(), 'utf8').split('\n')[0]).toBe(String(sleeper.pid));
  });

  it('takes over the lock of a process that is not running, and says so', async () => {
    const pid = await deadPid();
    writeLock(`${pid}\n${processIdentity(process.pid)?.bootId ?? 'boot'} 1\n`);
    const lock = acquireDataDirLock(dir);
    expect(lock.takenOverFrom).toEqual({ pid, reason: 'not running' });
    expect(readFileSync(lockFile(), 'utf8').split('\n')[0]).toBe(String(process.pid));
    lock.release();
  });

  it.runIf(onLinux)('takes over a lock whose pid now belongs to another process (pid reuse)', () => {
    const { bootId, startTime } = processIdentity(sleeper.pid!)!;
    writeLock(`${sleeper.pid}\n${bootId} ${Number(startTime) - 1}\n`);
    const lock = acquireDataDirLock(dir);
    expect(lock.takenOverFrom).toEqual({ pid: sleeper.pid, reason: 'pid reused' });
    lock.release();
  });

  it.runIf(onLinux)('takes over a lock of an earlier process with this pid (a container restarted)', () => {
    const { bootId, startTime } = processIdentity(process.pid)!;
    writeLock(`${process.pid}\n${bootId} ${Number(startTime) - 1}\n`);
    const lock = acquireDataDirLock(dir);
    expect(lock.takenOverFrom).toEqual({ pid: process.pid, reason: 'pid reused' });
    lock.release();
  });

  it.runIf(onLinux)('takes over a lock written before the last reboot, whatever runs with its pid now', () => {
    const { startTime } = processIdentity(sleeper.pid!)!;
    writeLock(`${sleeper.pid}\n00000000-0000-0000-0000-000000000000 ${startTime}\n`);
    const lock = acquireDataDirLock(dir);
    expect(lock.takenOverFrom).toEqual({ pid: sleeper.pid, reason: 'rebooted since' });
    lock.release();
  });

  it('a lock file of the pid-only format: respected while its process runs, taken over after', async () => {
    writeLock(String(sleeper.pid));
    expect(() => acquireDataDirLock(dir)).toThrow(DataDirInUseError);
    const pid = await deadPid();
    writeLock(String(pid));
    const lock = acquireDataDirLock(dir);
    expect(lock.takenOverFrom).toEqual({ pid, reason: 'not running' });
    lock.release();
  });

  it('the command line warns when it takes over a stale lock', async () => {
    const pid = await deadPid();
    // A migrated database (the suite's template), as a killed server leaves it.
    cpSync(inject('pgliteTemplateDir'), dir, { recursive: true });
    writeLock(`${pid}\n`);
    const run = await runCli(['accounts', 'list', '--json'], { DATABASE_URL: '', DATA_DIR: dir });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(
      `keymint-server: warning: Took over the embedded database's lock from pid ${pid} (not running): ` +
        'that process stopped without closing the database; PostgreSQL recovery replays its WAL\n',
    );
    expect(JSON.parse(run.stdout).map((account: { name: string }) => account.name)).toEqual(['Default']);
    expect(existsSync(lockFile())).toBe(false);
  }, 60_000);
});
