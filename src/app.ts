import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { compileValidator, type ValidationPart } from './lib/validation.js';
import { accessTokenAuth, adminTokenAuth } from './plugins/auth.js';
import { clientErrorHandler, errorsPlugin } from './plugins/errors.js';
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
  /** Fastify logger options; defaults to JSON logs at config.logLevel. */
  logger?: FastifyServerOptions['logger'];
}

/** Builds the application without listening: server.ts listens, tests inject. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config, database } = options;
  const app = Fastify({
    logger: options.logger ?? {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers["idempotency-key"]'], censor: '[redacted]' },
    },
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    requestIdHeader: 'x-request-id',
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    clientErrorHandler,
    routerOptions: { ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 256 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('database', database);
  app.decorate('config', config);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    compileValidator(schema as TSchema, (httpPart ?? 'body') as ValidationPart),
  );
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(errorsPlugin, { bodyLimit: config.bodyLimit });
  await app.register(healthRoutes);

  await app.register(async (publicApi) => {
    await publicApi.register(accessTokenAuth);
    await publicApi.register(keyRoutes);
    await publicApi.register(customerRoutes);
  });

  if (config.adminToken) {
    const adminToken = config.adminToken;
    await app.register(
      async (adminApi) => {
        await adminApi.register(adminTokenAuth, { adminToken });
        await adminApi.register(adminRoutes);
      },
      { prefix: '/admin' },
    );
  }

  return app;
}
