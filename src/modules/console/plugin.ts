import { createHash, hkdfSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import csrfProtection from '@fastify/csrf-protection';
import formBody from '@fastify/formbody';
import secureSession from '@fastify/secure-session';
import fastifyStatic from '@fastify/static';
import { Eta } from 'eta';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { Counter } from 'prom-client';
import { toAppError } from '../../http/errors.js';
import { consoleRoutes } from './routes.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A console route reachable without signing in (the sign-in page, the assets). */
    consolePublic?: boolean;
  }
  interface FastifyReply {
    /** Renders a console page (views/<page>.eta in the layout) with `status` (200). */
    page(page: string, data: Record<string, unknown>, status?: number): FastifyReply;
  }
}

declare module '@fastify/secure-session' {
  interface SessionData {
    signedIn: boolean;
    accountId: string;
  }
}

const here = dirname(fileURLToPath(import.meta.url));
const VIEWS = join(here, 'views');
const ASSETS = join(here, 'assets');
const HTMX = dirname(createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'));

/** Long enough for a shift; the cookie is renewed by every answer that changes the session. */
const SESSION_SECONDS = 8 * 60 * 60;

/**
 * The console's policy: scripts and styles from this server only (htmx and console.js; no
 * inline script, no eval, no inline style), forms posted only here, nothing framed and nothing
 * framing it.
 */
const CONSOLE_DIRECTIVES = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
};

/** The asset URLs carry a digest of their files, so they can be cached for a year. */
function assetVersion(): string {
  const hash = createHash('sha256');
  for (const file of readdirSync(ASSETS).sort()) hash.update(readFileSync(join(ASSETS, file)));
  hash.update(readFileSync(join(HTMX, 'htmx.min.js')));
  return hash.digest('hex').slice(0, 12);
}

/**
 * The web console at /console (README, "The console"), registered only when ADMIN_TOKEN is set.
 * Signing in takes the admin token; the session is a signed and encrypted cookie whose key is
 * derived from ADMIN_TOKEN, so every process behind a balancer accepts it and changing the
 * token signs everyone out.
 */
export async function consolePlugin(app: FastifyInstance, options: { adminToken: string }) {
  const eta = new Eta({ views: VIEWS, cache: true, autoEscape: true, autoTrim: false });
  const version = assetVersion();
  const signIns = new Counter({
    name: 'keymint_console_sign_ins_total',
    help: 'Console sign-in attempts by outcome (success, failure)',
    labelNames: ['outcome'] as const,
    registers: [app.metricsRegistry],
  });
  const actions = new Counter({
    name: 'keymint_console_actions_total',
    help: 'Console form submissions by action and outcome (ok, refused)',
    labelNames: ['action', 'outcome'] as const,
    registers: [app.metricsRegistry],
  });

  app.addHook('onRoute', (route: RouteOptions) => {
    route.schema = { ...route.schema, hide: true };
    route.config = {
      ...route.config,
      helmet: { contentSecurityPolicy: { useDefaults: false, directives: CONSOLE_DIRECTIVES } },
    };
  });

  await app.register(formBody, { bodyLimit: 1024 * 1024 });
  await app.register(secureSession, {
    cookieName: 'keymint_console',
    key: Buffer.from(hkdfSync('sha256', options.adminToken, 'keymint-server', 'console session v1', 32)),
    expiry: SESSION_SECONDS,
    cookie: { path: '/console', httpOnly: true, sameSite: 'strict', secure: 'auto', maxAge: SESSION_SECONDS },
  });
  await app.register(csrfProtection, {
    sessionPlugin: '@fastify/secure-session',
    getToken: (request) => (request.body as { _csrf?: string } | undefined)?._csrf,
  });
  await app.register(fastifyStatic, {
    root: [ASSETS, HTMX],
    prefix: '/assets/',
    decorateReply: false,
    index: false,
    wildcard: false,
    maxAge: '365d',
    immutable: true,
  });

  app.decorateReply(
    'page',
    function page(this: FastifyReply, name: string, data: Record<string, unknown>, status = 200) {
      const request = this.request;
      const html = eta.render(`./${name}`, {
        ...data,
        assets: `/console/assets`,
        version,
        csrf: this.generateCsrf(),
        signedIn: request.session.get('signedIn') === true,
        path: request.url.split('?')[0],
        when: (date: Date | string | null | undefined) =>
          date ? new Date(date).toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '—',
        day: (date: Date | string | null | undefined) => (date ? new Date(date).toISOString().slice(0, 10) : ''),
      });
      return this.status(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
    },
  );

  // Signed-in first, then the CSRF token of every form post (bodies are parsed by then).
  app.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    // The assets need no session (they hold nothing of the account).
    if (request.routeOptions.config.consolePublic || request.routeOptions.url?.startsWith('/console/assets/')) return;
    if (request.session.get('signedIn') !== true) return reply.redirect('/console/sign-in', 303);
  });
  app.addHook('preHandler', (request, reply, done) => {
    if (request.method !== 'POST') return done();
    app.csrfProtection(request, reply, done);
  });

  app.setNotFoundHandler((_request, reply) => reply.page('error', { title: 'Not found', message: 'Not found' }, 404));
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.code === 'FST_CSRF_INVALID_TOKEN' || error.code === 'FST_CSRF_MISSING_SECRET') {
      return reply.page(
        'error',
        {
          title: 'Form expired',
          message: 'This form has expired or was not sent by the console: reload the page and try again.',
        },
        403,
      );
    }
    const appError = toAppError(error);
    if (appError && appError.statusCode < 500) {
      return reply.page('error', { title: appError.message, message: appError.message }, appError.statusCode);
    }
    if (appError?.reason === 'service_unavailable') {
      return reply.page(
        'error',
        { title: 'Service unavailable', message: 'Service unavailable: try again shortly.' },
        503,
      );
    }
    request.log.error({ err: error }, 'console request failed');
    return reply.page('error', { title: 'Server error', message: 'Server error' }, 500);
  });

  await app.register(consoleRoutes, { adminToken: options.adminToken, signIns, actions });
}
