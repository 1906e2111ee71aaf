// The retained P/stats payload (SPEC §4), built from the counters the parts
// already keep. Event-loop delay comes from Node's own histogram.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { BufferStats } from './buffer/types.js';
import type { DeviceTask } from './device.js';

export type { BufferStats };

export class StatsCollector {
  private readonly histogram: IntervalHistogram;
  private readonly startedAt: number;

  constructor(private readonly now: () => number) {
    this.startedAt = now();
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
  }

  start(): void {
    this.histogram.enable();
  }

  stop(): void {
    this.histogram.disable();
  }

  /** p99 of the event-loop delay since the last call, in ms */
  eventLoopP99Ms(reset = true): number {
    const p99 = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
    if (reset) this.histogram.reset();
    return Math.round(p99 * 100) / 100;
  }

  snapshot(devices: Iterable<DeviceTask>, buffer: BufferStats): object {
    const perDevice: Record<string, object> = {};
    for (const d of devices) {
      perDevice[d.id] = { state: d.status.state, ...d.counters };
    }
    const t = this.now();
    return {
      ts: t,
      uptime_s: Math.round((t - this.startedAt) / 1000),
      rss_bytes: process.memoryUsage.rss(),
      event_loop_delay_p99_ms: this.eventLoopP99Ms(),
      buffer,
      devices: perDevice,
    };
  }
}
