import fc from 'fast-check';

/**
 * fast-check arbitraries of hostile HTTP requests, derived from the app's OpenAPI document: every
 * documented operation gets requests whose body, query, path parameters and headers mix values
 * valid for its schema, real ids of a seeded tenant ("pools") and garbage. A schema keyword or
 * string format this file does not know throws when the generators are built, so a new endpoint
 * or field is fuzzed (or fails loudly) without editing the test.
 */

/** A JSON value as sent: raw literals (-0, 1e400) and objects with duplicate keys included. */
export type Json = string | number | boolean | null | Json[] | RawJson | JsonObject;
export class RawJson {
  constructor(readonly text: string) {}
}
export class JsonObject {
  constructor(readonly entries: [string, Json][]) {}
}

export function toJsonText(value: Json): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof JsonObject) {
    return `{${value.entries.map(([key, child]) => `${JSON.stringify(key)}:${toJsonText(child)}`).join(',')}}`;
  }
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(',')}]`;
  return JSON.stringify(value);
}

/** A query-string or header value of a generated JSON value (strings as they are). */
const toPlainText = (value: Json): string => (typeof value === 'string' ? value : toJsonText(value));

// ---------------------------------------------------------------- hostile leaves

/** Strings that break naive code: Unicode edge cases, NaN-like and number-like text, markup. */
const EDGE_STRINGS = [
  '',
  ' ',
  '\t',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'x\udc00',
  '\ud83d', // half an emoji
  '\u202eevil', // right-to-left override
  '\u200f\u200e', // RTL / LTR marks
  'e\u0301\u0301\u0301', // combining marks
  'Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358\u0359\u035a',
  '🚀',
  '👩🏽‍💻',
  '\ufeff',
  '\ufffe\uffff',
  '\u2028\u2029',
  '\u00ff\u0080',
  'İı', // case mapping changes the length
  'ß',
  'null',
  'undefined',
  'true',
  '0',
  '-0',
  '-1',
  '0.5',
  '1e308',
  '1e400',
  '9007199254740993',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '1_000',
  ' 1',
  '1 ',
  '١٢٣', // Arabic-Indic digits
  '²',
  '%00',
  '%',
  '../../etc/passwd',
  "'; drop table license_keys; --",
  '<script>alert(1)</script>',
  `\${7*7}`, // a template placeholder
  '__proto__',
  'constructor',
  '\\',
  '"',
  'a'.repeat(257),
];

const NUMBER_LITERALS = [
  '0',
  '-0',
  '0.0',
  '-0.0',
  '1',
  '-1',
  '0.5',
  '-0.5',
  '1.0',
  '1e0',
  '1E2',
  '2147483647',
  '2147483648',
  '-2147483648',
  '-2147483649',
  '4294967296',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '-9007199254740993',
  '1e21',
  '1e308',
  '1.7976931348623157e308',
  '1e309',
  '-1e309',
  '1e400',
  '5e-324',
  '1e-400',
  '123456789012345678901234567890',
  '0.1e1',
];

/** A string of many code units: over every maxLength, some over the 1 MiB body limit. */
const longString = fc
  .tuple(
    fc.constantFrom('a', '\u00e9', '🚀', '\u0000', ' ', '9'),
    fc.oneof(fc.integer({ min: 257, max: 5000 }), fc.integer({ min: 5000, max: 600_000 })),
  )
  .map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)));

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...EDGE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc.string({ unit: fc.constantFrom('\ud800', '\udc00', '\u0000', 'a', '\u0301'), maxLength: 10 }),
  },
  { weight: 1, arbitrary: longString },
);

const deepText = fc
  .tuple(
    fc.constantFrom('array', 'object', 'mixed'),
    fc.oneof(fc.integer({ min: 9, max: 70 }), fc.integer({ min: 70, max: 20_000 })),
  )
  .map(([kind, depth]) =>
    kind === 'array'
      ? new RawJson(`${'['.repeat(depth)}${']'.repeat(depth)}`)
      : kind === 'object'
        ? new RawJson(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`)
        : new RawJson(`${'[{"a":'.repeat(depth)}null${'}]'.repeat(depth)}`),
  );

