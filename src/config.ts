import { isIP } from 'node:net';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const integerRanges = new Map<string, [number, number]>();
const flagNames = new Set<string>();

/** Env values are strings: a decimal integer within [minimum, maximum]. */
function Integer(name: string, options: { minimum: number; maximum: number; default: number }) {
  integerRanges.set(name, [options.minimum, options.maximum]);
  return Type.String({
    pattern: '^[0-9]+$',
    default: String(options.default),
    description: `integer ${options.minimum}–${options.maximum}`,
  });
}

/** Env booleans: `true`/`1` or `false`/`0`. */
function Flag(name: string, defaultValue: boolean) {
  flagNames.add(name);
  return Type.Union([Type.Literal('true'), Type.Literal('1'), Type.Literal('false'), Type.Literal('0')], {
    default: String(defaultValue),
  });
}

/** Every environment variable the server reads (README "Configuration" documents them). */
export const EnvSchema = Type.Object({
  PORT: Integer('PORT', { minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  // false: the embedded database's commits reach the OS, not the disk (survive a crash, not a power loss).
  PGLITE_FSYNC: Flag('PGLITE_FSYNC', true),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  SECRET_KEY: Type.Optional(Type.String({ minLength: 16 })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_KEY_PREFIX: Type.String({ pattern: '^[A-Za-z0-9:_.-]{1,64}$', default: 'keymint:' }),
  RATE_LIMIT_PER_MINUTE: Integer('RATE_LIMIT_PER_MINUTE', { minimum: 1, maximum: 10_000_000, default: 6000 }),
  // true/1 trusts every proxy (X-Forwarded-For's first entry is the client): only behind a proxy
  // that overwrites the header. A list of proxy addresses/CIDRs trusts just those hops.
  TRUST_PROXY: Type.String({ minLength: 1, default: 'false' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' },
  ),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  // Browser origins allowed to call the public API (CORS): `*` or exact origins, comma-separated.
  CORS_ORIGINS: Type.Optional(Type.String({ minLength: 1 })),
  BODY_LIMIT: Integer('BODY_LIMIT', { minimum: 1024, maximum: 100 * 1024 * 1024, default: 1024 * 1024 }),
  // How long a process keeps a resolved access token (0: never). Every change to a token empties
  // every process's cache at once (LISTEN/NOTIFY); this bounds the rest.
  TOKEN_CACHE_TTL_MS: Integer('TOKEN_CACHE_TTL_MS', { minimum: 0, maximum: 3_600_000, default: 10_000 }),
  DB_POOL_SIZE: Integer('DB_POOL_SIZE', { minimum: 1, maximum: 1000, default: 10 }),
  // A request not answered in this time gets 503 (its writes roll back); also the database's
  // statement and connect timeouts.
  REQUEST_TIMEOUT_MS: Integer('REQUEST_TIMEOUT_MS', { minimum: 100, maximum: 600_000, default: 10_000 }),
  // Requests in progress at once (0: no limit); beyond it, 503 at once.
  MAX_CONCURRENT_REQUESTS: Integer('MAX_CONCURRENT_REQUESTS', { minimum: 0, maximum: 1_000_000, default: 256 }),
  // Mean event-loop delay above which requests are shed with 503 (0: off).
  MAX_EVENT_LOOP_DELAY_MS: Integer('MAX_EVENT_LOOP_DELAY_MS', { minimum: 0, maximum: 60_000, default: 1000 }),
  // SIGTERM: requests in progress get this long to finish before the process exits anyway.
  SHUTDOWN_TIMEOUT_MS: Integer('SHUTDOWN_TIMEOUT_MS', { minimum: 100, maximum: 600_000, default: 10_000 }),
  // false on API-only replicas: another process delivers the webhooks.
  WEBHOOKS_WORKER: Flag('WEBHOOKS_WORKER', true),
  // true lets webhook URLs resolve to loopback, link-local and private addresses.
  WEBHOOKS_ALLOW_PRIVATE: Flag('WEBHOOKS_ALLOW_PRIVATE', false),
  // The first retry's delay (then doubling, capped at 1 h). Lowered by tests and the benchmark.
  WEBHOOKS_RETRY_BASE_MS: Integer('WEBHOOKS_RETRY_BASE_MS', { minimum: 1, maximum: 3_600_000, default: 30_000 }),
  // An attempt without a 2xx answer in this time failed (the contract's 10 s). Lowered by tests.
  WEBHOOKS_TIMEOUT_MS: Integer('WEBHOOKS_TIMEOUT_MS', { minimum: 100, maximum: 600_000, default: 10_000 }),
});

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** The embedded database fsyncs its WAL on every commit. */
  pgliteFsync: boolean;
  adminToken: string | undefined;
  secretKey: string | undefined;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  rateLimitPerMinute: number;
  /** Fastify's trustProxy: all proxies, none, or a comma-separated list of addresses/CIDRs. */
  trustProxy: boolean | string;
  logLevel: string;
  metricsToken: string | undefined;
  /** Origins the public API answers CORS requests from: exact origins, or `['*']`; empty = CORS off. */
  corsOrigins: string[];
  bodyLimit: number;
  dbPoolSize: number;
  /** Longest a resolved access token is kept in memory; 0 = no token cache. */
  tokenCacheTtlMs: number;
  requestTimeoutMs: number;
  maxConcurrentRequests: number;
  maxEventLoopDelayMs: number;
  shutdownTimeoutMs: number;
  webhooks: WebhookSettings;
}

/** The webhook delivery worker's settings (docs/api.md, "Webhooks"). */
export interface WebhookSettings {
  /** Run the delivery worker in this process. */
  worker: boolean;
  /** Allow URLs that resolve to loopback, link-local or private addresses. */
  allowPrivate: boolean;
  /** Delay before the first retry; each next one doubles, up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Retries stop this long after the event; the delivery is then failed. */
  retryWindowMs: number;
  /** An attempt that has no 2xx answer within this time failed. */
  timeoutMs: number;
  /** How often an idle worker looks for due deliveries (it is also woken by this process's commits). */
  pollIntervalMs: number;
  /** Deliveries claimed per round, sent concurrently. */
  batchSize: number;
}

export const WEBHOOK_DEFAULTS: Omit<WebhookSettings, 'worker' | 'allowPrivate' | 'retryBaseMs' | 'timeoutMs'> = {
  retryMaxMs: 60 * 60_000,
  retryWindowMs: 24 * 60 * 60_000,
  pollIntervalMs: 1000,
  batchSize: 50,
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Static<typeof EnvSchema>;

const flag = (value: string): boolean => value === 'true' || value === '1';

// Named ranges proxy-addr (Fastify's trustProxy) understands.
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true;
  const [address = '', prefix, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** `true`/`1`, `false`/`0`, or a comma-separated list of proxy addresses, CIDRs or range names. */
function parseTrustProxy(value: string): boolean | string | undefined {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  const entries = value.split(',').map((entry) => entry.trim());
  return entries.every(isProxyAddress) ? entries.join(',') : undefined;
}

/** An exact browser origin as the Origin header carries it: `https://app.example.com`, `http://localhost:5173`. */
function isOrigin(entry: string): boolean {
  try {
    const url = new URL(entry);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === entry;
  } catch {
    return false;
  }
}

/** `*` alone, or a comma-separated list of exact origins; unset → [] (CORS off). */
function parseCorsOrigins(value: string | undefined): string[] | undefined {
  if (value === undefined) return [];
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.length === 1 && entries[0] === '*') return ['*'];
  return entries.every(isOrigin) ? [...new Set(entries)] : undefined;
}

// Values never echoed in an error message (they may hold credentials).
const SECRET_VARIABLES = new Set(['ADMIN_TOKEN', 'SECRET_KEY', 'METRICS_TOKEN', 'DATABASE_URL', 'REDIS_URL']);

/** Parses the environment once; a wrong value names its variable and stops start-up. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.properties)) {
    const value = source[name];
    // An empty variable (FOO= in a compose file) means "not set".
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const withDefaults = Value.Default(EnvSchema, raw) as Record<string, string>;
  const fail = (name: string, reason: string): never => {
    const shown = SECRET_VARIABLES.has(name) ? '' : ` (got ${JSON.stringify(withDefaults[name])})`;
    throw new ConfigError(`Invalid environment variable ${name}: ${reason}${shown}`);
  };
  for (const [name, [minimum, maximum]] of integerRanges) {
    const value = withDefaults[name] ?? '';
    const number = Number(value);
    if (!/^[0-9]+$/.test(value) || number < minimum || number > maximum) {
      fail(name, `must be an integer from ${minimum} to ${maximum}`);
    }
  }
  for (const name of flagNames) {
    if (!['true', '1', 'false', '0'].includes(withDefaults[name] ?? '')) fail(name, 'must be true or false');
  }
  const firstError = Value.Errors(EnvSchema, withDefaults).First();
  if (firstError) fail(firstError.path.replace(/^\//, ''), firstError.message);
  const env = withDefaults as Env;
  const trustProxy =
    parseTrustProxy(env.TRUST_PROXY) ?? fail('TRUST_PROXY', 'must be true, false or a list of proxy addresses/CIDRs');
  const corsOrigins =
    parseCorsOrigins(env.CORS_ORIGINS) ??
    fail(
      'CORS_ORIGINS',
      'must be * or a comma-separated list of origins, each scheme://host[:port] in lower case without a path ' +
        '(e.g. https://app.example.com,http://localhost:5173)',
    );
  return {
    port: Number(env.PORT),
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    pgliteFsync: flag(env.PGLITE_FSYNC),
    adminToken: env.ADMIN_TOKEN,
    secretKey: env.SECRET_KEY,
    redisUrl: env.REDIS_URL,
    redisKeyPrefix: env.REDIS_KEY_PREFIX,
    rateLimitPerMinute: Number(env.RATE_LIMIT_PER_MINUTE),
    trustProxy,
    logLevel: env.LOG_LEVEL,
    metricsToken: env.METRICS_TOKEN,
    corsOrigins,
    bodyLimit: Number(env.BODY_LIMIT),
    dbPoolSize: Number(env.DB_POOL_SIZE),
    tokenCacheTtlMs: Number(env.TOKEN_CACHE_TTL_MS),
    requestTimeoutMs: Number(env.REQUEST_TIMEOUT_MS),
    maxConcurrentRequests: Number(env.MAX_CONCURRENT_REQUESTS),
    maxEventLoopDelayMs: Number(env.MAX_EVENT_LOOP_DELAY_MS),
    shutdownTimeoutMs: Number(env.SHUTDOWN_TIMEOUT_MS),
    webhooks: {
      ...WEBHOOK_DEFAULTS,
      worker: flag(env.WEBHOOKS_WORKER),
      allowPrivate: flag(env.WEBHOOKS_ALLOW_PRIVATE),
      retryBaseMs: Number(env.WEBHOOKS_RETRY_BASE_MS),
      timeoutMs: Number(env.WEBHOOKS_TIMEOUT_MS),
    },
  };
}
