// /api/status and the page's live events: the gateway, its broker
// connection and buffer, every device with its readings per second, and each
// tag's latest value. Built on request from what the core already keeps; the
// only state of its own is a short ring of counter samples per device for the
// rates, and which readings the last event carried (for the next delta).
import type { DeviceConfig } from '../../../config/schema.js';
import type { DeviceCounters, Reading } from '../../types.js';
import type { GatewayContext } from '../output.js';

export interface TagStatus {
  name: string;
  value: Reading['value'];
  quality: Reading['quality'];
  ts: number;
  unit?: string;
}

export interface DeviceStatusView {
  id: string;
  driver: string;
  state: string;
  since: number;
  error?: string;
  readings_per_s: number;
  counters: DeviceCounters;
  /** all tags with a reading (full), or only those with a reading since the last event (delta) */
  tags: TagStatus[];
}

export interface StatusView {
  /** false: `tags` of each device holds only what changed since the previous event */
  full: boolean;
  now: number;
  gateway: { id: string; version: string; started_at: number; uptime_s: number; rss_bytes: number; event_loop_delay_p99_ms: number; health: { ok: boolean; reason?: string } };
  broker: ReturnType<GatewayContext['broker']>;
  devices: DeviceStatusView[];
  history: { step_ms: number; points: number };
}

/** rate samples per device: one a second, the rate over the last RATE_SAMPLES - 1 seconds */
const RATE_SAMPLES = 6;

export class StatusBuilder {
  /** device → ring of [monotonic ms, readings_in] */
  private readonly samples = new Map<string, { t: Float64Array; n: Float64Array; next: number; filled: number }>();
  /** device → tag → the reading the last event carried */
  private readonly sent = new Map<string, Map<string, Reading>>();
  private readonly units = new WeakMap<DeviceConfig, Map<string, string>>();

  constructor(private readonly ctx: GatewayContext, private readonly history: { stepMs: number; points: number }) {}

  /** once a second: the counters' samples the rates come from */
  sample(): void {
    const t = this.ctx.clock.monotonic();
    const seen = new Set<string>();
    for (const d of this.ctx.devices()) {
      seen.add(d.id);
      let s = this.samples.get(d.id);
      if (!s) this.samples.set(d.id, (s = { t: new Float64Array(RATE_SAMPLES), n: new Float64Array(RATE_SAMPLES), next: 0, filled: 0 }));
      s.t[s.next] = t;
      s.n[s.next] = d.counters.readings_in;
      s.next = (s.next + 1) % RATE_SAMPLES;
      s.filled = Math.min(RATE_SAMPLES, s.filled + 1);
    }
    for (const id of this.samples.keys()) if (!seen.has(id)) this.samples.delete(id);
    for (const id of this.sent.keys()) if (!seen.has(id)) this.sent.delete(id);
  }

  /**
   * the whole status (full), or with only the tags that changed since the
   * previous delta (the event stream's ticks, shared by every client)
   */
  build(mode: 'full' | 'delta'): StatusView {
    const { ctx } = this;
    const stats = ctx.stats();
    const health = ctx.health();
    const devices: DeviceStatusView[] = [];
    for (const d of ctx.devices()) {
      const latest = ctx.latest(d.id);
      const units = this.unitsOf(d.config);
      let sent = this.sent.get(d.id);
      if (mode === 'delta' && !sent) this.sent.set(d.id, (sent = new Map()));
      const tags: TagStatus[] = [];
      if (latest) {
        for (const [name, r] of latest) {
          if (mode === 'delta') {
            if (sent!.get(name) === r) continue;
            sent!.set(name, r);
          }
          const unit = units.get(name);
          tags.push({ name, value: r.value, quality: r.quality, ts: r.ts, ...(unit !== undefined ? { unit } : {}) });
        }
      }
      devices.push({
        id: d.id, driver: d.config.driver, state: d.status.state, since: d.status.since,
        ...(d.status.error !== undefined ? { error: d.status.error } : {}),
        readings_per_s: this.rate(d.id), counters: { ...d.counters }, tags,
      });
    }
    return {
      full: mode === 'full',
      now: ctx.clock.now(),
      gateway: {
        id: ctx.config().gateway.id, version: ctx.version, started_at: ctx.startedAt, uptime_s: stats.uptime_s,
        rss_bytes: stats.rss_bytes, event_loop_delay_p99_ms: stats.event_loop_delay_p99_ms,
        health: health.ok ? { ok: true } : { ok: false, ...(health.reason !== undefined ? { reason: health.reason } : {}) },
      },
      broker: ctx.broker(),
      devices,
      history: { step_ms: this.history.stepMs, points: this.history.points },
    };
  }

  private rate(id: string): number {
    const s = this.samples.get(id);
    if (!s || s.filled < 2) return 0;
    const newest = (s.next + RATE_SAMPLES - 1) % RATE_SAMPLES;
    const oldest = s.filled < RATE_SAMPLES ? 0 : s.next;
    const dt = s.t[newest]! - s.t[oldest]!;
    return dt > 0 ? Math.round(((s.n[newest]! - s.n[oldest]!) * 1000 / dt) * 10) / 10 : 0;
  }

  /** tag name on MQTT → unit, once per device config */
  private unitsOf(config: DeviceConfig): Map<string, string> {
    let m = this.units.get(config);
    if (!m) {
      m = new Map();
      for (const [key, tag] of Object.entries(config.tags as Record<string, { name?: string; unit?: string }>)) {
        if (tag.unit !== undefined) m.set(tag.name ?? key, tag.unit);
      }
      this.units.set(config, m);
    }
    return m;
  }
}
