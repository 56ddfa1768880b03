import { index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { accounts } from './accounts.js';

export const accessTokens = pgTable(
  'access_tokens',
  {
    id: text().primaryKey(),
    accountId: text()
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    name: text().notNull(),
    // SHA-256 (hex) of the secret; the secret itself is never stored.
    tokenHash: text().notNull().unique(),
    scopes: text().array().notNull(),
    // null = every product of the account.
    productIds: text().array(),
    expiresAt: timestamp({ precision: 3, withTimezone: true }),
    revokedAt: timestamp({ precision: 3, withTimezone: true }),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('access_tokens_account_created').on(t.accountId, t.createdAt)],
);

export type AccessToken = typeof accessTokens.$inferSelect;
