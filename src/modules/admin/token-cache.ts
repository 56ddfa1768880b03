import type { NotificationListener } from '../../db/client.js';
import type { AuthContext } from '../../lib/scopes.js';

/** The channel the access_tokens trigger notifies on (migration 0006): a token's id, or '*'. */
export const ACCESS_TOKEN_CHANNEL = 'keymint_access_tokens';

/** A token as resolved from its row; its expiry is checked on every use, not when cached. */
export interface ResolvedToken {
  auth: AuthContext;
  expiresAt: number | null;
}

interface Entry {
  token: ResolvedToken;
  cachedUntil: number;
}

export interface TokenCacheStats {
  hits: number;
  misses: number;
  invalidations: number;
}

/**
 * The access tokens this process has resolved, by token hash, so that a request's token costs
 * no database round trip. It can never outlive a revocation:
 * - every change to a token row (revocation, delete; any path, plain SQL included) notifies
 *   ACCESS_TOKEN_CHANNEL when it commits, and the cache empties on it;
 * - it is used only while its LISTEN connection is up; when that drops, it empties and every
 *   lookup goes to the database until it listens again;
 * - a lookup whose answer arrives after a notification (or a reconnect) that it may predate is
 *   not kept (`epoch`);
 * - each entry lives `ttlMs` at most: the bound should the connection stop delivering without
 *   closing.
 */
export class TokenCache implements NotificationListener {
  #entries = new Map<string, Entry>();
  #live = false;
  /** Moves on every notification and every (re)connect: a lookup older than it is not kept. */
  #epoch = 0;
  #waiters = new Map<string, Set<() => void>>();
  readonly stats: TokenCacheStats = { hits: 0, misses: 0, invalidations: 0 };

  constructor(
    readonly ttlMs: number,
    readonly maxEntries = 10_000,
  ) {}

  get live(): boolean {
    return this.#live;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached token of `hash`, or undefined (not cached, expired entry, or not listening). */
  get(hash: string, now: number): ResolvedToken | undefined {
    const entry = this.#live ? this.#entries.get(hash) : undefined;
    if (entry === undefined || entry.cachedUntil <= now) {
      if (entry !== undefined) this.#entries.delete(hash);
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return entry.token;
  }

  /** The epoch to pass to `set` with the answer of a lookup that starts now. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Keeps a lookup's answer, unless a notification or reconnect came since it started. */
  set(hash: string, token: ResolvedToken, epoch: number, now: number): void {
    if (!this.#live || epoch !== this.#epoch) return;
    if (this.#entries.size >= this.maxEntries) {
      // The oldest entry (a Map iterates in insertion order) makes room.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(hash, { token, cachedUntil: now + this.ttlMs });
  }

  /**
   * Resolves once this process has received the notification of `tokenId`'s change (at most
   * `timeoutMs`): PostgreSQL notifies every listening process at the same commit, so a revoke
   * that waits for it answers when the other processes' caches have been told too.
   */
  notified(tokenId: string, timeoutMs: number): Promise<void> {
    if (!this.#live) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(tokenId) ?? new Set();
      this.#waiters.set(tokenId, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(tokenId) === waiters) this.#waiters.delete(tokenId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      waiters.add(done);
    });
  }

  notify(payload: string): void {
    this.#invalidate();
    const waiters =
      payload === '*' ? [...this.#waiters.values()].flatMap((set) => [...set]) : this.#waiters.get(payload);
    for (const done of [...(waiters ?? [])]) done();
  }

  up(): void {
    // Whatever was cached before may have missed a notification while nobody listened.
    this.#invalidate();
    this.#live = true;
  }

  down(): void {
    this.#live = false;
    this.#invalidate();
    for (const set of [...this.#waiters.values()]) for (const done of [...set]) done();
  }

  #invalidate(): void {
    this.#epoch++;
    this.#entries.clear();
    this.stats.invalidations++;
  }
}
