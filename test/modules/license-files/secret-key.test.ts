import { createPublicKey } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config.js';
import type { Database } from '../../../src/db/client.js';
import { signingKeys } from '../../../src/db/schema/index.js';
import {
  deriveEncryptionKey,
  generateKeyPair,
  openPrivateKey,
  sealPrivateKey,
  UnsealError,
} from '../../../src/modules/license-files/key-material.js';
import { admin, createKey, createTenant } from '../../helpers/fixtures.js';
import { appOn, openIsolatedDatabase, signFile, signingKeyRows, verifyWithApp } from './helpers.js';

const SECRET = 'correct-horse-battery-staple-0123';
const OTHER_SECRET = 'another-secret-key-0123456789';

let database: Database;
const apps: FastifyInstance[] = [];

beforeEach(async () => {
  database = await openIsolatedDatabase();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await database.close();
});

const start = async (env: Record<string, string> = {}) => {
  const app = await appOn(database, env);
  apps.push(app);
  return app;
};

/** Signs one file on `app` (a fresh tenant and key). */
async function signOn(app: FastifyInstance) {
  const tenant = await createTenant(app);
  const key = await createKey(tenant, { expiryDate: '2099-01-01' });
  return signFile(tenant, key);
}

/** The start-up error of an app on the test's database, or undefined when it starts. */
async function startupError(env: Record<string, string>): Promise<unknown> {
  try {
    await start(env);
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('SECRET_KEY: signing private keys encrypted at rest (§4.2)', () => {
  it('with SECRET_KEY the stored private key is AES-256-GCM ciphertext, not the PEM, and signing works', async () => {
    const app = await start({ SECRET_KEY: SECRET });
    const file = await signOn(app);
    const [row] = await signingKeyRows(database);
    expect(row).toMatchObject({ kid: file.keyId, encrypted: true });
    expect(row!.privateKey).not.toContain('PRIVATE KEY');
    expect(row!.privateKey).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(row!.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);

    // It is the private key of the published public key, under the key derived from SECRET_KEY.
    const pem = openPrivateKey(row!.privateKey, row!.kid, await deriveEncryptionKey(SECRET));
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPublicKey(pem).export({ type: 'spki', format: 'pem' })).toBe(row!.publicKey);
    await expect(verifyWithApp(app, file.licenseToken)).resolves.toBeTruthy();
  });

  it('another process with the same SECRET_KEY signs with the same key; rotation keeps encrypting', async () => {
    const first = await start({ SECRET_KEY: SECRET });
    const signed = await signOn(first);
    const second = await start({ SECRET_KEY: SECRET });
    expect((await signOn(second)).keyId).toBe(signed.keyId);

    const rotated = await admin(second).post('/admin/signing-keys/rotate');
    expect(rotated.status).toBe(201);
    const rows = await signingKeyRows(database);
    expect(rows.map((row) => row.encrypted)).toEqual([true, true]);
    expect((await signOn(first)).keyId).toBe(rotated.body.kid);
    await expect(verifyWithApp(first, signed.licenseToken)).resolves.toBeTruthy();
  });

  it('without SECRET_KEY the private key is stored as plain PKCS#8 PEM', async () => {
    const app = await start();
    await signOn(app);
    const [row] = await signingKeyRows(database);
    expect(row!.encrypted).toBe(false);
    expect(row!.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
  });

  it('refuses to start when the database holds encrypted keys and SECRET_KEY is missing', async () => {
    await signOn(await start({ SECRET_KEY: SECRET }));
    const err = await startupError({});
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      'SECRET_KEY is not set, but the database holds 1 signing key(s) encrypted with one: ' +
        'start with the SECRET_KEY they were encrypted with',
    );
  });

  it('refuses to start when SECRET_KEY is wrong (GCM authentication fails)', async () => {
    const { keyId } = await signOn(await start({ SECRET_KEY: SECRET }));
    const err = await startupError({ SECRET_KEY: OTHER_SECRET });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `SECRET_KEY does not decrypt signing key ${keyId}: the signing keys were encrypted with another SECRET_KEY`,
    );
    // The right one still starts.
    expect((await signOn(await start({ SECRET_KEY: SECRET }))).keyId).toBe(keyId);
  });

  it('refuses to start when a stored ciphertext was altered', async () => {
    const { keyId } = await signOn(await start({ SECRET_KEY: SECRET }));
    const [row] = await signingKeyRows(database);
    const parts = row!.privateKey.split('.');
    const ciphertext = Buffer.from(parts[2]!, 'base64url');
    ciphertext[5] = ciphertext[5]! ^ 0x01;
    parts[2] = ciphertext.toString('base64url');
    await database.db
      .update(signingKeys)
      .set({ privateKey: parts.join('.') })
      .where(eq(signingKeys.kid, keyId));
    const err = await startupError({ SECRET_KEY: SECRET });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`SECRET_KEY does not decrypt signing key ${keyId}`);
  });

  it('keys stored in plain text before SECRET_KEY was set are encrypted at start-up, and keep signing', async () => {
    const plain = await start();
    const before = await signOn(plain);
    expect((await signingKeyRows(database))[0]!.encrypted).toBe(false);

    const encrypted = await start({ SECRET_KEY: SECRET });
    const [row] = await signingKeyRows(database);
    expect(row).toMatchObject({ kid: before.keyId, encrypted: true });
    expect(row!.privateKey).not.toContain('PRIVATE KEY');
    expect((await signOn(encrypted)).keyId).toBe(before.keyId);
    await expect(verifyWithApp(encrypted, before.licenseToken)).resolves.toBeTruthy();
    // From now on SECRET_KEY is required.
    expect(await startupError({})).toBeInstanceOf(ConfigError);
  });
});

describe('key material', () => {
  it('a sealed key opens only with its key and its kid (the kid is authenticated data)', async () => {
    const pair = generateKeyPair();
    const key = await deriveEncryptionKey(SECRET);
    const sealed = sealPrivateKey(pair.privateKey, pair.kid, key);
    expect(openPrivateKey(sealed, pair.kid, key)).toBe(pair.privateKey);
    expect(sealPrivateKey(pair.privateKey, pair.kid, key)).not.toBe(sealed); // a fresh IV each time
    expect(() => openPrivateKey(sealed, generateKeyPair().kid, key)).toThrow(UnsealError);
    expect(() => openPrivateKey(sealed, pair.kid, Buffer.alloc(32))).toThrow(UnsealError);
    for (const damaged of ['', 'v1', `v2${sealed.slice(2)}`, `${sealed}.x`, sealed.replace(/\.[^.]+$/, '.AAAA')]) {
      expect(() => openPrivateKey(damaged, pair.kid, key)).toThrow(UnsealError);
    }
  });

  it('derives the same 256-bit key from the same SECRET_KEY, another from another', async () => {
    const [a, b, c] = await Promise.all([
      deriveEncryptionKey(SECRET),
      deriveEncryptionKey(SECRET),
      deriveEncryptionKey(OTHER_SECRET),
    ]);
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });
});
