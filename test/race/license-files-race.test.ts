import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';

/**
 * Offline licenses across two real server processes on one fresh PostgreSQL database: the first
 * signing key is created exactly once whoever signs first, and rotations from both processes
 * serialize into one chain with exactly one current key.
 */
describe.skipIf(!usingPostgres)('signing keys across processes (PostgreSQL)', () => {
  let database: { url: string; drop(): Promise<void> };
  let sql: postgres.Sql;
  let servers: ServerProcess[] = [];
  let token: string;
  let productId: string;
  let licenseKey: string;

  const serverFor = (i: number) => servers[i % servers.length]!.url;
  const sign = (i: number, hostId = `host-${i}`) =>
    request(serverFor(i), 'POST', '/key/sign', token, { productId, licenseKey, hostId, ttl: 3600 });
  const jwks = async (i: number) => {
    const response = await request(serverFor(i), 'GET', '/.well-known/jwks.json', undefined);
    expect(response.status).toBe(200);
    return response.body;
  };

  beforeAll(async () => {
    database = await createFreshDatabase();
    sql = postgres(database.url, { max: 1, onnotice: () => {} });
    const env = { DATABASE_URL: database.url, ADMIN_TOKEN };
    servers = await Promise.all([startServer(env), startServer(env)]);
    const product = await request(serverFor(0), 'POST', '/admin/products', ADMIN_TOKEN, { name: 'Offline product' });
    expect(product.status).toBe(201);
    productId = product.body.id;
    const created = await request(serverFor(1), 'POST', '/admin/tokens', ADMIN_TOKEN, { name: 'offline race' });
    expect(created.status).toBe(201);
    token = created.body.token;
    const key = await request(serverFor(0), 'POST', '/key', token, { productId, expiryDate: '2099-01-01' });
    expect(key.status).toBe(200);
    licenseKey = key.body.key;
  }, 180_000);

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await sql?.end({ timeout: 5 });
    await database?.drop();
  });

  it('both processes signing their first files at the same moment: exactly one signing key, every file verifies', async () => {
    expect(await sql`select kid from signing_keys`).toHaveLength(0);
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => sign(i)));
    expect(results.map((response) => response.status)).toEqual(Array(16).fill(200));

    const rows = await sql`select kid, retired_at from signing_keys`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.retired_at).toBeNull();
    const kid = rows[0]!.kid as string;
    for (const i of [0, 1]) {
      const keySet = createLocalJWKSet(await jwks(i));
      for (const [n, response] of results.entries()) {
        expect(response.body.file.keyId).toBe(kid);
        const { payload } = await jwtVerify(response.body.file.licenseToken, keySet, { algorithms: ['EdDSA'] });
        expect(payload.machine).toBe(`host-${n}`);
      }
    }
  });

  it('a rotation in one process is used by the next sign of the other', async () => {
    const before = await sign(1);
    const rotated = await request(serverFor(0), 'POST', '/admin/signing-keys/rotate', ADMIN_TOKEN);
    expect(rotated.status).toBe(201);
    expect(rotated.body.retired).toEqual([before.body.file.keyId]);
    const after = await sign(1);
    expect(decodeProtectedHeader(after.body.file.licenseToken).kid).toBe(rotated.body.kid);
    const keySet = createLocalJWKSet(await jwks(1));
    await expect(jwtVerify(before.body.file.licenseToken, keySet)).resolves.toBeTruthy();
    await expect(jwtVerify(after.body.file.licenseToken, keySet)).resolves.toBeTruthy();
  });

  it('rotations racing in both processes, with signs in between: one chain, one current key, no failure', async () => {
    const [start] = await sql`select kid from signing_keys where retired_at is null`;
    const work = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        i % 2 === 0 ? request(serverFor(i / 2), 'POST', '/admin/signing-keys/rotate', ADMIN_TOKEN) : sign(i),
      ),
    );
    expect(work.map((response) => response.status)).toEqual(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 201 : 200)),
    );
    const rotations = work.filter((_, i) => i % 2 === 0).map((response) => response.body);
    const current = await sql`select kid from signing_keys where retired_at is null`;
    expect(current).toHaveLength(1);
    const retired = rotations.flatMap((rotation) => rotation.retired as string[]).sort();
    const created = rotations.map((rotation) => rotation.kid as string);
    expect(retired).toEqual([start!.kid, ...created.filter((kid) => kid !== current[0]!.kid)].sort());

    const listed = (await jwks(0)).keys.map((jwk: { kid: string }) => jwk.kid);
    expect(listed[0]).toBe(current[0]!.kid);
    expect(listed).toHaveLength((await sql`select kid from signing_keys`).length);
    const keySet = createLocalJWKSet(await jwks(1));
    for (const response of work.filter((_, i) => i % 2 === 1)) {
      await expect(jwtVerify(response.body.file.licenseToken, keySet)).resolves.toBeTruthy();
    }
  });
});
