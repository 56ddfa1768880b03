import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { expect } from 'vitest';
import { buildApp } from '../../../src/app.js';
import type { Database } from '../../../src/db/client.js';
import { signingKeys } from '../../../src/db/schema/index.js';
import { testConfig } from '../../helpers/app.js';
import { client, type Tenant } from '../../helpers/fixtures.js';

// This folder's tests take their helpers from here.
export { openIsolatedDatabase } from '../../helpers/app.js';

export const JWKS_PATH = '/.well-known/jwks.json';
export const KID = /^[A-Za-z0-9_-]{43}$/;

/** `POST /key/sign` for one of the tenant's keys. */
export const sign = (tenant: Tenant, licenseKey: string, body: Record<string, unknown> = {}) =>
  tenant.api.post('/key/sign', { productId: tenant.productId, licenseKey, hostId: 'host-7f3a', ...body });

/** Signs and expects 200; the license file. */
export async function signFile(tenant: Tenant, licenseKey: string, body: Record<string, unknown> = {}) {
  const response = await sign(tenant, licenseKey, body);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.file as { licenseToken: string; signedKey: string; signedDate: string; keyId: string };
}

/** The JWKS the app serves, without credentials. */
export async function jwksOf(app: FastifyInstance): Promise<JSONWebKeySet & { code: number }> {
  const response = await client(app).get(JWKS_PATH);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body;
}

/** Verifies a token with jose against the JWKS the app serves now. */
export async function verifyWithApp(app: FastifyInstance, token: string) {
  const jwks = await jwksOf(app);
  return jwtVerify(token, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] });
}

export const decode = (token: string) => ({ header: decodeProtectedHeader(token), payload: decodeJwt(token) });

export const signingKeyRows = (database: Database) => database.db.select().from(signingKeys);

/** An app (ready) on a given database; closing it leaves the database open. */
export async function appOn(database: Database, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp({ config: testConfig(env), database });
  try {
    await app.ready();
  } catch (err) {
    await app.close().catch(() => {});
    throw err;
  }
  return app;
}
