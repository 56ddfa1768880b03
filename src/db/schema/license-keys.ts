import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { KEY_SETTING_DEFAULTS, type LicenseType } from '../../modules/licenses/policy.js';
import { accounts } from './accounts.js';
import { customers } from './customers.js';
import { products } from './products.js';

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
    licenseType: text().$type<LicenseType>().notNull().default(KEY_SETTING_DEFAULTS.licenseType),
    maxConcurrentSessions: integer(),
    heartbeatInterval: integer().notNull().default(KEY_SETTING_DEFAULTS.heartbeatInterval),
    sessionLeaseDuration: integer().notNull().default(KEY_SETTING_DEFAULTS.sessionLeaseDuration),
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

/** The column of a row that belongs to a key and goes with it (devices, floating sessions). */
export const licenseKeyReference = () =>
  text()
    .notNull()
    .references(() => licenseKeys.id, { onDelete: 'cascade' });
