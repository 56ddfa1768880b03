import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { openDatabase } from './db/open.js';

/** Starts the HTTP server and shuts it down gracefully on SIGTERM / SIGINT. */
export async function serve(config: Config): Promise<void> {
  const database = await openDatabase(config);
  const app = await buildApp({ config, database });
  app.addHook('onClose', async () => {
    await database.close();
  });

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    // Stops accepting connections, lets in-flight requests finish, then closes the database.
    await app.close();
  });

  await app.listen({ port: config.port, host: config.host });
  app.log.info(
    { database: database.kind === 'postgres' ? 'postgresql' : `pglite (${config.dataDir})` },
    'keymint-server ready',
  );
}
