import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `The embedded database in ${dataDir} is in use by a running keymint-server (pid ${pid}). ` +
        'Stop that server first, or use the admin API (/admin/...) while it runs.',
    );
    this.name = 'DataDirInUseError';
  }
}

/** The owner of a lock file that was taken over, and why it was judged gone. */
export interface StaleLock {
  pid: number;
  reason: 'not running' | 'pid reused' | 'rebooted since';
}

/** The log line of a takeover: the previous process stopped without closing the database. */
export function staleLockMessage(stale: StaleLock): string {
  return `Took over the embedded database's lock from pid ${stale.pid} (${stale.reason}): that process stopped without closing the database; PostgreSQL recovery replays its WAL`;
}

export interface DataDirLock {
  /** Set when the lock was left by a process that is gone (it crashed or was killed). */
  readonly takenOverFrom?: StaleLock;
  release(): void;
}

/** What identifies a process beyond its pid, which the system reuses. */
export interface ProcessIdentity {
  /** /proc/sys/kernel/random/boot_id: the pid and start time below are of this boot. */
  bootId: string;
  /** Field 22 of /proc/<pid>/stat: the start time in clock ticks since boot. */
  startTime: string;
}

/** The identity of a live process, or undefined where /proc is unavailable (or the process is gone). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    const startTime = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .at(19);
    return bootId && startTime ? { bootId, startTime } : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LockOwner {
  pid: number;
  identity?: ProcessIdentity;
}

/** `<pid>\n<bootId> <startTime>\n`; files written before the identity line hold just the pid. */
function parseLockFile(text: string): LockOwner | undefined {
  const [pidLine = '', identityLine = ''] = text.split('\n');
  const pid = Number(pidLine.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const [bootId, startTime] = identityLine.trim().split(' ');
  return { pid, identity: bootId && startTime ? { bootId, startTime } : undefined };
}

/** Why the owner no longer holds the lock, or undefined while it does. */
function staleReason(owner: LockOwner): StaleLock['reason'] | undefined {
  const ownIdentity = processIdentity(process.pid);
  if (owner.identity && ownIdentity && owner.identity.bootId !== ownIdentity.bootId) return 'rebooted since';
  if (owner.pid === process.pid) {
    // This process's pid: either this very process holds the lock (open twice: refused), or a
    // process before it had the same pid (a container's server is often pid 1 each start).
    if (owner.identity && ownIdentity)
      return owner.identity.startTime === ownIdentity.startTime ? undefined : 'pid reused';
    return 'pid reused';
  }
  if (!isAlive(owner.pid)) return 'not running';
  if (owner.identity) {
    const current = processIdentity(owner.pid);
    // Without /proc, a live process with that pid is presumed to be the owner.
    if (current && current.startTime !== owner.identity.startTime) return 'pid reused';
  }
  return undefined;
}

/**
 * PGlite is a single-process database: two processes writing one data directory corrupt it.
 * A pid file created with O_EXCL guards it. It records the owner's boot and start time too, so
 * that a file left by a dead process is recognised as stale and taken over even when the
 * system has since given its pid to another process (`takenOverFrom` says so: log it).
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'keymint-server.pid');
  const identity = processIdentity(process.pid);
  const content = `${process.pid}\n${identity ? `${identity.bootId} ${identity.startTime}\n` : ''}`;
  let takenOverFrom: StaleLock | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, content);
      closeSync(fd);
      let released = false;
      return {
        takenOverFrom,
        release() {
          if (released) return;
          released = true;
          try {
            unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner: LockOwner | undefined;
      try {
        owner = parseLockFile(readFileSync(path, 'utf8'));
      } catch {
        // Removed between open and read: try again.
        continue;
      }
      // An unreadable file (its process died between creating and writing it) is taken over too.
      if (owner) {
        const reason = staleReason(owner);
        if (!reason) throw new DataDirInUseError(dataDir, owner.pid);
        takenOverFrom = { pid: owner.pid, reason };
      }
      try {
        unlinkSync(path);
      } catch {
        // Another process took it over first; the next attempt decides.
      }
    }
  }
  throw new Error(`Could not lock the embedded database directory ${dataDir}`);
}
