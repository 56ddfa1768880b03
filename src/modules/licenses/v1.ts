import type { FastifyInstance } from 'fastify';
import { v1Route } from '../../http/v1.js';
import type { LicenseOperations } from './operations.js';

/** The legacy (v1) paths of the license-key operations, as the older SDKs call them. */
export function v1Routes(app: FastifyInstance, operations: LicenseOperations) {
  app.route(v1Route(operations.createKeys, '/create-key'));
  app.route(v1Route(operations.getKey, '/get-key'));
  app.route(v1Route(operations.activate, '/activate-key'));
  app.route(v1Route(operations.deactivate, '/deactivate-key'));
  app.route(v1Route(operations.block, '/block-key'));
  app.route(v1Route(operations.unblock, '/unblock-key'));
}
