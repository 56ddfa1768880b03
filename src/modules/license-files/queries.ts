import { and, asc, desc, eq, isNull, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { preparedOnce } from '../../db/prepared.js';
import { signingKeys } from '../../db/schema/index.js';

/** Data access of the server-wide signing keys (table signing_keys, migration 0002). */

export interface NewSigningKey {
  kid: string;
  publicKey: string;
  /** PKCS#8 PEM, or the sealed text when `encrypted`. */
  privateKey: string;
  encrypted: boolean;
}

const currentKid = preparedOnce((db) =>
  db
    .select({ kid: signingKeys.kid })
    .from(signingKeys)
    .where(isNull(signingKeys.retiredAt))
    .limit(1)
    .prepare('current_signing_key_id'),
);

/** The kid of the current key (one index probe of signing_keys_one_current), or undefined. */
export async function findCurrentKid(db: Db): Promise<string | undefined> {
  const [row] = await currentKid(db).execute();
  return row?.kid;
}

const signingKeyByKid = preparedOnce((db) =>
  db
    .select({ kid: signingKeys.kid, privateKey: signingKeys.privateKey, encrypted: signingKeys.encrypted })
    .from(signingKeys)
    .where(eq(signingKeys.kid, sql.placeholder('kid')))
    .limit(1)
    .prepare('signing_key_by_kid'),
);

/** A key's private part as stored. */
export async function findPrivateKey(db: Db, kid: string) {
  const [row] = await signingKeyByKid(db).execute({ kid });
  return row;
}

/** Every key without its private part: the current one first, then the retired ones, newest first. */
export function listSigningKeys(db: Db) {
  return db
    .select({
      kid: signingKeys.kid,
      publicKey: signingKeys.publicKey,
      encrypted: signingKeys.encrypted,
      createdAt: signingKeys.createdAt,
      retiredAt: signingKeys.retiredAt,
    })
    .from(signingKeys)
    .orderBy(
      sql`${signingKeys.retiredAt} is not null`,
      sql`${signingKeys.retiredAt} desc nulls first`,
      desc(signingKeys.createdAt),
      asc(signingKeys.kid),
    );
}

/** Every key's stored private part (the start-up check reads them all). */
export function listPrivateKeys(db: Db) {
  return db
    .select({ kid: signingKeys.kid, privateKey: signingKeys.privateKey, encrypted: signingKeys.encrypted })
    .from(signingKeys)
    .orderBy(asc(signingKeys.createdAt), asc(signingKeys.kid));
}

/**
 * Inserts `key` as the current key unless there already is one: the unique partial index
 * signing_keys_one_current is the arbiter, so of several processes creating the first key at the
 * same moment exactly one inserts and the others insert nothing (they then read the winner).
 */
export async function insertIfNoCurrent(db: Db, key: NewSigningKey): Promise<void> {
  await db.execute(sql`
    insert into ${signingKeys} (kid, public_key, private_key, encrypted)
    values (${key.kid}, ${key.publicKey}, ${key.privateKey}, ${key.encrypted})
    on conflict ((true)) where retired_at is null do nothing`);
}

/**
 * Serializes rotations with each other and with first-use creation (SHARE ROW EXCLUSIVE
 * conflicts with itself and with the ROW EXCLUSIVE lock every insert and update takes), so a
 * rotation's statements see what a rotation committed just before. Readers are not blocked.
 */
export async function lockSigningKeys(tx: Db): Promise<void> {
  await tx.execute(sql`lock table ${signingKeys} in share row exclusive mode`);
}

/** Retires the current key; the kids retired (none before the first key exists). */
export async function retireCurrent(tx: Db, at: SQL): Promise<string[]> {
  const rows = await tx
    .update(signingKeys)
    .set({ retiredAt: at })
    .where(isNull(signingKeys.retiredAt))
    .returning({ kid: signingKeys.kid });
  return rows.map((row) => row.kid);
}

export async function insertSigningKey(tx: Db, key: NewSigningKey, createdAt: SQL): Promise<void> {
  await tx.insert(signingKeys).values({ ...key, createdAt });
}

/** Replaces a plain private key by its sealed form; false when another process did it first. */
export async function markEncrypted(db: Db, kid: string, sealed: string): Promise<boolean> {
  const rows = await db
    .update(signingKeys)
    .set({ privateKey: sealed, encrypted: true })
    .where(and(eq(signingKeys.kid, kid), eq(signingKeys.encrypted, false)))
    .returning({ kid: signingKeys.kid });
  return rows.length > 0;
}