const hugeArray = fc
  .tuple(fc.integer({ min: 1001, max: 150_000 }), fc.constantFrom('1', '"a"', 'null', '{}', '[]'))
  .map(([length, item]) => new RawJson(`[${Array(length).fill(item).join(',')}]`));

const escapedStrings = fc.constantFrom(
  new RawJson('"\\u0000"'),
  new RawJson('"\\ud800"'),
  new RawJson('"a\\udc00"'),
  new RawJson('"\\udbff\\udfff"'),
  new RawJson('"\\u202e"'),
  new RawJson('"\\/"'),
);

const hostileLeaf: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 3, arbitrary: fc.constantFrom(...NUMBER_LITERALS).map((text) => new RawJson(text)) },
  { weight: 1, arbitrary: fc.constantFrom<Json>(true, false, null) },
  { weight: 1, arbitrary: escapedStrings },
  { weight: 1, arbitrary: fc.double().map((n) => (Number.isFinite(n) ? n : String(n))) },
);

const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '__proto__',
      'constructor',
      'prototype',
      '',
      '\u0000',
      '\ud800',
      'toString',
      'hasOwnProperty',
    ),
  },
);

/** Any JSON value a hostile client could send, `depth` levels of containers at most (plus deep raw text). */
export function hostileJson(depth = 2): fc.Arbitrary<Json> {
  if (depth <= 0) return hostileLeaf;
  const child = hostileJson(depth - 1);
  return fc.oneof(
    { weight: 6, arbitrary: hostileLeaf },
    { weight: 2, arbitrary: fc.array(child, { maxLength: 4 }) },
    {
      weight: 2,
      arbitrary: fc.array(fc.tuple(hostileKey, child), { maxLength: 4 }).map((entries) => new JsonObject(entries)),
    },
    { weight: 1, arbitrary: deepText },
    { weight: 1, arbitrary: hugeArray },
  );
}

// ---------------------------------------------------------------- schema-valid values

export type Schema = Record<string, any>;

/** Real ids and values of the seeded tenants, by field name: they get a request past validation. */
export type Pools = Record<string, readonly Json[]>;

const KNOWN_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'anyOf',
  'enum',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'pattern',
  'format',
  'description',
]);

const isoDate = fc
  .tuple(
    fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true }),
    fc.constantFrom('iso', 'date', 'offset', 'seconds'),
  )
  .map(([date, style]) => {
    const iso = date.toISOString();
    if (style === 'date') return iso.slice(0, 10);
    if (style === 'offset') return `${iso.slice(0, 19)}+02:00`;
    if (style === 'seconds') return `${iso.slice(0, 19)}Z`;
    return iso;
  });

const digits = (min: number, max: number) =>
  fc.oneof(fc.integer({ min, max: Math.min(max, 20) }), fc.constantFrom(min, max), fc.integer({ min, max }));

/** A string of the given format. Throws for a format without a generator: add one here. */
function formatted(format: string, name: string, pools: Pools): fc.Arbitrary<Json> {
  switch (format) {
    case 'activation-limit':
    case 'page-number':
      return fc.oneof(digits(1, 2_147_483_647).map(String), fc.constantFrom('01', '007'));
    case 'amount-keys':
      return digits(1, 1000).map(String);
    case 'positive-integer':
      return fc.oneof(digits(1, 1000).map(String), fc.constantFrom('0001', '99999999999999999999'));
    case 'iso-date':
      return fc.oneof(
        { weight: 3, arbitrary: isoDate },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            '9999-12-31T23:59:59.999Z',
            '1970-01-01',
            '1969-12-31T23:59:59Z',
            '2024-02-29',
            '2023-02-29',
            '0001-01-01',
            '+275760-09-13T00:00:00.000Z',
            '2024-01-01T24:00:00Z',
            '2024-01-01T00:00:60Z',
            '2024-01-01T00:00:00+14:00',
            '2024-01-01T00:00:00-23:59',
            '2024-01-01T00:00:00.123456789Z',
            '2024-01-01t00:00:00z',
            '2024-01-01 00:00:00Z',
          ),
        },
      );
    case 'email':
      return fc.oneof(
        fc.emailAddress().filter((email) => email.length <= 254),
        fc.constantFrom('ADA@EXAMPLE.COM', 'a@b.co', 'ünï@cödé.example'),
      );
    case 'webhook-url': {
      const pool = pools[name] ?? pools.url;
      if (!pool) throw new Error(`no pool of URLs for the webhook-url field ${name}`);
      return fc.constantFrom(...pool);
    }
    default:
      throw new Error(
        `no generator for string format "${format}" (field ${name}): add one to test/fuzz/arbitraries.ts`,
      );
  }
}

