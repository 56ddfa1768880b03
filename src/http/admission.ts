import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge } from 'prom-client';
import { Deadline } from '../db/deadline.js';
import { Errors } from '../lib/errors.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The time this request may take (REQUEST_TIMEOUT_MS); see Deadline. */
    deadline: Deadline;
  }
  interface FastifyContextConfig {
    /** Probes and metrics: answered even when the server sheds load. */
    alwaysAdmit?: boolean;
    /** Bulk transfers (import, export): not bound by REQUEST_TIMEOUT_MS. */
    untimed?: boolean;
  }
}

export interface AdmissionOptions {
  /** A request not answered in this time is answered 503 (its writes roll back). */
  requestTimeoutMs: number;
  /** Requests in progress at once; beyond it a request is answered 503 at once. 0: no limit. */
  maxConcurrentRequests: number;
  /** Mean event-loop delay (ms, sampled each second) above which requests are shed. 0: off. */
  maxEventLoopDelayMs: number;
}

// How often under-pressure samples the event-loop delay (its mean over the interval).
const EVENT_LOOP_SAMPLE_MS = 1000;

type ShedReason = 'concurrency' | 'event_loop_delay' | 'shutting_down';

/** The 503 of a refused request (rendered by the error handler); it may try again in a second. */
function refusal(reply: FastifyReply) {
  reply.header('retry-after', '1');
  return Errors.serviceUnavailable();
}

/**
 * Which requests are let in, and how long they may take. Every excess request is refused with
 * 503 `Service unavailable` at once, before authentication or any database work, instead of
 * queueing without bound:
 * - more than `maxConcurrentRequests` in progress (requests waiting for a pool connection count);
 * - the event loop lagging (`@fastify/under-pressure`), i.e. more work arriving than one process
 *   can parse and answer;
 * - the server shutting down (SIGTERM): requests already accepted finish, new ones are refused.
 * A request admitted but not answered within `requestTimeoutMs` (a database that stopped
 * answering, a lock held too long) is answered 503 then; see Deadline for its writes.
 */
export const admissionPlugin = fp<AdmissionOptions>(
  async (app: FastifyInstance, options) => {
    const registry = app.metricsRegistry;
    let inFlight = 0;
    let closing = false;
    const shed = new Counter({
      name: 'keymint_http_requests_shed_total',
      help: 'Requests refused with 503 before any work: concurrency limit, event-loop delay or shutting down',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    for (const reason of ['concurrency', 'event_loop_delay', 'shutting_down'] satisfies ShedReason[]) {
      shed.inc({ reason }, 0);
    }
    const timeouts = new Counter({
      name: 'keymint_http_request_timeouts_total',
      help: 'Requests answered 503 for running out of time (REQUEST_TIMEOUT_MS)',
      registers: [registry],
    });
    new Gauge({
      name: 'keymint_http_requests_in_flight',
      help: 'Requests in progress (admitted, not yet answered)',
      registers: [registry],
      collect() {
        this.set(inFlight);
      },
    });

    const onTimeout = (request: FastifyRequest, reply: FastifyReply) => {
      if (reply.sent) return;
      request.deadline.expire();
      timeouts.inc();
      request.log.warn(
        { timeoutMs: options.requestTimeoutMs, outcomeUnknown: request.deadline.outcomeUnknown },
        'request timed out',
      );
      // (request.raw is destroyed once its body has been read: the socket is what tells.)
      if (!reply.raw.headersSent && !reply.raw.destroyed) sendError(reply, Errors.serviceUnavailable());
    };

    // A handler that settles after its request timed out (already answered 503) is ignored, so
    // its late result or error is not sent (or logged) a second time.
    app.addHook('onRoute', (route) => {
      const handler = route.handler;
      route.handler = function (this: FastifyInstance, request, reply) {
        const result = handler.call(this, request, reply) as unknown;
        if (!(result instanceof Promise)) return result;
        return result.then(
          (value) => (request.deadline?.expired ? undefined : value),
          (err) => {
            if (request.deadline?.expired) return undefined;
            throw err;
          },
        );
      };
    });

    app.decorateRequest('deadline', null as unknown as Deadline);
    app.addHook('onRequest', (request, reply, done) => {
      const deadline = new Deadline();
      request.deadline = deadline;
      const alwaysAdmit = request.routeOptions.config.alwaysAdmit === true;
      if (!alwaysAdmit && closing) {
        shed.inc({ reason: 'shutting_down' });
        return done(refusal(reply));
      }
      if (!alwaysAdmit && options.maxConcurrentRequests > 0 && inFlight >= options.maxConcurrentRequests) {
        shed.inc({ reason: 'concurrency' });
        return done(refusal(reply));
      }
      inFlight++;
      if (request.routeOptions.config.untimed !== true) {
        deadline.timer = setTimeout(onTimeout, options.requestTimeoutMs, request, reply);
      }
      // 'close' comes once per response, also when the client went away before the answer.
      reply.raw.once('close', () => {
        inFlight--;
        clearTimeout(deadline.timer);
      });
      done();
    });

    app.addHook('preClose', (done) => {
      closing = true;
      done();
    });
    // While shutting down every answer closes its connection (`Connection: close`): the server
    // closes idle keep-alive connections once, when it starts closing, and a connection left
    // open after its answer would hold the shutdown until its keep-alive timeout.
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (closing) reply.raw.shouldKeepAlive = false;
      done(null, payload);
    });

    if (options.maxEventLoopDelayMs > 0) {
      // Start-up stalls the event loop for seconds (WASM compilation, migrations): that is not
      // load, so the delay is enforced from two samples after the server is ready.
      let enforcing = false;
      app.addHook('onReady', (done) => {
        setTimeout(() => (enforcing = true), 2 * EVENT_LOOP_SAMPLE_MS).unref();
        done();
      });
      await app.register(underPressure, {
        maxEventLoopDelay: options.maxEventLoopDelayMs,
        sampleInterval: EVENT_LOOP_SAMPLE_MS,
        // A rejected promise goes to the error handler (the envelope); undefined admits.
        pressureHandler: (request, reply) => {
          if (!enforcing || request.routeOptions.config.alwaysAdmit === true) return undefined;
          shed.inc({ reason: 'event_loop_delay' });
          return Promise.reject(refusal(reply));
        },
      });
    }
  },
  { name: 'keymint-admission', dependencies: ['keymint-metrics'] },
);
