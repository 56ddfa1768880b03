import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Session credentials (docs/api.md, "Floating licenses"): the secret a checkout hands out, the
 * single-use nonces, and the signature a heartbeat or checkin proves possession of the secret
 * with — lowercase hex of HMAC-SHA256(key = UTF-8 bytes of the secret, "<sessionId>:<nonce>"),
 * exactly as the SDKs compute it.
 */

/** 32 bytes from the CSPRNG as 64 lowercase hex chars. */
export const newSessionSecret = (): string => randomBytes(32).toString('hex');

const NONCE_BYTES = 16;
// Several nonces per CSPRNG call, as for IDs (lib/ids.ts): a heartbeat draws one on the hot path.
const POOL_BYTES = NONCE_BYTES * 256;
let pool = Buffer.alloc(0);
let offset = 0;

/** 16 bytes from the CSPRNG as 32 lowercase hex chars. */
export function newNonce(): string {
  if (offset + NONCE_BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const nonce = pool.toString('hex', offset, offset + NONCE_BYTES);
  offset += NONCE_BYTES;
  return nonce;
}

/** The signature of `nonce` for the session, as raw bytes. */
export const sessionSignature = (secret: string, sessionId: string, nonce: string): Buffer =>
  createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${sessionId}:${nonce}`, 'utf8').digest();

const SIGNATURE_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Whether `presented` (hex, any case) is the session's signature of `nonce`. The bytes are
 * compared in constant time; anything that is not 64 hex chars is simply not the signature.
 */
export function isSessionSignature(presented: string, secret: string, sessionId: string, nonce: string): boolean {
  const expected = sessionSignature(secret, sessionId, nonce);
  if (!SIGNATURE_HEX.test(presented)) return false;
  return timingSafeEqual(Buffer.from(presented, 'hex'), expected);
}

/**
 * The nonce a call presents in `timestamp`: a string as sent, a JSON number as its decimal
 * string (integers without exponent notation, e.g. 1e21 → "1000000000000000000000").
 */
export function presentedNonce(timestamp: string | number): string {
  if (typeof timestamp === 'string') return timestamp;
  return Number.isInteger(timestamp) ? BigInt(timestamp).toString() : String(timestamp);
}
