import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { serverVersion } from '../lib/version.js';
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_METHODS, IDEMPOTENT_REPLAYED_HEADER } from './idempotency.js';
import { docsPagePolicy } from './security-headers.js';
import { EMPTY_AS_OMITTED } from './validation.js';

export interface OpenApiPluginOptions {
  /** Whether `GET /metrics` asks for METRICS_TOKEN (documents the scheme). */
  metricsToken: boolean;
}

export type SecuritySchemeName = 'bearerAuth' | 'adminToken';

/** The validator's own string formats, explained for readers of the document. */
const FORMAT_DESCRIPTIONS: Record<string, string> = {
  'iso-date': 'ISO 8601 date-time with zone, or a date (YYYY-MM-DD, midnight UTC)',
  'activation-limit': 'Decimal integer from 1 to 2147483647, as a string',
  'amount-keys': 'Decimal integer from 1 to 1000, as a string',
  'page-number': 'Decimal integer of at least 1, as a string',
  'positive-integer': 'Decimal integer of at least 1, as a string',
};

/**
 * A copy of a route schema for the document: custom formats get a description, and the
 * validator's `x-empty-as-omitted` keyword becomes a sentence. structuredClone also leaves the
 * TypeBox `Kind` symbols behind; the route keeps validating with the originals.
 */
function documentedSchema(schema: unknown): unknown {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    const format = typeof record.format === 'string' ? FORMAT_DESCRIPTIONS[record.format] : undefined;
    if (format && record.description === undefined) record.description = format;
    if (record[EMPTY_AS_OMITTED] === true) {
      delete record[EMPTY_AS_OMITTED];
      record.description = [record.description, 'An empty string counts as omitted.'].filter(Boolean).join('. ');
    }
    Object.values(record).forEach(visit);
  };
  const copy = structuredClone(schema);
  visit(copy);
  return copy;
}

type JsonObject = Record<string, unknown>;

const IDEMPOTENCY_KEY_PARAMETER = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\x20-\\x7E]+$',
  description:
    '1–255 printable ASCII characters, else 400/1 `Invalid Idempotency-Key`. A retry with the same key ' +
    'and the same request (method, path, query string, JSON body) gets the first answer replayed, nothing runs ' +
    'again; the same key with another request → 422/1; while the first is still running → 409/1. Kept 24 h, ' +
    'per token; 5xx answers are not kept.',
};

const IDEMPOTENT_REPLAYED = {
  type: 'string',
  enum: ['true'],
  description: 'Present when this is the stored answer to an earlier request with the same Idempotency-Key.',
};

/**
 * Documents the Idempotency-Key request header and the Idempotent-Replayed response header on
 * an operation the idempotency plugin covers. Only the document sees this `headers` schema: the
 * route itself never validates the header (the plugin does, with the contract's message).
 */
function documentIdempotency(schema: JsonObject, methods: string[]): JsonObject {
  if (!methods.every((method) => IDEMPOTENT_METHODS.has(method.toUpperCase()))) return schema;
  const headers = (schema.headers as JsonObject | undefined) ?? { type: 'object', properties: {} };
  const documented: JsonObject = {
    ...schema,
    headers: {
      ...headers,
      properties: { ...(headers.properties as JsonObject), [IDEMPOTENCY_KEY_HEADER]: IDEMPOTENCY_KEY_PARAMETER },
    },
  };
  if (schema.response) {
    const response: JsonObject = {};
    for (const [status, answer] of Object.entries(schema.response as Record<string, JsonObject>)) {
      // Answers with status ≥ 500 are never stored, so never replayed.
      response[status] = status.startsWith('5')
        ? answer
        : {
            ...answer,
            headers: { ...(answer.headers as JsonObject), [IDEMPOTENT_REPLAYED_HEADER]: IDEMPOTENT_REPLAYED },
          };
    }
    documented.response = response;
  }
  return documented;
}

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
          version: serverVersion,
          description:
            'Self-hosted license-key server speaking the KeyMint API. Errors are `{"message", "code"}`; ' +
            'every endpoint is rate limited per token (per IP without one) and answers 429 with `Retry-After`. ' +
            'Any endpoint may answer 503 `{"message":"Service unavailable","code":1}` when the database is ' +
            'unavailable, a request runs out of time (REQUEST_TIMEOUT_MS), the server sheds load (with ' +
            '`Retry-After`) or is shutting down: nothing was changed, except when the commit itself was cut ' +
            'off — retry with the same Idempotency-Key.',
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
      transform: ({ schema, url, route }) => ({
        schema: {
          ...documentIdempotency(
            documentedSchema(schema ?? {}) as JsonObject,
            Array.isArray(route.method) ? route.method : [route.method],
          ),
          // A route without a scheme of its own needs no credentials.
          security: schema?.security ?? [],
        },
        url,
      }),
    });

    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

    // The interactive reference (Scalar) under /docs, with the page's Content-Security-Policy and
    // its nonces. Its bundle is ~30 MB in memory once loaded: it is loaded by the first request
    // for it, into an app of its own that these routes hand their requests to.
    app.addHook('onRoute', docsPagePolicy('/docs'));
    const forward = lazyDocs('/docs');
    for (const url of ['/docs', '/docs/*']) {
      app.route({ method: ['GET', 'HEAD'], url, schema: { hide: true }, handler: forward });
    }
  },
  { name: 'keymint-openapi' },
);

/** Headers of the docs app's answer that the outer reply sets itself (length, connection). */
const HOP_HEADERS = new Set(['content-length', 'connection', 'keep-alive', 'transfer-encoding', 'date']);

/**
 * A handler that answers from Scalar's own routes (`prefix` and below), registered on first use in
 * an app of their own: a server whose docs nobody opens never loads the bundle. A text answer is
 * passed on as text, so that the docs policy's onSend hook can give the page's scripts its nonce.
 */
function lazyDocs(prefix: `/${string}`) {
  let docs: Promise<FastifyInstance> | undefined;
  const load = async () => {
    const { default: scalar } = await import('@scalar/fastify-api-reference');
    const docsApp = Fastify({ logger: false });
    await docsApp.register(scalar, {
      routePrefix: prefix,
      configuration: {
        url: '/openapi.json',
        pageTitle: 'keymint-server API',
        // A self-hosted server's docs call out to nothing: no hosted AI, MCP, telemetry or web fonts.
        agent: { disabled: true },
        mcp: { disabled: true },
        telemetry: false,
        withDefaultFonts: false,
        showDeveloperTools: 'never',
      },
    });
    await docsApp.ready();
    return docsApp;
  };
  return async (request: FastifyRequest, reply: FastifyReply) => {
    docs ??= load().catch((err) => {
      docs = undefined;
      throw err;
    });
    const answer = await (await docs).inject({ method: 'GET', url: request.url });
    reply.code(answer.statusCode);
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined && !HOP_HEADERS.has(name)) reply.header(name, value);
    }
    const type = String(answer.headers['content-type'] ?? '');
    return reply.send(type.startsWith('text/') ? answer.payload : answer.rawPayload);
  };
}
