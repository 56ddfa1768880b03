import { FormatRegistry, type Static, Type } from '@sinclair/typebox';
import { Id, Timestamp } from '../../http/schemas.js';
import { WEBHOOK_EVENT_TYPES } from '../../lib/events.js';
import { AccountIdInput } from '../admin/schemas.js';
import { isWebhookUrlSyntax } from './url-guard.js';

FormatRegistry.Set('webhook-url', isWebhookUrlSyntax);

const PathId = Type.String({ minLength: 1, maxLength: 256 });

export const WebhookIdParamsSchema = Type.Object({ id: PathId });
export const DeliveryIdParamsSchema = Type.Object({ id: PathId, deliveryId: PathId });

/**
 * `POST /admin/webhooks`. The URL's shape is judged here; whether its host is public needs a DNS
 * lookup and is judged by the route's preValidation hook (see admin-routes.ts).
 */
export const CreateWebhookBodySchema = Type.Object({
  url: Type.String({
    format: 'webhook-url',
    maxLength: 2048,
    description: 'Absolute http(s) URL, at most 2048 chars, on a public address unless WEBHOOKS_ALLOW_PRIVATE=true',
  }),
  events: Type.Optional(
    // Checked here, not only in the service, so that `Invalid events` is reported before the
    // fields after it (docs/api.md, "Order of checks").
    Type.Array(Type.Union(WEBHOOK_EVENT_TYPES.map((type) => Type.Literal(type))), {
      minItems: 1,
      maxItems: WEBHOOK_EVENT_TYPES.length,
      description: 'Event types to send; default all',
    }),
  ),
  accountId: Type.Optional(AccountIdInput),
});

export const CreateWebhookResponseSchema = Type.Object({
  code: Type.Literal(0),
  id: Id,
  url: Type.String(),
  events: Type.Array(Type.String()),
  secret: Type.String({ description: 'whsec_…: the HMAC key of the signatures, shown only here' }),
});

export const WebhookSchema = Type.Object({
  id: Id,
  url: Type.String(),
  events: Type.Array(Type.String()),
  accountId: Id,
  createdAt: Timestamp,
});
export type WebhookView = Static<typeof WebhookSchema>;
export const WebhookListResponseSchema = Type.Object({ code: Type.Literal(0), data: Type.Array(WebhookSchema) });

/** Parsed and bounded like `GET /customer`'s (docs/api.md, "List customers"). */
export const DeliveriesQuerySchema = Type.Object({
  page: Type.Optional(Type.String({ format: 'page-number', description: 'integer ≥ 1, default 1' })),
  limit: Type.Optional(
    Type.String({ format: 'positive-integer', description: 'integer ≥ 1, default 10, clamped to 100' }),
  ),
});

const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
export const DeliverySchema = Type.Object({
  id: Id,
  eventId: Id,
  eventType: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  lastError: Type.Union([Type.String(), Type.Null()]),
  nextAttemptAt: NullableTimestamp,
  createdAt: Timestamp,
  deliveredAt: NullableTimestamp,
});
export type DeliveryView = Static<typeof DeliverySchema>;
export const DeliveryListResponseSchema = Type.Object({
  code: Type.Literal(0),
  data: Type.Array(DeliverySchema),
  meta: Type.Object({
    total: Type.Integer(),
    page: Type.Integer(),
    limit: Type.Integer(),
    totalPages: Type.Integer(),
  }),
});
