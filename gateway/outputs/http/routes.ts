// The HTTP server's routes. Read-only: GET and HEAD only. With credentials
// configured every path asks for them (Prometheus sends basic auth from its
// scrape config). Nothing here logs a request, its headers or its password.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayContext } from '../output.js';
import type { BasicAuth } from './auth.js';
import type { EventStream } from './events.js';
import type { TagHistory } from './history.js';
import type { GatewayMetrics } from './metrics.js';
import type { StatusBuilder } from './status.js';

export interface PageFile {
  type: string;
  body: Buffer;
}

export interface RouteDeps {
  ctx: GatewayContext;
  auth: BasicAuth | undefined;
  metrics: GatewayMetrics;
  status: StatusBuilder;
  history: TagHistory;
  events: EventStream;
  /** path → the page's static files */
  page: ReadonlyMap<string, PageFile>;
}

const SECURITY = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY, 'Content-Type': type, 'Cache-Control': 'no-store', ...extra }).end(body);
}

const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
const text = (res: ServerResponse, status: number, body: string, extra?: Record<string, string>) => send(res, status, 'text/plain; charset=utf-8', body, extra);

export function handler(deps: RouteDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(deps, req, res).catch((err: unknown) => {
      if (!res.headersSent) text(res, 500, `internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  };
}

async function route(deps: RouteDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (deps.auth && !deps.auth.check(req.headers.authorization)) {
    text(res, 401, 'authentication required\n', { 'WWW-Authenticate': 'Basic realm="edgegate", charset="UTF-8"' });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    text(res, 405, 'read-only: GET and HEAD only\n', { Allow: 'GET, HEAD' });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  switch (url.pathname) {
    case '/metrics':
      send(res, 200, deps.metrics.contentType, await deps.metrics.metrics());
      return;
    case '/healthz': {
      const h = deps.ctx.health();
      text(res, h.ok ? 200 : 503, h.ok ? 'ok\n' : `unhealthy: ${h.reason ?? 'unknown'}\n`);
      return;
    }
    case '/api/status':
      json(res, 200, deps.status.build('full'));
      return;
    case '/api/history': {
      const id = url.searchParams.get('device') ?? '';
      if (!deps.ctx.device(id)) {
        json(res, 404, { error: `unknown device "${id}"` });
        return;
      }
      const now = deps.ctx.clock.now();
      json(res, 200, { device: id, now, step_ms: deps.history.stepMs, points: deps.history.points, tags: deps.history.series(id, now) });
      return;
    }
    case '/api/events':
      // HEAD asks whether the stream is there, and would otherwise hold a client's place
      if (req.method === 'HEAD') send(res, 200, 'text/event-stream', '');
      else deps.events.add(req, res, JSON.stringify(deps.status.build('full')));
      return;
  }
  const file = deps.page.get(url.pathname === '/' ? '/index.html' : url.pathname);
  if (file) send(res, 200, file.type, file.body, { 'Cache-Control': 'no-cache' });
  else text(res, 404, 'not found\n');
}