/** A value the schema accepts (as far as a generator can tell), biased to the bounds. */
export function validJson(schema: Schema, name: string, pools: Pools, sane = false): fc.Arbitrary<Json> {
  for (const keyword of Object.keys(schema)) {
    if (!KNOWN_KEYWORDS.has(keyword)) {
      throw new Error(
        `no generator for schema keyword "${keyword}" (field ${name}): add one to test/fuzz/arbitraries.ts`,
      );
    }
  }
  if (schema.anyOf)
    return fc.oneof(...(schema.anyOf as Schema[]).map((branch) => validJson(branch, name, pools, sane)));
  if (schema.enum) return fc.constantFrom(...(schema.enum as Json[]));
  const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length > 1) return fc.oneof(...types.map((type) => validJson({ ...schema, type }, name, pools, sane)));
  switch (types[0]) {
    case 'string': {
      if (schema.format) return formatted(schema.format, name, pools);
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      const minLength = schema.minLength ?? 0;
      const maxLength = schema.maxLength ?? 300;
      return fc.oneof(
        fc.string({ minLength, maxLength: Math.min(maxLength, minLength + 30), unit: 'grapheme' }),
        fc.constantFrom('x'.repeat(Math.max(minLength, 1)), 'y'.repeat(maxLength)),
      );
    }
    case 'integer': {
      const min = schema.minimum ?? -2_147_483_648;
      const max = schema.maximum ?? 2_147_483_647;
      return fc.oneof(
        fc.integer({ min, max: Math.min(max, min + 30) }),
        fc.constantFrom(min, max),
        fc.integer({ min, max }),
      );
    }
    case 'number':
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const minLength = schema.minItems ?? 0;
      const maxLength = Math.min(schema.maxItems ?? 5, minLength + 5);
      const item = schema.items ? fieldValue(schema.items, name, pools, sane) : hostileJson(1);
      return fc.array(item, { minLength, maxLength });
    }
    case 'object':
      if (!schema.properties)
        return fc.array(fc.tuple(hostileKey, hostileJson(2)), { maxLength: 5 }).map((e) => new JsonObject(e));
      return objectOf(schema, pools);
    default:
      throw new Error(`no generator for schema type ${JSON.stringify(schema.type)} (field ${name})`);
  }
}

/** A field's value: valid for its schema, a real id of the seeded world, or (unless `sane`) garbage. */
export function fieldValue(schema: Schema, name: string, pools: Pools, sane = false): fc.Arbitrary<Json> {
  const pool = pools[name];
  return fc.oneof(
    { weight: 4, arbitrary: validJson(schema, name, pools, sane) },
    { weight: pool ? 4 : 0, arbitrary: fc.constantFrom<Json>(...(pool ?? [null])) },
    { weight: sane ? 0 : 2, arbitrary: hostileJson(2) },
    { weight: sane ? 0 : 1, arbitrary: fc.constantFrom<Json>(null, '', new RawJson('-0'), [], new JsonObject([])) },
  );
}

/**
 * An object of the schema's properties: required ones nearly always, others half the time;
 * sometimes an unknown field, sometimes one field twice (raw duplicate keys: the last one wins).
 * A third of the objects are "sane" (every field valid or a real id, at any depth), so that
 * requests get past validation into the services; their duplicate key may still be garbage.
 */
export function objectOf(schema: Schema, pools: Pools): fc.Arbitrary<JsonObject> {
  return fc.oneof(
    { weight: 2, arbitrary: objectWith(schema, pools, false) },
    { weight: 1, arbitrary: objectWith(schema, pools, true) },
  );
}

