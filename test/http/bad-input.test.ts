import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, createTestApp, type TestApp } from '../helpers/app.js';
import { createTenant, type Tenant } from '../helpers/fixtures.js';

let t: TestApp;
let tenant: Tenant;
let port: number;
beforeAll(async () => {
  t = await createTestApp();
  tenant = await createTenant(t.app);
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(async () => t.close());

interface Result {
  status: number;
  body: unknown;
  contentType: string | undefined;
}

async function send(options: {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url?: string;
  payload?: string | Buffer;
  contentType?: string | null;
  auth?: string | null;
}): Promise<Result> {
  const headers: Record<string, string> = {};
  const auth = options.auth === undefined ? `Bearer ${tenant.token}` : options.auth;
  if (auth !== null) headers.authorization = auth;
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (contentType !== null) headers['content-type'] = contentType;
  const response = await t.app.inject({
    method: options.method ?? 'POST',
    url: options.url ?? '/create-key',
    headers,
    payload: options.payload,
  });
  let body: unknown = response.body;
  try {
    body = response.json();
  } catch {
    // Left as text: the assertion shows it.
  }
  return { status: response.statusCode, body, contentType: response.headers['content-type'] as string | undefined };
}

function expectEnvelope(result: Result, status: number, message: string) {
  expect({ status: result.status, body: result.body }).toEqual({ status, body: { message, code: 1 } });
  expect(result.contentType).toBe('application/json; charset=utf-8');
}

const validBody = () => JSON.stringify({ productId: tenant.productId });

/**
 * Writes raw bytes to the listening server and parses the one response it sends back. The
 * socket is not half-closed: Node's server aborts a request whose client sent FIN.
 */
function rawRequest(request: string): Promise<{ status: number; headers: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const rawBody = split < 0 ? '' : text.slice(split + 4);
      let body: unknown = rawBody;
      try {
        body = JSON.parse(rawBody);
      } catch {
        // Not JSON: the assertion shows the text.
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body });
    });
    socket.setTimeout(10_000, () =>
      socket.destroy(new Error(`no response to ${JSON.stringify(request.slice(0, 80))}`)),
    );
  });
}

describe('JSON body', () => {
  it.each([
    ['{'],
    ['{"productId":}'],
    ["{'productId':'x'}"],
    ['{"a":1}garbage'],
    ['{"a":1,}'],
    ['undefined'],
    ['NaN'],
    ['{"a":"raw\u0001control"}'],
  ])('malformed %j is 400 Invalid JSON body', async (payload) => {
    expectEnvelope(await send({ payload }), 400, 'Invalid JSON body');
  });

  it.each([['[]'], ['[{"productId":"x"}]'], ['"string"'], ['42'], ['null'], ['true'], ['   '], ['\n']])(
    'top level %j is 400 Invalid JSON body',
    async (payload) => {
      expectEnvelope(await send({ payload }), 400, 'Invalid JSON body');
    },
  );

  it('whitespace around an object is fine', async () => {
    const result = await send({ payload: `\n  ${validBody()}  \n` });
    expect(result.status).toBe(200);
  });

  it('unknown fields are ignored', async () => {
    const result = await send({
      payload: JSON.stringify({
        productId: tenant.productId,
        versionId: 'v',
        version: '1',
        apiKey: 'at_x',
        nested: { a: [1] },
      }),
    });
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ code: 0, key: expect.any(String) });
  });
});

describe('Content-Type', () => {
  it.each([
    ['text/plain'],
    ['application/x-www-form-urlencoded'],
    ['multipart/form-data; boundary=x'],
    ['application/jsonx'],
    ['json'],
    ['application/xml'],
    [''],
  ])('%j with a body is 415', async (contentType) => {
    expectEnvelope(await send({ contentType, payload: validBody() }), 415, 'Content-Type must be application/json');
  });

  it('a body without Content-Type is 415', async () => {
    expectEnvelope(
      await send({ contentType: null, payload: validBody() }),
      415,
      'Content-Type must be application/json',
    );
  });

  it.each([
    ['application/json'],
    ['application/json; charset=utf-8'],
    ['application/json;charset=UTF-8'],
    ['APPLICATION/JSON'],
    ['application/vnd.api+json'],
    ['application/problem+json; charset=utf-8'],
  ])('%j is accepted', async (contentType) => {
    const result = await send({ contentType, payload: validBody() });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
  });

  it.each([['application/json'], ['text/plain'], ['application/octet-stream'], [null]])(
    'an empty body with %j is treated as {}',
    async (contentType) => {
      expectEnvelope(await send({ contentType, payload: '' }), 400, 'Missing required params');
      expectEnvelope(await send({ contentType, payload: '', url: '/get-key' }), 400, 'Missing required params');
    },
  );

  it('a bodiless GET with Content-Type: application/json succeeds', async () => {
    const result = await send({ method: 'GET', url: '/customer', payload: undefined });
    expect(result.status).toBe(200);
  });
});

