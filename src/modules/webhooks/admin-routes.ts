import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { withTransaction } from '../../db/unit-of-work.js';
import { ErrorResponses } from '../../http/schemas.js';
import { AccountQuerySchema, MessageResponseSchema } from '../admin/schemas.js';
import {
  checkNewWebhook,
  checkNewWebhookUrl,
  createWebhook,
  deleteWebhook,
  listDeliveries,
  listWebhooks,
  retryDelivery,
} from './admin.js';
import {
  CreateWebhookBodySchema,
  CreateWebhookResponseSchema,
  DeliveriesQuerySchema,
  DeliveryIdParamsSchema,
  DeliveryListResponseSchema,
  WebhookIdParamsSchema,
  WebhookListResponseSchema,
} from './schemas.js';
import { isWebhookUrlSyntax } from './url-guard.js';

const tags = ['Webhooks'];
const DEFAULT_PAGE_SIZE = 10;
const MAX_PAGE_SIZE = 100;

/** Webhook endpoints of the admin API (docs/api.md, "Admin API"); registered under /admin. */
export async function webhookAdminRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.database.db;
  const { allowPrivate } = app.config.webhooks;

  /**
   * Whether the URL's host is public takes a DNS lookup, which the schema cannot do. Judged
   * before the schema, a refused URL is reported ahead of the fields after it (docs/api.md,
   * "Order of checks"); only a URL of the right shape is looked at, so a missing or malformed
   * one is left to the schema. The URL accepted here is handed to the handler's checkNewWebhook
   * (the service's check, shared with the CLI), which then does not resolve it again.
   */
  const acceptedUrls = new WeakMap<FastifyRequest, string>();
  const urlBeforeOtherFields = async (request: FastifyRequest) => {
    const url = (request.body as { url?: unknown } | null | undefined)?.url;
    if (typeof url !== 'string' || !isWebhookUrlSyntax(url)) return;
    await checkNewWebhookUrl(url, allowPrivate);
    acceptedUrls.set(request, url);
  };

  app.post(
    '/webhooks',
    {
      preValidation: urlBeforeOtherFields,
      schema: {
        tags,
        summary: 'Register a webhook (the only answer that shows its secret)',
        body: CreateWebhookBodySchema,
        response: { 201: CreateWebhookResponseSchema, ...ErrorResponses },
      },
    },
    async (request, reply) => {
      const input = await checkNewWebhook(request.body, allowPrivate, acceptedUrls.get(request));
      const webhook = await withTransaction(db, (tx) => createWebhook(tx, input), request.deadline);
      return reply.status(201).send({
        code: 0 as const,
        id: webhook.id,
        url: webhook.url,
        events: webhook.events,
        secret: webhook.secret,
      });
    },
  );

  app.get(
    '/webhooks',
    {
      schema: {
        tags,
        summary: "List an account's webhooks",
        querystring: AccountQuerySchema,
        response: { 200: WebhookListResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => ({ code: 0 as const, data: await listWebhooks(db, request.query.accountId) }),
  );

  app.delete(
    '/webhooks/:id',
    {
      schema: {
        tags,
        summary: 'Delete a webhook and its deliveries',
        params: WebhookIdParamsSchema,
        response: { 200: MessageResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      await withTransaction(db, (tx) => deleteWebhook(tx, request.params.id), request.deadline);
      return { code: 0 as const, message: 'Webhook deleted' };
    },
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      schema: {
        tags,
        summary: "A webhook's deliveries, newest first",
        params: WebhookIdParamsSchema,
        querystring: DeliveriesQuerySchema,
        response: { 200: DeliveryListResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const { page, limit } = request.query;
      const result = await listDeliveries(db, request.params.id, {
        page: page === undefined ? 1 : Number(page),
        limit: limit === undefined ? DEFAULT_PAGE_SIZE : Math.min(Number(limit), MAX_PAGE_SIZE),
      });
      return { code: 0 as const, ...result };
    },
  );

  app.post(
    '/webhooks/:id/deliveries/:deliveryId/retry',
    {
      schema: {
        tags,
        summary: 'Make a delivery due now',
        params: DeliveryIdParamsSchema,
        response: { 200: MessageResponseSchema, ...ErrorResponses },
      },
    },
    async (request) => {
      await withTransaction(
        db,
        (tx) => retryDelivery(tx, request.params.id, request.params.deliveryId),
        request.deadline,
      );
      return { code: 0 as const, message: 'Delivery scheduled' };
    },
  );
}
