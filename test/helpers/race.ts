import { expect } from 'vitest';
import { request } from '../../scripts/server-process.js';

/** An account with one product and an access token of all scopes, made through a real server's admin API. */
export async function provisionTenant(baseUrl: string, adminToken: string, name: string) {
  const account = await request(baseUrl, 'POST', '/admin/accounts', adminToken, { name });
  expect(account.status).toBe(201);
  const product = await request(baseUrl, 'POST', '/admin/products', adminToken, {
    name: `${name} product`,
    accountId: account.body.id,
  });
  expect(product.status).toBe(201);
  const created = await request(baseUrl, 'POST', '/admin/tokens', adminToken, { name, accountId: account.body.id });
  expect(created.status).toBe(201);
  return {
    accountId: account.body.id as string,
    productId: product.body.id as string,
    token: created.body.token as string,
  };
}
