import { randomBytes } from 'node:crypto';

const ID_BYTES = 11;
// Several IDs per CSPRNG call: one randomBytes() per ID was a visible share of a request's CPU.
const POOL_BYTES = ID_BYTES * 256;
let pool = Buffer.alloc(0);
let offset = 0;

/** Object IDs: 22 lowercase hex chars, 11 bytes from the CSPRNG. */
export function newId(): string {
  if (offset + ID_BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}

/** Access tokens: `at_` + 32 random bytes in base64url (43 chars). */
export const newAccessToken = (): string => `at_${randomBytes(32).toString('base64url')}`;
