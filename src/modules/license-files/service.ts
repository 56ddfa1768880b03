import { SignJWT } from 'jose';
import type { Db } from '../../db/client.js';
import { Errors } from '../../lib/errors.js';
import { type AuthContext, canSeeProduct } from '../../lib/scopes.js';
import { assertUsable } from '../licenses/policy.js';
import { findKeyWithCustomer } from '../licenses/queries.js';
import type { LicenseFile, SignBody } from './schemas.js';
import type { SigningKeys } from './signing-keys.js';

/** Offline license files (docs/api.md, "Offline licenses"). */

/** The claims of an offline license file, in the contract's order. Times are unix seconds. */
export interface LicenseClaims {
  sub: string;
  key: string;
  productId: string;
  machine: string;
  type: 'offline';
  iat: number;
  nbf: number;
  exp: number;
}

const unixSeconds = (date: Date): number => Math.floor(date.getTime() / 1000);

/**
 * The claims of a file signed at `now` (unix seconds): valid from now until the earlier of the
 * key's expiry and now + ttl. A key that never expires needs a ttl (400/1).
 */
export function licenseClaims(
  key: { key: string; productId: string; expiresAt: Date | null },
  hostId: string,
  ttl: number | undefined,
  now: number,
): LicenseClaims {
  const limits: number[] = [];
  if (key.expiresAt !== null) limits.push(unixSeconds(key.expiresAt));
  if (ttl !== undefined) limits.push(now + ttl);
  if (limits.length === 0) throw Errors.ttlRequired();
  return {
    sub: key.key,
    key: key.key,
    productId: key.productId,
    machine: hostId,
    type: 'offline',
    iat: now,
    nbf: now,
    exp: Math.min(...limits),
  };
}

/**
 * `POST /key/sign`. The checks run in the contract's order: the key (404/1), then the usability
 * checks shared with activation (blocked, expired, customer inactive, host not allowed: 403/2),
 * then the ttl rule (400/1).
 *
 * No transaction and no row lock: signing writes nothing to the key, and the one statement that
 * reads the key with its customer sees a consistent snapshot of both. A block, expiry change or
 * customer disable committing at the same moment is ordered after this read, exactly as if the
 * sign had arrived a moment earlier; a lock would only queue signs behind activations of the same
 * key. The current signing key's ID is read alongside (see SigningKeys); the first sign creates
 * the key pair, and only once every check has passed.
 */
export async function signLicenseFile(
  db: Db,
  signingKeys: SigningKeys,
  auth: AuthContext,
  body: SignBody,
): Promise<LicenseFile> {
  const [row, currentKid] = await Promise.all([
    canSeeProduct(auth, body.productId) ? findKeyWithCustomer(db, auth.accountId, body) : undefined,
    signingKeys.currentKid(),
  ]);
  if (!row) throw Errors.licenseKeyNotFound();
  assertUsable(row.key, { customer: row.customer ?? undefined, hostId: body.hostId });
  const now = Math.floor(Date.now() / 1000);
  const claims = licenseClaims(row.key, body.hostId, body.ttl, now);

  const signer = await signingKeys.signer(currentKid);
  const licenseToken = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: signer.kid })
    .sign(signer.key);
  return {
    licenseToken,
    signedKey: row.key.key,
    signedDate: new Date(now * 1000).toISOString(),
    keyId: signer.kid,
  };
}
