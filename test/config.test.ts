import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, EnvSchema, loadConfig } from '../src/config.js';

const BIN = fileURLToPath(new URL('../bin/keymint-server.js', import.meta.url));

/** For every variable, values that must stop start-up. */
const INVALID: Record<string, string[]> = {
  PORT: ['abc', '-1', '65536', '80.5'],
  DATABASE_URL: ['mysql://localhost/db', 'localhost:5432'],
  ADMIN_TOKEN: ['too-short'],
  SECRET_KEY: ['too-short'],
  REDIS_URL: ['http://127.0.0.1:6379', '127.0.0.1:6379'],
  REDIS_KEY_PREFIX: ['has space', 'a'.repeat(65), 'wild*card'],
  RATE_LIMIT_PER_MINUTE: ['0', 'many', '1e3', '10000001'],
  TRUST_PROXY: ['yes', '10.0.0.0/33', '300.1.1.1', '10.0.0.1,nope', '10.0.0.0/8/8'],
  LOG_LEVEL: ['verbose', 'INFO'],
  METRICS_TOKEN: ['too-short'],
  CORS_ORIGINS: [
    'app.example.com',
    'https://app.example.com/',
    'https://app.example.com/path',
    'https://APP.example.com',
    'https://app.example.com:443',
    'ftp://files.example.com',
    'null',
    '*,https://app.example.com',
    'https://app.example.com,',
  ],
  BODY_LIMIT: ['1023', '1MiB', '104857601'],
  DB_POOL_SIZE: ['0', '1001', 'ten'],
  TOKEN_CACHE_TTL_MS: ['-1', '3600001', '10s'],
  REQUEST_TIMEOUT_MS: ['99', '10s', '600001'],
  MAX_CONCURRENT_REQUESTS: ['-1', 'many', '1000001'],
  MAX_EVENT_LOOP_DELAY_MS: ['-5', '1s', '60001'],
  SHUTDOWN_TIMEOUT_MS: ['99', 'later', '600001'],
  PGLITE_FSYNC: ['yes', 'off'],
  WEBHOOKS_WORKER: ['yes', 'on'],
  WEBHOOKS_ALLOW_PRIVATE: ['yes', 'TRUE'],
  WEBHOOKS_RETRY_BASE_MS: ['0', 'soon', '3600001'],
  WEBHOOKS_TIMEOUT_MS: ['99', '10s', '600001'],
};
/** Variables for which any non-empty value is acceptable (an empty one means "unset"). */
const FREE_FORM = ['HOST', 'DATA_DIR'];
const SECRETS = ['ADMIN_TOKEN', 'SECRET_KEY', 'METRICS_TOKEN', 'DATABASE_URL', 'REDIS_URL'];

