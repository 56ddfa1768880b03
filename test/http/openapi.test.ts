import SwaggerParser from '@apidevtools/swagger-parser';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { openTestDatabase, testConfig } from '../helpers/app.js';
import { client } from '../helpers/fixtures.js';

type Operation = {
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  parameters?: { in: string; name: string; required?: boolean; schema?: unknown }[];
  responses: Record<string, { content?: Record<string, { schema: unknown }>; headers?: Record<string, unknown> }>;
};
type OpenApiDocument = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme: string }> };
};

const routes: RouteOptions[] = [];
let app: FastifyInstance;
let closeDatabase: () => Promise<void>;
let document: OpenApiDocument;

beforeAll(async () => {
  const database = await openTestDatabase();
  closeDatabase = () => database.close();
  app = await buildApp({ config: testConfig(), database, onRoute: (route) => routes.push(route) });
  await app.ready();
  const response = await client(app).get('/openapi.json');
  expect(response.status).toBe(200);
  document = response.body as OpenApiDocument;
});
afterAll(async () => {
  await app.close();
  await closeDatabase();
});

const methodsOf = (route: RouteOptions) => (Array.isArray(route.method) ? route.method : [route.method]);
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
/** Every registered operation except hidden routes and the HEAD twin Fastify adds to each GET. */
function documentedRoutes() {
  return routes
    .filter((route) => !route.schema?.hide)
    .flatMap((route) =>
      methodsOf(route)
        .filter((method) => method !== 'HEAD')
        .map((method) => ({ route, method: method.toLowerCase(), path: openApiPath(route.url) })),
    );
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document, served without authentication', async () => {
    expect(document.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeTruthy();
  });

  it('lists every route the app registered, and nothing else', () => {
    const expected = documentedRoutes()
      .map(({ method, path }) => `${method} ${path}`)
      .sort();
    const listed = Object.entries(document.paths)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`))
      .sort();
    expect(expected.length).toBeGreaterThan(20);
    expect(listed).toEqual(expected);
    for (const path of ['/key', '/create-key', '/get-key', '/customer', '/admin/tokens', '/healthz', '/metrics']) {
      expect(Object.keys(document.paths)).toContain(path);
    }
  });

  it('documents request and response schemas of every operation', () => {
    for (const { route, method, path } of documentedRoutes()) {
      const operation = document.paths[path]![method]!;
      const where = `${method.toUpperCase()} ${path}`;
      const schema = route.schema as Record<string, unknown> | undefined;
      if (schema?.body) expect(operation.requestBody?.content['application/json']?.schema, where).toBeTypeOf('object');
      if (schema?.querystring) {
        const names = Object.keys((schema.querystring as { properties: object }).properties);
        expect(
          operation.parameters?.filter((p) => p.in === 'query').map((p) => p.name),
          where,
        ).toEqual(names);
      }
      if (schema?.response) {
        const success = Object.keys(schema.response as object).find((status) => /^2\d\d$/.test(status));
        expect(success, where).toBeDefined();
        // A route that sends something else than JSON (the backup file) names its media types.
        const declared = (schema.response as Record<string, { content?: object }>)[success!]?.content;
        for (const mediaType of declared ? Object.keys(declared) : ['application/json']) {
          expect(operation.responses[success!]?.content?.[mediaType]?.schema, `${where} ${mediaType}`).toBeTypeOf(
            'object',
          );
        }
        if ('4xx' in (schema.response as object)) {
          expect(operation.responses['4XX']?.content?.['application/json']?.schema, where).toEqual({
            type: 'object',
            properties: { message: { type: 'string' }, code: { type: 'integer' } },
            required: ['message', 'code'],
            additionalProperties: false,
          });
        }
      }
    }
  });

  it('documents the backup download as a binary file', () => {
    expect(document.paths['/admin/backup']!.get!.responses['200']!.content).toEqual({
      'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
    });
  });

  it('names the bearer scheme of each route: access tokens, the admin token, or none', () => {
    expect(document.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const { route, method, path } of documentedRoutes()) {
      const security = document.paths[path]![method]!.security;
      const where = `${method.toUpperCase()} ${path}`;
      if (path.startsWith('/admin/')) expect(security, where).toEqual([{ adminToken: [] }]);
      else if (route.config && 'scope' in route.config) expect(security, where).toEqual([{ bearerAuth: [] }]);
      else expect(security, where).toEqual([]);
    }
  });

  it('documents Idempotency-Key on every POST, PUT, PATCH and DELETE, and Idempotent-Replayed on its answers', () => {
    const writes = documentedRoutes().filter(({ method }) => ['post', 'put', 'patch', 'delete'].includes(method));
    expect(writes.length).toBeGreaterThan(15);
    for (const { method, path } of documentedRoutes()) {
      const operation = document.paths[path]![method]!;
      const where = `${method.toUpperCase()} ${path}`;
      const header = operation.parameters?.filter((p) => p.in === 'header' && p.name === 'Idempotency-Key');
      if (!writes.some((write) => write.method === method && write.path === path)) {
        expect(header ?? [], where).toEqual([]);
        continue;
      }
      expect(header, where).toEqual([
        expect.objectContaining({
          required: false,
          schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7E]+$' },
        }),
      ]);
      for (const [status, response] of Object.entries(operation.responses)) {
        const replayHeader = response.headers?.['Idempotent-Replayed'];
        if (status.startsWith('5')) expect(replayHeader, `${where} ${status}`).toBeUndefined();
        else expect(replayHeader, `${where} ${status}`).toMatchObject({ schema: { type: 'string', enum: ['true'] } });
      }
    }
  });

  it('leaves the Idempotency-Key check to the idempotency plugin: no route validates headers', () => {
    for (const route of routes) expect(route.schema?.headers, `${route.method} ${route.url}`).toBeUndefined();
  });

  it("explains the validator's own keywords and formats instead of leaking them", () => {
    const text = JSON.stringify(document);
    expect(text).not.toContain('KeymintMetadata');
    expect(text).not.toContain('x-empty-as-omitted');
    const createKey = document.paths['/key']!.post!.requestBody!.content['application/json']!.schema as {
      properties: Record<string, any>;
    };
    expect(createKey.properties.customerId.description).toBe('Customer ID. An empty string counts as omitted.');
    expect(createKey.properties.usesPerKey.anyOf[0].anyOf[0]).toEqual({
      type: 'string',
      format: 'activation-limit',
      description: 'Decimal integer from 1 to 2147483647, as a string',
    });
    expect(createKey.properties.metadata).toMatchObject({
      anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }],
    });
  });
});

describe('GET /docs', () => {
  it('serves the interactive reference, which loads /openapi.json', async () => {
    const page = await client(app).get('/docs/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('/openapi.json');
    const script = await client(app).get('/docs/js/scalar.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toBe('application/javascript; charset=utf-8');
    const redirect = await client(app).get('/docs');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/docs/');
  });
});
