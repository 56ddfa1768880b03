import type { Customer } from '../db/schema/index.js';

/**
 * What a change did, as services report it to the unit of work. Named as the webhook event
 * types they become (docs/api.md, "Not yet implemented"); the outbox will write them in the
 * request's transaction.
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
