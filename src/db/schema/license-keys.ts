import { index, boolean, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { accounts } from './accounts.js';
import { customers } from './customers.js';
import { products } from './products.js';

export const LICENSE_TYPES = ['node-locked', 'floating'] as const;
export type LicenseType = (typeof LICENSE_TYPES)[number];

export const licenseKeys = pgTable(
  'license_keys',
  {
    id: text().primaryKey(),
    accountId: text()
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    productId: text()
      .notNull()
      .references(() => products.id, { onDelete: 'cascade' }),
    key: text().notNull(),
    // null = unlimited activations.
    maxActivations: integer(),
    // null = never expires.
    expiresAt: timestamp({ precision: 3, withTimezone: true }),
    customerId: text().references(() => customers.id, { onDelete: 'cascade' }),
    metadata: jsonb().$type<Record<string, unknown>>(),
    allowedHosts: text().array(),
    licenseType: text().$type<LicenseType>().notNull().default('node-locked'),
    maxConcurrentSessions: integer(),
    heartbeatInterval: integer().notNull().default(300),
    sessionLeaseDuration: integer().notNull().default(900),
    blocked: boolean().notNull().default(false),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('license_keys_product_key_unique').on(t.productId, t.key),
    index('license_keys_customer').on(t.customerId, t.createdAt),
  ],
);

export type LicenseKey = typeof licenseKeys.$inferSelect;
