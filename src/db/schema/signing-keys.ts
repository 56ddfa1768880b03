import { sql } from 'drizzle-orm';
import { boolean, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * Server-wide Ed25519 key pairs that sign offline license files. Exactly one is current
 * (`retiredAt` null, enforced by a unique index); retired keys stay listed in the JWKS so files
 * signed with them keep verifying.
 */
export const signingKeys = pgTable(
  'signing_keys',
  {
    // base64url(SHA-256(SPKI DER of the public key)), no padding.
    kid: text().primaryKey(),
    // SPKI PEM.
    publicKey: text().notNull(),
    // PKCS#8 PEM, or when `encrypted`, AES-256-GCM ciphertext under a key derived from SECRET_KEY.
    privateKey: text().notNull(),
    encrypted: boolean().notNull(),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
    retiredAt: timestamp({ precision: 3, withTimezone: true }),
  },
  (t) => [uniqueIndex('signing_keys_one_current').on(sql`(true)`).where(sql`${t.retiredAt} is null`)],
);

export type SigningKey = typeof signingKeys.$inferSelect;
