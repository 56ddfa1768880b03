import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

/*
 * How PGlite 0.5 writes to disk in Node (read from its dist/ and traced with strace):
 * - Its PostgreSQL runs with `-F` (fsync=off) among PGlite.defaultStartParams.
 * - The data directory is emscripten's NODEFS: every write is an fs.writeSync (pwrite64) on a
 *   real file descriptor, so a COMMIT's WAL record is in the OS page cache before the COMMIT
 *   returns. A killed process loses nothing; a power loss or kernel crash may.
 * - NODEFS has no `fsync` stream operation, so fsync() in PostgreSQL (emscripten's fd_sync) is
 *   a no-op, and fdatasync() (`__syscall_fdatasync`) is a no-op whatever the file system.
 *
 * Durable mode therefore (1) starts PostgreSQL without `-F` and with wal_sync_method=fsync (the
 * default, fdatasync, would reach the no-op) and (2) gives NODEFS an `fsync` operation that
 * calls fs.fsyncSync on the file's descriptor: every COMMIT fsyncs the WAL before it returns,
 * and checkpoints fsync the data files and directories, as PostgreSQL does on a real disk.
 */

/** NODEFS with an fsync stream operation; installed before PostgreSQL runs (a preRun hook). */
class DurableNodeFS extends NodeFS {
  override async init(...args: Parameters<NodeFS['init']>) {
    const result = await super.init(...args);
    const options = result.emscriptenOpts;
    options.preRun = [
      ...(options.preRun ?? []),
      (mod) => {
        const nodefs = mod.NODEFS as unknown as { stream_ops: Record<string, unknown> };
        nodefs.stream_ops.fsync = (stream: { nfd: number }) => {
          // Through the module object (not a named import) so that a test can count the calls.
          fs.fsyncSync(stream.nfd);
          return 0;
        };
      },
    ];
    return result;
  }
}

/** fsyncs every file and directory under `dir`, and `dir` itself. */
function syncTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) syncTree(path);
    else if (entry.isFile()) syncPath(path);
  }
  syncPath(dir);
}

function syncPath(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens the embedded database in `dataDir`. With `fsync`, a COMMIT returns once its WAL is on
 * stable storage; without it, once it is in the OS page cache (PGlite's default).
 */
export async function createPglite(dataDir: string, options: { fsync: boolean }): Promise<PGlite> {
  if (!options.fsync) return PGlite.create(dataDir);
  const fresh = !fs.existsSync(join(dataDir, 'PG_VERSION'));
  const client = await PGlite.create({
    fs: new DurableNodeFS(dataDir),
    startParams: [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync'],
  });
  // A new database is made by initdb in memory and copied in without any fsync: sync it once.
  if (fresh) {
    syncTree(dataDir);
    syncPath(dirname(dataDir));
  }
  return client;
}
