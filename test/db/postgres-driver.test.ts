import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { usingPostgres } from '../helpers/app.js';

/**
 * patches/postgres+3.4.9.patch, the part for porsager/postgres#1189 (#823): a BEGIN that fills a
 * connection's pipeline used to be sent without reserving its connection, so sql.begin() failed
 * with UNSAFE_TRANSACTION and, worse, other requests' queries ran inside that open transaction.
 * Under load the default pipeline (100) fills too; a pipeline of 1 makes every BEGIN fill it.
 */
describe.skipIf(!usingPostgres)('postgres.js (patched): transactions under a full pipeline', () => {
  it('sql.begin reserves its connection when its BEGIN fills the pipeline; other queries stay outside', async () => {
    // max_pipeline is a postgres.js option its types leave out.
    const sql = postgres(process.env.DATABASE_URL!, { max: 2, onnotice: () => {}, ...({ max_pipeline: 1 } as object) });
    try {
      const outside = () => sql`select pg_current_xact_id_if_assigned() as xact`;
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          i % 2
            ? sql.begin(async (tx) => {
                const [row] = await tx`select txid_current() as xact`;
                await tx`select pg_sleep(0.01)`;
                return row!.xact;
              })
            : outside().then(([row]) => row),
        ),
      );
      for (const [i, result] of results.entries()) {
        // A transaction got an id; a plain query ran outside every transaction (none assigned).
        if (i % 2) expect(result).toBeTruthy();
        else expect(result).toEqual({ xact: null });
      }
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
