import { sql } from 'drizzle-orm';
import { index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { licenseKeyReference } from './license-keys.js';

/**
 * Floating-license sessions: a seat held by a running copy of the vendor's application. A
 * session is live while not checked in and `expiresAt > now`; only live sessions take a seat,
 * so a lapsed lease frees its seat without any background job.
 */
export const floatingSessions = pgTable(
  'floating_sessions',
  {
    id: text().primaryKey(),
    licenseKeyId: licenseKeyReference(),
    hostId: text().notNull(),
    deviceTag: text(),
    userIdentifier: text(),
    // The HMAC key the client signs heartbeats with (the server must recompute the signature).
    secret: text().notNull(),
    // The nonce the next heartbeat or checkin must sign; consumed by compare-and-swap.
    nonce: text().notNull(),
    expiresAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
    checkedInAt: timestamp({ precision: 3, withTimezone: true }),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // Seat counting and the same-host lookup read the key's sessions that are not checked in.
    index('floating_sessions_key_live').on(t.licenseKeyId, t.hostId, t.expiresAt).where(sql`${t.checkedInAt} is null`),
    // Pruning finds old rows by their lease end.
    index('floating_sessions_expires').on(t.expiresAt),
    // Deleting a key (or a customer with its keys) cascades here: every session of the key, ended ones too.
    index('floating_sessions_key').on(t.licenseKeyId),
  ],
);

export type FloatingSession = typeof floatingSessions.$inferSelect;
