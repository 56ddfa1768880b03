import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ErrorSchema } from '../../http/schemas.js';

const StatusSchema = Type.Object({ code: Type.Literal(0), status: Type.String() });

/** Liveness and readiness probes: no authentication. */
export async function healthRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/healthz',
    { schema: { tags: ['Operations'], summary: 'Process is up', response: { 200: StatusSchema } } },
    async () => ({ code: 0 as const, status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Database is reachable',
        response: { 200: StatusSchema, 503: ErrorSchema },
      },
    },
    async (request, reply) => {
      try {
        await app.database.ping();
        return { code: 0 as const, status: 'ready' };
      } catch (err) {
        request.log.warn({ err }, 'readiness check failed');
        return reply.status(503).send({ message: 'Database unavailable', code: 1 });
      }
    },
  );
}
