import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { provisionTenant } from '../helpers/race.js';

/**
 * The token cache (TOKEN_CACHE_TTL_MS, default 10 s) against revocations, across two server
 * processes on one database: a token that process B has just served from its cache is refused by
 * B on the very next request after A (or plain SQL) revoked it, long before the TTL.
 */
describe.skipIf(!usingPostgres)('access-token revocation across processes (PostgreSQL)', () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let sql: postgres.Sql;

  beforeAll(async () => {
    const env = { DATABASE_URL: process.env.DATABASE_URL!, ADMIN_TOKEN, TOKEN_CACHE_TTL_MS: '600000' };
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    sql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await sql?.end({ timeout: 5 });
  });

  /** A tenant whose token both processes have resolved (and cached) with a served request. */
  async function warmTenant(name: string) {
    const tenant = await provisionTenant(a.url, ADMIN_TOKEN, name);
    for (const server of [a, b]) {
      for (let i = 0; i < 3; i++) {
        const listed = await request(server.url, 'GET', '/customer', tenant.token);
        expect(listed.status).toBe(200);
      }
    }
    return tenant;
  }

  const tokenIdOf = async (accountId: string) => {
    const [row] = await sql`select id from access_tokens where account_id = ${accountId}`;
    return row!.id as string;
  };

  it('revoked through process A: process B refuses it on its next request', async () => {
    const tenant = await warmTenant('revoke via A');
    const tokenId = await tokenIdOf(tenant.accountId);
    const revoked = await request(a.url, 'DELETE', `/admin/tokens/${tokenId}`, ADMIN_TOKEN);
    expect(revoked.status).toBe(200);
    const onB = await request(b.url, 'GET', '/customer', tenant.token);
    expect(onB.status).toBe(401);
    const onA = await request(a.url, 'GET', '/customer', tenant.token);
    expect(onA.status).toBe(401);
  });

  it('revoked in plain SQL: both processes refuse it (the trigger notifies them)', async () => {
    const tenant = await warmTenant('revoke via SQL');
    await sql`update access_tokens set revoked_at = now() where account_id = ${tenant.accountId}`;
    // No server took part in the change: the notification reaches both at its commit. Poll
    // briefly (it is delivered in milliseconds; the TTL here is ten minutes).
    for (const server of [a, b]) {
      const deadline = Date.now() + 2000;
      let status = 200;
      while (status === 200 && Date.now() < deadline) {
        status = (await request(server.url, 'GET', '/customer', tenant.token)).status;
      }
      expect(status).toBe(401);
    }
  });

  it('after its LISTEN connection is killed, a process listens again and still honours revocations', async () => {
    const tenant = await warmTenant('listener killed');
    // Each process's listener names its pid (application_name), so other test files' servers
    // on this database are left alone.
    const names = [a, b].map((server) => `keymint-server listener ${server.child.pid}`);
    const listeners = async () =>
      (await sql`select pid from pg_stat_activity where application_name = any(${names})`).map(
        (row) => row.pid as number,
      );
    const before = await listeners();
    expect(before).toHaveLength(2);
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where pid = any(${before})`;
    // Each process reconnects its listener (new backend pids).
    const deadline = Date.now() + 10_000;
    let after: number[] = [];
    while (Date.now() < deadline) {
      after = (await listeners()).filter((pid) => !before.includes(pid));
      if (after.length === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(after).toHaveLength(2);
    // Served again (from the database, then cached again), then revoked through A.
    for (const server of [a, b]) expect((await request(server.url, 'GET', '/customer', tenant.token)).status).toBe(200);
    const revoked = await request(a.url, 'DELETE', `/admin/tokens/${await tokenIdOf(tenant.accountId)}`, ADMIN_TOKEN);
    expect(revoked.status).toBe(200);
    expect((await request(b.url, 'GET', '/customer', tenant.token)).status).toBe(401);
  });
});
