import { index, integer, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Idempotency records (docs/api.md, "Idempotency"): one per (caller, Idempotency-Key). A record
 * is in flight while `responseStatus` is null; the request holding it is named by `lockToken`,
 * which a takeover of an abandoned record replaces. Pruned after `expiresAt`.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    // Whose key it is: `token:<access token id>` or `admin`.
    scope: text().notNull(),
    key: text().notNull(),
    // SHA-256 (hex) of method, path, query string and the canonical JSON body.
    fingerprint: text().notNull(),
    lockToken: text().notNull(),
    // When the current holder started: an in-flight record older than 5 minutes may be taken over.
    lockedAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
    responseStatus: integer(),
    // The response body exactly as sent, replayed byte for byte.
    responseBody: text(),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
    expiresAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] }), index('idempotency_keys_expires').on(t.expiresAt)],
);

export type IdempotencyRecord = typeof idempotencyKeys.$inferSelect;
