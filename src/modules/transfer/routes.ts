import { Readable } from 'node:stream';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { ErrorResponses, ProductIdSchema } from '../../http/schemas.js';
import { Errors } from '../../lib/errors.js';
import { resolveAccountId } from '../admin/accounts.js';
import { AccountIdInput } from '../admin/schemas.js';
import { checkProduct } from './command.js';
import { type ExportCounts, exportRecords } from './export.js';
import { type ImportFormat, ON_CONFLICT } from './format.js';
import { importRecords } from './import.js';

/** The media type of each import format (Keygen's is JSON:API's). */
const MEDIA_TYPES: Record<string, ImportFormat> = {
  'application/x-ndjson': 'jsonl',
  'application/jsonl': 'jsonl',
  'text/csv': 'csv',
  'application/vnd.api+json': 'keygen',
};
const IMPORT_MEDIA_TYPES = 'application/x-ndjson, text/csv or application/vnd.api+json';

const ImportQuerySchema = Type.Object({
  accountId: Type.Optional(AccountIdInput),
  productId: Type.Optional(ProductIdSchema),
  onConflict: Type.Optional(Type.Union(ON_CONFLICT.map((value) => Type.Literal(value)))),
  dryRun: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
});

const ExportQuerySchema = Type.Object({
  accountId: Type.Optional(AccountIdInput),
  productId: Type.Optional(ProductIdSchema),
  format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('csv')])),
});

const Counts = Type.Object({ created: Type.Integer(), updated: Type.Integer(), skipped: Type.Integer() });
const LineMessages = Type.Array(Type.Object({ line: Type.Integer(), message: Type.String() }));

const ImportSummarySchema = Type.Object({
  accountId: Type.String(),
  format: Type.String(),
  dryRun: Type.Boolean(),
  onConflict: Type.String(),
  records: Type.Integer(),
  customers: Counts,
  keys: Counts,
  devices: Counts,
  failed: Type.Integer(),
  errors: LineMessages,
  warnings: LineMessages,
  stopped: Type.Boolean(),
  durationMs: Type.Integer(),
  recordsPerSecond: Type.Integer(),
});

/**
 * `POST /admin/import` and `GET /admin/export` (README, "Migrating to keymint-server"), in the
 * admin context: the same code as `keymint-server import` and `export`, streamed both ways.
 */
export async function transferAdminRoutes(app: FastifyInstance) {
  const records = new Counter({
    name: 'keymint_transfer_records_total',
    help: 'Records imported (by outcome: created, updated, skipped, failed) and exported, by type',
    labelNames: ['operation', 'type', 'outcome'] as const,
    registers: [app.metricsRegistry],
  });
  for (const type of ['customer', 'key', 'device']) {
    for (const outcome of ['created', 'updated', 'skipped']) records.inc({ operation: 'import', type, outcome }, 0);
    records.inc({ operation: 'export', type, outcome: 'exported' }, 0);
  }
  records.inc({ operation: 'import', type: 'any', outcome: 'failed' }, 0);

  // The body is the import's stream, read as it is parsed: no body limit, nothing buffered.
  for (const mediaType of Object.keys(MEDIA_TYPES)) {
    app.addContentTypeParser(mediaType, (_request, payload, done) => done(null, payload));
  }

  app.post<{ Querystring: Static<typeof ImportQuerySchema> }>(
    '/import',
    {
      config: { untimed: true },
      schema: {
        tags: ['Admin'],
        summary: 'Import keys, customers and devices',
        description:
          'The body is the file, streamed: `application/x-ndjson` (the export format), `text/csv` or ' +
          '`application/vnd.api+json` (a Keygen export). Lines that fail are listed in the summary with their ' +
          'numbers; nothing else stops the run unless onConflict=fail.',
        querystring: ImportQuerySchema,
        response: { 200: ImportSummarySchema, ...ErrorResponses },
      },
    },
    async (request) => {
      const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const format = MEDIA_TYPES[mediaType];
      if (!format || !(request.body instanceof Readable)) throw Errors.unsupportedMediaType(IMPORT_MEDIA_TYPES);
      const query = request.query;
      const accountId = await resolveAccountId(app.database.db, query.accountId);
      await checkProduct(app.database.db, accountId, query.productId);
      const summary = await importRecords(app.database.db, request.body, {
        accountId,
        productId: query.productId,
        format,
        onConflict: query.onConflict ?? 'skip',
        dryRun: query.dryRun === 'true',
      });
      if (!summary.dryRun) {
        for (const [type, counts] of [
          ['customer', summary.customers],
          ['key', summary.keys],
          ['device', summary.devices],
        ] as const) {
          for (const outcome of ['created', 'updated', 'skipped'] as const) {
            records.inc({ operation: 'import', type, outcome }, counts[outcome]);
          }
        }
        records.inc({ operation: 'import', type: 'any', outcome: 'failed' }, summary.failed);
      }
      request.log.info({ records: summary.records, failed: summary.failed, ms: summary.durationMs }, 'import done');
      return { accountId, ...summary };
    },
  );

  app.get<{ Querystring: Static<typeof ExportQuerySchema> }>(
    '/export',
    {
      config: { untimed: true },
      schema: {
        tags: ['Admin'],
        summary: 'Export keys, customers and devices',
        description:
          'Streamed: JSON Lines (the export format, version 1) or CSV (a row a key with its customer). No secret ' +
          'is exported.',
        querystring: ExportQuerySchema,
        response: {
          200: {
            description: 'The export',
            content: {
              'application/x-ndjson': { schema: Type.String() },
              'text/csv': { schema: Type.String() },
            },
          },
          ...ErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const query = request.query;
      const accountId = await resolveAccountId(app.database.db, query.accountId);
      await checkProduct(app.database.db, accountId, query.productId);
      const format = query.format ?? 'jsonl';
      const counts: ExportCounts = { customers: 0, keys: 0, devices: 0 };
      // A page of text at a time (Readable.from buffers 16 by default): the socket drains one page
      // while the next is read from the database.
      const stream = Readable.from(
        exportRecords(app.database.db, { accountId, productId: query.productId, format }, counts),
        { highWaterMark: 1 },
      );
      stream.on('end', () => {
        records.inc({ operation: 'export', type: 'customer', outcome: 'exported' }, counts.customers);
        records.inc({ operation: 'export', type: 'key', outcome: 'exported' }, counts.keys);
        records.inc({ operation: 'export', type: 'device', outcome: 'exported' }, counts.devices);
      });
      const extension = format === 'csv' ? 'csv' : 'jsonl';
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="keymint-export.${extension}"`)
        .header('cache-control', 'no-store')
        .send(stream);
    },
  );
}