describe('body size', () => {
  it('more than 1 MiB is 413', async () => {
    const payload = JSON.stringify({ productId: tenant.productId, pad: 'x'.repeat(1024 * 1024) });
    expectEnvelope(await send({ payload }), 413, 'Request body too large');
  });

  it('exactly 1 MiB is accepted', async () => {
    const base = JSON.stringify({ productId: tenant.productId, pad: '' });
    const payload = JSON.stringify({ productId: tenant.productId, pad: 'x'.repeat(1024 * 1024 - base.length) });
    expect(Buffer.byteLength(payload)).toBe(1024 * 1024);
    expect((await send({ payload })).status).toBe(200);
  });

  it('a chunked body over 1 MiB is 413 too', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const chunks = Array.from({ length: 18 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const response = await rawRequest(
      'POST /create-key HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n' +
        `Authorization: Bearer ${tenant.token}\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`,
    );
    expect({ status: response.status, body: response.body }).toEqual({
      status: 413,
      body: { message: 'Request body too large', code: 1 },
    });
  });
});

describe('strings PostgreSQL cannot store are 400, never 500', () => {
  const cases: [string, (bad: string) => Record<string, unknown>, string][] = [
    ['productId', (bad) => ({ productId: `${tenant.productId}${bad}` }), 'Invalid productId'],
    ['customerId', (bad) => ({ productId: tenant.productId, customerId: `cust${bad}` }), 'Invalid customerId'],
    [
      'newCustomer.name',
      (bad) => ({ productId: tenant.productId, newCustomer: { name: `A${bad}` } }),
      'Invalid newCustomer.name',
    ],
    [
      'newCustomer.email',
      (bad) => ({ productId: tenant.productId, newCustomer: { name: 'A', email: `a${bad}@example.com` } }),
      'Invalid newCustomer.email',
    ],
    ['a metadata value', (bad) => ({ productId: tenant.productId, metadata: { note: `x${bad}` } }), 'Invalid metadata'],
    ['a metadata key', (bad) => ({ productId: tenant.productId, metadata: { [`k${bad}`]: 1 } }), 'Invalid metadata'],
    [
      'a nested metadata value',
      (bad) => ({ productId: tenant.productId, metadata: { a: [{ b: `x${bad}` }] } }),
      'Invalid metadata',
    ],
    [
      'an allowedHosts item',
      (bad) => ({ productId: tenant.productId, allowedHosts: ['ok', `h${bad}`] }),
      'Invalid allowedHosts',
    ],
    [
      'format.prefix',
      (bad) => ({ productId: tenant.productId, format: { prefix: `P${bad}` } }),
      'Invalid format.prefix',
    ],
    [
      'format.separator',
      (bad) => ({ productId: tenant.productId, format: { separator: bad } }),
      'Invalid format.separator',
    ],
  ];
  for (const [label, bad] of [
    ['NUL', '\u0000'],
    ['a lone high surrogate', '\ud800'],
    ['a lone low surrogate', '\udc00'],
  ] as const) {
    it.each(cases)(`${label} in %s`, async (_field, build, message) => {
      expectEnvelope(await send({ payload: JSON.stringify(build(bad)) }), 400, message);
    });
  }

  it('GET /key with NUL in the query is 400', async () => {
    const result = await send({
      method: 'GET',
      url: `/key?productId=${tenant.productId}%00&licenseKey=AAAAA`,
      payload: undefined,
    });
    expectEnvelope(result, 400, 'Invalid productId');
    const key = await send({
      method: 'GET',
      url: `/key?productId=${tenant.productId}&licenseKey=A%00B`,
      payload: undefined,
    });
    expectEnvelope(key, 400, 'Invalid licenseKey');
  });

  it('a well-formed astral character is stored and returned intact', async () => {
    const created = await send({
      payload: JSON.stringify({ productId: tenant.productId, metadata: { emoji: '🚀\ud83d\ude80' } }),
    });
    expect(created.status).toBe(200);
    const key = (created.body as { key: string }).key;
    const read = await send({
      method: 'GET',
      url: `/key?productId=${tenant.productId}&licenseKey=${key}`,
      payload: undefined,
    });
    expect((read.body as any).data.license.metadata).toEqual({ emoji: '🚀🚀' });
  });
});

describe('prototype pollution', () => {
  it.each([
    ['a top-level __proto__', '{"productId":"P","__proto__":{"polluted":true}}'],
    ['__proto__ in metadata', '{"productId":"P","metadata":{"__proto__":{"polluted":true}}}'],
    [
      'constructor.prototype in metadata',
      '{"productId":"P","metadata":{"constructor":{"prototype":{"polluted":true}}}}',
    ],
    ['__proto__ in newCustomer', '{"productId":"P","newCustomer":{"name":"x","__proto__":{"polluted":true}}}'],
  ])('%s is rejected and pollutes nothing', async (_label, template) => {
    expectEnvelope(
      await send({ payload: template.replace('"P"', JSON.stringify(tenant.productId)) }),
      400,
      'Invalid JSON body',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('deep nesting', () => {
  const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
  const deepArray = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

  it('a 100k-level top-level array is 400 Invalid JSON body', async () => {
    expectEnvelope(await send({ payload: deepArray(100_000) }), 400, 'Invalid JSON body');
  });

  it('100k levels in metadata are Invalid metadata', async () => {
    const payload = `{"productId":${JSON.stringify(tenant.productId)},"metadata":${deepObject(100_000)}}`;
    expectEnvelope(await send({ payload }), 400, 'Invalid metadata');
  });

  it('100k levels in a typed field are Invalid <field>', async () => {
    const email = `{"productId":${JSON.stringify(tenant.productId)},"newCustomer":{"name":"x","email":${deepArray(100_000)}}}`;
    expectEnvelope(await send({ payload: email }), 400, 'Invalid newCustomer.email');
    const hosts = `{"productId":${JSON.stringify(tenant.productId)},"allowedHosts":${deepArray(100_000)}}`;
    expectEnvelope(await send({ payload: hosts }), 400, 'Invalid allowedHosts');
  });

  it('100k levels in an ignored field are ignored like any unknown field, and the server stays up', async () => {
    const payload = `{"productId":${JSON.stringify(tenant.productId)},"versionId":${deepObject(100_000)}}`;
    const result = await send({ payload });
    expect(result.status).toBe(200);
    expect((await send({ payload: validBody() })).status).toBe(200);
  });
});

describe('numbers', () => {
  it.each([
    ['usesPerKey', '1e400'],
    ['usesPerKey', '99999999999999999999999'],
    ['usesPerKey', '-0'],
    ['maxActivations', '1e308'],
    ['amountKeys', '1e21'],
    ['amountKeys', '"99999999999999999999999"'],
    ['heartbeatInterval', '1e400'],
    ['maxConcurrentSessions', '2147483648'],
  ])('%s = %s is Invalid', async (field, literal) => {
    const payload = `{"productId":${JSON.stringify(tenant.productId)},"${field}":${literal}}`;
    expectEnvelope(await send({ payload }), 400, `Invalid ${field}`);
  });

  it('format.sections = 1e21 is Invalid format.sections', async () => {
    const payload = `{"productId":${JSON.stringify(tenant.productId)},"format":{"sections":1e21}}`;
    expectEnvelope(await send({ payload }), 400, 'Invalid format.sections');
  });
});

describe('query strings and URLs', () => {
  it('a repeated query parameter is Invalid <field>', async () => {
    const url = `/key?productId=${tenant.productId}&productId=${'b'.repeat(22)}&licenseKey=X`;
    expectEnvelope(await send({ method: 'GET', url, payload: undefined }), 400, 'Invalid productId');
    const keys = `/key?productId=${tenant.productId}&licenseKey=A&licenseKey=B`;
    expectEnvelope(await send({ method: 'GET', url: keys, payload: undefined }), 400, 'Invalid licenseKey');
    expectEnvelope(
      await send({ method: 'GET', url: '/customer?page=1&page=2', payload: undefined }),
      400,
      'Invalid page',
    );
  });

  it('an over-long query value is Invalid <field>', async () => {
    const url = `/key?productId=${'p'.repeat(100_000)}&licenseKey=X`;
    expectEnvelope(await send({ method: 'GET', url, payload: undefined }), 400, 'Invalid productId');
  });

  it('an over-long path parameter is 400/1', async () => {
    const result = await send({
      method: 'PATCH',
      url: `/admin/products/${'a'.repeat(300)}`,
      auth: `Bearer ${ADMIN_TOKEN}`,
      payload: '{}',
    });
    expectEnvelope(result, 400, 'Bad request');
  });

  it('an undecodable path is 400/1', async () => {
    expectEnvelope(await send({ method: 'GET', url: '/key%E0%A4%A', payload: undefined }), 400, 'Bad request');
    expectEnvelope(await send({ method: 'POST', url: '/create-key%', payload: validBody() }), 400, 'Bad request');
  });

  it('an over-long request line is 400 with the envelope', async () => {
    const response = await rawRequest(
      `GET /key?productId=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
    );
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ message: expect.any(String), code: 1 });
    expect(response.headers).toMatch(/content-type: application\/json; charset=utf-8/i);
  });
});

describe('malformed HTTP on a real socket', () => {
  const auth = () => `Authorization: Bearer ${tenant.token}\r\n`;

  it.each([
    [
      'bad chunked encoding',
      () =>
        `POST /create-key HTTP/1.1\r\nHost: localhost\r\n${auth()}Content-Type: application/json\r\n` +
        'Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    ],
    [
      'a chunk shorter than announced',
      () =>
        `POST /create-key HTTP/1.1\r\nHost: localhost\r\n${auth()}Content-Type: application/json\r\n` +
        'Transfer-Encoding: chunked\r\n\r\n5\r\n{}\r\n0\r\n\r\n',
    ],
    [
      'Content-Length together with Transfer-Encoding',
      () =>
        `POST /create-key HTTP/1.1\r\nHost: localhost\r\n${auth()}Content-Type: application/json\r\n` +
        'Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}',
    ],
    ['a garbage request line', () => 'HELLO WORLD\r\n\r\n'],
    ['a header without colon', () => 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nBroken header\r\n\r\n'],
    ['a missing Host header', () => 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'],
  ])('%s is 400 with the JSON envelope', async (_label, build) => {
    const response = await rawRequest(build());
    expect({ status: response.status, body: response.body }).toEqual({
      status: 400,
      body: { message: 'Bad request', code: 1 },
    });
    expect(response.headers).toMatch(/content-type: application\/json; charset=utf-8/i);
  });

  it('a well-formed request on the same server still works', async () => {
    const body = validBody();
    const response = await rawRequest(
      `POST /create-key HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${auth()}` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ code: 0, key: expect.any(String) });
  });
});

describe('error bodies', () => {
  it('never carry anything but message and code', async () => {
    const results = [
      await send({ payload: '{' }),
      await send({ payload: validBody(), auth: null }),
      await send({ payload: validBody(), contentType: 'text/plain' }),
      await send({ payload: JSON.stringify({ productId: 'f'.repeat(22) }) }),
      await send({ method: 'GET', url: '/nowhere', payload: undefined }),
      await send({ payload: JSON.stringify({ productId: tenant.productId, customerId: 'cust_abc123' }) }),
    ];
    for (const result of results) {
      expect(result.status).toBeGreaterThanOrEqual(400);
      expect(Object.keys(result.body as object).sort()).toEqual(['code', 'message']);
      expect(typeof (result.body as { message: unknown }).message).toBe('string');
      expect(Number.isInteger((result.body as { code: unknown }).code)).toBe(true);
    }
  });
});
