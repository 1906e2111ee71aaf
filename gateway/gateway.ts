// The gateway core: one publisher, one task per device, stats, writes and
// reload. Constructors assign; start()/stop() do the I/O.
import { accessSync, constants } from 'node:fs';
import type { DeviceConfig, ResolvedConfig, TagConfig } from '../config/schema.js';
import type { DriverDeps } from '../drivers/registry.js';
import { GatewayStore } from './buffer/store.js';
import type { BufferStats } from './buffer/types.js';
import { systemClock } from './clock.js';
import { DeviceTask, type DeviceStatus } from './device.js';
import { PublisherProgress, type Health } from './health.js';
import { safeUrl } from './logger.js';
import { MqttPublisher } from './publisher.js';
import type { ServiceSummary } from './service-notifier.js';
import { StatsCollector } from './stats.js';
import type { Batch, Clock, Logger, Reading, WriteOutcome } from './types.js';
import { isPublishTopic } from './topics.js';
import { parseWritePayload, WriteLog } from './writes.js';
import { OutputHub } from './outputs/hub.js';
import type { BrokerView, DeviceView, GatewayContext, GatewayStats, Output } from './outputs/output.js';
import { VERSION } from './version.js';

export { VERSION };

/** the in-memory queue bound while the broker is away (the disk buffer is bounded by buffer.max_size) */
const MEMORY_QUEUE_MAX_BYTES = 32 * 1024 * 1024;
const DRAIN_ON_STOP_MS = 5000;
/** before start() and after a failed one */
const NO_BUFFER: BufferStats = { bytes: 0, batches: 0, dropped_batches: 0, damaged_records: 0, oldest_ts: null, mode: 'memory' };
/** /healthz and the like: batches may wait this long on a live connection (the unit's WatchdogSec) */
const HEALTH_STALL_MS = 30_000;

export interface GatewayOptions {
  log: Logger;
  clock?: Clock;
  /** the broker URL when mqtt.url is "embedded" (the CLI starts that broker) */
  mqttUrl?: string;
  driverDeps?: Record<string, DriverDeps>;
  /** consumers beside the JSON topics (Home Assistant, Sparkplug B, HTTP): the CLI makes them from the config */
  outputs?: Output[];
  /** how long batches may wait on a live connection before outputs' health() says so (default HEALTH_STALL_MS; shorter in tests) */
  healthStallMs?: number;
}

export class Gateway {
  private config: ResolvedConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly tasks = new Map<string, DeviceTask>();
  private store: GatewayStore | undefined;
  /** each tag's latest reading, kept while an output or retained tag values need it */
  private readonly latestValues = new Map<string, Map<string, Reading>>();
  /** per device, while tag values are retained: which tags, their topics, and those with a reading not yet published */
  private readonly retained = new Map<string, TagRetention>();
  private readonly hub: OutputHub;
  private readonly stats: StatsCollector;
  private publisher: MqttPublisher | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private readonly startedAt: number;
  private readonly progress = new PublisherProgress();
  private readonly writeLog: WriteLog;

  constructor(config: ResolvedConfig, private readonly opts: GatewayOptions) {
    this.config = config;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.stats = new StatsCollector(this.clock);
    this.startedAt = this.clock.now();
    this.writeLog = new WriteLog(this.log, () => this.clock.monotonic());
    this.hub = new OutputHub(opts.outputs ?? [], this.log.child({ component: 'outputs' }), () => this.clock.monotonic());
  }

  /** tag values stay retained on P/devices/<d>/tags/<t>: asked for, or the state topics of Home Assistant */
  private get retainTags(): boolean {
    return this.config.mqtt.retain_last_values || this.config.homeassistant.enabled;
  }

  get prefix(): string {
    return this.config.mqtt.topic_prefix;
  }

  get brokerUrl(): string | undefined {
    return this.config.mqtt.url === 'embedded' ? this.opts.mqttUrl : this.config.mqtt.url;
  }

  get devices(): Iterable<DeviceTask> {
    return this.tasks.values();
  }

