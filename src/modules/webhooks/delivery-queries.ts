import { type SQL, sql } from 'drizzle-orm';
import { rowsOf } from '../../db/bulk.js';
import type { Db } from '../../db/client.js';

/**
 * Data access of the delivery worker. Every time is the DATABASE's clock (`statement_timestamp()`),
 * so processes whose clocks differ agree on which deliveries are due and whose lease has ended.
 * Raw SQL: UPDATE … FROM a locked subquery or a VALUES list is clearer written out than built.
 */

/** A claimed attempt: the delivery, its event's stored body and the webhook it goes to. */
export interface ClaimedDelivery {
  id: string;
  webhookId: string;
  /** Attempts made before this one. */
  attempts: number;
  eventId: string;
  eventType: string;
  payload: string;
  url: string;
  secret: string;
}

const afterMs = (ms: SQL | number) => sql`statement_timestamp() + cast(${ms} as integer) * interval '1 millisecond'`;

/**
 * Claims up to `limit` due deliveries in one statement: the oldest due first, skipping rows
 * another worker is claiming (SKIP LOCKED), each leased to `lease` until `leaseMs` from now —
 * so several processes never send the same attempt, and a claim whose process died is due
 * again when its lease ends.
 */
export async function claimDueDeliveries(
  db: Db,
  claim: { lease: string; leaseMs: number; limit: number },
): Promise<ClaimedDelivery[]> {
  const result = await db.execute(sql`
    update webhook_deliveries as d
    set lease = ${claim.lease}, next_attempt_at = ${afterMs(claim.leaseMs)}
    from (
      select due.id, e.id as event_id, e.type, e.payload, w.url, w.secret
      from webhook_deliveries as due
      join webhook_events as e on e.id = due.event_id
      join webhooks as w on w.id = due.webhook_id
      where due.status = 'pending' and due.next_attempt_at <= statement_timestamp()
      order by due.next_attempt_at
      limit cast(${claim.limit} as integer)
      for update of due skip locked
    ) as claimed
    where d.id = claimed.id
    returning d.id, d.webhook_id as "webhookId", d.attempts, claimed.event_id as "eventId",
      claimed.type as "eventType", claimed.payload, claimed.url, claimed.secret`);
  return rowsOf<ClaimedDelivery>(result);
}

/** How an attempt ended, as written to its delivery row. */
export interface AttemptRecord {
  id: string;
  lease: string;
  delivered: boolean;
  statusCode: number | null;
  error: string | null;
  /** Failed attempts: the delay of the next one. */
  retryMs: number | null;
}

/**
 * Writes the outcomes of finished attempts in one statement. Only rows still leased to the
 * attempt's claim are written: a delivery whose lease ended and that another worker claimed
 * again is theirs. A failed attempt whose retry would fall after `expires_at` fails the delivery.
 * Answers the deliveries that failed for good.
 */
export async function recordAttempts(db: Db, records: AttemptRecord[]): Promise<string[]> {
  if (records.length === 0) return [];
  const values = sql.join(
    records.map(
      (record) =>
        sql`(cast(${record.id} as text), cast(${record.lease} as text), cast(${record.delivered} as boolean),
          cast(${record.statusCode} as integer), cast(${record.error} as text), cast(${record.retryMs} as integer))`,
    ),
    sql`, `,
  );
  const result = await db.execute(sql`
    update webhook_deliveries as d
    set attempts = d.attempts + 1,
      last_attempt_at = statement_timestamp(),
      last_status_code = r.status_code,
      last_error = r.error,
      lease = null,
      status = case when r.delivered then 'delivered' when r.retry_at > d.expires_at then 'failed' else 'pending' end,
      next_attempt_at = case when r.delivered or r.retry_at > d.expires_at then null else r.retry_at end,
      delivered_at = case when r.delivered then statement_timestamp() end
    from (
      select v.*, ${afterMs(sql`v.retry_ms`)} as retry_at
      from (values ${values}) as v(id, lease, delivered, status_code, error, retry_ms)
    ) as r
    where d.id = r.id and d.lease = r.lease
    returning d.id, d.status`);
  return rowsOf<{ id: string; status: string }>(result)
    .filter((row) => row.status === 'failed')
    .map((row) => row.id);
}

/**
 * Gives claimed deliveries back without counting an attempt (a shutdown cut them short): due
 * now, so another process or this one after its restart sends them.
 */
export async function releaseDeliveries(db: Db, claims: { id: string; lease: string }[]): Promise<void> {
  if (claims.length === 0) return;
  const values = sql.join(
    claims.map((claim) => sql`(cast(${claim.id} as text), cast(${claim.lease} as text))`),
    sql`, `,
  );
  await db.execute(sql`
    update webhook_deliveries as d
    set lease = null, next_attempt_at = statement_timestamp()
    from (values ${values}) as r(id, lease)
    where d.id = r.id and d.lease = r.lease and d.status = 'pending'`);
}

export interface DeliveryBacklog {
  /** Pending deliveries whose attempt is due now (waiting for a worker). */
  due: number;
  /** Every pending delivery: due, in flight, or waiting for its retry. */
  pending: number;
  /** Deliveries given up on and still kept (see retention.ts). */
  failed: number;
}

/** The backlog by state, in one statement (the `keymint_webhook_deliveries` gauge). */
export async function deliveryBacklog(db: Db): Promise<DeliveryBacklog> {
  const result = await db.execute(sql`
    select
      count(*) filter (where status = 'pending' and next_attempt_at <= statement_timestamp())::integer as due,
      count(*) filter (where status = 'pending')::integer as pending,
      count(*) filter (where status = 'failed')::integer as failed
    from webhook_deliveries
    where status in ('pending', 'failed')`);
  const [row] = rowsOf<DeliveryBacklog>(result);
  return row ?? { due: 0, pending: 0, failed: 0 };
}
