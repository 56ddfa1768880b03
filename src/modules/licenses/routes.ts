import type { FastifyInstance } from 'fastify';
import { route } from '../../http/operation.js';
import { registerLicensingMetrics } from './metrics.js';
import { licenseOperations } from './operations.js';
import { v1Routes } from './v1.js';

/** License-key endpoints at their v2 and legacy (v1) paths; both share every service call. */
export async function licenseRoutes(app: FastifyInstance) {
  registerLicensingMetrics(app.metricsRegistry);
  const operations = licenseOperations(app);
  for (const operation of Object.values(operations)) app.route(route(operation));
  v1Routes(app, operations);
}