  async start(): Promise<void> {
    const url = this.brokerUrl;
    if (!url) throw new Error('mqtt.url is "embedded" but no embedded broker was started');
    this.stats.start();
    this.store = await GatewayStore.open(this.config.buffer, {
      log: this.log.child({ component: 'buffer' }), fallbackBytes: Math.min(this.config.buffer.max_size, MEMORY_QUEUE_MAX_BYTES),
      onProblem: () => { this.publisher?.refreshStatus(); this.publishStats(); },
    });
    this.publisher = this.createPublisher(url);
    this.publisher.start();
    this.log.info({ gateway: this.config.gateway.id, mqtt: safeUrl(url), devices: this.config.devices.length, version: VERSION }, 'edgegate starting');
    // outputs first, so that they see every device's first status
    await this.hub.start(this.context());
    for (const d of this.config.devices) if (d.enabled) this.addDevice(d);
    this.publishStats();
    this.statsTimer = setInterval(() => this.publishStats(), this.config.stats_interval);
    this.statsTimer.unref();
  }

  private createPublisher(url: string): MqttPublisher {
    const { mqtt } = this.config;
    return new MqttPublisher({
      mqtt: { ...mqtt, url },
      statusTopic: `${this.prefix}/status`,
      onlinePayload: () => {
        const error = this.store?.problem();
        return JSON.stringify({ state: 'online', version: VERSION, started: this.startedAt, ...(error !== undefined ? { error } : {}) });
      },
      offlinePayload: JSON.stringify({ state: 'offline' }),
      log: this.log.child({ component: 'mqtt' }),
      maxQueuedBytes: Math.min(this.config.buffer.max_size, MEMORY_QUEUE_MAX_BYTES),
      ...(this.store ? { buffer: this.store.buffer } : {}),
      replay: { rate: this.config.buffer.replay_rate, jitterMs: this.config.buffer.replay_jitter },
      clock: this.clock,
      subscriptions: [`${this.prefix}/devices/+/set/+`],
      onMessage: (topic, payload, props) => void this.handleWrite(topic, payload, props),
    });
  }

  /** drivers stop, open batches flush, queued batches drain (bounded), status goes offline */
  async stop(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    await Promise.all([...this.tasks.values()].map((t) => t.stop()));
    for (const t of this.tasks.values()) this.onStatus(t.id, { state: 'disconnected', since: this.clock.now(), error: 'gateway stopped' });
    // outputs say goodbye on their own connections while the JSON batches drain: one after
    // the other (an output's ~4 s, the drain's 5 s, the disconnect's 3 s) would miss the
    // service's 10 s stop deadline
    const outputsStopped = this.hub.stop();
    const publisher = this.publisher;
    if (publisher) {
      // with the broker away there is nothing to wait for: the buffer keeps them
      const drained = publisher.connected && await publisher.drain(DRAIN_ON_STOP_MS);
      if (!drained) {
        const s = publisher.stats();
        const kept = this.store?.buffer.stats().mode === 'disk';
        this.log[kept ? 'info' : 'warn']({ queued_batches: s.queued_batches, inflight: s.inflight },
          kept ? 'batches not delivered at stop are kept in the disk buffer' : 'broker unreachable at stop: queued batches not delivered');
      }
      this.publishStats();
      await publisher.stop();
    }
    await outputsStopped;
    await this.store?.close();
    this.stats.stop();
    this.log.info('edgegate stopped');
  }

