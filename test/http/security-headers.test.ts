import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { admin, client, createTenant } from '../helpers/fixtures.js';

/**
 * helmet's headers on every answer (README, "Security"): JSON answers load and allow nothing;
 * the docs page runs only this server's script and its one inline script, by a nonce drawn per
 * answer. That the page renders under its policy was checked by hand in headless Chromium.
 */

const t = useTestApp();

const API_CSP = "default-src 'none';frame-ancestors 'none'";

const SAFE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-permitted-cross-domain-policies': 'none',
};

/** The directives of a Content-Security-Policy header, by name. */
function directives(header: unknown): Map<string, string[]> {
  return new Map(
    String(header)
      .split(';')
      .map((directive) => directive.trim().split(/\s+/))
      .map(([name = '', ...values]) => [name, values]),
  );
}

describe('JSON answers', () => {
  it('carry the strict policy and the safe headers: success, client errors, 404, admin, health', async () => {
    const tenant = await createTenant(t.app);
    const answers = [
      await tenant.api.post('/key', { productId: tenant.productId }),
      await tenant.api.post('/key', { productId: 'nope' }),
      await client(t.app).get('/customer'),
      await client(t.app).get('/no-such-path'),
      await admin(t.app).get('/admin/products'),
      await client(t.app).get('/healthz'),
      await client(t.app).get('/openapi.json'),
      await client(t.app).get('/.well-known/jwks.json'),
      await tenant.api.post('/key', 'not json'),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([200, 400, 401, 404, 200, 200, 200, 200, 400]);
    for (const answer of answers) {
      expect(answer.headers).toMatchObject({ 'content-security-policy': API_CSP, ...SAFE_HEADERS });
      expect(String(answer.headers['content-type'])).toMatch(/^application\/json/);
    }
  });
});

describe('the docs page', () => {
  it('runs its scripts by a per-answer nonce: no unsafe-inline or unsafe-eval script, nothing external', async () => {
    const first = await t.app.inject({ url: '/docs/' });
    const second = await t.app.inject({ url: '/docs/' });
    expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
    expect(first.headers).toMatchObject(SAFE_HEADERS);
    const nonces = [first, second].map((page) => {
      const policy = directives(page.headers['content-security-policy']);
      expect(Object.fromEntries(policy)).toEqual({
        'default-src': ["'none'"],
        'script-src': ["'self'", expect.stringMatching(/^'nonce-[A-Za-z0-9+/]{22}=='$/)],
        'style-src': ["'self'", "'unsafe-inline'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'base-uri': ["'none'"],
        'form-action': ["'none'"],
        'frame-ancestors': ["'none'"],
        'object-src': ["'none'"],
      });
      const nonce = policy.get('script-src')![1]!.slice("'nonce-".length, -1);
      // Every script element of the page carries it: the bundle and the inline start-up script.
      const scripts = page.body.match(/<script\b[^>]*>/g) ?? [];
      expect(scripts).toHaveLength(2);
      for (const script of scripts) expect(script).toContain(` nonce="${nonce}"`);
      expect(page.body).toContain('src="js/scalar.js"');
      return nonce;
    });
    expect(nonces[0]).not.toBe(nonces[1]);
  });

  it('HEAD measures the page as GET sends it; the bundle is JavaScript from this server', async () => {
    const page = await t.app.inject({ url: '/docs/' });
    const head = await t.app.inject({ method: 'HEAD', url: '/docs/' });
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(page.body)));
    const bundle = await t.app.inject({ url: '/docs/js/scalar.js' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.headers).toMatchObject({
      'content-type': 'application/javascript; charset=utf-8',
      'x-content-type-options': 'nosniff',
    });
    // The JavaScript file is not rewritten.
    expect(bundle.body).not.toContain('nonce="');
    const redirect = await t.app.inject({ url: '/docs' });
    expect(redirect.statusCode).toBe(301);
  });
});
