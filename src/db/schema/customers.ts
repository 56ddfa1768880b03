import { sql } from 'drizzle-orm';
import { boolean, index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { accounts } from './accounts.js';

export const customers = pgTable(
  'customers',
  {
    id: text().primaryKey(),
    accountId: text()
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    name: text().notNull(),
    email: text(),
    active: boolean().notNull().default(true),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // Email uniqueness is per account and case-insensitive; races end in a unique violation.
    uniqueIndex('customers_account_email_unique').on(t.accountId, sql`lower(${t.email})`),
    index('customers_account_created').on(t.accountId, t.createdAt, t.id),
  ],
);

export type Customer = typeof customers.$inferSelect;
