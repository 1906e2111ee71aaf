// Fixtures for the publisher tests: config, batches, a capturing logger, an
// order check by seq, and a TCP proxy that can cut connections abruptly and
// counts QoS 1 publishes not yet acknowledged on the wire.
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import type { ResolvedConfig } from '../../config/schema.js';
import type { Batch, Logger } from '../../gateway/types.js';

export function mqttConfig(url: string, over: Partial<ResolvedConfig['mqtt']> = {}): ResolvedConfig['mqtt'] & { url: string } {
  return {
    url, client_id: `edgegate-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, topic_prefix: 'gw',
    protocol_version: 4, qos: 1, retain_last_values: false, keepalive: 30_000, connect_timeout: 5000, max_inflight: 16, ...over,
  };
}

export function mkBatch(seq: number, device = 'd1', pad = 0): Batch {
  const ts = 1_764_250_000_000 + seq;
  const payload = JSON.stringify({ gateway: 'gw', device, seq, readings: [{ tag: 't', value: seq, ts, quality: 'good', pad: 'x'.repeat(pad) }] });
  return { device, seq, topic: `gw/devices/${device}/data`, payload, readings: 1, firstTs: ts };
}

export interface LogLine { level: string; obj: object | string; msg: string | undefined }

export function captureLog(echo = process.env.TEST_LOG === '1'): { log: Logger; lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object | string, msg?: string) => {
    lines.push({ level, obj, msg });
    if (echo) console.log(level, msg ?? '', JSON.stringify(obj));
  };
  const log: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), child: () => log };
  return { log, lines, text: () => JSON.stringify(lines) };
}

/** seqs in arrival order: duplicates, missing, and first arrivals out of order */
export function orderReport(seqs: number[], n: number): { missing: number; duplicates: number; outOfOrder: number } {
  const seen = new Set<number>();
  let last = 0, duplicates = 0, outOfOrder = 0;
  for (const s of seqs) {
    if (seen.has(s)) { duplicates++; continue; }
    seen.add(s);
    if (s !== last + 1) outOfOrder++;
    last = s;
  }
  let missing = 0;
  for (let s = 1; s <= n; s++) if (!seen.has(s)) missing++;
  return { missing, duplicates, outOfOrder };
}

export const seqOf = (payload: string): number => (JSON.parse(payload) as { seq: number }).seq;

/** true when every seq appears for the first time right after its predecessor (repeats are resends) */
export function firstSendsInOrder(seqs: readonly number[]): boolean {
  let next = 1;
  for (const s of seqs) {
    if (s === next) next++;
    else if (!(s < next)) return false;
  }
  return true;
}

/**
 * Sits between a client and the broker. `cut()` destroys the connections as a
 * network failure would (no DISCONNECT); `close()` also stops accepting.
 * Watches MQTT 3.1.1 frames of QoS 1 publishes on topics containing `watch`:
 * the peak not yet acknowledged (`maxOutstanding`), every seq sent in wire
 * order, resends included (`sent`), and the seqs the broker acknowledged.
 * With `dropDown`, the broker's frames pass one by one and those it matches
 * are not delivered (the client never sees them).
 */
export class MqttProxy {
  readonly #target: number;
  readonly #watch: string;
  readonly #dropDown: ((type: number, body: Buffer) => boolean) | undefined;
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  #outstanding = new Map<number, number>();
  maxOutstanding = 0;
  readonly sent: number[] = [];
  readonly acked = new Set<number>();
  port = 0;

  constructor(targetPort: number, watch = '/data', opts: { dropDown?: (type: number, body: Buffer) => boolean } = {}) {
    this.#target = targetPort;
    this.#watch = watch;
    this.#dropDown = opts.dropDown;
  }

  get url(): string { return `mqtt://127.0.0.1:${this.port}`; }

  async open(port = this.port): Promise<void> {
    const server = createServer((client) => {
      const broker = tcpConnect(this.#target, '127.0.0.1');
      for (const s of [client, broker]) {
        this.#sockets.add(s);
        s.on('error', () => { /* the other side is destroyed below */ });
        s.on('close', () => { this.#sockets.delete(s); client.destroy(); broker.destroy(); });
      }
      const up = frames((type, flags, body) => { if (type === 3) this.#publish(flags, body); });
      const drop = this.#dropDown;
      const down = frames((type, _flags, body, raw) => {
        if (type === 4) this.#puback(body.readUInt16BE(0));
        if (drop && !drop(type, body)) client.write(raw);
      });
      client.on('data', (d: Buffer) => { up(d); broker.write(d); });
      broker.on('data', (d: Buffer) => { down(d); if (!drop) client.write(d); });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : port;
    this.#server = server;
  }

  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.cut();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  #publish(flags: number, body: Buffer): void {
    const qos = (flags >> 1) & 3;
    const topicLen = body.readUInt16BE(0);
    const topic = body.toString('utf8', 2, 2 + topicLen);
    if (qos === 0 || !topic.includes(this.#watch)) return;
    const seq = Number(/"seq":(\d+)/.exec(body.toString('utf8', 4 + topicLen))?.[1] ?? NaN);
    this.sent.push(seq);
    this.#outstanding.set(body.readUInt16BE(2 + topicLen), seq);
    this.maxOutstanding = Math.max(this.maxOutstanding, this.#outstanding.size);
  }

  #puback(id: number): void {
    const seq = this.#outstanding.get(id);
    if (seq === undefined) return;
    this.#outstanding.delete(id);
    this.acked.add(seq);
  }
}

/** an incremental MQTT frame splitter: fixed header, remaining length, body */
function frames(onFrame: (type: number, flags: number, body: Buffer, raw: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    for (;;) {
      if (pending.length - at < 2) break;
      let len = 0, mult = 1, i = at + 1, complete = false;
      while (i < pending.length && i < at + 5) {
        const b = pending[i++] as number;
        len += (b & 127) * mult;
        mult *= 128;
        if ((b & 128) === 0) { complete = true; break; }
      }
      if (!complete || pending.length < i + len) break;
      const first = pending[at] as number;
      onFrame(first >> 4, first & 15, pending.subarray(i, i + len), pending.subarray(at, i + len));
      at = i + len;
    }
    pending = at === 0 ? pending : pending.subarray(at);
  };
}

/** cleanups run after each test of a suite, newest first, on success and failure */
export function cleanupsAfterEach(suite: { after: { each(fn: () => Promise<void>): void } }): Array<() => Promise<void> | void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  suite.after.each(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}
