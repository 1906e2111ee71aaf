// The retained P/stats payload (SPEC §4), built from the counters the parts
// already keep. Event-loop delay comes from Node's own histogram.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { BufferStats } from './buffer/types.js';
import type { DeviceTask } from './device.js';
import type { GatewayStats } from './outputs/output.js';
import type { Clock } from './types.js';

export type { BufferStats };

const LOOP_SAMPLE_MS = 10;

export class StatsCollector {
  private readonly histogram: IntervalHistogram;
  private readonly startedAt: number;

  constructor(private readonly clock: Clock) {
    this.startedAt = clock.monotonic();
    this.histogram = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  }

  start(): void {
    this.histogram.enable();
  }

  stop(): void {
    this.histogram.disable();
  }

  /** p99 of the event-loop delay since the last call, in ms */
  eventLoopP99Ms(reset = true): number {
    // each sample is the time between two ticks of a LOOP_SAMPLE_MS timer (an idle loop reads
    // ~10.1 ms on Node 20): the delay is what lies beyond the interval
    const p99 = this.histogram.count > 0 ? Math.max(0, this.histogram.percentile(99) / 1e6 - LOOP_SAMPLE_MS) : 0;
    if (reset) this.histogram.reset();
    return Math.round(p99 * 100) / 100;
  }

  snapshot(devices: Iterable<DeviceTask>, buffer: BufferStats, resetLoopDelay = true): GatewayStats {
    const perDevice: GatewayStats['devices'] = {};
    for (const d of devices) {
      perDevice[d.id] = { state: d.status.state, ...d.counters };
    }
    return {
      ts: this.clock.now(),
      uptime_s: Math.round((this.clock.monotonic() - this.startedAt) / 1000),
      rss_bytes: process.memoryUsage.rss(),
      event_loop_delay_p99_ms: this.eventLoopP99Ms(resetLoopDelay),
      buffer,
      devices: perDevice,
    };
  }
}
