import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** @fastify/helmet's options for this route (see `docsPagePolicy`). */
    helmet?: FastifyHelmetOptions;
  }
}

/**
 * helmet's safe headers on every answer (nosniff, no framing, no referrer, HSTS, same-origin
 * resource and opener policy, ...), with the API's own Content-Security-Policy: a JSON answer
 * loads nothing and is framed by nothing (OWASP's REST Security Cheat Sheet). `/docs` gets the
 * page's policy instead (`docsPagePolicy`).
 */
export const securityHeadersPlugin = fp(
  async (app: FastifyInstance) => {
    await app.register(helmet, {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
      },
      frameguard: { action: 'deny' },
    });
  },
  { name: 'keymint-security-headers' },
);

// The nonce each docs page answer's scripts carry: drawn when helmet writes the policy, read
// back when the page is sent (addDocsNonce).
const scriptNonces = new WeakMap<ServerResponse, string>();

const scriptNonce = (_request: IncomingMessage, response: ServerResponse): string => {
  const nonce = randomBytes(16).toString('base64');
  scriptNonces.set(response, nonce);
  return `'nonce-${nonce}'`;
};

/**
 * The Content-Security-Policy of the interactive reference (Scalar) at `/docs`, checked in
 * headless Chromium (README, "Security"). Scripts: this server's bundle and the page's one inline
 * script, by a nonce drawn for each answer — no 'unsafe-inline', no 'unsafe-eval'. Styles allow
 * 'unsafe-inline': the bundle inserts style elements without a nonce (its toasts) and Vue writes
 * style attributes; with images, fonts and connections limited to this server, injected CSS can
 * send nothing anywhere. The page fetches only this server's document and API (the "Test
 * request" client), posts no forms, and nothing may frame it.
 */
const DOCS_DIRECTIVES = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'", scriptNonce],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
};

/**
 * An onRoute hook for the docs plugin's routes (`prefix` and below): the docs policy, and the
 * page's scripts carry its nonce (`addDocsNonce`).
 */
export function docsPagePolicy(prefix: string) {
  return (route: RouteOptions) => {
    if (route.url !== prefix && !route.url.startsWith(`${prefix}/`)) return;
    route.config = {
      ...route.config,
      helmet: { contentSecurityPolicy: { useDefaults: false, directives: DOCS_DIRECTIVES } },
    };
    // First: on the HEAD route, Fastify's own hook after it measures the page to send its length.
    route.onSend = [addDocsNonce, route.onSend ?? []].flat();
  };
}

/**
 * The docs page's onSend hook: every `<script>` gets this answer's nonce. The page is Scalar's,
 * fixed at start-up: it holds no request data.
 */
async function addDocsNonce(_request: FastifyRequest, reply: FastifyReply, payload: unknown) {
  const nonce = scriptNonces.get(reply.raw);
  const type = String(reply.getHeader('content-type') ?? '');
  if (typeof payload !== 'string' || !type.startsWith('text/html') || nonce === undefined) return payload;
  return payload.replace(/<script(?=[\s>])/g, `<script nonce="${nonce}"`);
}
