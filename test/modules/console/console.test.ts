import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, createTestApp, useTestApp } from '../../helpers/app.js';
import { createKey, createTenant, type Tenant } from '../../helpers/fixtures.js';

/** A browser's view of the console through app.inject: its cookie, and the CSRF token of the last page. */
class Browser {
  cookie = '';
  csrf = '';
  constructor(readonly app: FastifyInstance) {}

  #keep(headers: Record<string, unknown>) {
    const set = headers['set-cookie'];
    const first = Array.isArray(set) ? set[0] : set;
    if (typeof first === 'string') this.cookie = first.split(';')[0]!;
  }

  async get(url: string) {
    const response = await this.app.inject({ method: 'GET', url, headers: this.cookie ? { cookie: this.cookie } : {} });
    this.#keep(response.headers);
    const token = /name="_csrf" value="([^"]+)"/.exec(response.body)?.[1];
    if (token) this.csrf = token;
    return response;
  }

  async post(url: string, form: Record<string, string | string[]>, options: { csrf?: string | null } = {}) {
    const body = new URLSearchParams();
    const csrf = options.csrf === undefined ? this.csrf : options.csrf;
    if (csrf !== null) body.append('_csrf', csrf);
    for (const [name, value] of Object.entries(form)) {
      for (const item of Array.isArray(value) ? value : [value]) body.append(name, item);
    }
    const response = await this.app.inject({
      method: 'POST',
      url,
      payload: body.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(this.cookie ? { cookie: this.cookie } : {}) },
    });
    this.#keep(response.headers);
    return response;
  }

  /** Signs in and views `tenant`'s account. */
  async signIn(tenant?: Tenant) {
    await this.get('/console/sign-in');
    const response = await this.post('/console/sign-in', { token: ADMIN_TOKEN });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/console');
    if (tenant) {
      await this.get('/console/accounts');
      expect((await this.post(`/console/accounts/${tenant.accountId}/select`, {})).statusCode).toBe(303);
    }
    return this;
  }
}

const keyIdOf = async (tenant: Tenant, key: string) => {
  const response = await tenant.api.get(`/key?productId=${tenant.productId}&licenseKey=${encodeURIComponent(key)}`);
  return response.body.data.license.id as string;
};