function objectWith(schema: Schema, pools: Pools, sane: boolean): fc.Arbitrary<JsonObject> {
  const properties = Object.entries((schema.properties ?? {}) as Record<string, Schema>);
  const required = new Set<string>(schema.required ?? []);
  const fields = fc.tuple(
    ...properties.map(([name, property]) =>
      fc.option(
        fieldValue(property, name, pools, sane).map((value): [string, Json] => [name, value]),
        { freq: required.has(name) ? 12 : 2, nil: undefined },
      ),
    ),
  );
  const duplicate =
    properties.length === 0
      ? fc.constant(undefined)
      : fc.option(
          fc
            .constantFrom(...properties)
            .chain(([name, property]) => fc.tuple(fc.constant(name), fieldValue(property, name, pools), fc.boolean())),
          { freq: 6 },
        );
  const extras = sane
    ? fc.constant(undefined)
    : fc.option(fc.array(fc.tuple(hostileKey, hostileJson(1)), { minLength: 1, maxLength: 2 }), { freq: 6 });
  return fc.tuple(fields, duplicate, extras, fc.boolean()).map(([chosen, dup, extra, reverse]) => {
    let entries = chosen.filter((entry): entry is [string, Json] => entry !== undefined);
    if (reverse) entries = [...entries].reverse();
    if (dup) {
      const [name, value, first] = dup;
      entries = first ? [[name, value], ...entries] : [...entries, [name, value]];
    }
    if (extra) entries = [...entries, ...extra];
    return new JsonObject(entries);
  });
}

// ---------------------------------------------------------------- requests

export interface Operation {
  method: string;
  /** The OpenAPI path, e.g. /admin/products/{id}. */
  path: string;
  security: 'bearerAuth' | 'adminToken' | 'none';
  pathParams: { name: string; schema: Schema }[];
  queryParams: { name: string; schema: Schema }[];
  body: Schema | undefined;
  idempotent: boolean;
}

export interface Credentials {
  /** The tokens a request of each scheme normally carries. */
  bearerAuth: string[];
  adminToken: string[];
  metrics: string[];
  /** Every other token worth trying anywhere (revoked, restricted, another tenant's). */
  others: string[];
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | Buffer | undefined;
  /** The Idempotency-Key sent, when it is one the server accepts. */
  validIdempotencyKey: boolean;
}

/** Percent-encodes every byte outside the unreserved set (a lone surrogate becomes U+FFFD's bytes). */
const encodeAll = (text: string) =>
  [...Buffer.from(text, 'utf8')]
    .map((byte) =>
      /[A-Za-z0-9\-._~]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');

/** Raw pieces of a URL that no encoder produces: undecodable or surrogate bytes, separators. */
const rawUrlPiece = fc.constantFrom(
  '%ED%A0%80',
  '%FF',
  '%C0%AF',
  '%00',
  '%',
  '%zz',
  '%E0%A4%A',
  '+',
  '%2B',
  '&',
  '=',
  ';',
  '%26',
  '#',
  '..',
  '%2F',
);

/** URL parts stay below Node's 16 KiB header limit, roughly: a real server would answer 431 first. */
const fitsUrl = (text: string) => (text.length > 12_000 ? text.slice(0, 12_000) : text);

const urlText = (value: fc.Arbitrary<Json>) =>
  fc.oneof(
    { weight: 6, arbitrary: value.map((v) => fitsUrl(encodeAll(toPlainText(v).slice(0, 12_000)))) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.oneof(rawUrlPiece, fc.string({ maxLength: 4 }).map(encodeAll)), { minLength: 1, maxLength: 4 })
        .map((p) => p.join('')),
    },
  );

