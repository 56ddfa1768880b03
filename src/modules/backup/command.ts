import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../../config.js';
import { BackupError, BackupFileError, decodeBackup } from './archive.js';
import { downloadBackup } from './remote.js';

export interface CommandOutput {
  human: string;
  json: unknown;
}

/** The embedded database's side, loaded when a command needs it (it loads PGlite). */
const embedded = () => import('./embedded.js');

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** `keymint-server backup FILE [--url URL]`: online through a server, or offline from DATA_DIR. */
export async function backupCommand(config: Config, file: string, url: string | undefined): Promise<CommandOutput> {
  const started = Date.now();
  let data: Buffer;
  if (url !== undefined) {
    data = await downloadBackup(url, config.adminToken);
  } else if (config.databaseUrl) {
    throw new BackupError('DATABASE_URL is set: back up PostgreSQL with pg_dump (see the README, "Backups")');
  } else {
    const { backupDataDir } = await embedded();
    data = await backupDataDir(resolve(config.dataDir));
  }
  const path = resolve(file);
  (await embedded()).writeFileAtomic(path, data);
  const { header } = decodeBackup(data);
  const seconds = (Date.now() - started) / 1000;
  return {
    human:
      `Backed up the embedded database (${url === undefined ? resolve(config.dataDir) : url}) to ${path}: ` +
      `${megabytes(data.length)} in ${seconds.toFixed(1)} s (PostgreSQL ${header.postgres}, ${header.migrations} migrations)`,
    json: { file: path, size: data.length, seconds, source: url ?? resolve(config.dataDir), header },
  };
}

/** `keymint-server restore FILE [--force]`: into DATA_DIR, with the server stopped. */
export async function restoreCommand(config: Config, file: string, force: boolean): Promise<CommandOutput> {
  if (config.databaseUrl) {
    throw new BackupError('DATABASE_URL is set: restore PostgreSQL with pg_restore (see the README, "Backups")');
  }
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new BackupError(`Cannot read ${file}: ${(err as Error).message}`);
  }
  const dataDir = resolve(config.dataDir);
  try {
    const { restoreBackup } = await embedded();
    const { header, movedAside } = await restoreBackup(data, dataDir, { force });
    return {
      human:
        `Restored ${file} (taken ${header.createdAt}) into ${dataDir}` +
        (movedAside ? `; the data that was there is now in ${movedAside}` : ''),
      json: { file: resolve(file), dataDir, movedAside, header },
    };
  } catch (err) {
    if (err instanceof BackupFileError) throw new BackupError(`Cannot restore ${file}: ${err.message}`);
    throw err;
  }
}
