// The Sparkplug B 3.0 edge node (SPEC §4b): births, deaths, DDATA by alias,
// rebirth, commands, the primary host's STATE and store and forward, on a
// connection of its own. The state machine: a session is ready once NBIRTH
// went out on a connection whose primary host (if one is configured) says
// online; DBIRTH goes out for each device while it is connected and the
// session ready, DDEATH when it leaves connected. Data goes out live while
// the session is ready and nothing waits; otherwise it waits in the
// forwarder's buffer and is replayed, historical, when the session is back.
import type { ResolvedConfig } from '../../../config/schema.js';
import type { DeviceStatus } from '../../device.js';
import { RateLimitedLog } from '../../logger.js';
import type { MqttSettings } from '../../mqtt-options.js';
import type { Batch, Logger, Reading } from '../../types.js';
import type { GatewayContext, Output, ReloadChanges } from '../output.js';
import { BdSeqStore } from './bdseq.js';
import { Aliases, birthMetrics, dataMetric, defineDevice, retyped, type DeviceDefinition } from './births.js';
import { EdgeConnection } from './connection.js';
import { Forwarder, openForwardBuffer } from './forward.js';
import { NodeMetrics } from './node-metrics.js';
import { commandValue, decode, encode, encodeData, toNumber, type UMetric, type UPayload } from './payload.js';

const LOG_INTERVAL_MS = 10_000;
export const REBIRTH = 'Node Control/Rebirth';

export interface SparkplugCounters {
  /** DCMD/NCMD metrics refused (unknown tag, failed checks, undecodable payload) */
  refused_commands: number;
  /** readings given up: their device had no DBIRTH in time, or their batch was unreadable */
  dropped_readings: number;
  historical_batches: number;
}

export class SparkplugOutput implements Output {
  readonly name = 'sparkplug';
  readonly counters: SparkplugCounters = { refused_commands: 0, dropped_readings: 0, historical_batches: 0 };
  #ctx!: GatewayContext;
  #log!: Logger;
  #conn: EdgeConnection | undefined;
  #fwd: Forwarder | undefined;
  #node!: NodeMetrics;
  #topic = '';
  #primary: string | undefined;
  #seq = 0;
  #ready = false;
  #hostOnline = false;
  #lastOnlineTs: number | undefined;
  readonly #aliases = new Aliases();
  readonly #defs = new Map<string, DeviceDefinition>();
  readonly #born = new Set<string>();
  readonly #pending = new Map<string, Reading[]>();
  #refusals!: RateLimitedLog;
  #oddities!: RateLimitedLog;


