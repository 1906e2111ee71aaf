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
  /** readings_in of all devices, and when, at the last P/stats publish: readings_per_s is the rate since */
  private rateMark: { readings: number; at: number };

  constructor(private readonly clock: Clock) {
    this.startedAt = clock.monotonic();
    this.rateMark = { readings: 0, at: this.startedAt };
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
    let readings = 0;
    for (const d of devices) {
      perDevice[d.id] = { state: d.status.state, ...d.counters };
      readings += d.counters.readings_in;
    }
    const now = this.clock.monotonic();
    const elapsed = (now - this.rateMark.at) / 1000;
    // a removed device takes its count with it: never a negative rate
    const rate = elapsed > 0 ? Math.max(0, readings - this.rateMark.readings) / elapsed : 0;
    if (resetLoopDelay) this.rateMark = { readings, at: now };
    return {
      ts: this.clock.now(),
      uptime_s: Math.round((now - this.startedAt) / 1000),
      readings_per_s: Math.round(rate * 10) / 10,
      rss_bytes: process.memoryUsage.rss(),
      event_loop_delay_p99_ms: this.eventLoopP99Ms(resetLoopDelay),
      buffer,
      devices: perDevice,
    };
  }
}
