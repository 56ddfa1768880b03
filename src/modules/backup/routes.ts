import type { PGlite } from '@electric-sql/pglite';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ErrorResponses } from '../../http/schemas.js';
import { Errors } from '../../lib/errors.js';

/** `GET /admin/backup` (docs/api.md, "Admin API"), registered in the admin context (under /admin). */
export async function backupAdminRoutes(app: FastifyInstance) {
  app.get(
    '/backup',
    {
      schema: {
        tags: ['Admin'],
        summary: 'Back up the embedded database while the server runs',
        description:
          'A consistent snapshot of the embedded (PGlite) database as a keymint-server backup file, for ' +
          '`keymint-server restore FILE`. Requests wait while it is taken. On PostgreSQL: 409/1, use pg_dump.',
        response: {
          200: {
            description: 'The backup file',
            content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } },
          },
          ...ErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const { client } = app.database as { client?: PGlite };
      if (app.database.kind !== 'pglite' || !client) throw Errors.backupNeedsPgDump();
      const started = Date.now();
      // Loaded on use: a server on PostgreSQL never loads PGlite.
      const { backupPglite } = await import('./embedded.js');
      const file = await backupPglite(client);
      request.log.info({ bytes: file.length, ms: Date.now() - started }, 'backup made');
      const name = `keymint-${new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}.backup`;
      return reply
        .type('application/octet-stream')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('cache-control', 'no-store')
        .send(file);
    },
  );
}
