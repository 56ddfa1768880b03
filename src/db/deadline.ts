import { Errors } from '../lib/errors.js';

/**
 * The time one request may take (REQUEST_TIMEOUT_MS). When it runs out, the request is answered
 * 503 and nothing more may commit for it: `withTransaction` refuses to begin or to commit, so the
 * transaction still running rolls back instead of committing behind an answer that said it did
 * not happen. A commit already on its way to the database cannot be called back: its outcome is
 * unknown (`outcomeUnknown`), and the request's Idempotency-Key record is kept so that a retry
 * cannot run the change a second time.
 */
export class Deadline {
  /** The request was answered 503 for running out of time. */
  expired = false;
  /** The time ran out while a commit was in flight. */
  outcomeUnknown = false;
  timer: NodeJS.Timeout | undefined = undefined;
  #committing = 0;

  /** Throws the 503 once the time has run out: called before any write begins. */
  check(): void {
    if (this.expired) throw Errors.serviceUnavailable();
  }

  /** Marks a commit (or a single-statement write) as sent; `check`s first. */
  beginCommit(): void {
    this.check();
    this.#committing++;
  }

  endCommit(): void {
    this.#committing--;
  }

  /** Runs one statement that commits on its own (no transaction) as a commit. */
  async commit<T>(run: () => Promise<T>): Promise<T> {
    this.beginCommit();
    try {
      return await run();
    } finally {
      this.endCommit();
    }
  }

  expire(): void {
    this.expired = true;
    if (this.#committing > 0) this.outcomeUnknown = true;
  }
}
