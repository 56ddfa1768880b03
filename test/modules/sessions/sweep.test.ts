import { and, eq, inArray, sql } from 'drizzle-orm';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { floatingSessions, licenseKeys } from '../../../src/db/schema/index.js';
import { newId } from '../../../src/lib/ids.js';
import { startSessionSweep, sweepDeadSessions } from '../../../src/modules/sessions/sweep.js';
import { useTestApp } from '../../helpers/app.js';
import { createTenant, type Tenant } from '../../helpers/fixtures.js';
import { checkedOut, checkin, createFloatingKey, heartbeatOk } from '../../helpers/floating.js';

const t = useTestApp();

const keyIdOf = async (tenant: Tenant, key: string) => {
  const [row] = await t.database.db
    .select({ id: licenseKeys.id })
    .from(licenseKeys)
    .where(and(eq(licenseKeys.productId, tenant.productId), eq(licenseKeys.key, key)));
  return row!.id;
};

/** Inserts a session row of the key directly, ended as described (database clock). */
async function insertRow(licenseKeyId: string, state: { endedHoursAgo: number; checkedIn?: boolean }) {
  const id = newId();
  const ended = sql`statement_timestamp() - cast(${state.endedHoursAgo * 3600} as integer) * interval '1 second'`;
  await t.database.db.insert(floatingSessions).values({
    id,
    licenseKeyId,
    hostId: `host-${id}`,
    secret: 'a'.repeat(64),
    nonce: 'b'.repeat(32),
    expiresAt: ended,
    checkedInAt: state.checkedIn ? ended : null,
  });
  return id;
}

const remaining = async (ids: string[]) =>
  (
    await t.database.db
      .select({ id: floatingSessions.id })
      .from(floatingSessions)
      .where(inArray(floatingSessions.id, ids))
  ).map((row) => row.id);

describe('sweep of dead sessions', () => {
  it('deletes sessions that ended (checked in or lapsed) more than 24 h ago, and nothing else', async () => {
    const tenant = await createTenant(t.app);
    const key = await createFloatingKey(tenant);
    const { session: live } = await checkedOut(tenant, key, { hostId: 'live' });
    const { session: checkedInRecently } = await checkedOut(tenant, key, { hostId: 'recent' });
    expect((await checkin(tenant, key, checkedInRecently)).status).toBe(200);
    const keyId = await keyIdOf(tenant, key);
    const old = [
      await insertRow(keyId, { endedHoursAgo: 25 }),
      await insertRow(keyId, { endedHoursAgo: 48, checkedIn: true }),
    ];
    const recent = [
      await insertRow(keyId, { endedHoursAgo: 23 }),
      await insertRow(keyId, { endedHoursAgo: 1, checkedIn: true }),
    ];
    await sweepDeadSessions(t.database.db);
    expect(await remaining(old)).toEqual([]);
    expect((await remaining([...recent, live.sessionId, checkedInRecently.sessionId])).sort()).toEqual(
      [...recent, live.sessionId, checkedInRecently.sessionId].sort(),
    );
    await heartbeatOk(tenant, key, live);
  });

  it('is bounded per run: at most maxBatches × batchSize rows', async () => {
    const tenant = await createTenant(t.app);
    const keyId = await keyIdOf(tenant, await createFloatingKey(tenant));
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push(await insertRow(keyId, { endedHoursAgo: 30 + i }));
    expect(await sweepDeadSessions(t.database.db, { batchSize: 2, maxBatches: 2 })).toBe(4);
    // Oldest first.
    expect((await remaining(ids)).sort()).toEqual(ids.slice(0, 3).sort());
    expect(await sweepDeadSessions(t.database.db, { batchSize: 2, maxBatches: 10 })).toBeGreaterThanOrEqual(3);
    expect(await remaining(ids)).toEqual([]);
  });

  it('runs in the app from onReady and stops when the app closes', async () => {
    const tenant = await createTenant(t.app);
    const keyId = await keyIdOf(tenant, await createFloatingKey(tenant));
    const app = Fastify({ logger: false });
    app.decorate('database', t.database);
    startSessionSweep(app, { intervalMs: 20, batchSize: 100, maxBatches: 1 });
    const before = await insertRow(keyId, { endedHoursAgo: 40 });
    await app.ready();
    await expect.poll(() => remaining([before]), { timeout: 5_000, interval: 20 }).toEqual([]);
    await app.close();
    const after = await insertRow(keyId, { endedHoursAgo: 40 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await remaining([after])).toEqual([after]);
    await sweepDeadSessions(t.database.db);
  });
});
