import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { admissionPlugin } from './http/admission.js';
import { accessTokenAuth, adminTokenAuth } from './http/auth.js';
import { callerPlugin } from './http/caller.js';
import { corsPlugin } from './http/cors.js';
import { clientErrorHandler, errorsPlugin, frameworkErrorHandler } from './http/errors.js';
import { idempotencyPlugin } from './http/idempotency.js';
import { type LogDestination, loggerOptions, RequestLogController } from './http/logger.js';
import { metricsPlugin } from './http/metrics.js';
import { documentSecurity, openApiPlugin } from './http/openapi.js';
import { rateLimitPlugin } from './http/rate-limit.js';
import { securityHeadersPlugin } from './http/security-headers.js';
import { compileValidator, type ValidationPart } from './http/validation.js';
import { adminRoutes } from './modules/admin/routes.js';
import { backupAdminRoutes } from './modules/backup/routes.js';
import { consolePlugin } from './modules/console/plugin.js';
import { customerRoutes } from './modules/customers/routes.js';
import { healthRoutes } from './modules/health/routes.js';
import { licenseFileRoutes, licenseFilesPlugin, signingKeyAdminRoutes } from './modules/license-files/routes.js';
import { licenseRoutes } from './modules/licenses/routes.js';
import { sessionRoutes } from './modules/sessions/routes.js';
import { transferAdminRoutes } from './modules/transfer/routes.js';
import { webhookAdminRoutes } from './modules/webhooks/admin-routes.js';
import { webhookOutboxPlugin } from './modules/webhooks/outbox.js';
import { webhookDeliveryPlugin } from './modules/webhooks/worker.js';

declare module 'fastify' {
  interface FastifyInstance {
    database: Database;
    config: Config;
  }
}

export interface BuildAppOptions {
  config: Config;
  database: Database;
  /** Log level and destination; defaults to config.logLevel on stdout. Redaction always applies. */
  logger?: { level?: string; stream?: LogDestination };
  /** Sees every route as it is registered (tests compare them with the OpenAPI document). */
  onRoute?: (route: RouteOptions) => void;
}

/**
 * Builds the application without listening (server.ts listens, tests inject). Registration is
 * explicit and ordered: the cross-cutting HTTP plugins first, then one line per module.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config, database } = options;
  const app = Fastify({
    logger: loggerOptions({ level: options.logger?.level ?? config.logLevel, stream: options.logger?.stream }),
    logController: new RequestLogController(),
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    requestIdHeader: 'x-request-id',
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    // Requests arriving while the server shuts down are refused by admissionPlugin (the envelope).
    return503OnClosing: false,
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
    // Node answers a missing Host with an empty 400; errorsPlugin answers it with the envelope.
    http: { requireHostHeader: false },
    routerOptions: { ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 256 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  app.decorate('database', database);
  app.decorate('config', config);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    compileValidator(schema as TSchema, (httpPart ?? 'body') as ValidationPart),
  );
  // Callback style: no promise per request, and a reply sent from a timer (REQUEST_TIMEOUT_MS)
  // is written at once.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });

  // First, so that every answer carries them, the errors of the hooks after it included.
  await app.register(securityHeadersPlugin);
  await app.register(errorsPlugin, { bodyLimit: config.bodyLimit });
  await app.register(openApiPlugin, { metricsToken: Boolean(config.metricsToken) }); // before any route
  await app.register(metricsPlugin, { token: config.metricsToken });
  // Load shedding and request deadlines, before any work (authentication, rate limits).
  await app.register(admissionPlugin, {
    requestTimeoutMs: config.requestTimeoutMs,
    maxConcurrentRequests: config.maxConcurrentRequests,
    maxEventLoopDelayMs: config.maxEventLoopDelayMs,
  });
  // Off unless CORS_ORIGINS is set; ahead of the limiter, so that its 429 is readable by the page.
  if (config.corsOrigins.length > 0) await app.register(corsPlugin, { origins: config.corsOrigins });
  // The limiter's onRequest hook must come before every authentication hook.
  await app.register(callerPlugin, {
    adminToken: config.adminToken,
    metricsToken: config.metricsToken,
    tokenCacheTtlMs: config.tokenCacheTtlMs,
  });
  await app.register(rateLimitPlugin, {
    max: config.rateLimitPerMinute,
    redisUrl: config.redisUrl,
    redisKeyPrefix: config.redisKeyPrefix,
  });
  await app.register(idempotencyPlugin);

  await app.register(webhookOutboxPlugin);
  await app.register(webhookDeliveryPlugin); // the delivery worker (WEBHOOKS_WORKER) and app.webhookWorker.wake()

  await app.register(healthRoutes);
  await app.register(licenseFilesPlugin); // signing keys and their start-up check; GET /.well-known/jwks.json (no auth)
  await app.register(async (publicApi) => {
    publicApi.addHook('onRoute', documentSecurity('bearerAuth'));
    await publicApi.register(accessTokenAuth);
    await publicApi.register(licenseRoutes);
    await publicApi.register(sessionRoutes);
    await publicApi.register(customerRoutes);
    await publicApi.register(licenseFileRoutes);
  });

  if (config.adminToken) {
    await app.register(
      async (adminApi) => {
        adminApi.addHook('onRoute', documentSecurity('adminToken'));
        await adminApi.register(adminTokenAuth);
        await adminApi.register(adminRoutes);
        await adminApi.register(webhookAdminRoutes);
        await adminApi.register(signingKeyAdminRoutes);
        await adminApi.register(backupAdminRoutes);
        await adminApi.register(transferAdminRoutes);
      },
      { prefix: '/admin' },
    );
    await app.register(consolePlugin, { prefix: '/console', adminToken: config.adminToken });
  }

  return app;
}
