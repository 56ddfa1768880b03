import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import scalar from '@scalar/fastify-api-reference';
import type { FastifyInstance, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';

export interface OpenApiPluginOptions {
  /** Whether `GET /metrics` asks for METRICS_TOKEN (documents the scheme). */
  metricsToken: boolean;
}

export type SecuritySchemeName = 'bearerAuth' | 'adminToken';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/**
 * An onRoute hook for an authenticated plugin context: every route registered there is
 * documented with that context's bearer scheme, unless the route names its own.
 */
export function documentSecurity(scheme: SecuritySchemeName) {
  return (route: RouteOptions) => {
    if (route.schema?.security) return;
    route.schema = { ...route.schema, security: [{ [scheme]: [] }] };
  };
}

/**
 * The OpenAPI 3.1 document at `GET /openapi.json`, generated from the routes' TypeBox schemas,
 * and the interactive reference (Scalar) at `/docs`. Register before any route.
 */
export const openApiPlugin = fp<OpenApiPluginOptions>(
  async (app: FastifyInstance, options) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'keymint-server',
          version,
          description:
            'Self-hosted license-key server speaking the KeyMint API. Errors are `{"message", "code"}`; ' +
            'every endpoint is rate limited per token (per IP without one) and answers 429 with `Retry-After`.',
        },
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              description: 'An access token (`at_…`) created through the admin API or the CLI.',
            },
            adminToken: {
              type: 'http',
              scheme: 'bearer',
              description: 'The ADMIN_TOKEN the server was started with.',
            },
            ...(options.metricsToken
              ? { metricsToken: { type: 'http', scheme: 'bearer', description: 'The METRICS_TOKEN.' } }
              : {}),
          },
        },
      },
      transform: ({ schema, url }) => ({
        // A route without a scheme of its own needs no credentials.
        schema: { ...schema, security: schema?.security ?? [] },
        url,
      }),
    });

    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

    await app.register(scalar, {
      routePrefix: '/docs',
      configuration: { url: '/openapi.json', pageTitle: 'keymint-server API' },
    });
  },
  { name: 'keymint-openapi' },
);
