import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter } from 'prom-client';
import { canonicalJson } from '../lib/canonical-json.js';
import { Errors } from '../lib/errors.js';
import { sha256Hex } from '../lib/hashing.js';
import { newId } from '../lib/ids.js';
import { startIdempotencyPrune } from '../modules/idempotency/prune.js';
import {
  claimIdempotencyKey,
  findIdempotencyRecord,
  type IdempotencyClaim,
  releaseIdempotencyKey,
  storeIdempotentResponse,
} from '../modules/idempotency/store.js';

/** The request header a client sends, and the response header of a replayed answer. */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';
export const IDEMPOTENT_REPLAYED_HEADER = 'Idempotent-Replayed';
/** The methods the header applies to; on any other it is ignored. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// 1–255 printable ASCII characters (0x20–0x7E).
const VALID_KEY = /^[\x20-\x7e]{1,255}$/;
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

const OUTCOMES = ['first', 'replayed', 'mismatch', 'in_progress', 'invalid'] as const;
type Outcome = (typeof OUTCOMES)[number];

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * false: the route's answer is never stored for a replay, because it holds a secret stored
     * nowhere else in plain (POST /admin/tokens: tokens are kept as hashes only). With a key,
     * concurrent duplicates still get 409, but once the first has answered a retry runs again.
     */
    idempotentReplay?: false;
  }
  interface FastifyRequest {
    /** The idempotency record this request holds until its answer is stored; null without one. */
    idempotencyClaim: IdempotencyClaim | null;
  }
}

/** SHA-256 of method, path, query string and the SHA-256 of the canonical JSON body ({} when bodiless). */
function fingerprintOf(request: FastifyRequest): string {
  const url = request.url;
  const queryStart = url.indexOf('?');
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const query = queryStart === -1 ? '' : url.slice(queryStart + 1);
  const body = sha256Hex(canonicalJson(request.body ?? {}));
  // None of the parts can contain a line feed, so the joined text is unambiguous.
  return sha256Hex(`${request.method}\n${path}\n${query}\n${body}`);
}

/**
 * Idempotency-Key (docs/api.md, "Idempotency") for POST, PUT, PATCH and DELETE of every route,
 * admin included, in two hooks of the root instance:
 *
 * - `preValidation`: after rate limit, authentication, scope and body parsing (those refusals
 *   store nothing: they never reach this hook) and before field validation, so a 400 for a bad
 *   field is stored and replayed like any answer. App-level hooks run before a route's own
 *   preValidation hook, so the fingerprint sees the body as the client sent it (the customer
 *   routes move `customerId` from the query into the body in theirs). One statement claims the
 *   record; only when another request's record stands, a second one reads it and the answer is
 *   the replay, 422 (other request) or 409 (still running).
 * - `onSend`: the serialized answer is stored on the record (status < 500), or the record is
 *   dropped (5xx) so that a retry runs again. One statement, only for a request holding a claim.
 *
 * Known limitation: the handler's transaction commits before onSend stores the answer. A
 * process that dies exactly between the two leaves an in-flight record: retries get 409 until
 * it is 5 minutes old, then the first retry takes it over and runs the request again. An
 * endpoint may close that gap by storing its answer in its own change (`claim.answered`): the
 * one-key create-key does, in the statement that inserts the key.
 *
 * The plain path (no header) costs one header lookup. Records live in the database, so every
 * server process sees the same ones; expired records are pruned by every process.
 */
