import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/client.js';
import { admin, client, createKey, createTenant, expectError, type Tenant } from '../../helpers/fixtures.js';
import {
  appOn,
  decode,
  jwksOf,
  KID,
  openIsolatedDatabase,
  signFile,
  signingKeyRows,
  verifyWithApp,
} from './helpers.js';

const ROTATE = '/admin/signing-keys/rotate';

let database: Database;
let app: FastifyInstance;
let tenant: Tenant;
let key: string;

beforeAll(async () => {
  database = await openIsolatedDatabase();
  app = await appOn(database);
  tenant = await createTenant(app);
  key = await createKey(tenant, { expiryDate: '2099-01-01' });
});
afterAll(async () => {
  await app?.close();
  await database?.close();
});

const rotate = async (on: FastifyInstance = app) => {
  const response = await admin(on).post(ROTATE);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body as { code: number; kid: string; retired: string[] };
};

const currentRows = async () => (await signingKeyRows(database)).filter((row) => row.retiredAt === null);

describe('POST /admin/signing-keys/rotate (§9.5)', () => {
  it('on a database without keys: 201 {code: 0, kid, retired: []}', async () => {
    expect(await signingKeyRows(database)).toEqual([]);
    const rotated = await rotate();
    expect(rotated).toEqual({ code: 0, kid: expect.stringMatching(KID), retired: [] });
    expect((await currentRows()).map((row) => row.kid)).toEqual([rotated.kid]);
  });

  it('retires the current key: files signed before still verify, new files carry the new kid, JWKS lists both (current first)', async () => {
    const before = await signFile(tenant, key);
    const rotated = await rotate();
    expect(rotated.retired).toEqual([before.keyId]);
    expect(rotated.kid).not.toBe(before.keyId);

    const after = await signFile(tenant, key);
    expect(after.keyId).toBe(rotated.kid);
    expect(decode(after.licenseToken).header).toEqual({ alg: 'EdDSA', kid: rotated.kid });
    const jwks = await jwksOf(app);
    expect(jwks.keys.slice(0, 2).map((jwk) => jwk.kid)).toEqual([rotated.kid, before.keyId]);

    await expect(verifyWithApp(app, before.licenseToken)).resolves.toMatchObject({
      protectedHeader: { kid: before.keyId },
    });
    await expect(verifyWithApp(app, after.licenseToken)).resolves.toMatchObject({
      protectedHeader: { kid: rotated.kid },
    });
  });

  it('keeps every retired key in the JWKS, newest first, after the current one', async () => {
    const kids = [(await rotate()).kid, (await rotate()).kid, (await rotate()).kid];
    const listed = (await jwksOf(app)).keys.map((jwk) => jwk.kid);
    const rows = await signingKeyRows(database);
    expect(listed).toHaveLength(rows.length);
    expect(listed.slice(0, 3)).toEqual([...kids].reverse());
    const retiredByTime = rows
      .filter((row) => row.retiredAt !== null)
      .sort((a, b) => b.retiredAt!.getTime() - a.retiredAt!.getTime())
      .map((row) => row.kid);
    expect(listed.slice(1)).toEqual(retiredByTime);
  });

  it('concurrent rotations all succeed, one after the other: one current key, each retiring the previous one', async () => {
    const start = (await currentRows())[0]!.kid;
    const results = await Promise.all(Array.from({ length: 6 }, () => admin(app).post(ROTATE)));
    expect(results.map((response) => response.status)).toEqual(Array(6).fill(201));
    const rotations = results.map((response) => response.body as { kid: string; retired: string[] });
    for (const rotation of rotations) expect(rotation.retired).toHaveLength(1);
    const newKids = rotations.map((rotation) => rotation.kid);
    const retiredKids = rotations.map((rotation) => rotation.retired[0]!);
    expect(new Set(newKids).size).toBe(6);
    expect(new Set(retiredKids).size).toBe(6);
    // A chain: the keys retired are the starting key and all the new ones but the last.
    const current = await currentRows();
    expect(current).toHaveLength(1);
    expect([...retiredKids].sort()).toEqual([start, ...newKids.filter((kid) => kid !== current[0]!.kid)].sort());
    expect((await signFile(tenant, key)).keyId).toBe(current[0]!.kid);
  });

  it('another process rotating is seen by the next sign here (the current kid is read per sign)', async () => {
    const other = await appOn(database);
    try {
      const here = await signFile(tenant, key);
      const rotated = await rotate(other);
      expect(rotated.retired).toEqual([here.keyId]);
      expect((await signFile(tenant, key)).keyId).toBe(rotated.kid);
      await expect(verifyWithApp(other, here.licenseToken)).resolves.toBeTruthy();
    } finally {
      await other.close();
    }
  });

  it('takes the admin token only; without ADMIN_TOKEN the path does not exist', async () => {
    expectError(await client(app).post(ROTATE), 401, 1, 'Invalid access token');
    expectError(await client(app, tenant.token).post(ROTATE), 401, 1, 'Invalid access token');
    expectError(await admin(app).send('PATCH', ROTATE), 404, 1, 'Not found');
    const closed = await appOn(database, { ADMIN_TOKEN: '' });
    try {
      expectError(await admin(closed).post(ROTATE), 404, 1, 'Not found');
    } finally {
      await closed.close();
    }
  });
});
