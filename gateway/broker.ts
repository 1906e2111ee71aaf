// The embedded MQTT broker (aedes) for `mqtt.url: embedded` and the demo:
// in-process, memory only, reachable from this host only.
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from './types.js';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** how many ports after the requested one are tried when tryNext is set */
const MAX_TRIES = 20;

export async function startEmbeddedBroker(opts: { host?: string; port?: number; tryNext?: boolean; log?: Logger } = {}): Promise<EmbeddedBroker> {
  const host = opts.host ?? '127.0.0.1';
  const first = opts.port ?? 1883;
  const last = opts.tryNext ? Math.min(first + MAX_TRIES, 65535) : first;
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  broker.on('clientError', (client, err) => opts.log?.debug({ client: client.id, err: err.message }, 'embedded broker: client error'));

  let port = first;
  for (;;) {
    try {
      await listen(server, port, host);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || port >= last) {
        await new Promise<void>((r) => broker.close(() => r()));
        throw new Error(`embedded broker: cannot listen on ${host}:${port}: ${(err as Error).message}`);
      }
      opts.log?.info({ port }, 'embedded broker: port busy, trying the next one');
      port++;
    }
  }
  const addr = server.address();
  if (typeof addr === 'object' && addr) port = addr.port;
  const url = `mqtt://${host}:${port}`;
  opts.log?.info({ url }, 'embedded broker listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await withTimeout(new Promise<void>((r) => broker.close(() => r())), 2000);
      // clients that never finished CONNECT are not known to aedes: end them here
      for (const s of sockets) s.destroy();
      await withTimeout(new Promise<void>((r) => server.close(() => r())), 2000);
    })();
    return closing;
  };
  return { url, port, close };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => { server.off('listening', onListening); reject(err); };
    const onListening = () => { server.off('error', onError); resolve(); };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => { timer = setTimeout(r, ms); })]).finally(() => clearTimeout(timer));
}
