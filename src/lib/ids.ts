import { createHash, randomBytes } from 'node:crypto';

/** Object IDs: 22 lowercase hex chars, 11 bytes from the CSPRNG (contract §1.7). */
export const newId = (): string => randomBytes(11).toString('hex');

/** Access tokens: `at_` + 32 random bytes in base64url (43 chars). */
export const newAccessToken = (): string => `at_${randomBytes(32).toString('base64url')}`;

export const sha256Hex = (value: string): string =>
  createHash('sha256').update(value, 'utf8').digest('hex');
