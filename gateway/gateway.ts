// The gateway core: one publisher, one task per device, stats, writes and
// reload. Constructors assign; start()/stop() do the I/O.
import { accessSync, constants } from 'node:fs';
import type { DeviceConfig, ResolvedConfig } from '../config/schema.js';
import type { DriverDeps } from '../drivers/registry.js';
import { GatewayStore } from './buffer/store.js';
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

export const VERSION = '0.1.0';

/** the in-memory queue bound while the broker is away (the disk buffer is bounded by buffer.max_size) */
const MEMORY_QUEUE_MAX_BYTES = 32 * 1024 * 1024;
const DRAIN_ON_STOP_MS = 5000;

export interface GatewayOptions {
  log: Logger;
  clock?: Clock;
  /** the broker URL when mqtt.url is "embedded" (the CLI starts that broker) */
  mqttUrl?: string;
  driverDeps?: Record<string, DriverDeps>;
}

export class Gateway {
  private config: ResolvedConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly tasks = new Map<string, DeviceTask>();
  private store: GatewayStore | undefined;
  private readonly lastValues = new Map<string, Map<string, Reading>>();
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
    const retain = this.config.mqtt.retain_last_values;
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
      ...(retain ? { onReading: (id: string, r: Reading) => this.rememberLast(id, r) } : {}),
      ...(this.opts.driverDeps?.[config.id] ? { driverDeps: this.opts.driverDeps[config.id] } : {}),
    });
    this.tasks.set(config.id, task);
    this.store?.seq.prepare(config.id);
    this.onStatus(config.id, task.status);
    task.start();
  }

  private async removeDevice(id: string, clearRetained: boolean): Promise<void> {
    const task = this.tasks.get(id);
    if (!task) return;
    await task.stop();
    this.tasks.delete(id);
    if (clearRetained) this.publisher?.setRetained(`${this.prefix}/devices/${id}/status`, '');
  }

  /** devices run only between start() and stop(), when the store is open */
  private nextSeq(device: string): number {
    return this.store!.seq.next(device);
  }

  private onBatch(b: Batch): void {
    this.publisher?.publishBatch(b);
    const last = this.lastValues.get(b.device);
    if (last && last.size > 0) {
      for (const [tag, r] of last) {
        this.publisher?.setRetained(`${this.prefix}/devices/${b.device}/tags/${tag}`, JSON.stringify({ value: r.value, ts: r.ts, quality: r.quality }));
      }
      last.clear();
    }
  }

  private rememberLast(device: string, r: Reading): void {
    let m = this.lastValues.get(device);
    if (!m) this.lastValues.set(device, (m = new Map()));
    m.set(r.tag, r);
  }

  private onStatus(id: string, s: DeviceStatus): void {
    this.log.info({ device: id, state: s.state, ...(s.error ? { error: s.error } : {}) }, 'device status');
    this.publisher?.setRetained(`${this.prefix}/devices/${id}/status`, JSON.stringify(s));
  }

  private publishStats(): void {
    // at the stats' pace: the count of writes held back from the log at the end of a burst
    this.writeLog.flush();
    const p = this.publisher;
    if (!p) return;
    const s = p.stats();
    const buffer = this.store?.buffer.stats();
    if (!buffer) return;
    const payload = this.stats.snapshot(this.tasks.values(), { ...buffer, dropped_batches: s.dropped_batches });
    p.setRetained(`${this.prefix}/stats`, JSON.stringify(payload));
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