describe('console', () => {
  const t = useTestApp({ WEBHOOKS_ALLOW_PRIVATE: 'true' });

  it('is signed into with the admin token; the cookie is HttpOnly, SameSite=Strict, scoped to /console', async () => {
    const browser = new Browser(t.app);
    const page = await browser.get('/console/sign-in');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    const wrong = await browser.post('/console/sign-in', { token: 'not-the-token' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain('Invalid access token');
    expect(wrong.body).toContain('name="token"');
    const right = await browser.post('/console/sign-in', { token: ADMIN_TOKEN });
    expect(right.statusCode).toBe(303);
    const cookie = String(right.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).toMatch(/Path=\/console/);
    expect(cookie).not.toMatch(/; Secure/i); // plain HTTP here; 'auto' sets it behind TLS
    const overview = await browser.get('/console');
    expect(overview.statusCode).toBe(200);
    expect(overview.body).toContain('license keys');
    const out = await browser.post('/console/sign-out', {});
    expect(out.statusCode).toBe(303);
    expect((await browser.get('/console')).headers.location).toBe('/console/sign-in');
  });

  it('sends every page and action without a session to the sign-in page, and changes nothing', async () => {
    const tenant = await createTenant(t.app);
    for (const url of ['/console', '/console/keys', '/console/customers', '/console/tokens', '/console/webhooks']) {
      const response = await t.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(303);
      expect(response.headers.location).toBe('/console/sign-in');
    }
    const anonymous = new Browser(t.app);
    await anonymous.get('/console/sign-in');
    const post = await anonymous.post('/console/customers', { name: 'Nobody' });
    expect(post.statusCode).toBe(303);
    const list = await tenant.api.get('/customer?page=1&limit=10');
    expect(list.body.meta.total).toBe(0);
  });

  it('refuses a form without the CSRF token of the session', async () => {
    const tenant = await createTenant(t.app);
    const browser = await new Browser(t.app).signIn(tenant);
    await browser.get('/console/customers');
    const missing = await browser.post('/console/customers', { name: 'Forged' }, { csrf: null });
    expect(missing.statusCode).toBe(403);
    const other = await new Browser(t.app).signIn();
    await other.get('/console/customers');
    const foreign = await browser.post('/console/customers', { name: 'Forged' }, { csrf: other.csrf });
    expect(foreign.statusCode).toBe(403);
    expect((await tenant.api.get('/customer?page=1&limit=10')).body.meta.total).toBe(0);
  });

  it('serves pages that cannot be framed, with a strict policy, and assets cached for a year', async () => {
    const browser = await new Browser(t.app).signIn();
    const page = await browser.get('/console');
    const policy = String(page.headers['content-security-policy']);
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).toContain("script-src 'self'");
    expect(policy).not.toContain('unsafe');
    expect(page.headers['x-frame-options']).toBe('DENY');
    const htmx = /src="(\/console\/assets\/htmx\.min\.js\?v=[0-9a-f]+)"/.exec(page.body)?.[1];
    expect(htmx).toBeDefined();
    const asset = await t.app.inject({ method: 'GET', url: htmx! });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toContain('max-age=31536000');
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await t.app.inject({ method: 'GET', url: '/console/assets/console.css' })).statusCode).toBe(200);
  });

  it('creates a product and a token whose secret is shown once and works against the API', async () => {
    const tenant = await createTenant(t.app);
    const browser = await new Browser(t.app).signIn(tenant);
    await browser.get('/console/products');
    expect((await browser.post('/console/products', { name: 'Editor Pro' })).statusCode).toBe(303);
    const products = await browser.get('/console/products');
    expect(products.body).toContain('Editor Pro');
    await browser.get('/console/tokens');
    const created = await browser.post('/console/tokens', { name: 'backend', scopes: ['licenses:read'] });
    expect(created.statusCode).toBe(200);
    expect(created.headers['cache-control']).toBe('no-store');
    const secret = /id="secret" value="(at_[^"]+)"/.exec(created.body)?.[1];
    expect(secret).toBeDefined();
    const key = await createKey(tenant);
    const read = await t.app.inject({
      method: 'GET',
      url: `/key?productId=${tenant.productId}&licenseKey=${key}`,
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(read.statusCode).toBe(200);
    const list = await browser.get('/console/tokens');
    expect(list.body).toContain('backend');
    expect(list.body).not.toContain(secret!);
    const bad = await browser.post('/console/tokens', { name: '' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Missing required params');
  });

  it('creates a key for a new customer, shows its devices, deactivates one and blocks the key', async () => {
    const tenant = await createTenant(t.app);
    const browser = await new Browser(t.app).signIn(tenant);
    await browser.get('/console/keys');
    const created = await browser.post('/console/keys', {
      productId: tenant.productId,
      maxActivations: '2',
      customerName: 'Ada',
      email: 'ada@example.com',
      metadata: '{"plan":"pro"}',
    });
    expect(created.statusCode).toBe(303);
    const keyUrl = String(created.headers.location);
    expect(keyUrl).toMatch(/^\/console\/keys\/[0-9a-f]{22}$/);
    const keyPage = await browser.get(keyUrl);
    const key = /<h1>Key <code>([^<]+)<\/code>/.exec(keyPage.body)?.[1];
    expect(key).toBeDefined();
    expect(keyPage.body).toContain('ada@example.com');
    const activate = await tenant.api.post('/key/activate', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'laptop-1',
    });
    expect(activate.status).toBe(200);
    expect((await browser.get(keyUrl)).body).toContain('laptop-1');
    expect((await browser.post(`${keyUrl}/deactivate`, { hostId: 'laptop-1' })).statusCode).toBe(303);
    expect(
      (await tenant.api.get(`/key?productId=${tenant.productId}&licenseKey=${key}`)).body.data.license.devices,
    ).toEqual([]);
    expect((await browser.post(`${keyUrl}/block`, {})).statusCode).toBe(303);
    const blocked = await tenant.api.post('/key/activate', {
      productId: tenant.productId,
      licenseKey: key,
      hostId: 'laptop-2',
    });
    expect(blocked.body).toMatchObject({ code: 2, message: 'License key is blocked' });
    const search = await browser.get('/console/keys?q=ADA%40example');
    expect(search.body).toContain(key!);
  });

  it('shows the API message next to the field it concerns and keeps what was typed', async () => {
    const tenant = await createTenant(t.app);
    const browser = await new Browser(t.app).signIn(tenant);
    await browser.get('/console/customers');
    expect((await browser.post('/console/customers', { name: 'First', email: 'same@example.com' })).statusCode).toBe(
      303,
    );
    await browser.get('/console/customers');
    const clash = await browser.post('/console/customers', { name: 'Second', email: 'SAME@example.com' });
    expect(clash.statusCode).toBe(409);
    expect(clash.body).toMatch(/id="f-email"[^>]*aria-invalid="true"/);
    expect(clash.body).toContain('Customer with this email already exists');
    expect(clash.body).toContain('value="Second"');
    await browser.get('/console/keys');
    const badLimit = await browser.post('/console/keys', { productId: tenant.productId, maxActivations: '0' });
    expect(badLimit.statusCode).toBe(400);
    expect(badLimit.body).toMatch(/id="f-maxActivations-error">Invalid maxActivations/);
    const badJson = await browser.post('/console/keys', { productId: tenant.productId, metadata: '{oops' });
    expect(badJson.body).toContain('Invalid metadata');
  });

  it('escapes names and metadata: a <script> is shown as text', async () => {
    const tenant = await createTenant(t.app);
    const evil = '<script>alert(1)</script>';
    const customer = await tenant.api.post('/customer', { name: evil, email: 'evil@example.com' });
    const customerId = customer.body.data.id as string;
    const key = await createKey(tenant, { customerId, metadata: { note: evil } });
    const browser = await new Browser(t.app).signIn(tenant);
    for (const url of [
      `/console/customers/${customerId}`,
      '/console/customers',
      '/console/keys',
      `/console/keys/${await keyIdOf(tenant, key)}`,
    ]) {
      const page = await browser.get(url);
      expect(page.statusCode, url).toBe(200);
      expect(page.body, url).not.toContain(evil);
      expect(page.body, url).toContain('&lt;script&gt;');
    }
  });

  it('edits, disables and deletes a customer after a confirmation that counts its keys', async () => {
    const tenant = await createTenant(t.app);
    const customer = await tenant.api.post('/customer', { name: 'Grace', email: 'grace@example.com' });
    const customerId = customer.body.data.id as string;
    await createKey(tenant, { customerId });
    await createKey(tenant, { customerId });
    const browser = await new Browser(t.app).signIn(tenant);
    const url = `/console/customers/${customerId}`;
    await browser.get(url);
    expect((await browser.post(url, { name: 'Grace Hopper', email: 'grace@example.com' })).statusCode).toBe(303);
    expect((await browser.post(`${url}/toggle`, {})).statusCode).toBe(303);
    const [after] = (await tenant.api.get(`/customer/by-id?customerId=${customerId}`)).body.data;
    expect(after).toMatchObject({ name: 'Grace Hopper', active: false });
    const confirm = await browser.get(`${url}/delete`);
    expect(confirm.body).toContain('2 license keys');
    expect((await browser.post(`${url}/delete`, {})).statusCode).toBe(303);
    expect((await tenant.api.get(`/customer/by-id?customerId=${customerId}`)).status).toBe(404);
  });

  it('registers a webhook (secret once), lists its deliveries, rotates the signing key and downloads a license file', async () => {
    const tenant = await createTenant(t.app);
    const browser = await new Browser(t.app).signIn(tenant);
    await browser.get('/console/webhooks');
    const bad = await browser.post('/console/webhooks', { url: 'not a url' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Invalid url');
    const created = await browser.post('/console/webhooks', {
      url: 'http://127.0.0.1:9/keymint',
      events: ['key.created'],
    });
    expect(created.statusCode).toBe(200);
    const secret = /id="secret" value="(whsec_[^"]+)"/.exec(created.body)?.[1];
    expect(secret).toBeDefined();
    const list = await browser.get('/console/webhooks');
    expect(list.body).toContain('http://127.0.0.1:9/keymint');
    expect(list.body).not.toContain(secret!);
    const id = /href="\/console\/webhooks\/([0-9a-f]{22})"/.exec(list.body)?.[1];
    await createKey(tenant);
    const deliveries = await browser.get(`/console/webhooks/${id}`);
    expect(deliveries.body).toContain('key.created');
    const before = (await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.length;
    expect((await browser.post('/console/signing-keys/rotate', {})).statusCode).toBe(303);
    expect((await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys.length).toBe(before + 1);
    const key = await createKey(tenant, { expiryDate: new Date(Date.now() + 86_400_000).toISOString() });
    const keyUrl = `/console/keys/${await keyIdOf(tenant, key)}`;
    await browser.get(keyUrl);
    const file = await browser.post(`${keyUrl}/license-file`, { hostId: 'machine-7' });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-disposition']).toContain('attachment');
    expect(file.json()).toMatchObject({ signedKey: key });
  });

  it("answers an unknown console page and another account's key with 404 pages", async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    const key = await createKey(other);
    const browser = await new Browser(t.app).signIn(tenant);
    expect((await browser.get('/console/nothing-here')).statusCode).toBe(404);
    const foreign = await browser.get(`/console/keys/${await keyIdOf(other, key)}`);
    expect(foreign.statusCode).toBe(404);
    expect(foreign.body).toContain('License key not found');
  });
});

describe('console without ADMIN_TOKEN', () => {
  it('does not exist', async () => {
    const test = await createTestApp({ ADMIN_TOKEN: '' });
    try {
      const response = await test.app.inject({ method: 'GET', url: '/console/sign-in' });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toEqual({ message: 'Not found', code: 1 });
    } finally {
      await test.close();
    }
  });
});