  /** SIGHUP: restart changed, added and removed devices; keep the others running */
  async reload(next: ResolvedConfig): Promise<{ restarted: string[]; added: string[]; removed: string[]; kept: string[] }> {
    const prev = this.config;
    const mqttChanged = JSON.stringify(prev.mqtt) !== JSON.stringify(next.mqtt);
    if (mqttChanged) checkMqttReload(next.mqtt, this.opts.mqttUrl);
    if (JSON.stringify(prev.buffer) !== JSON.stringify(next.buffer)) this.log.warn('changes to the buffer section take effect after a restart');
    if (JSON.stringify(prev.log) !== JSON.stringify(next.log) || prev.gateway.log_level !== next.gateway.log_level) this.log.warn('changes to the log section take effect after a restart');
    for (const section of ['homeassistant', 'sparkplug', 'http'] as const) {
      if (JSON.stringify(prev[section]) !== JSON.stringify(next[section])) this.log.warn(`changes to the ${section} section take effect after a restart`);
    }
    const fingerprint = (c: ResolvedConfig, d: DeviceConfig) => JSON.stringify([d, c.batch, c.mqtt.topic_prefix, c.gateway.id]);
    const wanted = new Map(next.devices.filter((d) => d.enabled).map((d) => [d.id, d]));
    const before = new Map(prev.devices.filter((d) => d.enabled).map((d) => [d.id, d]));
    const result = { restarted: [] as string[], added: [] as string[], removed: [] as string[], kept: [] as string[] };
    for (const [id, old] of before) {
      const now = wanted.get(id);
      if (!now) result.removed.push(id);
      else if (fingerprint(prev, old) !== fingerprint(next, now)) result.restarted.push(id);
      else result.kept.push(id);
    }
    for (const id of wanted.keys()) if (!before.has(id)) result.added.push(id);
    await Promise.all([...result.removed, ...result.restarted].map((id) => this.removeDevice(id, result.removed.includes(id))));
    this.config = { ...prev, gateway: next.gateway, mqtt: next.mqtt, devices: next.devices, batch: next.batch, stats_interval: next.stats_interval };
    if (mqttChanged) await this.reconnect();
    if (next.stats_interval !== prev.stats_interval && this.statsTimer) {
      clearInterval(this.statsTimer);
      this.statsTimer = setInterval(() => this.publishStats(), next.stats_interval);
      this.statsTimer.unref();
    }
    for (const id of [...result.restarted, ...result.added]) this.addDevice(wanted.get(id)!);
    await this.hub.reload(result, prev);
    this.log.info(result, 'configuration reloaded');
    return result;
  }

  /**
   * A changed mqtt section: the old connection stops (devices keep batching
   * into the buffer meanwhile), the batches it had in flight go back to the
   * head of the buffer they share, and the new connection sends every batch
   * not acknowledged, oldest first, ahead of the new ones. A batch in flight
   * at the switch may arrive twice (same seq), never not at all.
   */
  private async reconnect(): Promise<void> {
    const url = this.brokerUrl!;
    const old = this.publisher;
    await old?.stop();
    const next = this.createPublisher(url);
    // the same buffer: what the old one had in flight goes back to its head
    old?.handBack();
    const carried = this.store?.buffer.size ?? 0;
    this.publisher = next;
    this.progress.reset();
    next.start();
    for (const t of this.tasks.values()) next.setRetained(`${this.prefix}/devices/${t.id}/status`, JSON.stringify(t.status));
    this.publishStats();
    this.log.info({ mqtt: safeUrl(url), carried_batches: carried }, 'mqtt settings changed: reconnected');
  }

  /** for the systemd watchdog: not ok when the publisher is wedged or the buffer stalled (health.ts) */
  healthy(stallMs: number): Health {
    const p = this.publisher;
    if (!p) return { ok: false, reason: 'not started' };
    return this.progress.check({ ...p.stats(), handed_out_batches: p.handedOutBatches, replay_waiting: p.replayWaiting }, this.clock.monotonic(), stallMs);
  }

  /** the numbers of the systemd STATUS= line */
  summary(): ServiceSummary {
    let connected = 0;
    let readings = 0;
    for (const t of this.tasks.values()) {
      if (t.status.state === 'connected') connected++;
      readings += t.counters.readings_in;
    }
    const s = this.publisher?.stats();
    return {
      devices: this.tasks.size, connected, readings_in: readings, mqtt_connected: s?.connected ?? false,
      buffer: { batches: s?.queued_batches ?? 0, bytes: s?.queued_bytes ?? 0 },
    };
  }

  private addDevice(config: DeviceConfig): void {
    const keep = this.retainTags || this.hub.size > 0;
    const task = new DeviceTask({
      config,
      gatewayId: this.config.gateway.id,
      topicPrefix: this.prefix,
      batchDefaults: this.config.batch,
      clock: this.clock,
      log: this.log,
      nextSeq: () => this.nextSeq(config.id),
      onBatch: (b) => this.onBatch(b),
      onStatus: (id, s) => this.onStatus(id, s),
      ...(keep ? { onReading: this.readingHook() } : {}),
      ...(this.opts.driverDeps?.[config.id] ? { driverDeps: this.opts.driverDeps[config.id] } : {}),
    });
    this.tasks.set(config.id, task);
    if (this.retainTags) this.retained.set(config.id, this.tagRetention(config));
    this.store?.seq.prepare(config.id);
    this.onStatus(config.id, task.status);
    task.start();
  }

