// The status page, /metrics, /api/status and /healthz (SPEC §4c): an output
// beside the JSON topics. It keeps a fixed window of each tag's values for
// the charts (history.ts) and reads everything else from the core when asked.
import { readFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Reading } from '../../types.js';
import type { GatewayContext, Output, ReloadChanges } from '../output.js';
import { BasicAuth } from './auth.js';
import { EventStream, type EventStreamOptions } from './events.js';
import { TagHistory, type HistoryOptions } from './history.js';
import { GatewayMetrics } from './metrics.js';
import { handler, type PageFile } from './routes.js';
import { StatusBuilder } from './status.js';

export interface HttpOutputOptions extends EventStreamOptions {
  /** host:port; an empty host listens on every interface */
  listen: string;
  username?: string;
  password?: string;
  history?: HistoryOptions;
  /** ms between two live events (and rate samples), default 1000 */
  tickMs?: number;
}

const PAGE_FILES: Array<[string, string]> = [
  ['index.html', 'text/html; charset=utf-8'],
  ['app.js', 'text/javascript; charset=utf-8'],
  ['style.css', 'text/css; charset=utf-8'],
];

/** the page's files: copied next to this module by the build; a bare `tsc` leaves them in the source tree */
function loadPage(): Map<string, PageFile> {
  const dirs = [new URL('./page/', import.meta.url), new URL('../../../../gateway/outputs/http/page/', import.meta.url)].map((u) => fileURLToPath(u));
  const dir = dirs.find((d) => existsSync(`${d}index.html`));
  if (!dir) throw new Error(`the status page's files are missing (looked in ${dirs.join(' and ')})`);
  return new Map(PAGE_FILES.map(([name, type]) => [`/${name}`, { type, body: readFileSync(`${dir}${name}`) }]));
}

/** "127.0.0.1:8080", "[::1]:8080", ":8080" (every interface) */
export function parseListen(listen: string): { host: string | undefined; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host: host === '' ? undefined : host, port: Number(listen.slice(colon + 1)) };
}

export class HttpOutput implements Output {
  readonly name = 'http';
  readonly history: TagHistory;
  private readonly events: EventStream;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: HttpOutputOptions) {
    this.history = new TagHistory(opts.history);
    this.events = new EventStream(opts);
  }

  /** where it listens, once started: http://host:port */
  get url(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /** live clients dropped for falling behind */
  get droppedClients(): number {
    return this.events.dropped;
  }

  async start(ctx: GatewayContext): Promise<void> {
    const { opts } = this;
    const auth = opts.username !== undefined && opts.password !== undefined ? new BasicAuth(opts.username, opts.password) : undefined;
    const status = new StatusBuilder(ctx, { stepMs: this.history.stepMs, points: this.history.points });
    const server = createServer(handler({ ctx, auth, metrics: new GatewayMetrics(ctx), status, history: this.history, events: this.events, page: loadPage() }));
    const { host, port } = parseListen(opts.listen);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // a failed socket after listening is the client's problem, not the gateway's
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    status.sample();
    this.timer = setInterval(() => {
      status.sample();
      if (this.events.size > 0) this.events.broadcast(JSON.stringify(status.build('delta')));
    }, opts.tickMs ?? 1000);
    this.timer.unref();
    ctx.log.info({ url: `${this.url}/`, auth: auth !== undefined }, 'status page and metrics listening');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.events.closeAll();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  reading(device: string, r: Reading): void {
    this.history.record(device, r.tag, r.value, r.ts);
  }

  reload(changes: ReloadChanges): void {
    for (const id of changes.removed) this.history.forget(id);
  }
}