/** Header values a socket can carry: tab, visible ASCII, obs-text (0x80–0xFF). */
const headerText = fc.string({
  unit: fc
    .integer({ min: 0x20, max: 0xff })
    .filter((c) => c !== 0x7f)
    .map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
const hugeHeader = fc.integer({ min: 1000, max: 60_000 }).map((n) => 'h'.repeat(n));

function authorizationOf(op: Operation, credentials: Credentials): fc.Arbitrary<string | undefined> {
  const own = op.path === '/metrics' ? credentials.metrics : op.security === 'none' ? [] : credentials[op.security];
  const any = [...credentials.bearerAuth, ...credentials.adminToken, ...credentials.metrics, ...credentials.others];
  const token = fc.constantFrom(...any);
  return fc.oneof(
    {
      weight: own.length > 0 ? 24 : 0,
      arbitrary: fc.constantFrom(...(own.length > 0 ? own : ['-'])).map((t) => `Bearer ${t}`),
    },
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: token.map((t) => `Bearer ${t}`) },
    {
      weight: 3,
      arbitrary: fc.oneof(
        token.map((t) => `bearer ${t}`),
        token.map((t) => `BEARER   ${t}  `),
        token.map((t) => `Bearer\t${t}`),
        token.map((t) => `Basic ${Buffer.from(`x:${t}`).toString('base64')}`),
        token.map((t) => `${t}`),
        token.map((t) => `Bearer ${t}${t}`),
        token.map((t) => `Bearer ${t.slice(0, -1)}`),
        token.map((t) => `Bearer ${t.toUpperCase()}`),
        token.map((t) => `Bearer ${t}, Bearer ${t}`),
        fc.constantFrom(
          'Bearer',
          'Bearer ',
          'Bearer  ',
          '',
          ' ',
          'Bearer null',
          'Bearer undefined',
          'Bearer at_',
          'Token x',
        ),
        headerText.map((t) => `Bearer ${t}`),
        hugeHeader.map((t) => `Bearer at_${t}`),
      ),
    },
  );
}

function contentTypeOf(): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 24, arbitrary: fc.constant('application/json') },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        undefined,
        'application/json; charset=utf-8',
        'application/json; charset=latin1',
        'application/json;;;',
        'APPLICATION/JSON',
        'application/merge-patch+json',
        'text/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/octet-stream',
        '*/*',
        '',
        'application/json, text/plain',
      ),
    },
    { weight: 1, arbitrary: headerText },
  );
}

/** The body: mostly an object of the schema's fields, sometimes garbage or broken text. */
function payloadOf(op: Operation, pools: Pools): fc.Arbitrary<string | Buffer | undefined> {
  const object = op.body ? objectOf(op.body, pools).map(toJsonText) : fc.constant('{}');
  const broken = fc.oneof(
    fc.tuple(object, fc.nat()).map(([text, cut]) => text.slice(0, cut % Math.max(text.length, 1))),
    object.map((text) => `${text}garbage`),
    object.map((text) => `\ufeff${text}`),
    object.map((text) =>
      Buffer.concat([
        Buffer.from(text.slice(0, -1)),
        Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80]),
        Buffer.from('}'),
      ]),
    ),
    fc.constantFrom(
      '',
      ' ',
      'null',
      '[]',
      '"x"',
      '1',
      '{',
      '}',
      '{"a":1,}',
      "{'a':1}",
      'NaN',
      '{"a":NaN}',
      '{"a":01}',
      '{"a":.5}',
      '{"a":+1}',
    ),
  );
  const hostile = hostileJson(3).map(toJsonText);
  if (!op.body) {
    return fc.oneof(
      { weight: 8, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: hostile },
      { weight: 1, arbitrary: broken },
    );
  }
  return fc.oneof(
    { weight: 10, arbitrary: object },
    { weight: 2, arbitrary: hostile },
    { weight: 2, arbitrary: broken },
  );
}

function idempotencyKeyOf(): fc.Arbitrary<{ key: string | undefined; valid: boolean }> {
  const valid = (key: string) => ({ key, valid: true });
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant({ key: undefined, valid: false }) },
    { weight: 3, arbitrary: fc.uuid().map(valid) },
    // A few fixed keys, so that replays and 422 mismatches happen.
    { weight: 2, arbitrary: fc.constantFrom('fuzz-1', 'fuzz-2', ' ', '~'.repeat(255)).map(valid) },
    {
      weight: 2,
      arbitrary: fc
        .oneof(fc.constantFrom('', 'k'.repeat(256), '\u00e9', 'tab\tkey', 'caf\u00e9'), headerText, hugeHeader)
        .map((key) => ({ key, valid: /^[\x20-\x7e]{1,255}$/.test(key) })),
    },
  );
}

