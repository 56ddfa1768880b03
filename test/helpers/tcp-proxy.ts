import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a server (PostgreSQL), whose network the test can break:
 * - `stop()`: like the database stopping — every connection is cut and new ones are refused;
 * - `blackhole()`: like a network that stopped delivering — connections stay open (new ones are
 *   accepted) but no byte gets through, in either direction, until `restore()`;
 * - `restore()`: forwards again; bytes held back by a black hole are delivered then.
 */
export interface TcpProxy {
  readonly port: number;
  stop(): Promise<void>;
  blackhole(): void;
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let held = false;
  let server: Server | undefined;
  let port = 0;

  const pipe = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!held) from.resume();
    });
  };
  const onConnection = (client: Socket) => {
    const upstream = connect(target);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    pipe(client, upstream);
    pipe(upstream, client);
    if (held) {
      client.pause();
      upstream.pause();
    }
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = createServer(onConnection);
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        const address = next.address();
        if (address && typeof address === 'object') port = address.port;
        server = next;
        resolve();
      });
    });
  const unlisten = () =>
    new Promise<void>((resolve) => {
      const current = server;
      server = undefined;
      if (!current) return resolve();
      current.close(() => resolve());
    });
  const cutAll = () => {
    for (const pair of pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    pairs.clear();
  };

  await listen();
  return {
    get port() {
      return port;
    },
    async stop() {
      held = false;
      cutAll();
      await unlisten();
    },
    blackhole() {
      held = true;
      for (const pair of pairs) {
        pair.client.pause();
        pair.upstream.pause();
      }
    },
    async restore() {
      held = false;
      for (const pair of pairs) {
        pair.client.resume();
        pair.upstream.resume();
      }
      if (!server) await listen();
    },
    async close() {
      cutAll();
      await unlisten();
    },
  };
}
