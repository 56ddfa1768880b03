import { describe, expect, it } from 'vitest';
import { useTestApp } from '../../helpers/app.js';
import { client, createKey, createTenant } from '../../helpers/fixtures.js';
import { sign } from './helpers.js';

const t = useTestApp();

const NAME = 'keymint_license_files_signed_total';
const OUTCOMES = [
  'signed',
  'license_key_not_found',
  'blocked',
  'expired',
  'customer_inactive',
  'host_not_allowed',
  'ttl_required',
];

/** The samples of the counter by outcome. */
async function scrape(): Promise<Record<string, number>> {
  const response = await client(t.app).get('/metrics');
  expect(response.status).toBe(200);
  const samples: Record<string, number> = {};
  for (const match of (response.body as string).matchAll(
    new RegExp(`^${NAME}\\{outcome="([a-z_]+)"\\} (\\S+)$`, 'gm'),
  )) {
    samples[match[1]!] = Number(match[2]);
  }
  return samples;
}

describe('keymint_license_files_signed_total{outcome}', () => {
  it('exports every outcome from the start', async () => {
    const response = await client(t.app).get('/metrics');
    expect(response.body).toContain(`# TYPE ${NAME} counter`);
    expect(Object.keys(await scrape()).sort()).toEqual([...OUTCOMES].sort());
  });

  it('counts signed files and each refusal by its reason; bad input and scope refusals are not outcomes', async () => {
    const tenant = await createTenant(t.app);
    const key = await createKey(tenant, { expiryDate: '2099-01-01' });
    const forever = await createKey(tenant, { expiryDate: null, allowedHosts: ['host-7f3a'] });
    const blocked = await createKey(tenant, { expiryDate: '2099-01-01' });
    await tenant.api.post('/key/block', { productId: tenant.productId, licenseKey: blocked });
    const expired = await createKey(tenant, { expiryDate: '2020-01-01' });

    const before = await scrape();
    const statuses = [
      (await sign(tenant, key)).status,
      (await sign(tenant, key, { ttl: 120 })).status,
      (await sign(tenant, 'NOPE')).status,
      (await sign(tenant, blocked)).status,
      (await sign(tenant, expired)).status,
      (await sign(tenant, forever, { hostId: 'elsewhere' })).status,
      (await sign(tenant, forever)).status,
      (await sign(tenant, key, { ttl: 1 })).status,
      (await client(t.app).post('/key/sign', {})).status,
    ];
    expect(statuses).toEqual([200, 200, 404, 403, 403, 403, 400, 400, 401]);
    const after = await scrape();
    const delta = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, after[outcome]! - before[outcome]!]));
    expect(delta).toEqual({
      signed: 2,
      license_key_not_found: 1,
      blocked: 1,
      expired: 1,
      customer_inactive: 0,
      host_not_allowed: 1,
      ttl_required: 1,
    });
  });
});