/** Arbitrary hostile requests to one operation. */
export function requestsFor(op: Operation, pools: Pools, credentials: Credentials): fc.Arbitrary<FuzzRequest> {
  const pathParams = fc.tuple(
    ...op.pathParams.map(({ name, schema }) =>
      fc.oneof(
        { weight: 6, arbitrary: urlText(fieldValue(schema, name, pools)) },
        { weight: 1, arbitrary: fc.constantFrom('', 'p'.repeat(300), '%2e%2e', encodeAll('\u0000')) },
      ),
    ),
  );
  const queryParam = (name: string, schema: Schema) =>
    fc.tuple(fc.constant(name), urlText(fieldValue(schema, name, pools)));
  const query = fc.tuple(
    fc.tuple(
      ...op.queryParams.map(({ name, schema }) => fc.option(queryParam(name, schema), { freq: 4, nil: undefined })),
    ),
    // A documented parameter repeated, an unknown one, or a raw broken piece.
    fc.option(
      fc.oneof(
        ...(op.queryParams.length > 0
          ? [fc.constantFrom(...op.queryParams).chain(({ name, schema }) => queryParam(name, schema))]
          : []),
        fc.tuple(
          hostileString.map((name) => fitsUrl(encodeAll(name.slice(0, 1000)))),
          urlText(hostileJson(0)),
        ),
      ),
      { freq: 4, nil: undefined },
    ),
    fc.option(rawUrlPiece, { freq: 10, nil: undefined }),
  );
  const method =
    op.method === 'GET'
      ? fc.oneof({ weight: 8, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constant('HEAD') })
      : fc.constant(op.method);
  const extraHeaders = fc.option(
    fc.oneof(
      fc.tuple(fc.constant('x-request-id'), fc.oneof(headerText, hugeHeader)),
      fc.tuple(
        fc.constant('x-forwarded-for'),
        fc.oneof(headerText, fc.constantFrom('::1', '1.2.3.4, 5.6.7.8', 'unknown')),
      ),
      fc.tuple(fc.constant('accept'), fc.constantFrom('text/html', '*/*', 'application/xml', '')),
      fc.tuple(fc.constant('content-encoding'), fc.constantFrom('gzip', 'br', 'identity', 'x')),
      fc.tuple(fc.constant('x-filler'), hugeHeader),
    ),
    { freq: 4, nil: undefined },
  );
  return fc
    .record({
      method,
      pathParams,
      query,
      authorization: authorizationOf(op, credentials),
      contentType: contentTypeOf(),
      payload: payloadOf(op, pools),
      idempotency: op.idempotent ? idempotencyKeyOf() : fc.constant({ key: undefined, valid: false }),
      extra: extraHeaders,
    })
    .map(({ method, pathParams, query, authorization, contentType, payload, idempotency, extra }) => {
      let path = op.path;
      op.pathParams.forEach(({ name }, index) => {
        path = path.replace(`{${name}}`, pathParams[index]!);
      });
      const [params, additional, raw] = query;
      const pairs = [...params.filter((pair) => pair !== undefined), ...(additional ? [additional] : [])];
      const search = [...pairs.map(([name, value]) => `${name}=${value}`), ...(raw ? [raw] : [])].join('&');
      const headers: Record<string, string> = {};
      if (authorization !== undefined) headers.authorization = authorization;
      if (payload !== undefined && contentType !== undefined) headers['content-type'] = contentType;
      if (idempotency.key !== undefined) headers['idempotency-key'] = idempotency.key;
      if (extra) headers[extra[0]] = extra[1];
      const request: FuzzRequest = {
        method,
        url: search === '' ? path : `${path}?${search}`,
        headers,
        payload: method === 'HEAD' ? undefined : payload,
        validIdempotencyKey: idempotency.valid,
      };
      // fast-check prints a counterexample with this (a request can be megabytes long).
      return Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) });
    });
}

/** A request for a failure message, long values cut. */
export function describeRequest(request: FuzzRequest): string {
  const text = (value: unknown) => {
    const s = Buffer.isBuffer(value)
      ? `<bytes ${value.toString('hex')}>`
      : typeof value === 'string'
        ? value
        : String(value);
    return s.length > 600 ? `${s.slice(0, 600)}… (${s.length} chars)` : s;
  };
  return `${request.method} ${text(request.url)}\nheaders: ${text(JSON.stringify(request.headers))}\nbody: ${text(request.payload)}`;
}
