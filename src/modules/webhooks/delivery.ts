import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { serverVersion } from '../../lib/version.js';
import { signatureHeader } from './signature.js';
import { assertDeliverable, BlockedAddressError, guardedLookup } from './url-guard.js';

/**
 * One delivery attempt over HTTP (docs/api.md, "Webhooks"): `POST <url>` of the event's stored
 * body, signed afresh. node:http rather than fetch, for its `lookup` option: the SSRF guard runs
 * inside the connection's DNS lookup, so the address connected to is the address checked.
 * Redirects are not followed (a 3xx is a failed attempt), and no connection is kept alive, so
 * every attempt's address is checked.
 */

export const ATTEMPT_OUTCOMES = ['delivered', 'http_error', 'timeout', 'network_error', 'blocked'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export type AttemptResult =
  | { outcome: AttemptOutcome; statusCode: number | null; error: string | null; durationMs: number }
  /** Cut short by the worker's shutdown before an answer: not an attempt. */
  | { outcome: 'aborted' };

export interface AttemptTarget {
  url: string;
  secret: string;
  payload: string;
  eventId: string;
  eventType: string;
}

export interface AttemptOptions {
  /** The whole attempt — connecting, sending, the answer and its body — must end within this. */
  timeoutMs: number;
  allowPrivate: boolean;
  /** Aborts the attempt (shutdown). */
  signal: AbortSignal;
}

// A receiver's answer is read up to this much (then the connection is dropped), and at most
// ERROR_TEXT_CHARS of a non-2xx answer are kept in the delivery's last error.
const MAX_RESPONSE_BYTES = 64 * 1024;
const ERROR_TEXT_CHARS = 200;

const USER_AGENT = `keymint-server/${serverVersion}`;

const isSuccess = (status: number) => status >= 200 && status < 300;

/** A short, secret-free description of a failed connection: `connect ECONNREFUSED`. */
function networkError(err: unknown): string {
  const { code, syscall, message } = err as NodeJS.ErrnoException;
  if (code && syscall) return `${syscall} ${code}`;
  if (code) return code;
  return String(message ?? err).slice(0, ERROR_TEXT_CHARS);
}

/** `HTTP 500`, with the start of the receiver's answer when it gave one. */
function httpError(status: number, body: string): string {
  const text = body.replace(/\s+/g, ' ').trim();
  return (text ? `HTTP ${status}: ${text}` : `HTTP ${status}`).slice(0, ERROR_TEXT_CHARS);
}

/** Sends one attempt; never rejects. */
export function sendAttempt(target: AttemptTarget, options: AttemptOptions): Promise<AttemptResult> {
  const started = performance.now();
  return new Promise<AttemptResult>((resolve) => {
    let request: ClientRequest | undefined;
    let response: IncomingMessage | undefined;
    let settled = false;
    const finish = (outcome: AttemptOutcome, error: string | null) => {
      const statusCode = outcome === 'timeout' || outcome === 'network_error' ? null : (response?.statusCode ?? null);
      settle({ outcome, statusCode, error, durationMs: performance.now() - started });
    };
    const settle = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      // Ends the connection unless the answer was read to its end.
      if (!response?.complete) request?.destroy();
      resolve(result);
    };
    const onAbort = () => settle({ outcome: 'aborted' });
    const timer = setTimeout(() => finish('timeout', `timeout after ${options.timeoutMs} ms`), options.timeoutMs);
    if (options.signal.aborted) return onAbort();
    options.signal.addEventListener('abort', onAbort, { once: true });

    let url: URL;
    try {
      url = new URL(target.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('unsupported protocol');
      assertDeliverable(url, options.allowPrivate);
    } catch (err) {
      return err instanceof BlockedAddressError
        ? finish('blocked', 'blocked: non-public address')
        : finish('network_error', 'invalid url');
    }

    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = Buffer.from(target.payload, 'utf8');
    request = send(url, {
      method: 'POST',
      agent: false,
      lookup: options.allowPrivate ? undefined : guardedLookup,
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': body.length,
        'User-Agent': USER_AGENT,
        'Keymint-Event-Id': target.eventId,
        'Keymint-Event-Type': target.eventType,
        'Keymint-Signature': signatureHeader(target.secret, target.payload, Math.floor(Date.now() / 1000)),
      },
    });
    request.on('error', (err) => {
      if (err instanceof BlockedAddressError) finish('blocked', 'blocked: non-public address');
      else finish('network_error', networkError(err));
    });
    request.on('response', (answer) => {
      response = answer;
      const status = answer.statusCode ?? 0;
      let bytes = 0;
      let text = '';
      answer.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (!isSuccess(status) && text.length < ERROR_TEXT_CHARS) text += chunk.toString('utf8');
        // Enough read: the status decides.
        if (bytes > MAX_RESPONSE_BYTES) end();
      });
      const end = () => (isSuccess(status) ? finish('delivered', null) : finish('http_error', httpError(status, text)));
      answer.on('end', end);
      answer.on('error', (err) => finish('network_error', networkError(err)));
      answer.on('close', () => {
        if (!answer.complete) finish('network_error', 'connection closed before the answer ended');
      });
    });
    request.end(body);
  });
}
