import { createHash, timingSafeEqual } from 'node:crypto';

export const sha256Hex = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

export const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Constant-time equality of a presented secret (any length) with the SHA-256 of the expected one. */
export const matchesSecretDigest = (presented: string, expectedDigest: Buffer): boolean =>
  timingSafeEqual(sha256(presented), expectedDigest);
