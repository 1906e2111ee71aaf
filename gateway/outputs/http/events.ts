// The page's live stream (Server-Sent Events). Each tick's event is
// serialised once and written to every client. A client that cannot keep up
// (a phone asleep, a stuck tab) is dropped once the bytes waiting for it pass
// a bound, so no browser can make the gateway's memory grow; the browser's
// EventSource reconnects by itself when it wakes up.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface EventStreamOptions {
  /** clients at once; more get 503 (default 16) */
  maxClients?: number;
  /** bytes waiting to be sent to one client before it is dropped (default 4 MiB) */
  maxBufferedBytes?: number;
}

export class EventStream {
  private readonly clients = new Set<ServerResponse>();
  readonly maxClients: number;
  readonly maxBufferedBytes: number;
  /** clients dropped for falling behind, since start */
  dropped = 0;

  constructor(opts: EventStreamOptions = {}) {
    this.maxClients = opts.maxClients ?? 16;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  }

  get size(): number {
    return this.clients.size;
  }

  /** a new client gets the whole status first; false (503 sent) when there are too many */
  add(req: IncomingMessage, res: ServerResponse, first: string): boolean {
    if (this.clients.size >= this.maxClients) {
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '10' }).end('too many live clients\n');
      return false;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    // the browser waits this long before reconnecting
    res.write('retry: 3000\n\n');
    this.clients.add(res);
    req.socket.setNoDelay(true);
    res.on('close', () => this.clients.delete(res));
    this.send(res, frame(first));
    return true;
  }

  broadcast(data: string): void {
    const f = frame(data);
    for (const res of this.clients) this.send(res, f);
  }

  closeAll(): void {
    for (const res of this.clients) res.destroy();
    this.clients.clear();
  }

  private send(res: ServerResponse, f: string): void {
    if (res.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(f);
  }
}

/** JSON has no raw newlines, so one data line holds it */
const frame = (json: string) => `event: status\ndata: ${json}\n\n`;
