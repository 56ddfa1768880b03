import { sql } from 'drizzle-orm';
import { index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { accounts } from './accounts.js';

/** Webhook endpoints of an account (docs/api.md, "Webhooks"). */
export const webhooks = pgTable(
  'webhooks',
  {
    id: text().primaryKey(),
    accountId: text()
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    url: text().notNull(),
    // The event types sent to it.
    events: text().array().notNull(),
    // `whsec_…`: the HMAC key of the signatures. Kept (the server signs with it), never listed.
    secret: text().notNull(),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('webhooks_account_created').on(t.accountId, t.createdAt)],
);

/**
 * The outbox: one row per event that at least one webhook wants, written in the transaction of
 * the change. `payload` is the exact body sent (and signed).
 */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: text().primaryKey(),
    accountId: text()
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    type: text().notNull(),
    payload: text().notNull(),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
  },
  (t) => [index('webhook_events_created').on(t.createdAt)],
);

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/**
 * One event to one webhook. A pending delivery is due when `nextAttemptAt` ≤ now; a worker
 * claims it by moving `nextAttemptAt` past the attempt's timeout (the lease) and setting
 * `lease`, so a delivery claimed by a process that died is due again once the lease ends.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: text().primaryKey(),
    eventId: text()
      .notNull()
      .references(() => webhookEvents.id, { onDelete: 'cascade' }),
    webhookId: text()
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    status: text().$type<DeliveryStatus>().notNull().default('pending'),
    attempts: integer().notNull().default(0),
    // null once delivered or failed.
    nextAttemptAt: timestamp({ precision: 3, withTimezone: true }),
    // Retries stop here (24 h after the event).
    expiresAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
    // Names the worker's claim of the current attempt; null when not claimed.
    lease: text(),
    lastStatusCode: integer(),
    lastError: text(),
    lastAttemptAt: timestamp({ precision: 3, withTimezone: true }),
    deliveredAt: timestamp({ precision: 3, withTimezone: true }),
    createdAt: timestamp({ precision: 3, withTimezone: true }).notNull(),
  },
  (t) => [
    // The worker's claim: due pending deliveries, oldest due first.
    index('webhook_deliveries_due').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // The backlog gauge counts failed deliveries on every scrape.
    index('webhook_deliveries_failed').on(t.createdAt).where(sql`${t.status} = 'failed'`),
    // The delivery log of a webhook, newest first.
    index('webhook_deliveries_webhook_created').on(t.webhookId, t.createdAt, t.id),
    index('webhook_deliveries_event').on(t.eventId),
  ],
);

export type Webhook = typeof webhooks.$inferSelect;
export type WebhookEvent = typeof webhookEvents.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
