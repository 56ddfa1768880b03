import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { Errors } from '../lib/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's Prometheus registry: modules register their own counters here. */
    metricsRegistry: Registry;
  }
}

export interface MetricsPluginOptions {
  /** When set, `GET /metrics` requires `Authorization: Bearer <token>`. */
  token: string | undefined;
}

// Requests that matched no route share one label, so scanners cannot blow up the series count.
const UNMATCHED_ROUTE = 'unmatched';

/**
 * Prometheus metrics at `GET /metrics`: HTTP requests per route pattern and status, latency,
 * database pool and the Node.js process, and what modules register. One registry per app instance.
 */
export const metricsPlugin = fp<MetricsPluginOptions>(
  async (app: FastifyInstance, options) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    app.decorate('metricsRegistry', registry);

    const labelNames = ['method', 'route', 'status_code'] as const;
    const requests = new Counter({
      name: 'keymint_http_requests_total',
      help: 'HTTP requests by method, route pattern and status code',
      labelNames,
      registers: [registry],
    });
    const duration = new Histogram({
      name: 'keymint_http_request_duration_seconds',
      help: 'HTTP request latency by method, route pattern and status code',
      labelNames,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });

    const database = app.database;
    new Gauge({
      name: 'keymint_db_pool_size',
      help: 'Database connections open now (PGlite: one embedded connection)',
      labelNames: ['driver'] as const,
      registers: [registry],
      collect() {
        this.set({ driver: database.kind }, database.poolStats().size);
      },
    });
    new Gauge({
      name: 'keymint_db_pool_max',
      help: 'Largest number of connections the database pool may open',
      labelNames: ['driver'] as const,
      registers: [registry],
      collect() {
        this.set({ driver: database.kind }, database.poolStats().max);
      },
    });

    // The series of each (method, route, status) are looked up once: prom-client would otherwise
    // build and hash a label set on every request, twice.
    const series = new Map<string, { count: { inc(): void }; latency: { observe(value: number): void } }>();
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      const id = `${request.method} ${reply.statusCode} ${route}`;
      let entry = series.get(id);
      if (entry === undefined) {
        const labels = { method: request.method, route, status_code: String(reply.statusCode) };
        entry = { count: requests.labels(labels), latency: duration.labels(labels) };
        series.set(id, entry);
      }
      entry.count.inc();
      entry.latency.observe(reply.elapsedTime / 1000);
    });

    const expected = options.token !== undefined;
    app.get(
      '/metrics',
      {
        config: { alwaysAdmit: true },
        schema: {
          tags: ['Operations'],
          summary: 'Prometheus metrics (text exposition format)',
          description: expected
            ? 'Requires `Authorization: Bearer <METRICS_TOKEN>`.'
            : 'Open: METRICS_TOKEN is not set.',
          security: expected ? [{ metricsToken: [] }] : [],
        },
      },
      async (request, reply) => {
        // callerOf compares the presented token with METRICS_TOKEN in constant time.
        if (expected && (await app.callerOf(request)).kind !== 'metrics') throw Errors.invalidToken();
        reply.type(registry.contentType);
        return registry.metrics();
      },
    );
  },
  { name: 'keymint-metrics' },
);