describe('loadConfig', () => {
  it('has a documented default for everything', () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      dataDir: './data',
      pgliteFsync: true,
      adminToken: undefined,
      secretKey: undefined,
      redisUrl: undefined,
      redisKeyPrefix: 'keymint:',
      rateLimitPerMinute: 6000,
      trustProxy: false,
      logLevel: 'info',
      metricsToken: undefined,
      corsOrigins: [],
      bodyLimit: 1024 * 1024,
      dbPoolSize: 10,
      tokenCacheTtlMs: 10_000,
      requestTimeoutMs: 10_000,
      maxConcurrentRequests: 256,
      maxEventLoopDelayMs: 1000,
      shutdownTimeoutMs: 10_000,
      webhooks: {
        worker: true,
        allowPrivate: false,
        retryBaseMs: 30_000,
        retryMaxMs: 3_600_000,
        retryWindowMs: 86_400_000,
        timeoutMs: 10_000,
        pollIntervalMs: 1000,
        batchSize: 50,
      },
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://user:pw@db:5432/keymint',
      DATA_DIR: '/var/lib/keymint',
      PGLITE_FSYNC: 'false',
      ADMIN_TOKEN: 'admin-token-0123456789',
      SECRET_KEY: 'secret-key-0123456789',
      REDIS_URL: 'rediss://cache:6380/2',
      REDIS_KEY_PREFIX: 'prod:keymint:',
      RATE_LIMIT_PER_MINUTE: '120',
      TRUST_PROXY: 'true',
      LOG_LEVEL: 'warn',
      METRICS_TOKEN: 'metrics-token-0123456789',
      CORS_ORIGINS: 'https://app.example.com',
      BODY_LIMIT: '2048',
      DB_POOL_SIZE: '25',
      TOKEN_CACHE_TTL_MS: '0',
      REQUEST_TIMEOUT_MS: '5000',
      MAX_CONCURRENT_REQUESTS: '0',
      MAX_EVENT_LOOP_DELAY_MS: '250',
      SHUTDOWN_TIMEOUT_MS: '30000',
      WEBHOOKS_WORKER: '0',
      WEBHOOKS_ALLOW_PRIVATE: '1',
      WEBHOOKS_RETRY_BASE_MS: '500',
      WEBHOOKS_TIMEOUT_MS: '2500',
    });
    expect(config).toEqual({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://user:pw@db:5432/keymint',
      dataDir: '/var/lib/keymint',
      pgliteFsync: false,
      adminToken: 'admin-token-0123456789',
      secretKey: 'secret-key-0123456789',
      redisUrl: 'rediss://cache:6380/2',
      redisKeyPrefix: 'prod:keymint:',
      rateLimitPerMinute: 120,
      trustProxy: true,
      logLevel: 'warn',
      metricsToken: 'metrics-token-0123456789',
      corsOrigins: ['https://app.example.com'],
      bodyLimit: 2048,
      dbPoolSize: 25,
      tokenCacheTtlMs: 0,
      requestTimeoutMs: 5000,
      maxConcurrentRequests: 0,
      maxEventLoopDelayMs: 250,
      shutdownTimeoutMs: 30_000,
      webhooks: {
        worker: false,
        allowPrivate: true,
        retryBaseMs: 500,
        retryMaxMs: 3_600_000,
        retryWindowMs: 86_400_000,
        timeoutMs: 2500,
        pollIntervalMs: 1000,
        batchSize: 50,
      },
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', ADMIN_TOKEN: '', REDIS_URL: '', LOG_LEVEL: '' })).toMatchObject({
      port: 3000,
      adminToken: undefined,
      redisUrl: undefined,
      logLevel: 'info',
    });
  });

  it('accepts TRUST_PROXY as a switch or a list of proxy addresses', () => {
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '0' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8,loopback' }).trustProxy).toBe(
      '10.0.0.0/8,127.0.0.1,::1,fd00::/8,loopback',
    );
  });

  it('accepts CORS_ORIGINS as * or a list of exact origins', () => {
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toEqual(['*']);
    expect(
      loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173,https://app.example.com' })
        .corsOrigins,
    ).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/' })).toThrow(
      'Invalid environment variable CORS_ORIGINS: must be * or a comma-separated list of origins, each ' +
        'scheme://host[:port] in lower case without a path (e.g. https://app.example.com,http://localhost:5173) ' +
        '(got "https://app.example.com/")',
    );
  });

  it('has an invalid case for every variable that is not free-form', () => {
    expect([...Object.keys(INVALID), ...FREE_FORM].sort()).toEqual(Object.keys(EnvSchema.properties).sort());
  });

  for (const [name, values] of Object.entries(INVALID)) {
    for (const value of values) {
      it(`rejects ${name}=${JSON.stringify(value)} naming the variable`, () => {
        let error: unknown;
        try {
          loadConfig({ [name]: value });
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(ConfigError);
        const message = (error as Error).message;
        expect(message).toMatch(new RegExp(`^Invalid environment variable ${name}: `));
        if (SECRETS.includes(name)) expect(message).not.toContain(value);
        else expect(message).toContain(JSON.stringify(value));
      });
    }
  }
});

describe('start-up', () => {
  it('stops with the variable named and exit code 1 when a value is wrong', () => {
    const result = spawnSync(process.execPath, [BIN, 'serve'], {
      env: { ...process.env, DATABASE_URL: '', PORT: '3000', RATE_LIMIT_PER_MINUTE: 'lots' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      'keymint-server: Invalid environment variable RATE_LIMIT_PER_MINUTE: must be an integer from 1 to 10000000 (got "lots")\n',
    );
  });
});
