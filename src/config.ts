import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const integerRanges = new Map<string, [number, number]>();

/** Env values are strings: a decimal integer within [minimum, maximum]. */
function Integer(name: string, options: { minimum: number; maximum: number; default: number }) {
  integerRanges.set(name, [options.minimum, options.maximum]);
  return Type.String({
    pattern: '^[0-9]+$',
    default: String(options.default),
    description: `integer ${options.minimum}–${options.maximum}`,
  });
}

/** Every environment variable the server reads (README "Configuration" documents them). */
export const EnvSchema = Type.Object({
  PORT: Integer('PORT', { minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  SECRET_KEY: Type.Optional(Type.String({ minLength: 16 })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  RATE_LIMIT_PER_MINUTE: Integer('RATE_LIMIT_PER_MINUTE', { minimum: 1, maximum: 10_000_000, default: 6000 }),
  TRUST_PROXY: Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
    default: 'false',
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' },
  ),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  BODY_LIMIT: Integer('BODY_LIMIT', { minimum: 1024, maximum: 100 * 1024 * 1024, default: 1024 * 1024 }),
  DB_POOL_SIZE: Integer('DB_POOL_SIZE', { minimum: 1, maximum: 1000, default: 10 }),
});

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  adminToken: string | undefined;
  secretKey: string | undefined;
  redisUrl: string | undefined;
  rateLimitPerMinute: number;
  trustProxy: boolean;
  logLevel: string;
  metricsToken: string | undefined;
  bodyLimit: number;
  dbPoolSize: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Static<typeof EnvSchema>;

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
  const firstError = Value.Errors(EnvSchema, withDefaults).First();
  if (firstError) fail(firstError.path.replace(/^\//, ''), firstError.message);
  for (const [name, [minimum, maximum]] of integerRanges) {
    const value = Number(withDefaults[name]);
    if (value < minimum || value > maximum) fail(name, `must be between ${minimum} and ${maximum}`);
  }
  const env = withDefaults as Env;
  return {
    port: Number(env.PORT),
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    adminToken: env.ADMIN_TOKEN,
    secretKey: env.SECRET_KEY,
    redisUrl: env.REDIS_URL,
    rateLimitPerMinute: Number(env.RATE_LIMIT_PER_MINUTE),
    trustProxy: env.TRUST_PROXY === 'true' || env.TRUST_PROXY === '1',
    logLevel: env.LOG_LEVEL,
    metricsToken: env.METRICS_TOKEN,
    bodyLimit: Number(env.BODY_LIMIT),
    dbPoolSize: Number(env.DB_POOL_SIZE),
  };
}
