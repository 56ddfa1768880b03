import { sql } from 'drizzle-orm';
import { type CryptoKey, importPKCS8 } from 'jose';
import { ConfigError } from '../../config.js';
import type { Db } from '../../db/client.js';
import { withTransaction } from '../../db/unit-of-work.js';
import {
  deriveEncryptionKey,
  generateKeyPair,
  openPrivateKey,
  type PublicJwk,
  publicJwk,
  sealPrivateKey,
  UnsealError,
} from './key-material.js';
import {
  findCurrentKid,
  findPrivateKey,
  insertIfNoCurrent,
  insertSigningKey,
  listPrivateKeys,
  listSigningKeys,
  lockSigningKeys,
  markEncrypted,
  type NewSigningKey,
  retireCurrent,
} from './queries.js';

/** The key a license file is signed with. */
export interface Signer {
  kid: string;
  key: CryptoKey;
}

export type SigningKeyView = {
  kid: string;
  status: 'current' | 'retired';
  encrypted: boolean;
  createdAt: string;
  retiredAt: string | null;
};

/**
 * The server-wide signing keys of one process (docs/api.md, "Offline licenses"): exactly one
 * current Ed25519 key, created on first use, rotated on demand; retired keys stay published.
 *
 * Every process sharing the database reads the current kid from the database on every sign (one
 * index probe, run alongside the license-key lookup), so once a rotation has committed, no
 * process signs with the retired key again; only a sign already past that read when the rotation
 * committed still uses it, and its file verifies since retired keys stay in the JWKS. What is
 * cached is the decrypted private key of the current kid, the only one kept in memory.
 */
export class SigningKeys {
  readonly #db: Db;
  readonly #secretKey: string | undefined;
  #encryptionKey: Promise<Buffer> | undefined;
  readonly #signers = new Map<string, Promise<CryptoKey>>();

  constructor(db: Db, secretKey: string | undefined) {
    this.#db = db;
    this.#secretKey = secretKey;
  }

  /** The kid of the current key, undefined before the first one exists. Reads the database. */
  currentKid(): Promise<string | undefined> {
    return findCurrentKid(this.#db);
  }

  /**
   * The key to sign with: the one of `kid` (what `currentKid()` just answered), or, when there is
   * no key yet, the current key created now.
   */
  async signer(kid: string | undefined): Promise<Signer> {
    const current = kid ?? (await this.#ensureCurrent());
    let key = this.#signers.get(current);
    if (!key) {
      const loading = this.#loadPrivateKey(current);
      // Only the current key's private part stays in memory.
      this.#signers.clear();
      this.#signers.set(current, loading);
      loading.catch(() => {
        if (this.#signers.get(current) === loading) this.#signers.delete(current);
      });
      key = loading;
    }
    return { kid: current, key: await key };
  }

  /** The JWKS entries: the current key first (created when there is none), then the retired ones, newest first. */
  async publicKeys(): Promise<PublicJwk[]> {
    let rows = await listSigningKeys(this.#db);
    if (!rows.some((row) => row.retiredAt === null)) {
      await this.#ensureCurrent();
      rows = await listSigningKeys(this.#db);
    }
    return rows.map((row) => publicJwk(row.kid, row.publicKey));
  }

  /** Every key, without key material, in JWKS order. */
  async list(): Promise<SigningKeyView[]> {
    const rows = await listSigningKeys(this.#db);
    return rows.map((row) => ({
      kid: row.kid,
      status: row.retiredAt === null ? 'current' : 'retired',
      encrypted: row.encrypted,
      createdAt: row.createdAt.toISOString(),
      retiredAt: row.retiredAt ? row.retiredAt.toISOString() : null,
    }));
  }

  /**
   * Retires the current key (if any) and makes a new one current, in one transaction. Rotations
   * from any number of processes run one after the other (table lock), each retiring the key the
   * previous one created; the timestamps are the database clock's, read after the lock.
   */
  async rotate(): Promise<{ kid: string; retired: string[] }> {
    const key = await this.#newKey();
    const retired = await withTransaction(this.#db, async (tx) => {
      await lockSigningKeys(tx);
      const retiredKids = await retireCurrent(tx, sql`clock_timestamp()`);
      await insertSigningKey(tx, key, sql`clock_timestamp()`);
      return retiredKids;
    });
    this.#signers.clear();
    return { kid: key.kid, retired };
  }

  /**
   * The start-up check (also run before a CLI rotation): every encrypted key must decrypt with
   * SECRET_KEY, or the process refuses to start (a ConfigError naming SECRET_KEY). With SECRET_KEY set, keys stored in plain text
   * (created while it was not set) are encrypted in place. Returns the kids encrypted now.
   */
  async checkSecretKey(): Promise<string[]> {
    const rows = await listPrivateKeys(this.#db);
    const sealed = rows.filter((row) => row.encrypted);
    if (sealed.length > 0 && !this.#secretKey) {
      throw new ConfigError(
        `SECRET_KEY is not set, but the database holds ${sealed.length} signing key(s) encrypted with one: ` +
          'start with the SECRET_KEY they were encrypted with',
      );
    }
    if (!this.#secretKey) return [];
    const encryptionKey = await this.#encryptionKeyOf();
    for (const row of sealed) {
      try {
        openPrivateKey(row.privateKey, row.kid, encryptionKey);
      } catch (err) {
        if (!(err instanceof UnsealError)) throw err;
        throw new ConfigError(
          `SECRET_KEY does not decrypt signing key ${row.kid}: the signing keys were encrypted with another SECRET_KEY`,
        );
      }
    }
    const encryptedNow: string[] = [];
    for (const row of rows.filter((candidate) => !candidate.encrypted)) {
      const sealedKey = sealPrivateKey(row.privateKey, row.kid, encryptionKey);
      if (await markEncrypted(this.#db, row.kid, sealedKey)) encryptedNow.push(row.kid);
    }
    return encryptedNow;
  }

  /**
   * The current kid, creating the first key when there is none. Processes racing here each insert
   * their own new key under the unique partial index; one wins, and all of them read the winner.
   */
  async #ensureCurrent(): Promise<string> {
    const existing = await findCurrentKid(this.#db);
    if (existing) return existing;
    await insertIfNoCurrent(this.#db, await this.#newKey());
    const current = await findCurrentKid(this.#db);
    if (!current) throw new Error('no current signing key right after inserting one');
    return current;
  }

  async #newKey(): Promise<NewSigningKey> {
    const pair = generateKeyPair();
    if (!this.#secretKey) return { ...pair, encrypted: false };
    const privateKey = sealPrivateKey(pair.privateKey, pair.kid, await this.#encryptionKeyOf());
    return { ...pair, privateKey, encrypted: true };
  }

  async #loadPrivateKey(kid: string): Promise<CryptoKey> {
    const row = await findPrivateKey(this.#db, kid);
    if (!row) throw new Error(`signing key ${kid} not found`);
    let pem = row.privateKey;
    if (row.encrypted) {
      if (!this.#secretKey) throw new Error(`signing key ${kid} is encrypted and SECRET_KEY is not set`);
      pem = openPrivateKey(row.privateKey, kid, await this.#encryptionKeyOf());
    }
    return importPKCS8(pem, 'EdDSA');
  }

  #encryptionKeyOf(): Promise<Buffer> {
    if (!this.#secretKey) throw new Error('SECRET_KEY is not set');
    this.#encryptionKey ??= deriveEncryptionKey(this.#secretKey);
    return this.#encryptionKey;
  }
}
