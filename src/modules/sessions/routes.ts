import type { FastifyInstance } from 'fastify';
import { route } from '../../http/operation.js';
import { registerSessionMetrics } from './metrics.js';
import { sessionOperations } from './operations.js';
import { startSessionSweep } from './sweep.js';

/** Floating-license endpoints, and the sweep that deletes old dead sessions. */
export async function sessionRoutes(app: FastifyInstance) {
  registerSessionMetrics(app.metricsRegistry);
  for (const operation of Object.values(sessionOperations(app))) app.route(route(operation));
  startSessionSweep(app);
}
