import { createHmac } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { Db } from '../../src/db/client.js';
import { floatingSessions } from '../../src/db/schema/index.js';
import { type ApiResponse, createKey, type Tenant } from './fixtures.js';

/** What a checkout hands the client, and the nonce it must sign next. */
export interface Session {
  sessionId: string;
  sessionSecret: string;
  nonce: string;
}

/** The session signature exactly as the SDKs compute it: hex HMAC-SHA256, key = UTF-8 bytes of the secret. */
export const sign = (secret: string, sessionId: string, nonce: string): string =>
  createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${sessionId}:${nonce}`).digest('hex');

/** A floating key (unlimited seats unless the body says otherwise). */
export const createFloatingKey = (tenant: Tenant, body: Record<string, unknown> = {}) =>
  createKey(tenant, { licenseType: 'floating', ...body });

export const checkout = (tenant: Tenant, licenseKey: string, body: Record<string, unknown> = {}) =>
  tenant.api.post('/key/checkout', { productId: tenant.productId, licenseKey, hostId: 'host-1', ...body });

/** Checks out a session and returns it (the test fails unless the checkout answers 200). */
export async function checkedOut(tenant: Tenant, licenseKey: string, body: Record<string, unknown> = {}) {
  const response = await checkout(tenant, licenseKey, body);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  const session: Session = {
    sessionId: response.body.sessionId,
    sessionSecret: response.body.sessionSecret,
    nonce: response.body.nextNonce,
  };
  return { session, response };
}

/** The body of a heartbeat or checkin signing the session's current nonce; `overrides` replace fields. */
export const sessionCall = (
  tenant: Tenant,
  licenseKey: string,
  session: Session,
  overrides: Record<string, unknown> = {},
) => ({
  productId: tenant.productId,
  licenseKey,
  sessionId: session.sessionId,
  timestamp: session.nonce,
  signature: sign(session.sessionSecret, session.sessionId, session.nonce),
  ...overrides,
});

export const heartbeat = (tenant: Tenant, licenseKey: string, session: Session, overrides?: Record<string, unknown>) =>
  tenant.api.post('/key/heartbeat', sessionCall(tenant, licenseKey, session, overrides));

export const checkin = (tenant: Tenant, licenseKey: string, session: Session, overrides?: Record<string, unknown>) =>
  tenant.api.post('/key/checkin', sessionCall(tenant, licenseKey, session, overrides));

/** Heartbeats and moves the session on to the nonce the server issued. */
export async function heartbeatOk(tenant: Tenant, licenseKey: string, session: Session): Promise<ApiResponse> {
  const response = await heartbeat(tenant, licenseKey, session);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  session.nonce = response.body.nextNonce;
  return response;
}

/** Lets the session's lease lapse: its end moved `secondsAgo` into the past (the database's clock). */
export async function lapse(db: Db, sessionId: string, secondsAgo = 1) {
  await db
    .update(floatingSessions)
    .set({ expiresAt: sql`statement_timestamp() - cast(${secondsAgo} as integer) * interval '1 second'` })
    .where(eq(floatingSessions.id, sessionId));
}

export async function storedSession(db: Db, sessionId: string) {
  const [row] = await db.select().from(floatingSessions).where(eq(floatingSessions.id, sessionId));
  return row;
}
