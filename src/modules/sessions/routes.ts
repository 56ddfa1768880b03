import type { FastifyInstance } from 'fastify';
import { route } from '../../http/operation.js';
import { registerSessionMetrics } from './metrics.js';
import { sessionOperations } from './operations.js';

/** Floating-license endpoints. */
export async function sessionRoutes(app: FastifyInstance) {
  registerSessionMetrics(app.metricsRegistry);
  for (const operation of Object.values(sessionOperations(app))) app.route(route(operation));
}
