// /metrics: Prometheus text format through prom-client, in a registry of our
// own (the process-wide default one belongs to whoever embeds us). Nothing is
// counted twice: every value is read from the core at scrape time, from one
// snapshot per scrape, so a scrape costs the same whatever the reading rate.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DeviceCounters } from '../../types.js';
import type { BrokerView, DeviceView, GatewayContext } from '../output.js';

interface Snapshot {
  devices: DeviceView[];
  broker: BrokerView;
  now: number;
}

/** per-device counters: metric name (without edgegate_ and _total), counter field, help */
const DEVICE_COUNTERS: Array<[string, keyof DeviceCounters, string]> = [
  ['readings_in', 'readings_in', 'readings the driver produced'],
  ['readings_out', 'readings_out', 'readings that left the filters (published or buffered)'],
  ['readings_filtered', 'filtered', 'readings dropped by deadband, min_interval or dedup'],
  ['parse_errors', 'parse_errors', 'lines or values that could not be parsed'],
  ['out_of_range', 'out_of_range', 'values outside the tag\'s min/max'],
  ['timeouts', 'timeouts', 'requests or lines the device did not answer in time'],
  ['reconnects', 'reconnects', 'connections to the device opened again after a loss'],
];

/** prom-client's process metrics, prefixed as SPEC §4c names every metric */
export const PROCESS_METRICS_PREFIX = 'edgegate_';
let processMetrics: Registry | undefined;

/**
 * The process metrics, created once per process: they start a GC
 * PerformanceObserver and an event-loop delay histogram that prom-client
 * gives no way to stop, so a registry per start would pile them up.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, prefix: PROCESS_METRICS_PREFIX });
  }
  return processMetrics;
}

export class GatewayMetrics {
  /** ours and the process metrics: the gateway's series are in a registry of this instance */
  readonly registry: Registry;
  private snap: Snapshot | undefined;

  constructor(private readonly ctx: GatewayContext) {
    const own = new Registry();
    const r = [own];
    const snap = () => this.snap ?? this.take();
    for (const [name, field, help] of DEVICE_COUNTERS) {
      new Counter({
        name: `edgegate_${name}_total`, help: `Per device: ${help}.`, labelNames: ['device'], registers: r,
        collect() {
          this.reset();
          for (const d of snap().devices) this.inc({ device: d.id }, d.counters[field]);
        },
      });
    }
    new Gauge({
      name: 'edgegate_device_up', help: 'Per device: 1 while connected, else 0.', labelNames: ['device'], registers: r,
      collect() {
        this.reset();
        for (const d of snap().devices) this.set({ device: d.id }, d.status.state === 'connected' ? 1 : 0);
      },
    });
    const gauge = (name: string, help: string, value: (s: Snapshot) => number) =>
      new Gauge({ name, help, registers: r, collect() { this.set(value(snap())); } });
    const counter = (name: string, help: string, value: (s: Snapshot) => number) =>
      new Counter({ name, help, registers: r, collect() { this.reset(); this.inc(value(snap())); } });
    gauge('edgegate_buffer_bytes', 'Bytes held by the buffer (disk segments and batches held in memory).', (s) => s.broker.buffer.bytes);
    gauge('edgegate_buffer_batches', 'Batches not acknowledged by the broker yet, in flight included.', (s) => s.broker.buffer.batches);
    gauge('edgegate_buffer_oldest_batch_age_seconds', 'Age of the oldest batch not acknowledged (its first reading), 0 when none.',
      (s) => (s.broker.buffer.oldest_ts === null ? 0 : Math.max(0, (s.now - s.broker.buffer.oldest_ts) / 1000)));
    counter('edgegate_buffer_dropped_batches_total', 'Batches dropped because the buffer was full (the oldest first).', (s) => s.broker.buffer.dropped_batches);
    counter('edgegate_published_batches_total', 'Batches the broker acknowledged.', (s) => s.broker.published_batches);
    counter('edgegate_published_readings_total', 'Readings in the batches the broker acknowledged.', (s) => s.broker.published_readings);
    gauge('edgegate_broker_connected', '1 while connected to the MQTT broker, else 0.', (s) => (s.broker.connected ? 1 : 0));
    gauge('edgegate_healthy', '1 while the watchdog\'s check passes (see /healthz), else 0.', () => (ctx.health().ok ? 1 : 0));
    gauge('edgegate_event_loop_delay_p99_seconds', 'p99 of the event-loop delay since the last P/stats publish.', () => ctx.stats().event_loop_delay_p99_ms / 1000);
    const info = new Gauge({ name: 'edgegate_info', help: 'The gateway\'s id and version (always 1).', labelNames: ['gateway', 'version'], registers: r });
    info.set({ gateway: ctx.config().gateway.id, version: ctx.version }, 1);
    this.registry = Registry.merge([processRegistry(), own]);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** the exposition text; one snapshot of the core serves every metric of the scrape */
  async metrics(): Promise<string> {
    this.snap = this.take();
    try {
      return await this.registry.metrics();
    } finally {
      this.snap = undefined;
    }
  }

  private take(): Snapshot {
    return { devices: this.ctx.devices(), broker: this.ctx.broker(), now: this.ctx.clock.now() };
  }
}