  private async removeDevice(id: string, clearRetained: boolean): Promise<void> {
    const task = this.tasks.get(id);
    if (!task) return;
    await task.stop();
    this.tasks.delete(id);
    this.latestValues.delete(id);
    this.retained.delete(id);
    if (clearRetained) this.publisher?.setRetained(`${this.prefix}/devices/${id}/status`, '');
  }

  /** devices run only between start() and stop(), when the store is open */
  private nextSeq(device: string): number {
    return this.store!.seq.next(device);
  }

  private onBatch(b: Batch): void {
    this.publisher?.publishBatch(b);
    // retained values follow their batch, so a subscriber never sees a value before the data carrying it
    const t = this.retained.get(b.device);
    if (t && t.pending.size > 0) {
      const latest = this.latestValues.get(b.device);
      for (const tag of t.pending) {
        const r = latest?.get(tag);
        if (r) this.publishTagState(t, r);
      }
      t.pending.clear();
    }
    this.hub.batch(b);
  }

  /** one closure for every device: what each reading that leaves a tag pipeline costs is two map writes and the outputs' hooks */
  private readingHook(): (device: string, r: Reading) => void {
    const retain = this.retainTags;
    const hub = this.hub.wantsReadings ? this.hub : undefined;
    return (device, r) => {
      let m = this.latestValues.get(device);
      if (!m) this.latestValues.set(device, (m = new Map()));
      m.set(r.tag, r);
      if (retain) {
        const t = this.retained.get(device);
        if (t && tagTopic(t, r.tag) !== undefined) t.pending.add(r.tag);
      }
      hub?.reading(device, r);
    };
  }

  /**
   * retain_last_values: every tag; Home Assistant alone: the tags it
   * discovers, whose state topics these are (not those with `homeassistant: false`)
   */
  private tagRetention(config: DeviceConfig): TagRetention {
    const base = `${this.prefix}/devices/${config.id}/tags/`;
    const all = this.config.mqtt.retain_last_values;
    const topics = new Map<string, string>();
    if (!all) {
      for (const [key, tag] of Object.entries(config.tags) as Array<[string, TagConfig]>) {
        if (tag.homeassistant === false) continue;
        const name = tag.name ?? key;
        topics.set(name, base + name);
      }
    }
    return { all, base, topics, pending: new Set() };
  }

  private publishTagState(t: TagRetention, r: Reading): void {
    const topic = tagTopic(t, r.tag);
    if (topic !== undefined) this.publisher?.setRetained(topic, JSON.stringify({ value: r.value, ts: r.ts, quality: r.quality }));
  }

  private onStatus(id: string, s: DeviceStatus): void {
    this.log.info({ device: id, state: s.state, ...(s.error ? { error: s.error } : {}) }, 'device status');
    this.publisher?.setRetained(`${this.prefix}/devices/${id}/status`, JSON.stringify(s));
    this.hub.status(id, s);
  }

  /** what outputs see of the core: read-only views, and the write path */
  private context(): GatewayContext {
    const view = (t: DeviceTask): DeviceView => t;
    return {
      log: this.log,
      clock: this.clock,
      version: VERSION,
      startedAt: this.startedAt,
      config: () => this.config,
      devices: () => [...this.tasks.values()].map(view),
      device: (id) => { const t = this.tasks.get(id); return t ? view(t) : undefined; },
      latest: (device) => this.latestValues.get(device),
      broker: () => this.brokerView(),
      stats: () => this.statsPayload(false),
      health: () => this.healthy(this.opts.healthStallMs ?? HEALTH_STALL_MS),
      write: (device, tag, value) => this.write(device, tag, value),
      republishTagStates: () => {
        for (const [device, latest] of this.latestValues) {
          const t = this.retained.get(device);
          if (t) for (const r of latest.values()) this.publishTagState(t, r);
        }
      },
    };
  }

  private brokerView(): BrokerView {
    const p = this.publisher?.stats();
    const buffer = this.store?.buffer.stats() ?? NO_BUFFER;
    return {
      url: safeUrl(this.brokerUrl ?? ''),
      connected: p?.connected ?? false,
      buffer: { ...buffer, dropped_batches: p?.dropped_batches ?? buffer.dropped_batches },
      queued_batches: p?.queued_batches ?? 0,
      inflight: p?.inflight ?? 0,
      published_batches: p?.published_batches ?? 0,
      published_readings: p?.published_readings ?? 0,
    };
  }

