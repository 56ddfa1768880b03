import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { acquireDataDirLock, DataDirInUseError } from '../../db/data-dir-lock.js';
import { MIGRATIONS_FOLDER } from '../../db/migrate.js';
import { migratePgliteDatabase, openPglite } from '../../db/pglite.js';
import { BackupError, BackupFileError, type BackupHeader, decodeBackup, encodeBackup } from './archive.js';

export { BackupError };

/** The data-dir lock's pid file (src/db/data-dir-lock.ts): never part of a restored directory. */
const LOCK_FILE = 'keymint-server.pid';

const pgliteVersion = (() => {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const manifest = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
})();

/**
 * A consistent snapshot of a live PGlite database as a backup file. PGlite has one connection:
 * holding its transaction lock means no transaction is open, so the data directory (data files
 * and WAL, which PostgreSQL writes before it acknowledges a commit) is exactly the committed
 * state; the dump itself then runs under PGlite's query lock. Requests wait meanwhile.
 */
export async function backupPglite(client: PGlite): Promise<Buffer> {
  const info = await client.query<{ postgres: string; migrations: number; last: string | null }>(
    `select current_setting('server_version') as postgres,
            (select count(*)::int from drizzle.__drizzle_migrations) as migrations,
            (select max(created_at)::text from drizzle.__drizzle_migrations) as last`,
  );
  const row = info.rows[0]!;
  const createdAt = new Date().toISOString();
  const tarball = await client._runExclusiveTransaction(() => client.dumpDataDir('gzip'));
  return encodeBackup(
    {
      format: 'pglite-data-dir',
      createdAt,
      pglite: pgliteVersion,
      postgres: row.postgres,
      migrations: row.migrations,
      lastMigrationAt: row.last === null ? null : Number(row.last),
    },
    new Uint8Array(await tarball.arrayBuffer()),
  );
}

const hasDatabase = (dataDir: string) => existsSync(join(dataDir, 'PG_VERSION'));

/** Offline backup: opens DATA_DIR itself (its lock refuses while a server holds it). */
export async function backupDataDir(dataDir: string): Promise<Buffer> {
  if (!hasDatabase(dataDir)) throw new BackupError(`There is no embedded database in ${dataDir} (DATA_DIR)`);
  let database: Awaited<ReturnType<typeof openPglite>>;
  try {
    database = await openPglite({ dataDir });
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    throw new BackupError(
      `${err.message.split('. ')[0]}. Back it up through that server: ` +
        'keymint-server backup FILE --url http://HOST:PORT (with its ADMIN_TOKEN in the environment)',
    );
  }
  try {
    return await backupPglite(database.client);
  } finally {
    await database.close();
  }
}

const fsyncDir = (dir: string) => {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
};

/**
 * Writes `data` to `path` so that the path holds either the old file or the whole new one:
 * a temporary file in the same directory (mode 0600: a backup holds token hashes and the
 * signing keys), flushed to disk, then renamed over the path.
 */
export function writeFileAtomic(path: string, data: Uint8Array): void {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    for (let offset = 0; offset < data.byteLength; ) offset += writeSync(fd, data, offset);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

export interface RestoreResult {
  header: BackupHeader;
  /** Where the data that was in DATA_DIR went (with --force), if there was any. */
  movedAside: string | null;
}

const timestamp = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/**
 * Restores a backup file into DATA_DIR: checks the whole file first, loads it into a sibling
 * temporary directory, opens and migrates it there, and only then swaps it in by renaming. A
 * non-empty DATA_DIR is refused unless `force`; then it is renamed aside, never deleted.
 */
export async function restoreBackup(file: Buffer, dataDir: string, options: { force?: boolean } = {}) {
  const { header, tarball } = decodeBackup(file);
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as {
    entries: { when: number }[];
  };
  const latest = Math.max(...journal.entries.map((entry) => entry.when));
  if (header.lastMigrationAt !== null && header.lastMigrationAt > latest) {
    throw new BackupError(
      `The backup was made by a newer keymint-server (its schema has migrations this version does not know): ` +
        'restore it with that version or a later one',
    );
  }
  const existing = existsSync(dataDir) ? readdirSync(dataDir) : null;
  const occupied = existing !== null && existing.length > 0;
  if (occupied && !options.force) {
    throw new BackupError(
      `${dataDir} (DATA_DIR) is not empty. Restore into an empty or new directory, or pass --force ` +
        'to move the current data aside (it is kept, renamed) and restore in its place',
    );
  }
  // Taken before anything is written: a running server refuses the restore here.
  let lock: ReturnType<typeof acquireDataDirLock> | undefined;
  try {
    if (occupied) lock = acquireDataDirLock(dataDir);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    throw new BackupError(`${err.message.split('. ')[0]}. Stop it first: a restore replaces the database it serves`);
  }
  const temp = `${dataDir}.restore-${randomBytes(4).toString('hex')}`;
  try {
    await loadInto(temp, tarball, header);
    let movedAside: string | null = null;
    try {
      if (occupied) {
        movedAside = `${dataDir}.before-restore-${timestamp()}`;
        renameSync(dataDir, movedAside);
      }
      // Onto a missing or empty directory, the rename is atomic.
      renameSync(temp, dataDir);
    } catch (err) {
      if (movedAside && !existsSync(dataDir)) renameSync(movedAside, dataDir);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EBUSY' || code === 'EXDEV') {
        throw new BackupError(
          `Cannot rename ${dataDir} (DATA_DIR): it is a mount point or on another file system than its ` +
            'parent directory. Restore into a directory inside it, and point DATA_DIR there',
        );
      }
      throw err;
    }
    if (movedAside) rmSync(join(movedAside, LOCK_FILE), { force: true });
    fsyncDir(dirname(dataDir));
    return { header, movedAside } satisfies RestoreResult;
  } finally {
    rmSync(temp, { recursive: true, force: true });
    lock?.release();
  }
}

/** Loads the tarball into `dir` (a new directory), opens it, and brings its schema up to date. */
async function loadInto(dir: string, tarball: Buffer, header: BackupHeader) {
  let client: PGlite;
  try {
    client = await PGlite.create({
      dataDir: dir,
      loadDataDir: new Blob([new Uint8Array(tarball)], { type: 'application/x-gzip' }),
    });
  } catch (err) {
    throw new BackupFileError(
      `the database in it does not open (made with PGlite ${header.pglite}, PostgreSQL ${header.postgres}; ` +
        `this is PGlite ${pgliteVersion}): ${(err as Error).message}`,
    );
  }
  try {
    // The snapshot of a live server holds that server's lock file: it is no lock here.
    unlinkSync(join(dir, LOCK_FILE));
  } catch {
    // An offline backup has none.
  }
  try {
    await migratePgliteDatabase(client);
    await client.query('select count(*) from accounts');
  } finally {
    await client.close();
  }
}