  async start(ctx: GatewayContext): Promise<void> {
    this.#ctx = ctx;
    const config = ctx.config();
    const sp = config.sparkplug;
    this.#log = ctx.log.child({ component: 'sparkplug' });
    const mono = () => ctx.clock.monotonic();
    this.#refusals = new RateLimitedLog(this.#log, LOG_INTERVAL_MS, mono);
    this.#oddities = new RateLimitedLog(this.#log, LOG_INTERVAL_MS, mono);
    this.#topic = `spBv1.0/${sp.group_id}`;
    this.#primary = sp.primary_host_id;
    const node = `${this.#topic}/%s/${sp.edge_node_id}`;
    const settings = sparkplugSettings(config, ctx.broker().url);
    this.#fwd = new Forwarder(await openForwardBuffer(config.buffer, this.#log), {
      send: (device, readings, historical, done) => this.#replay(device, readings, historical, done),
      dropped: (b) => this.#dropped(b.readings, b.device, 'its device has no DBIRTH'),
    }, mono);
    this.#node = new NodeMetrics(ctx, this.#aliases, () => this.#fwd?.buffer.size ?? 0, this.counters);
    this.#conn = new EdgeConnection({
      settings,
      deathTopic: node.replace('%s', 'NDEATH'),
      subscriptions: [node.replace('%s', 'NCMD'), `${node.replace('%s', 'DCMD')}/+`, ...(this.#primary ? [`spBv1.0/STATE/${this.#primary}`] : [])],
      bdSeq: new BdSeqStore(config.buffer.dir, this.#log),
      clock: ctx.clock,
      log: this.#log,
      online: () => this.#online(),
      offline: () => this.#offline(),
      message: (topic, payload) => this.#message(topic, payload),
    });
    try {
      this.#conn.start();
    } catch (err) {
      // the hub leaves an output that failed to start out, without stopping it: nothing may stay open
      await this.stop();
      throw err;
    }
    this.#node.startTimer(config.stats_interval, () => this.#publishNodeData());
  }

  async stop(): Promise<void> {
    this.#node?.stopTimer();
    await this.#conn?.stop();
    await this.#fwd?.close();
  }

  reading(device: string, r: Reading): void {
    if (!this.#fwd) return;
    let p = this.#pending.get(device);
    if (!p) this.#pending.set(device, (p = []));
    p.push(r);
  }

  /**
   * One batch of the core is one DDATA: its readings are the first
   * b.readings this output saw since the device's last batch. Only those:
   * a batch closed by max_bytes is closed by the reading that did not fit,
   * which is already here and belongs to the next one.
   */
  batch(b: Batch): void {
    const pending = this.#pending.get(b.device);
    if (!this.#fwd || !pending || pending.length === 0) return;
    const readings = pending.splice(0, b.readings);
    if (!this.#ready || this.#fwd.busy) this.#fwd.push(b);
    else if (!this.#born.has(b.device)) this.#dropped(readings.length, b.device, 'its device is not connected');
    // the connection went before the session knew it: kept for the next session, not lost
    else if (!this.#sendData(b.device, readings, false)) this.#fwd.push(b);
  }

  status(device: string, s: DeviceStatus): void {
    if (!this.#fwd) return;
    if (s.state === 'connected') {
      if (this.#ready && !this.#born.has(device)) {
        this.#deviceBirth(device);
        this.#fwd!.drain();
      }
    } else if (this.#born.has(device)) {
      this.#deviceDeath(device);
    }
  }

  /**
   * A restarted device (changed map) goes through connecting: DDEATH, then a
   * DBIRTH with new aliases (its config is a new object); a removed one gets
   * DDEATH here; a kept one is left alone.
   */
  reload(changes: ReloadChanges, prev: ResolvedConfig): void {
    const interval = this.#ctx.config().stats_interval;
    if (interval !== prev.stats_interval) {
      this.#node.stopTimer();
      this.#node.startTimer(interval, () => this.#publishNodeData());
    }
    for (const id of changes.removed) {
      if (this.#born.has(id)) this.#deviceDeath(id);
      this.#defs.delete(id);
      this.#pending.delete(id);
    }
  }

  // ------------------------------------------------------------ session

  #online(): void {
    this.#hostOnline = this.#primary === undefined;
    if (this.#hostOnline) this.#birth();
    else this.#log.info({ primary_host_id: this.#primary }, 'sparkplug waiting for the primary host to be online');
  }

  #offline(): void {
    this.#ready = false;
    this.#born.clear();
    this.#fwd?.setReady(false);
  }

  /** NBIRTH (seq 0, the bdSeq of this connection) and a DBIRTH per connected device; then what waited */
  #birth(): void {
    const conn = this.#conn!;
    const now = this.#ctx.clock.now();
    this.#seq = 0;
    this.#born.clear();
    const metrics: UMetric[] = [
      { name: 'bdSeq', type: 'Int64', value: conn.bdSeq, timestamp: now },
      // no alias: the specification forbids one here, hosts write it by name
      { name: REBIRTH, type: 'Boolean', value: false, timestamp: now },
      ...this.#node.birth(now),
    ];
    if (!this.#publish('NBIRTH', undefined, { timestamp: now, metrics })) return;
    this.#ready = true;
    for (const d of this.#ctx.devices()) if (d.status.state === 'connected') this.#deviceBirth(d.id);
    this.#log.info({ bd_seq: conn.bdSeq, devices: this.#born.size }, 'sparkplug births published');
    this.#fwd!.setReady(true);
  }

  #deviceBirth(id: string): void {
    const view = this.#ctx.device(id);
    if (!view) return;
    const latest = this.#ctx.latest(id);
    const def = defineDevice(view.config, latest, this.#aliases, this.#defs.get(id));
    this.#defs.set(id, def);
    const now = this.#ctx.clock.now();
    if (this.#publish('DBIRTH', id, { timestamp: now, metrics: birthMetrics(def, latest, now) })) {
      this.#born.add(id);
      this.#fwd!.born(id);
    }
  }

  #deviceDeath(id: string): void {
    // what the device delivered before it went goes out before its death
    // (not sent: they stay pending, and their batch goes to the buffer)
    const pending = this.#pending.get(id);
    if (pending && pending.length > 0 && !this.#fwd!.busy && this.#sendData(id, pending, false)) this.#pending.set(id, []);
    this.#born.delete(id);
    this.#publish('DDEATH', id, { timestamp: this.#ctx.clock.now() });
  }

  // ------------------------------------------------------------ data

  #sendData(device: string, readings: Reading[], historical: boolean, done?: (err?: Error) => void): boolean {
    let def = this.#defs.get(device)!;
    const metrics: UMetric[] = [];
    for (const r of readings) {
      let m = def.byName.get(r.tag);
      if (!m || retyped(def, m, r)) {
        // a tag the DBIRTH did not have (a device without a tag list found a new key), or an untyped tag
        // born String before its first value showed a number or a boolean: born again with it
        this.#deviceBirth(device);
        def = this.#defs.get(device)!;
        m = def.byName.get(r.tag);
        if (!m) continue;
      }
      metrics.push(dataMetric(m, r, historical));
    }
    if (metrics.length === 0) {
      done?.();
      return true;
    }
    return this.#publish('DDATA', device, { timestamp: this.#ctx.clock.now(), metrics }, done);
  }

  #replay(device: string, readings: Reading[], historical: boolean, done: (ok: boolean) => void): 'sent' | 'wait' | 'later' | 'drop' {
    if (!this.#born.has(device)) return this.#ctx.device(device) ? 'wait' : 'drop';
    if (!this.#sendData(device, readings, historical, (err) => done(!err))) return 'later';
    if (historical) this.counters.historical_batches++;
    return 'sent';
  }

  #dropped(readings: number, device: string, why: string): void {
    this.counters.dropped_readings += readings;
    if (this.#oddities.take()) this.#oddities.warn({ device, readings, dropped_readings: this.counters.dropped_readings }, `sparkplug readings dropped: ${why}`);
  }

  #publishNodeData(): void {
    if (!this.#ready) return;
    // one reading of the clock: the payload and its metrics carry the same moment
    const now = this.#ctx.clock.now();
    const metrics = this.#node.changed(now);
    if (metrics.length > 0) this.#publish('NDATA', undefined, { timestamp: now, metrics });
  }

  /** every message but NDEATH carries the next seq (0–255, wrapping; NBIRTH 0); data goes without datatypes */
  #publish(verb: string, device: string | undefined, payload: UPayload, done?: (err?: Error) => void): boolean {
    payload.seq = verb === 'NBIRTH' ? 0 : this.#seq;
    const topic = `${this.#topic}/${verb}/${this.#ctx.config().sparkplug.edge_node_id}${device !== undefined ? `/${device}` : ''}`;
    const bytes = verb === 'DDATA' || verb === 'NDATA' ? encodeData(payload) : encode(payload);
    const sent = this.#conn!.publish(topic, bytes, done);
    if (sent) this.#seq = (payload.seq + 1) % 256;
    return sent;
  }

  // ------------------------------------------------------------ commands and STATE

  #message(topic: string, payload: Buffer): void {
    if (this.#primary !== undefined && topic === `spBv1.0/STATE/${this.#primary}`) return this.#state(payload);
    const parts = topic.split('/');
    const verb = parts[2];
    let decoded: UPayload;
    // a command may leave the datatype out (as data messages should): the birth's one applies
    const def = verb === 'DCMD' && parts[4] !== undefined ? this.#defs.get(parts[4]) : undefined;
    try {
      decoded = decode(payload, (m) => (m.name != null ? def?.byName.get(m.name) : m.alias !== undefined ? def?.byAlias.get(m.alias) : undefined)?.type);
    } catch (err) {
      return this.#refuse(topic, `not a Sparkplug B payload: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (verb === 'NCMD') return this.#nodeCommand(decoded);
    if (verb === 'DCMD' && parts[4] !== undefined) this.#deviceCommand(parts[4], decoded);
  }

  #nodeCommand(p: UPayload): void {
    for (const m of p.metrics ?? []) {
      if (m.name === REBIRTH && m.value === true) {
        this.#log.info('sparkplug rebirth requested');
        if (this.#conn!.connected && this.#hostOnline) this.#birth();
      } else {
        this.#refuse(`NCMD ${m.name ?? `alias ${String(m.alias)}`}`, 'the edge node has no such writable metric');
      }
    }
  }

  #deviceCommand(device: string, p: UPayload): void {
    const def = this.#defs.get(device);
    for (const m of p.metrics ?? []) {
      const alias = toNumber(m.alias);
      const tag = m.name ?? (alias !== undefined ? def?.byAlias.get(alias)?.name : undefined);
      if (tag === undefined) {
        this.#refuse(`DCMD ${device}`, `unknown metric ${m.name ?? `alias ${String(alias)}`}`);
        continue;
      }
      this.#ctx.write(device, tag, commandValue(m)).catch((err: unknown) => {
        this.counters.refused_commands++;
        this.#log.debug({ device, tag, err: err instanceof Error ? err.message : String(err) }, 'sparkplug command refused');
      });
    }
  }

  #refuse(what: string, why: string): void {
    this.counters.refused_commands++;
    if (this.#refusals.take()) this.#refusals.warn({ command: what, err: why, refused_commands: this.counters.refused_commands }, 'sparkplug command refused');
  }

  /** Sparkplug 3.0 STATE: JSON {"online":bool,"timestamp":ms}; one older than the latest online one is stale */
  #state(payload: Buffer): void {
    let online: unknown, ts: unknown;
    try {
      ({ online, timestamp: ts } = JSON.parse(payload.toString('utf8')) as { online?: unknown; timestamp?: unknown });
    } catch {
      online = undefined;
    }
    if (typeof online !== 'boolean' || typeof ts !== 'number') {
      if (payload.length > 0 && this.#oddities.take()) this.#oddities.warn({ payload: payload.toString('utf8').slice(0, 60) }, 'sparkplug STATE ignored: expected {"online":true|false,"timestamp":<ms>} (Sparkplug 3.0)');
      return;
    }
    if (this.#lastOnlineTs !== undefined && ts < this.#lastOnlineTs) return;
    if (online) {
      this.#lastOnlineTs = ts;
      if (this.#hostOnline) return;
      this.#hostOnline = true;
      this.#log.info({ primary_host_id: this.#primary }, 'sparkplug primary host online');
      if (this.#conn!.connected) this.#birth();
    } else {
      this.#hostOnline = false;
      if (!this.#ready) return;
      this.#log.warn({ primary_host_id: this.#primary }, 'sparkplug primary host offline: NDEATH, and a new session once it is back');
      this.#offline();
      void this.#conn!.restart();
    }
  }
}

/**
 * The connection settings: sparkplug.url, else mqtt's broker; credentials
 * and TLS are mqtt's unless sparkplug names its own or another broker.
 */
/** resolvedMqttUrl: the JSON publisher's URL, the embedded broker's real one included */
export function sparkplugSettings(config: ResolvedConfig, resolvedMqttUrl: string): MqttSettings {
  const sp = config.sparkplug;
  const same = sp.url === undefined || sp.url === config.mqtt.url;
  const url = same ? (config.mqtt.url === 'embedded' ? resolvedMqttUrl : config.mqtt.url) : sp.url!;
  if (url === 'embedded') throw new Error('sparkplug.url: "embedded" needs mqtt.url "embedded" too (the embedded broker is started for mqtt)');
  const { username: _u, password: _p, tls: _t, ...mqtt } = config.mqtt;
  const settings: MqttSettings = { ...mqtt, url, client_id: sp.client_id ?? `edgegate-${config.gateway.id}-spb` };
  const username = sp.username ?? (same ? config.mqtt.username : undefined);
  const password = sp.password ?? (same && sp.username === undefined ? config.mqtt.password : undefined);
  const tls = sp.tls ?? (same ? config.mqtt.tls : undefined);
  if (username !== undefined) settings.username = username;
  if (password !== undefined) settings.password = password;
  if (tls !== undefined) settings.tls = tls;
  return settings;
}
