/**
 * What the benchmarks (run.ts, overload.ts) and the soak (soak.ts) share: the tenant they drive traffic for, and
 * a loopback webhook receiver.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from '../scripts/server-process.js';

export interface Tenant {
  accountId: string;
  productId: string;
  /** An access token of the account with every scope. */
  token: string;
}

/** A new account with one product and one access token, made through the admin API. */
export async function createTenant(baseUrl: string, adminToken: string, name: string): Promise<Tenant> {
  const account = await request(baseUrl, 'POST', '/admin/accounts', adminToken, { name });
  if (account.status !== 201 && account.status !== 200) {
    throw new Error(`account creation failed: ${JSON.stringify(account.body)}`);
  }
  const accountId = account.body.id as string;
  const product = await request(baseUrl, 'POST', '/admin/products', adminToken, { name, accountId });
  const token = await request(baseUrl, 'POST', '/admin/tokens', adminToken, { name, accountId });
  if (typeof product.body.id !== 'string' || typeof token.body.token !== 'string') {
    throw new Error(`tenant set-up failed: ${JSON.stringify({ product: product.body, token: token.body })}`);
  }
  return { accountId, productId: product.body.id, token: token.body.token };
}

export interface Receiver {
  url: string;
  /** Deliveries received (POSTs answered 200). */
  count(): number;
  /** performance.now() of the first and the last delivery received. */
  span(): { first: number; last: number };
  close(): Promise<void>;
}

/** A webhook receiver on loopback that answers every POST with 200. */
export async function startReceiver(): Promise<Receiver> {
  let received = 0;
  let first = 0;
  let last = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      last = performance.now();
      if (received === 1) first = last;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  receiver.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    count: () => received,
    span: () => ({ first, last }),
    close: () =>
      new Promise((resolve) => {
        receiver.closeAllConnections();
        receiver.close(() => resolve());
      }),
  };
}
