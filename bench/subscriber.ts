// The counting subscriber of the serial benchmarks: which counter values `n`
// arrived, when the last one did, latency from each reading's ts to its
// arrival, messages per kind, and the gateway's stats along the way.
import { connect, type MqttClient } from 'mqtt';

export type Layout =
  /** gateway batches on P/devices/<id>/data, stats on P/stats; with sentTag, latency from that tag's value (the instrument's write time) */
  | { kind: 'gateway'; prefix: string; device: string; sentTag?: string }
  /** one message per reading on P/<tag> */
  | { kind: 'naive'; prefix: string };

export interface StatsSample {
  at: number; ts: number; loop_p99_ms: number; rss_bytes: number; dropped_batches: number; device: Record<string, number | string>;
  devices: Record<string, Record<string, number | string>>;
}

export class CountingSubscriber {
  /** messages carrying readings (batches, or single readings) */
  dataMessages = 0;
  readings = 0;
  /** distinct counter values received */
  unique = 0;
  duplicates = 0;
  firstAt = 0;
  lastAt = 0;
  readonly stats: StatsSample[] = [];
  /** with sentTag: each batch's seq, arrival, and per reading of sentTag its value (the write time) and ts (the read time) */
  readonly batches: Array<{ seq: number; at: number; sent: number[]; read: number[] }> = [];
  private seen = new Uint8Array(1 << 16);
  private lat = new Float64Array(1 << 16);
  private nLat = 0;

  private constructor(private readonly client: MqttClient, private readonly layout: Layout) {}

  static async connect(url: string, layout: Layout): Promise<CountingSubscriber> {
    // MQTT 5 with the largest receive maximum: a 3.1.1 subscriber gets at most
    // mosquitto's max_inflight_messages (20) unacknowledged at a time, and at
    // tens of thousands of messages/s that window, not the publisher, is the limit
    const client = connect(url, { clean: true, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, properties: { receiveMaximum: 65535 } });
    const sub = new CountingSubscriber(client, layout);
    client.on('message', (topic, payload) => sub.onMessage(topic, payload));
    const topics = layout.kind === 'gateway' ? [`${layout.prefix}/devices/${layout.device}/data`, `${layout.prefix}/stats`] : [`${layout.prefix}/#`];
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`subscriber: no connection to ${url} within 5 s`)), 5000);
        client.once('error', (err) => { clearTimeout(timer); reject(err); });
        client.once('connect', () => {
          client.subscribe(topics, { qos: 1 }, (err) => { clearTimeout(timer); if (err) reject(err); else resolve(); });
        });
      });
    } catch (err) {
      client.end(true);
      throw err;
    }
    client.on('error', () => undefined);
    return sub;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const now = Date.now();
    const l = this.layout;
    if (l.kind === 'gateway') {
      if (topic.endsWith('/stats')) return this.onStats(now, payload);
      const batch = JSON.parse(payload.toString('utf8')) as { seq: number; readings: Array<{ tag: string; value: unknown; ts: number }> };
      this.dataMessages++;
      this.readings += batch.readings.length;
      const sent = l.sentTag;
      if (sent === undefined) {
        for (const r of batch.readings) if (r.tag === 'n') this.count(r.value as number, now - r.ts);
      } else {
        const trace = { seq: batch.seq, at: now, sent: [] as number[], read: [] as number[] };
        for (const r of batch.readings) {
          if (r.tag === 'n') this.count(r.value as number, undefined);
          else if (r.tag === sent) {
            this.addLatency(now - (r.value as number));
            trace.sent.push(r.value as number);
            trace.read.push(r.ts);
          }
        }
        this.batches.push(trace);
      }
    } else {
      this.dataMessages++;
      this.readings++;
      if (topic.endsWith('/n')) {
        const r = JSON.parse(payload.toString('utf8')) as { value: number; ts: number };
        this.count(r.value, now - r.ts);
      }
    }
    if (this.firstAt === 0) this.firstAt = now;
    this.lastAt = now;
  }

  private onStats(now: number, payload: Buffer): void {
    const s = JSON.parse(payload.toString('utf8')) as {
      ts: number; rss_bytes: number; event_loop_delay_p99_ms: number;
      buffer?: { dropped_batches?: number }; devices?: Record<string, Record<string, number | string>>;
    };
    const device = this.layout.kind === 'gateway' ? s.devices?.[this.layout.device] ?? {} : {};
    this.stats.push({ at: now, ts: s.ts, loop_p99_ms: s.event_loop_delay_p99_ms, rss_bytes: s.rss_bytes, dropped_batches: s.buffer?.dropped_batches ?? 0, device, devices: s.devices ?? {} });
  }

  private count(n: number, latency: number | undefined): void {
    if (!Number.isInteger(n) || n < 0) return;
    while (n >= this.seen.length) {
      const grown = new Uint8Array(this.seen.length * 2);
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[n] === 1) {
      this.duplicates++;
      return;
    }
    this.seen[n] = 1;
    this.unique++;
    if (latency !== undefined) this.addLatency(latency);
  }

  private addLatency(latency: number): void {
    if (this.nLat === this.lat.length) {
      const grown = new Float64Array(this.lat.length * 2);
      grown.set(this.lat);
      this.lat = grown;
    }
    this.lat[this.nLat++] = latency;
  }

  /** counter values below `sent` that never arrived */
  missing(sent: number): number {
    let c = 0;
    for (let i = 0; i < sent; i++) if (this.seen[i] !== 1) c++;
    return c;
  }

  /** latency percentiles in ms, over the counter readings */
  latency(): { p50: number; p99: number } | undefined {
    if (this.nLat === 0) return undefined;
    const sorted = this.lat.slice(0, this.nLat).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
    return { p50: at(0.5), p99: at(0.99) };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.client.end(true); resolve(); }, 1000);
      this.client.end(false, {}, () => { clearTimeout(timer); resolve(); });
    });
  }
}
