import { sql } from 'drizzle-orm';
import { boolean, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const accounts = pgTable(
  'accounts',
  {
    id: text().primaryKey(),
    name: text().notNull(),
    // The account the first migration creates; admin calls without accountId act on it.
    isDefault: boolean().notNull().default(false),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('accounts_single_default').on(t.isDefault).where(sql`${t.isDefault}`)],
);

export type Account = typeof accounts.$inferSelect;
