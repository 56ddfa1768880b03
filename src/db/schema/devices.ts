import { index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { licenseKeyReference } from './license-keys.js';

export const devices = pgTable(
  'devices',
  {
    id: text().primaryKey(),
    licenseKeyId: licenseKeyReference(),
    hostId: text().notNull(),
    deviceTag: text(),
    ipAddress: text(),
    activatedAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('devices_key_host_unique').on(t.licenseKeyId, t.hostId),
    index('devices_key_activated').on(t.licenseKeyId, t.activatedAt),
  ],
);

export type Device = typeof devices.$inferSelect;
