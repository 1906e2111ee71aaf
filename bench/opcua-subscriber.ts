// The counting subscriber of the OPC UA benchmarks. The simulated server sets
// every counter v<i> to the tick number k, every tick, so a reading
// (v<i>, k) says exactly which change it carries. Within one variable the
// changes arrive in order; each (variable, tick) of a window [k0, k1] is
// marked in a bitmap as it arrives: found, missing and duplicates are exact
// counts, not rates.
import { connect, type MqttClient } from 'mqtt';

export type OpcuaLayout =
  /** gateway batches on P/devices/<id>/data, stats on P/stats */
  | { kind: 'gateway'; prefix: string; device: string }
  /** one message per change on P/v<i>, payload {"value":k,"ts":…} */
  | { kind: 'naive'; prefix: string };

export interface GatewayStats { at: number; loop_p99_ms: number; readings_in: number; readings_out: number }

export class TickCounter {
  dataMessages = 0;
  readings = 0;
  /** the highest tick seen on any variable */
  maxTick = 0;
  lastAt = 0;
  readonly stats: GatewayStats[] = [];
  private k0 = Infinity;
  private k1 = Infinity;
  private readonly last: Int32Array;
  /** one byte per (variable, tick - k0): variable i's ticks at i * span … */
  private seen = new Uint8Array(0);
  private span = 0;
  /** (variable, tick) pairs of the window that arrived, and those that arrived again */
  found = 0;
  duplicates = 0;
  private lat = new Float64Array(1 << 16);
  private nLat = 0;

  private constructor(private readonly client: MqttClient, private readonly layout: OpcuaLayout, variables: number) {
    this.last = new Int32Array(variables).fill(-1);
  }

  static async connect(url: string, layout: OpcuaLayout, variables: number): Promise<TickCounter> {
    const client = connect(url, { clean: true, reconnectPeriod: 0, connectTimeout: 5000 });
    const c = new TickCounter(client, layout, variables);
    client.on('message', (topic, payload) => c.onMessage(topic, payload));
    const topics = layout.kind === 'gateway' ? [`${layout.prefix}/devices/${layout.device}/data`, `${layout.prefix}/stats`] : [`${layout.prefix}/#`];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber: no connection to ${url} within 5 s`)), 5000);
      client.once('error', (err) => { clearTimeout(timer); reject(err); });
      client.once('connect', () => client.subscribe(topics, { qos: 1 }, (err) => { clearTimeout(timer); if (err) reject(err); else resolve(); }));
    }).catch((err: unknown) => { client.end(true); throw err; });
    client.on('error', () => undefined);
    return c;
  }

  /** counts ticks k0..k1 (inclusive) from now on; a new k0 starts a new count */
  window(k0: number, k1: number): void {
    if (k0 !== this.k0) {
      this.span = 64;
      this.seen = new Uint8Array(this.last.length * this.span);
      this.found = 0;
      this.duplicates = 0;
    }
    this.k0 = k0;
    this.k1 = k1;
  }

  /** changes of the window that arrived (each once) */
  delivered(): number {
    return this.found;
  }

  /** the (variable, tick) pairs of the window that never arrived: how many, and the first few */
  missing(): { count: number; first: string[] } {
    const first: string[] = [];
    let count = 0;
    const ticks = Math.min(this.span, this.k1 - this.k0 + 1);
    if (!Number.isFinite(ticks) || ticks <= 0) return { count, first };
    for (let i = 0; i < this.last.length; i++) {
      for (let j = 0; j < ticks; j++) {
        if (this.seen[i * this.span + j]) continue;
        count++;
        if (first.length < 5) first.push(`v${i}@${this.k0 + j}`);
      }
    }
    // ticks beyond the bitmap's span were never seen at all
    count += this.last.length * Math.max(0, this.k1 - this.k0 + 1 - this.span);
    return { count, first };
  }

  /** variables that reported at least once */
  reporting(): number {
    let n = 0;
    for (let i = 0; i < this.last.length; i++) if ((this.last[i] as number) >= 0) n++;
    return n;
  }

  /** ms from the source timestamp to arrival, over the window's readings */
  latency(): { p50: number; p99: number } | undefined {
    if (this.nLat === 0) return undefined;
    const sorted = this.lat.slice(0, this.nLat).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
    return { p50: at(0.5), p99: at(0.99) };
  }

  private onMessage(topic: string, payload: Buffer): void {
    const now = Date.now();
    const l = this.layout;
    if (l.kind === 'gateway') {
      if (topic.endsWith('/stats')) return this.onStats(now, payload);
      const batch = JSON.parse(payload.toString('utf8')) as { readings: Array<{ tag: string; value: number; ts: number }> };
      this.dataMessages++;
      for (const r of batch.readings) this.count(r.tag, r.value, r.ts, now);
    } else {
      this.dataMessages++;
      const r = JSON.parse(payload.toString('utf8')) as { value: number; ts: number };
      this.count(topic.slice(topic.lastIndexOf('/') + 1), r.value, r.ts, now);
    }
    this.lastAt = now;
  }

  private count(tag: string, k: number, ts: number, now: number): void {
    this.readings++;
    const i = Number(tag.slice(1));
    if (!(i >= 0 && i < this.last.length) || typeof k !== 'number') return;
    if (k > this.maxTick) this.maxTick = k;
    if (k > (this.last[i] as number)) this.last[i] = k;
    if (k < this.k0 || k > this.k1) return;
    const j = k - this.k0;
    if (j >= this.span) this.grow(j);
    const at = i * this.span + j;
    if (this.seen[at]) {
      this.duplicates++;
      return;
    }
    this.seen[at] = 1;
    this.found++;
    if (this.nLat === this.lat.length) {
      const grown = new Float64Array(this.lat.length * 2);
      grown.set(this.lat);
      this.lat = grown;
    }
    this.lat[this.nLat++] = now - ts;
  }

  private grow(j: number): void {
    let span = this.span * 2;
    while (span <= j) span *= 2;
    const grown = new Uint8Array(this.last.length * span);
    for (let i = 0; i < this.last.length; i++) grown.set(this.seen.subarray(i * this.span, (i + 1) * this.span), i * span);
    this.seen = grown;
    this.span = span;
  }

  private onStats(now: number, payload: Buffer): void {
    const s = JSON.parse(payload.toString('utf8')) as { event_loop_delay_p99_ms: number; devices?: Record<string, { readings_in: number; readings_out: number }> };
    const d = this.layout.kind === 'gateway' ? s.devices?.[this.layout.device] : undefined;
    this.stats.push({ at: now, loop_p99_ms: s.event_loop_delay_p99_ms, readings_in: d?.readings_in ?? 0, readings_out: d?.readings_out ?? 0 });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.client.end(true); resolve(); }, 1000);
      this.client.end(false, {}, () => { clearTimeout(timer); resolve(); });
    });
  }
}
