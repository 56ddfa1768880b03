import fs, { cpSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { openPglite } from '../../src/db/pglite.js';

const onLinux = process.platform === 'linux';

/** The files fs.fsyncSync is called on while `fn` runs (their paths, through /proc/self/fd). */
async function fsyncedDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const original = fs.fsyncSync;
  const paths: string[] = [];
  const spy = vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
    paths.push(onLinux ? readlinkSync(`/proc/self/fd/${fd}`) : String(fd));
    original(fd);
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return paths;
}

// Embedded-database only: the PGlite pass runs it; the PostgreSQL pass (DATABASE_URL) would repeat it.
describe.skipIf(Boolean(process.env.DATABASE_URL))('durability of the embedded database (PGLITE_FSYNC)', () => {
  const dirs: string[] = [];
  /** A copy of the suite's migrated template: an existing data directory, as at a restart. */
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'keymint-fsync-'));
    dirs.push(dir);
    cpSync(inject('pgliteTemplateDir'), dir, { recursive: true });
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('on (the default): each COMMIT fsyncs the WAL before it returns', async () => {
    const database = await openPglite({ dataDir: dataDir() });
    try {
      const settings = await database.client.query<{ name: string; setting: string }>(
        "select name, setting from pg_settings where name in ('fsync', 'wal_sync_method', 'synchronous_commit') order by name",
      );
      expect(settings.rows).toEqual([
        { name: 'fsync', setting: 'on' },
        { name: 'synchronous_commit', setting: 'on' },
        { name: 'wal_sync_method', setting: 'fsync' },
      ]);
      await database.client.query('create table durability_probe (id int primary key)');
      for (let i = 0; i < 3; i++) {
        const synced = await fsyncedDuring(() =>
          database.client.query('insert into durability_probe values ($1)', [i]),
        );
        expect(synced).toHaveLength(1);
        if (onLinux) expect(synced[0]).toMatch(/\/pg_wal\/[0-9A-F]{24}$/);
      }
      // A transaction of several statements: one fsync, at its COMMIT.
      const transaction = await fsyncedDuring(() =>
        database.client.transaction(async (tx) => {
          await tx.query('insert into durability_probe values (10)');
          await tx.query('insert into durability_probe values (11)');
        }),
      );
      expect(transaction).toHaveLength(1);
      // A read-only statement writes no WAL and syncs nothing.
      expect(await fsyncedDuring(() => database.client.query('select count(*) from durability_probe'))).toEqual([]);
    } finally {
      await database.close();
    }
  });

  it('on: closing checkpoints, and the checkpoint fsyncs the data files it wrote', async () => {
    const database = await openPglite({ dataDir: dataDir() });
    await database.client.query('create table durability_probe (id int primary key)');
    await database.client.query('insert into durability_probe select generate_series(1, 1000)');
    const synced = await fsyncedDuring(() => database.close());
    expect(synced.length).toBeGreaterThan(1);
    if (onLinux) {
      expect(
        synced.some((path) => /\/base\/[0-9]+\/[0-9]+$/.test(path)),
        synced.join('\n'),
      ).toBe(true);
      expect(
        synced.some((path) => path.endsWith('/global/pg_control')),
        synced.join('\n'),
      ).toBe(true);
    }
  });

  it('off: PGlite as shipped (fsync=off); commits reach the OS, nothing is fsynced', async () => {
    const database = await openPglite({ dataDir: dataDir(), fsync: false });
    try {
      const fsync = await database.client.query<{ fsync: string }>('show fsync');
      expect(fsync.rows).toEqual([{ fsync: 'off' }]);
      await database.client.query('create table durability_probe (id int primary key)');
      expect(await fsyncedDuring(() => database.client.query('insert into durability_probe values (1)'))).toEqual([]);
    } finally {
      await database.close();
    }
  });
});
