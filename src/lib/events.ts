import type { Customer } from '../db/schema/index.js';

/** The webhook event types (docs/api.md, "Webhooks"), in the contract's order. */
export const WEBHOOK_EVENT_TYPES = [
  'key.created',
  'key.activated',
  'key.deactivated',
  'key.blocked',
  'key.unblocked',
  'key.updated',
  'customer.created',
  'customer.updated',
  'customer.deleted',
  'customer.disabled',
  'customer.enabled',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * What a change did, as services report it to the unit of work. Named as the webhook event
 * types they become; the outbox (modules/webhooks/outbox.ts) writes them in the request's
 * transaction.
 */
export type DomainEvent =
  | { type: 'key.created' | 'key.updated' | 'key.blocked' | 'key.unblocked'; licenseKeyId: string }
  | { type: 'key.activated'; licenseKeyId: string; hostId: string }
  | { type: 'key.deactivated'; licenseKeyId: string; hostIds: string[] }
  | {
      type: 'customer.created' | 'customer.updated' | 'customer.disabled' | 'customer.enabled';
      customerId: string;
    }
  | { type: 'customer.deleted'; customer: Customer; deletedKeyIds: string[] };

/** A service's answer: what it produced, and the events of the change. */
export type Outcome<T> = T & { events: DomainEvent[] };
