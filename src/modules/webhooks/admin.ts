import { and, asc, count, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import {
  type Webhook,
  type WebhookDelivery,
  webhookDeliveries,
  webhookEvents,
  webhooks,
} from '../../db/schema/index.js';
import { Errors } from '../../lib/errors.js';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../lib/events.js';
import { newId } from '../../lib/ids.js';
import { resolveAccountId } from '../admin/accounts.js';
import type { DeliveryView, WebhookView } from './schemas.js';
import { newWebhookSecret } from './signature.js';
import { checkWebhookUrl } from './url-guard.js';

/** Webhook endpoints and their delivery log: shared by the admin API and the CLI. */

/**
 * The registration check of a URL (docs/api.md, "Registering webhooks"): its shape, then its host, which
 * must be and resolve to public addresses only unless `allowPrivate`. Resolving takes the
 * network, so it runs before the transaction opens. Refused -> 400/1 `Invalid url`.
 */
export async function checkNewWebhookUrl(raw: string, allowPrivate: boolean): Promise<void> {
  if (!(await checkWebhookUrl(raw, allowPrivate))) throw Errors.invalidField('url');
}

/** The event types to send: all by default; duplicates dropped, in the contract's order. */
export function webhookEventTypes(events: readonly string[] | undefined): WebhookEventType[] {
  if (events === undefined) return [...WEBHOOK_EVENT_TYPES];
  const known = WEBHOOK_EVENT_TYPES as readonly string[];
  if (events.length === 0 || events.some((type) => !known.includes(type))) throw Errors.invalidField('events');
  return WEBHOOK_EVENT_TYPES.filter((type) => events.includes(type));
}

export interface NewWebhookInput {
  url: string;
  events?: string[];
  accountId?: string;
}

declare const checked: unique symbol;

/** What `checkNewWebhook` accepted: only it makes one, so no webhook skips the URL check. */
export interface CheckedWebhook {
  readonly url: string;
  readonly events: WebhookEventType[];
  readonly accountId: string | undefined;
  readonly [checked]: true;
}

/** Checks a new webhook's fields in the order of the field table: url, then events. */
export async function checkNewWebhook(
  input: NewWebhookInput,
  allowPrivate: boolean,
  /** A URL this request's checkNewWebhookUrl already accepted (no second DNS lookup). */
  acceptedUrl?: string,
): Promise<CheckedWebhook> {
  if (input.url !== acceptedUrl) await checkNewWebhookUrl(input.url, allowPrivate);
  const events = webhookEventTypes(input.events);
  return { url: input.url, events, accountId: input.accountId } as CheckedWebhook;
}

const toWebhookView = (webhook: Webhook): WebhookView => ({
  id: webhook.id,
  url: webhook.url,
  events: webhook.events,
  accountId: webhook.accountId,
  createdAt: webhook.createdAt.toISOString(),
});

/** Registers a webhook; its signing secret is returned here, the only time it is shown. */
export async function createWebhook(tx: Db, input: CheckedWebhook) {
  const accountId = await resolveAccountId(tx, input.accountId);
  const secret = newWebhookSecret();
  const [row] = await tx
    .insert(webhooks)
    .values({ id: newId(), accountId, url: input.url, events: input.events, secret })
    .returning();
  return { ...toWebhookView(row!), secret };
}

/** An account's webhooks in creation order, without their secrets. */
export async function listWebhooks(db: Db, accountId: string | undefined) {
  const account = await resolveAccountId(db, accountId);
  const rows = await db
    .select()
    .from(webhooks)
    .where(eq(webhooks.accountId, account))
    .orderBy(asc(webhooks.createdAt), asc(webhooks.id));
  return rows.map(toWebhookView);
}

/** Deletes a webhook; its deliveries, pending ones included, go with it (foreign-key cascade). */
export async function deleteWebhook(tx: Db, id: string) {
  const [row] = await tx.delete(webhooks).where(eq(webhooks.id, id)).returning({ id: webhooks.id });
  if (!row) throw Errors.webhookNotFound();
}

async function assertWebhookExists(db: Db, id: string) {
  const [row] = await db.select({ id: webhooks.id }).from(webhooks).where(eq(webhooks.id, id)).limit(1);
  if (!row) throw Errors.webhookNotFound();
}

const iso = (date: Date | null) => (date ? date.toISOString() : null);

const toDeliveryView = (delivery: WebhookDelivery & { eventType: string }): DeliveryView => ({
  id: delivery.id,
  eventId: delivery.eventId,
  eventType: delivery.eventType,
  status: delivery.status,
  attempts: delivery.attempts,
  lastStatusCode: delivery.lastStatusCode,
  lastError: delivery.lastError,
  nextAttemptAt: iso(delivery.nextAttemptAt),
  createdAt: delivery.createdAt.toISOString(),
  deliveredAt: iso(delivery.deliveredAt),
});

export interface DeliveryPage {
  page: number;
  limit: number;
}

/** `GET /admin/webhooks/:id/deliveries`: one page, newest first; a page past the end is empty. */
export async function listDeliveries(db: Db, webhookId: string, query: DeliveryPage) {
  await assertWebhookExists(db, webhookId);
  const own = eq(webhookDeliveries.webhookId, webhookId);
  const [totals] = await db.select({ total: count() }).from(webhookDeliveries).where(own);
  const rows = await db
    .select({ delivery: webhookDeliveries, eventType: webhookEvents.type })
    .from(webhookDeliveries)
    .innerJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
    .where(own)
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(query.limit)
    .offset((query.page - 1) * query.limit);
  const total = totals?.total ?? 0;
  return {
    data: rows.map((row) => toDeliveryView({ ...row.delivery, eventType: row.eventType })),
    meta: { total, page: query.page, limit: query.limit, totalPages: Math.ceil(total / query.limit) },
  };
}

/**
 * Makes a delivery due now, whatever its status: pending with no lease, which the worker claims
 * on its next round. Its attempts and its retry window (`expiresAt`) are kept, so a delivery
 * whose 24 hours are over gets this one attempt and is failed again if that one fails.
 * A delivery a worker holds right now is rescheduled too: its lease is cleared, so the
 * attempt in flight may be followed by another one at once and the receiver may get the event
 * twice (at-least-once; receivers deduplicate by event id). The database's clock decides "now",
 * as in the worker's claim, truncated to the column's milliseconds (rounding could put it a
 * fraction of a millisecond in the future).
 */
export async function retryDelivery(tx: Db, webhookId: string, deliveryId: string) {
  await assertWebhookExists(tx, webhookId);
  const [row] = await tx
    .update(webhookDeliveries)
    .set({ status: 'pending', nextAttemptAt: sql`date_trunc('milliseconds', now())`, lease: null, deliveredAt: null })
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.webhookId, webhookId)))
    .returning({ id: webhookDeliveries.id });
  if (!row) throw Errors.deliveryNotFound();
}
