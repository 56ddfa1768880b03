import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scrypt,
} from 'node:crypto';
import { promisify } from 'node:util';

/**
 * The key material of offline license files (docs/api.md, "Offline licenses"): Ed25519 key
 * pairs, their key IDs and public JWKs, and the at-rest encryption of private keys under
 * SECRET_KEY. Pure functions over node:crypto: no database, no HTTP.
 */

/** A new key pair as stored: SPKI and PKCS#8 PEM, and its kid. */
export interface KeyPair {
  kid: string;
  publicKey: string;
  privateKey: string;
}

/** `kid` = base64url(SHA-256(SPKI DER of the public key)), no padding: 43 chars. */
export function kidOf(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64url');
}

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { kid: kidOf(publicKey), publicKey, privateKey };
}

export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  alg: 'EdDSA';
  use: 'sig';
  kid: string;
  x: string;
}

/** The JWKS entry of a stored public key. */
export function publicJwk(kid: string, publicKeyPem: string): PublicJwk {
  const { x } = createPublicKey(publicKeyPem).export({ format: 'jwk' });
  if (typeof x !== 'string') throw new Error(`signing key ${kid} is not an Ed25519 key`);
  return { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid, x };
}

/*
 * At-rest encryption of private keys: AES-256-GCM under a key derived from SECRET_KEY with
 * scrypt (N = 2^15, r = 8, p = 1; a SECRET_KEY may be a passphrase, so the derivation is slow on
 * purpose) and the fixed salt below. A deployment has one SECRET_KEY, so a per-row salt would buy
 * nothing but a derivation per key. Every private key gets its own random 96-bit IV, and its kid
 * is the additional authenticated data, so a ciphertext copied onto another row does not decrypt.
 *
 * Stored text: `v1.<iv>.<ciphertext>.<tag>`, each part base64url.
 */
const SCRYPT_SALT = 'keymint-server signing-keys v1';
const SCRYPT_OPTIONS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SEALED_PREFIX = 'v1';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: string,
  length: number,
  options: typeof SCRYPT_OPTIONS,
) => Promise<Buffer>;

/** The AES-256 key of a SECRET_KEY (about 0.1 s of CPU: derive once per process). */
export const deriveEncryptionKey = (secretKey: string): Promise<Buffer> =>
  scryptAsync(secretKey, SCRYPT_SALT, 32, SCRYPT_OPTIONS);

export function sealPrivateKey(privateKeyPem: string, kid: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(privateKeyPem, 'utf8'), cipher.final()]);
  return [SEALED_PREFIX, iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

/** Thrown when a sealed private key does not open: another SECRET_KEY, or a damaged value. */
export class UnsealError extends Error {
  constructor(kid: string) {
    super(`signing key ${kid} cannot be decrypted with this SECRET_KEY`);
    this.name = 'UnsealError';
  }
}

export function openPrivateKey(sealed: string, kid: string, key: Buffer): string {
  const [prefix, iv, ciphertext, tag, extra] = sealed.split('.');
  if (prefix !== SEALED_PREFIX || !iv || ciphertext === undefined || !tag || extra !== undefined) {
    throw new UnsealError(kid);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new UnsealError(kid);
  }
}
