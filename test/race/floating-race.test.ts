import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase, request, type ServerProcess, startServer } from '../../scripts/server-process.js';
import { ADMIN_TOKEN, usingPostgres } from '../helpers/app.js';
import { type Session, sign } from '../helpers/floating.js';
import { provisionTenant } from '../helpers/race.js';

type Outcome = { status: number; body: any };

/** Counts outcomes as "200" or "403/2 <message>" so a failure shows the whole distribution. */
const tally = (responses: Outcome[]) => {
  const counts: Record<string, number> = {};
  for (const { status, body } of responses) {
    const outcome = status === 200 ? '200' : `${status}/${body?.code} ${body?.message}`;
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }
  return counts;
};

/**
 * Floating-license requests racing across two real server processes on one fresh PostgreSQL
 * database: the key row lock must keep seats within maxConcurrentSessions, and the nonce's
 * compare-and-swap must let exactly one call per nonce through, whatever process serves it.
 */
describe.skipIf(!usingPostgres)('floating-license races across processes (PostgreSQL)', () => {
  let database: { url: string; drop(): Promise<void> };
  let sql: postgres.Sql;
  let servers: ServerProcess[] = [];
  let token: string;
  let productId: string;

  const serverFor = (i: number) => servers[i % servers.length]!.url;

  const createKey = async (body: Record<string, unknown> = {}) => {
    const response = await request(serverFor(0), 'POST', '/key', token, {
      productId,
      licenseType: 'floating',
      ...body,
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.key as string;
  };

  const checkout = (i: number, licenseKey: string, hostId: string) =>
    request(serverFor(i), 'POST', '/key/checkout', token, { productId, licenseKey, hostId });

  const checkedOut = async (licenseKey: string, hostId: string): Promise<Session> => {
    const response = await checkout(0, licenseKey, hostId);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return {
      sessionId: response.body.sessionId,
      sessionSecret: response.body.sessionSecret,
      nonce: response.body.nextNonce,
    };
  };

  const call = (i: number, path: string, licenseKey: string, session: Session) =>
    request(serverFor(i), 'POST', path, token, {
      productId,
      licenseKey,
      sessionId: session.sessionId,
      timestamp: session.nonce,
      signature: sign(session.sessionSecret, session.sessionId, session.nonce),
    });

  const liveSessions = async (licenseKey: string) => {
    const [row] = await sql`
      select count(*)::int as n from floating_sessions s join license_keys k on k.id = s.license_key_id
      where k.key = ${licenseKey} and k.product_id = ${productId}
        and s.checked_in_at is null and s.expires_at > statement_timestamp()`;
    return row!.n as number;
  };

  beforeAll(async () => {
    database = await createFreshDatabase();
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    const env = { DATABASE_URL: database.url, ADMIN_TOKEN, DB_POOL_SIZE: '20' };
    servers = await Promise.all([startServer(env), startServer(env)]);
    ({ productId, token } = await provisionTenant(servers[0]!.url, ADMIN_TOKEN, 'Floating race'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    // SIGTERM shut both down cleanly, the session sweep included.
    for (const server of servers) expect(server.child.exitCode, server.output()).toBe(0);
    await sql?.end({ timeout: 5 });
    await database?.drop();
  }, 60_000);

  it('30 parallel checkouts of distinct hosts on a 3-seat key: exactly three 200s', async () => {
    const key = await createKey({ maxConcurrentSessions: 3 });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => checkout(i, key, `host-${i}`)));
    expect(tally(results)).toEqual({ '200': 3, '403/2 No floating seats available': 27 });
    expect(
      results
        .filter((r) => r.status === 200)
        .map((r) => r.body.currentSessions)
        .sort(),
    ).toEqual([1, 2, 3]);
    expect(await liveSessions(key)).toBe(3);
  });

  it('30 parallel checkouts of one host on a 3-seat key: all 200, one live session left', async () => {
    const key = await createKey({ maxConcurrentSessions: 3 });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => checkout(i, key, 'the-one-host')));
    expect(tally(results)).toEqual({ '200': 30 });
    for (const response of results) expect(response.body.currentSessions).toBe(1);
    expect(await liveSessions(key)).toBe(1);
  });

  it('10 parallel heartbeats with the same nonce: exactly one 200, the replays 403/2', async () => {
    const key = await createKey({ maxConcurrentSessions: 3 });
    const session = await checkedOut(key, 'h');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i, '/key/heartbeat', key, session)));
    expect(tally(results)).toEqual({ '200': 1, '403/2 Invalid session signature': 9 });
    const winner = results.find((r) => r.status === 200)!;
    const [row] = await sql`select nonce from floating_sessions where id = ${session.sessionId}`;
    expect(row!.nonce).toBe(winner.body.nextNonce);
    const next = await call(1, '/key/heartbeat', key, { ...session, nonce: winner.body.nextNonce });
    expect(next.status).toBe(200);
  });

  it('10 parallel checkins with the same nonce: exactly one 200, the others find no session', async () => {
    const key = await createKey();
    const session = await checkedOut(key, 'h');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i, '/key/checkin', key, session)));
    expect(tally(results)).toEqual({ '200': 1, '404/1 Session not found': 9 });
    expect(await liveSessions(key)).toBe(0);
  });

  it('heartbeats and checkins racing on one nonce: exactly one of them succeeds', async () => {
    for (let round = 0; round < 5; round++) {
      const key = await createKey();
      const session = await checkedOut(key, 'h');
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => call(i, i % 2 ? '/key/checkin' : '/key/heartbeat', key, session)),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((r) => r.status !== 200)) {
        expect(['403/2 Invalid session signature', '404/1 Session not found']).toContain(
          `${r.status}/${r.body.code} ${r.body.message}`,
        );
      }
    }
  });

  it('a lapsing seat is renewed by its holder or taken by another host, never both', async () => {
    const outcomes = [];
    for (let round = 0; round < 10; round++) {
      const key = await createKey({ maxConcurrentSessions: 1 });
      const session = await checkedOut(key, 'holder');
      // The holder's lease ends in 200 ms; it heartbeats once, 60–240 ms from now, while four
      // other hosts keep trying to check out for 400 ms. Without the heartbeat's key lock a
      // late renewal could land after a checkout counted the seat free.
      await sql`update floating_sessions set expires_at = statement_timestamp() + interval '200 milliseconds' where id = ${session.sessionId}`;
      const started = Date.now();
      const holder = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 60 + round * 20));
        return call(round, '/key/heartbeat', key, session);
      })();
      const takers = Promise.all(
        Array.from({ length: 4 }, async (_, worker) => {
          let won = 0;
          while (Date.now() - started < 400) {
            if ((await checkout(worker, key, `taker-${worker}`)).status === 200) won++;
          }
          return won;
        }),
      );
      const [heartbeat, wins] = await Promise.all([holder, takers]);
      const taken = wins.some((won) => won > 0);
      outcomes.push(heartbeat.status === 200 ? 'renewed' : heartbeat.body.message);
      expect(heartbeat.status === 200 && taken, `round ${round}: renewed and taken`).toBe(false);
      if (heartbeat.status !== 200) expect(heartbeat.body.message).toBe('Session expired');
      expect(await liveSessions(key)).toBe(1);
    }
    // The holder's delays straddle the lease end, so rounds normally fall on both sides of it
    // (timing-dependent, hence not asserted).
    expect(outcomes).toHaveLength(10);
  }, 60_000);
});