  /** a write from an output (Home Assistant command, Sparkplug DCMD): the checks of an MQTT write, logged the same way */
  private async write(device: string, tag: string, value: unknown): Promise<WriteOutcome | void> {
    try {
      const task = this.tasks.get(device);
      if (!task) throw new Error(`unknown device "${device}"`);
      const outcome = await task.write(tag, value);
      this.writeLog.result(device, tag, { ok: true, ...outcome });
      return outcome;
    } catch (err) {
      this.writeLog.result(device, tag, { ok: false, error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  }

  private publishStats(): void {
    // at the stats' pace: the count of writes held back from the log at the end of a burst
    this.writeLog.flush();
    const p = this.publisher;
    if (!p) return;
    const s = p.stats();
    const buffer = this.store?.buffer.stats();
    if (!buffer) return;
    p.setRetained(`${this.prefix}/stats`, JSON.stringify(this.statsPayload(true)));
  }

  /** resetLoopDelay: the P/stats timer measures the event-loop delay between its own publishes; others only read it */
  private statsPayload(resetLoopDelay: boolean): GatewayStats {
    const s = this.publisher?.stats();
    const buffer = this.store?.buffer.stats() ?? NO_BUFFER;
    return this.stats.snapshot(this.tasks.values(), { ...buffer, dropped_batches: s?.dropped_batches ?? buffer.dropped_batches }, resetLoopDelay);
  }

  private async handleWrite(topic: string, payload: Buffer, props: { responseTopic?: string; correlationData?: Buffer; retain?: boolean }): Promise<void> {
    const rest = topic.slice(this.prefix.length + '/devices/'.length);
    const [device, set, tag] = rest.split('/');
    if (set !== 'set' || !device || !tag) return;
    // clearing a retained write (an empty retained message) is no write, and gets no result
    if (payload.length === 0) return;
    let result: ({ ok: true } & WriteOutcome) | { ok: false; error: string };
    try {
      // a retained command would be carried out again at every reconnect and restart
      if (props.retain) throw new Error('retained writes are ignored: publish the write without the retain flag');
      const task = this.tasks.get(device);
      if (!task) throw new Error(`unknown device "${device}"`);
      const outcome = await task.write(tag, parseWritePayload(payload, task.maxWriteBytes));
      result = { ok: true, ...outcome };
    } catch (err) {
      result = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    this.writeLog.result(device, tag, result);
    const body = JSON.stringify(result);
    const p = this.publisher;
    if (!p) return;
    p.publish(`${topic}/result`, body, { qos: 1 });
    if (props.responseTopic && !isPublishTopic(props.responseTopic)) {
      this.writeLog.badResponseTopic(device, tag, props.responseTopic);
    } else if (props.responseTopic) {
      p.publish(props.responseTopic, body, { qos: 1, ...(props.correlationData ? { properties: { correlationData: props.correlationData } } : {}) });
    }
  }
}

/** one device's retained tag values */
interface TagRetention {
  /** every tag (retain_last_values), else only those in topics */
  all: boolean;
  /** P/devices/<d>/tags/ */
  base: string;
  /** each retained tag's topic, built once */
  topics: Map<string, string>;
  /** tags with a reading not yet published on their retained topic */
  pending: Set<string>;
}

/** the retained topic of a tag, or undefined when its value is not retained */
function tagTopic(t: TagRetention, tag: string): string | undefined {
  let topic = t.topics.get(tag);
  if (topic === undefined && t.all) t.topics.set(tag, (topic = t.base + tag));
  return topic;
}

/** what a reload cannot switch to: refused before anything changes */
function checkMqttReload(mqtt: ResolvedConfig['mqtt'], embeddedUrl: string | undefined): void {
  if (mqtt.url === 'embedded' && !embeddedUrl) throw new Error('mqtt.url: switching to the embedded broker needs a restart');
  for (const key of ['ca', 'cert', 'key'] as const) {
    const path = mqtt.tls?.[key];
    if (path === undefined) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch {
      throw new Error(`mqtt.tls.${key}: cannot read ${path}`);
    }
  }
}
