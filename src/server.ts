import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { staleLockMessage } from './db/data-dir-lock.js';
import { openDatabase } from './db/open.js';

/** Starts the HTTP server and shuts it down gracefully on SIGTERM / SIGINT. */
export async function serve(config: Config): Promise<void> {
  const database = await openDatabase(config);
  const app = await buildApp({ config, database });
  const stale = database.lockTakenOverFrom;
  if (stale) {
    app.log.warn({ dataDir: config.dataDir, stalePid: stale.pid, reason: stale.reason }, staleLockMessage(stale));
  }
  // Stops accepting connections, lets in-flight requests finish, stops the background jobs
  // (onClose hooks: the webhook worker releases its claims), then closes the database. Not an
  // onClose hook itself: Fastify runs those last-added first, before the modules' own.
  const close = async () => {
    try {
      await app.close();
    } finally {
      await database.close();
    }
  };

  closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await close();
  });

  try {
    // Runs the onReady hooks: a start-up check that fails (e.g. SECRET_KEY does not open the
    // stored signing keys) stops start-up with its message, the database closed.
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  app.log.info(
    { database: database.kind === 'postgres' ? 'postgresql' : `pglite (${config.dataDir})` },
    'keymint-server ready',
  );
}
