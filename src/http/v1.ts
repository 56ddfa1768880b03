import type { RouteOptions } from 'fastify';
import { toV1, toV1Schema } from '../lib/v1-names.js';
import { type Operation, route } from './operation.js';

const V1_TAG = 'License keys (v1)';

/**
 * A legacy (v1) path of an operation: always POST with a JSON body (a v2 GET takes the same
 * fields from its query string), the answer with v1 field names (lib/v1-names.ts), and the same
 * service call as the v2 path.
 */
export function v1Route(operation: Operation, url: string): RouteOptions {
  const { querystring: _fromQuery, ...schema } = route(operation).schema ?? {};
  return {
    ...route(operation),
    method: 'POST',
    url,
    schema: {
      ...schema,
      tags: [V1_TAG],
      summary: `${operation.summary} (v1 names)`,
      body: operation.input,
      response: { ...(schema.response as object), 200: toV1Schema(operation.response) },
    },
    handler: async (request, reply) => toV1(await operation.run(request, request.body, reply)),
  };
}
