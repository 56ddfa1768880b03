import { createHash } from 'node:crypto';

/**
 * A backup file: one line naming the format, one line of JSON describing the snapshot, then the
 * PGlite data-directory tarball (gzip) itself. The header carries the tarball's length and
 * SHA-256, so a truncated or altered file is refused before anything is restored.
 */
const MAGIC = 'KEYMINT-SERVER-BACKUP 1\n';
const MAX_HEADER_BYTES = 64 * 1024;

export interface BackupHeader {
  format: 'pglite-data-dir';
  /** When the snapshot was taken (ISO 8601). */
  createdAt: string;
  /** The PGlite package that made it, and its PostgreSQL (`server_version`). */
  pglite: string;
  postgres: string;
  /** Migrations applied in the snapshot, and the latest one's `created_at` (drizzle's journal `when`). */
  migrations: number;
  lastMigrationAt: number | null;
  /** The tarball that follows the header: its length and SHA-256 (hex). */
  bytes: number;
  sha256: string;
}

/** A backup or restore that cannot be done as asked; the message tells the operator what to do. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

/** A file that is not a backup this server can restore; the message says why. */
export class BackupFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupFileError';
  }
}

export function encodeBackup(header: Omit<BackupHeader, 'bytes' | 'sha256'>, tarball: Uint8Array): Buffer {
  const full: BackupHeader = {
    ...header,
    bytes: tarball.byteLength,
    sha256: createHash('sha256').update(tarball).digest('hex'),
  };
  return Buffer.concat([Buffer.from(`${MAGIC}${JSON.stringify(full)}\n`), tarball]);
}

const isHeader = (value: unknown): value is BackupHeader => {
  const header = value as Partial<BackupHeader> | null;
  return (
    typeof header === 'object' &&
    header !== null &&
    header.format === 'pglite-data-dir' &&
    typeof header.createdAt === 'string' &&
    typeof header.pglite === 'string' &&
    typeof header.postgres === 'string' &&
    Number.isInteger(header.migrations) &&
    Number.isInteger(header.bytes) &&
    typeof header.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(header.sha256)
  );
};

/** Checks a whole backup file and returns its header and tarball; throws BackupFileError. */
export function decodeBackup(file: Buffer): { header: BackupHeader; tarball: Buffer } {
  if (file.length === 0) throw new BackupFileError('the file is empty');
  const magic = Buffer.from(MAGIC);
  if (file.length < magic.length && magic.subarray(0, file.length).equals(file)) {
    throw new BackupFileError('the file is truncated (it ends inside the header)');
  }
  if (!file.subarray(0, magic.length).equals(magic)) {
    throw new BackupFileError('not a keymint-server backup (no KEYMINT-SERVER-BACKUP header)');
  }
  const end = file.indexOf(0x0a, magic.length);
  if (end === -1) {
    throw new BackupFileError(
      file.length - magic.length > MAX_HEADER_BYTES
        ? 'not a keymint-server backup (its header is not valid)'
        : 'the file is truncated (it ends inside the header)',
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(file.subarray(magic.length, end).toString('utf8'));
  } catch {
    throw new BackupFileError('not a keymint-server backup (its header is not valid JSON)');
  }
  if (!isHeader(header)) throw new BackupFileError('not a keymint-server backup (its header is not valid)');
  const tarball = file.subarray(end + 1);
  if (tarball.length < header.bytes) {
    throw new BackupFileError(
      `the file is truncated: the database part has ${tarball.length} of its ${header.bytes} bytes`,
    );
  }
  if (tarball.length > header.bytes) {
    throw new BackupFileError(`the file has ${tarball.length - header.bytes} bytes after the end of the backup`);
  }
  if (createHash('sha256').update(tarball).digest('hex') !== header.sha256) {
    throw new BackupFileError('the file is damaged: its checksum (SHA-256) does not match');
  }
  return { header, tarball };
}