export const idempotencyPlugin = fp(
  async (app: FastifyInstance) => {
    const db = app.database.db;
    const requests = new Counter({
      name: 'keymint_idempotency_requests_total',
      help: 'Requests with an Idempotency-Key by outcome: first (ran), replayed, mismatch, in_progress, invalid',
      labelNames: ['outcome'] as const,
      registers: [app.metricsRegistry],
    });
    for (const outcome of OUTCOMES) requests.inc({ outcome }, 0);
    const count = (outcome: Outcome) => requests.inc({ outcome });

    /** Whose records the request uses: the access token's, or the admin token's. */
    const scopeOf = async (request: FastifyRequest): Promise<string | undefined> => {
      const caller = await app.callerOf(request);
      if (caller.kind === 'access-token') return `token:${caller.auth.tokenId}`;
      if (caller.kind === 'admin') return 'admin';
      // Every route these methods reach is authenticated; nothing to scope a record by otherwise.
      return undefined;
    };

    app.decorateRequest('idempotencyClaim', null);

    /** Claims the record, or answers from it (true: the reply is sent, the route does not run). */
    const claimOrAnswer = async (request: FastifyRequest, reply: FastifyReply, key: string): Promise<boolean> => {
      const scope = await scopeOf(request);
      if (scope === undefined) return false;
      const claim: IdempotencyClaim = { scope, key, lockToken: newId() };
      const fingerprint = fingerprintOf(request);

      // A second round only when the record vanished between the two statements (its holder
      // answered 5xx and dropped it): then this request may claim it.
      for (let round = 0; round < 2; round++) {
        if (await claimIdempotencyKey(db, { ...claim, fingerprint })) {
          request.idempotencyClaim = claim;
          count('first');
          return false;
        }
        const record = await findIdempotencyRecord(db, scope, key);
        if (!record) continue;
        if (record.fingerprint !== fingerprint) {
          count('mismatch');
          throw Errors.idempotencyMismatch();
        }
        if (!record.response) break;
        count('replayed');
        // A string with a JSON content type is sent as is: the stored bytes, not re-serialized.
        reply
          .code(record.response.status)
          .header('content-type', JSON_CONTENT_TYPE)
          .header(IDEMPOTENT_REPLAYED_HEADER, 'true')
          .send(record.response.body);
        return true;
      }
      count('in_progress');
      throw Errors.idempotencyInProgress();
    };

    /**
     * Stores the answer on the record this request holds (< 500), or drops the record (5xx, or a
     * route whose answers are not replayable).
     */
    const settle = async (request: FastifyRequest, reply: FastifyReply, claim: IdempotencyClaim, payload: unknown) => {
      try {
        // Every answer of this API is serialized JSON text; anything else could not be replayed.
        const replayable = request.routeOptions.config.idempotentReplay !== false;
        if (replayable && reply.statusCode < 500 && typeof payload === 'string') {
          await storeIdempotentResponse(db, claim, reply.statusCode, payload);
        } else {
          await releaseIdempotencyKey(db, claim);
        }
      } catch (err) {
        // The change (if any) has committed, so the client gets its real answer: a 500 instead
        // would say that nothing happened, and its retry would run the change a second time once
        // the record can be taken over. The record stays in flight: retries get 409 for 5
        // minutes, then one takes it over and runs again (as after a crash, above). The log
        // names the row by scope and lock token, not by the client's key.
        request.log.error(
          { err, idempotencyRecord: { scope: claim.scope, lockToken: claim.lockToken } },
          'idempotency record not saved',
        );
      }
    };

    // Callback-style hooks: without the header (or a claim) each is a lookup and a direct call,
    // no promise per request.
    app.addHook('preValidation', (request, reply, done) => {
      const key = request.headers['idempotency-key'];
      if (key === undefined || !IDEMPOTENT_METHODS.has(request.method) || request.is404) return done();
      if (typeof key !== 'string' || !VALID_KEY.test(key)) {
        count('invalid');
        return done(Errors.invalidIdempotencyKey());
      }
      claimOrAnswer(request, reply, key).then((answered) => {
        // A hook that replied must not call done: while onSend hooks are still running the reply
        // does not count as sent yet, and done would go on to validation and the handler.
        if (answered) return;
        const claim = request.idempotencyClaim;
        if (claim !== null && request.deadline?.expired) {
          // Answered 503 (REQUEST_TIMEOUT_MS) while the claim was on its way: onSend ran without
          // it, so it is dropped here; the route runs but commits nothing (Deadline).
          request.idempotencyClaim = null;
          void settle(request, reply, claim, undefined);
        }
        done();
      }, done);
    });

    app.addHook('onSend', (request, reply, payload, done) => {
      const claim = request.idempotencyClaim;
      if (claim === null) return done(null, payload);
      request.idempotencyClaim = null;
      // Stored with the change, atomically: a later failure (even a 5xx) must not drop it.
      if (claim.answered !== undefined && (claim.answered === payload || reply.statusCode >= 500)) {
        return done(null, payload);
      }
      if (reply.statusCode === 503) {
        // A request that ran out of time while its commit was on its way may have committed: the
        // record stays in flight (409, then taken over after 5 minutes) so a retry cannot run the
        // change twice. Otherwise it is dropped without holding the answer back: a 503 of a
        // database outage must not wait for that same database.
        if (!request.deadline?.outcomeUnknown) void settle(request, reply, claim, payload);
        return done(null, payload);
      }
      settle(request, reply, claim, payload).then(() => done(null, payload));
    });

    startIdempotencyPrune(app);
  },
  { name: 'keymint-idempotency', dependencies: ['keymint-caller', 'keymint-metrics'] },
);
