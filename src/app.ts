import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { loggerOptions, RequestLogController, type LogDestination } from './lib/logger.js';
import { compileValidator, type ValidationPart } from './lib/validation.js';
import { accessTokenAuth, adminTokenAuth } from './plugins/auth.js';
import { clientErrorHandler, errorsPlugin, frameworkErrorHandler } from './plugins/errors.js';
import { metricsPlugin } from './plugins/metrics.js';
import { documentSecurity, openApiPlugin } from './plugins/openapi.js';
import { callerPlugin } from './plugins/caller.js';
import { rateLimitPlugin } from './plugins/rate-limit.js';
import { adminRoutes } from './routes/admin.js';
import { customerRoutes } from './routes/customers.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';

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

/** Builds the application without listening: server.ts listens, tests inject. */
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
    return503OnClosing: true,
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
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(errorsPlugin, { bodyLimit: config.bodyLimit });
  // The limiter's onRequest hook must be the first one, ahead of every authentication hook.
  await app.register(callerPlugin, { adminToken: config.adminToken, metricsToken: config.metricsToken });
  await app.register(rateLimitPlugin, {
    max: config.rateLimitPerMinute,
    redisUrl: config.redisUrl,
    redisKeyPrefix: config.redisKeyPrefix,
  });
  await app.register(openApiPlugin, { metricsToken: Boolean(config.metricsToken) });
  await app.register(metricsPlugin, { token: config.metricsToken });
  await app.register(healthRoutes);

  await app.register(async (publicApi) => {
    publicApi.addHook('onRoute', documentSecurity('bearerAuth'));
    await publicApi.register(accessTokenAuth);
    await publicApi.register(keyRoutes);
    await publicApi.register(customerRoutes);
  });

  if (config.adminToken) {
    await app.register(
      async (adminApi) => {
        adminApi.addHook('onRoute', documentSecurity('adminToken'));
        await adminApi.register(adminTokenAuth);
        await adminApi.register(adminRoutes);
      },
      { prefix: '/admin' },
    );
  }

  return app;
}
