import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ErrorSchema } from '../../http/schemas.js';

const StatusSchema = Type.Object({ code: Type.Literal(0), status: Type.String() });

// A database that does not answer a ping in this time is not ready (bounded below the request timeout).
const PING_TIMEOUT_MS = 2000;

/** Resolves when the database answers `select 1`; rejects after `timeoutMs` otherwise. */
async function pingWithin(ping: () => Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ping(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness and readiness probes: no authentication. */
export async function healthRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/healthz',
    {
      config: { alwaysAdmit: true },
      schema: { tags: ['Operations'], summary: 'Process is up', response: { 200: StatusSchema } },
    },
    async () => ({ code: 0 as const, status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: { alwaysAdmit: true },
      schema: {
        tags: ['Operations'],
        summary: 'Database is reachable',
        response: { 200: StatusSchema, 503: ErrorSchema },
      },
    },
    async (request, reply) => {
      try {
        await pingWithin(() => app.database.ping(), Math.min(PING_TIMEOUT_MS, app.config.requestTimeoutMs / 2));
        return { code: 0 as const, status: 'ready' };
      } catch (err) {
        request.log.warn({ err }, 'readiness check failed');
        return reply.status(503).send({ message: 'Database unavailable', code: 1 });
      }
    },
  );
}
