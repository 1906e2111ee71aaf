// The edge node's own metrics (the gateway's): in NBIRTH with aliases, and
// as NDATA at stats_interval when one changed.
import type { GatewayContext } from '../output.js';
import type { Aliases } from './births.js';
import type { DataType, UMetric } from './payload.js';

interface NodeMetric {
  name: string;
  type: DataType;
  alias: number;
  read(): number | boolean | string;
  last?: number | boolean | string;
}

export class NodeMetrics {
  readonly #metrics: NodeMetric[];
  readonly #ctx: GatewayContext;
  #timer: NodeJS.Timeout | undefined;
  #readingsOut = 0;
  #at: number;
  #rate = 0;

  constructor(ctx: GatewayContext, aliases: Aliases, sparkplugBuffered: () => number, counters: { refused_commands: number }) {
    this.#ctx = ctx;
    this.#at = ctx.clock.monotonic();
    this.#readingsOut = this.#total();
    const m = (name: string, type: DataType, read: () => number | boolean | string): NodeMetric => ({ name, type, read, alias: aliases.take() });
    this.#metrics = [
      m('Properties/Version', 'String', () => ctx.version),
      m('Gateway/Readings per second', 'Double', () => this.#rate),
      m('Gateway/Broker connected', 'Boolean', () => ctx.broker().connected),
      m('Gateway/Buffered batches', 'Int64', () => ctx.broker().queued_batches),
      m('Sparkplug/Buffered batches', 'Int64', sparkplugBuffered),
      m('Sparkplug/Refused commands', 'Int64', () => counters.refused_commands),
    ];
  }

  startTimer(intervalMs: number, tick: () => void): void {
    this.#timer = setInterval(() => { this.#sample(); tick(); }, intervalMs);
    this.#timer.unref();
  }

  stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  birth(now: number): UMetric[] {
    return this.#metrics.map((x) => {
      x.last = x.read();
      return { name: x.name, alias: x.alias, type: x.type, value: x.last, timestamp: now };
    });
  }

  changed(now: number): UMetric[] {
    const out: UMetric[] = [];
    for (const x of this.#metrics) {
      const v = x.read();
      if (v === x.last) continue;
      x.last = v;
      out.push({ alias: x.alias, type: x.type, value: v, timestamp: now });
    }
    return out;
  }

  #total(): number {
    let n = 0;
    for (const d of this.#ctx.devices()) n += d.counters.readings_out;
    return n;
  }

  #sample(): void {
    const t = this.#ctx.clock.monotonic();
    const total = this.#total();
    if (t > this.#at) this.#rate = Math.round(((total - this.#readingsOut) * 1000) / (t - this.#at) * 10) / 10;
    this.#readingsOut = total;
    this.#at = t;
  }
}
