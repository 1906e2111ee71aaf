// The counting subscriber of the OPC UA benchmarks. The simulated server sets
// every counter v<i> to the tick number k, every tick, so a reading
// (v<i>, k) says exactly which change it carries. Within one variable the
// changes arrive in order; a window [k0, k1] of ticks is counted per variable
// with two numbers, whatever the number of variables.
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
  private readonly inWindow: Int32Array;
  private lat = new Float64Array(1 << 16);
  private nLat = 0;

  private constructor(private readonly client: MqttClient, private readonly layout: OpcuaLayout, variables: number) {
    this.last = new Int32Array(variables).fill(-1);
    this.inWindow = new Int32Array(variables);
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

  /** counts ticks k0..k1 (inclusive) from now on */
  window(k0: number, k1: number): void {
    this.k0 = k0;
    this.k1 = k1;
  }

  /** changes of the window that arrived */
  delivered(): number {
    let n = 0;
    for (let i = 0; i < this.inWindow.length; i++) n += this.inWindow[i] as number;
    return n;
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
    if (k <= (this.last[i] as number)) return;
    this.last[i] = k;
    if (k < this.k0 || k > this.k1) return;
    this.inWindow[i] = (this.inWindow[i] as number) + 1;
    if (this.nLat === this.lat.length) {
      const grown = new Float64Array(this.lat.length * 2);
      grown.set(this.lat);
      this.lat = grown;
    }
    this.lat[this.nLat++] = now - ts;
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
