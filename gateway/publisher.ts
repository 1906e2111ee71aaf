// The gateway's one MQTT connection: availability (online status, retained
// last will), retained topics, subscriptions, and the batch pump. Batches wait
// in a BatchBuffer (the disk buffer, or the bounded memory queue) and leave it
// only when delivered: on PUBACK at QoS 1, once written to the socket at QoS 0.
//
// In-flight batches across reconnects. MQTT.js 5.16 stores every QoS 1 publish
// in its outgoing store before writing it and keeps the callback until PUBACK.
// When the connection drops (reconnectPeriod > 0) it neither errors those
// callbacks nor clears the store, clean session or not; after the next CONNACK
// it resends the stored publishes in their original order and only then emits
// 'connect'. So QoS 1 batches are never resent here (doing both would
// duplicate and reorder): they stay in flight through the outage, their
// callbacks fire after the resend, and the pump resumes on 'connect', behind
// them. They stay in the buffer meanwhile too (handed out, not acknowledged),
// so the disk buffer writes them when the outage begins and keeps them across
// a stop; a restart sends them again (a duplicate, never a loss).
// The cases MQTT.js leaves to us:
// - a publish it deferred during that resend is errored at a close without
//   being stored: always the newest in flight, so it returns to the buffer head;
// - a QoS 0 "written" callback never fires once the socket is gone: on close
//   those batches return to the buffer head (a duplicate is possible, a loss not);
// - a PUBACK with an error reason code (MQTT 5) is a refusal that no retry can
//   fix: the batch is dropped, counted and warned about.
// A backlog found at a connect is replayed after a random delay and at a
// pace (replay.ts); the pump only asks it whether the next batch may go.
import { connect, ErrorWithReasonCode, type IClientOptions, type MqttClient } from 'mqtt';
import type { ResolvedConfig } from '../config/schema.js';
import { MemoryBuffer } from './buffer/memory-buffer.js';
import type { BatchBuffer, BufferedBatch } from './buffer/types.js';
import { systemClock } from './clock.js';
import { safeUrl } from './logger.js';
import { baseClientOptions } from './mqtt-options.js';
import { BacklogReplay } from './replay.js';
import type { Batch, Clock, Logger } from './types.js';

export interface MessageProps { responseTopic?: string; correlationData?: Buffer; retain?: boolean }

export interface PublisherOptions {
  mqtt: ResolvedConfig['mqtt'] & { url: string };
  statusTopic: string;
  onlinePayload: () => string;
  offlinePayload: string;
  log: Logger;
  /** where batches wait; default: a memory queue of maxQueuedBytes */
  buffer?: BatchBuffer;
  maxQueuedBytes: number;
  subscriptions?: string[];
  onMessage?: (topic: string, payload: Buffer, props: MessageProps) => void;
  onConnect?: () => void;
  /** reconnect delay, doubled after each failed attempt (default 1 s up to 10 s) */
  reconnect?: { minMs: number; maxMs: number };
  /** a backlog found at a connect: readings/s (0 unlimited) and the most random delay before it goes; default 0, 0 */
  replay?: { rate: number; jitterMs: number };
  /** for the replay's delay and pace (default: the system clock and Math.random) */
  clock?: Clock;
  random?: () => number;
}

export interface PublisherStats {
  connected: boolean; queued_batches: number; queued_bytes: number; inflight: number;
  dropped_batches: number; published_batches: number; published_readings: number;
}

/** a batch in flight; `sent` tells the current callback from a stale one */
interface Entry { item: BufferedBatch; sent: number; failed: boolean }

/** fire-and-forget publishes outstanding at most; more are dropped */
const MAX_LOOSE_INFLIGHT = 1000;

export class MqttPublisher {
  readonly #o: PublisherOptions;
  #client: MqttClient | undefined;
  #connected = false;
  #stopping = false;
  #window = 1;
  readonly #buffer: BatchBuffer;
  readonly #replay: BacklogReplay;
  #inflight: Entry[] = [];
  #sends = 0;
  #retained = new Map<string, string>();
  #retainedDirty = new Set<string>(); // coalesces updates: only the latest value is sent
  #retainedInflight = 0;
  #looseInflight = 0;
  #pumping = false;
  #outage = false;
  #idleWaiters = new Set<() => void>();
  #published = 0;
  #readings = 0;
  #dropped = 0;

  constructor(opts: PublisherOptions) {
    this.#o = opts;
    this.#buffer = opts.buffer ?? new MemoryBuffer({ maxBytes: opts.maxQueuedBytes, log: opts.log });
    this.#buffer.onReadable = () => this.#pump();
    this.#replay = new BacklogReplay({
      rate: opts.replay?.rate ?? 0, jitterMs: opts.replay?.jitterMs ?? 0, clock: opts.clock ?? systemClock,
      random: opts.random ?? Math.random, log: opts.log, resume: () => this.#pump(),
    });
  }

  get connected(): boolean { return this.#connected; }
  get publishedBatches(): number { return this.#published; }
  /** batches the buffer handed out to be sent, resends included: the health check's sign of a moving pump */
  get handedOutBatches(): number { return this.#sends; }
  /** queued batches wait on the replay's random delay or pace, not on a fault */
  get replayWaiting(): boolean { return this.#replay.waiting; }
  get publishedReadings(): number { return this.#readings; }
  /** refused by the broker, or dropped by the full buffer */
  get droppedBatches(): number { return this.#dropped + this.#buffer.stats().dropped_batches; }
  get queuedBatches(): number { return this.#buffer.queued; }
  get queuedBytes(): number { return this.#buffer.stats().bytes; }
  get inflight(): number { return this.#inflight.length; }

  stats(): PublisherStats {
    return {
      connected: this.#connected, queued_batches: this.queuedBatches, queued_bytes: this.queuedBytes, inflight: this.inflight,
      dropped_batches: this.droppedBatches, published_batches: this.#published, published_readings: this.#readings,
    };
  }

  start(): void {
    if (this.#client) return;
    const { mqtt: m, log } = this.#o;
    const backoff = this.#o.reconnect ?? { minMs: 1000, maxMs: 10_000 };
    const options: IClientOptions = {
      ...baseClientOptions(m, backoff.minMs),
      will: { topic: this.#o.statusTopic, payload: Buffer.from(this.#o.offlinePayload), qos: 1, retain: true },
    };
    const where = safeUrl(m.url);
    log.info({ url: where, client_id: m.client_id, protocol_version: m.protocol_version }, 'mqtt connecting');
    const client = connect(m.url, options);
    this.#client = client;

    client.on('connect', (connack) => {
      client.options.reconnectPeriod = backoff.minMs;
      this.#connected = true;
      this.#outage = false;
      this.#buffer.setOnline(true);
      // never more in flight than the broker takes (MQTT 5 receive maximum; Mosquitto says 20)
      this.#window = Math.min(m.max_inflight, connack.properties?.receiveMaximum ?? Infinity);
      this.#replay.connected(this.#buffer.queued);
      log.info({ url: where, queued_batches: this.queuedBatches, inflight: this.inflight }, 'mqtt connected');
      client.publish(this.#o.statusTopic, this.#o.onlinePayload(), { qos: 1, retain: true });
      for (const topic of this.#retained.keys()) this.#retainedDirty.add(topic);
      const subs = this.#o.subscriptions ?? [];
      if (subs.length > 0) {
        // MQTT 5 retain-as-published: a retained write published while we are connected keeps its flag, so it is refused too
        client.subscribe(subs, { qos: 1, ...(m.protocol_version === 5 ? { rap: true } : {}) }, (err, granted) => {
          if (err) log.warn({ err: err.message }, 'mqtt subscribe failed');
          for (const g of granted ?? []) if (g.qos >= 128) log.warn({ topic: g.topic }, 'mqtt subscription refused by the broker');
        });
      }
      try { this.#o.onConnect?.(); } catch (err) { log.error({ err: errText(err) }, 'onConnect handler failed'); }
      this.#pump();
    });
    client.on('close', () => {
      if (this.#connected && !this.#stopping) log.warn({ url: where, inflight: this.inflight, queued_batches: this.queuedBatches }, 'mqtt connection lost');
      this.#connected = false;
      this.#replay.stop();
      // after stop() the buffer may already serve the next connection
      if (!this.#stopping) this.#buffer.setOnline(false);
      if (m.qos === 0) this.#reclaim(() => true);
    });
    client.on('reconnect', () => {
      client.options.reconnectPeriod = Math.min(backoff.maxMs, (client.options.reconnectPeriod ?? backoff.minMs) * 2);
    });
    client.on('error', (err) => {
      // every attempt fails while the broker is away: warn once per outage
      const first = !this.#outage;
      this.#outage = !this.#connected;
      log[first ? 'warn' : 'debug']({ url: where, err: err.message, code: (err as { code?: unknown }).code }, 'mqtt error');
    });
    client.on('message', (topic, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {};
      const props: MessageProps = {
        ...(responseTopic !== undefined && { responseTopic }), ...(correlationData !== undefined && { correlationData }), ...(packet.retain && { retain: true }),
      };
      const failed = (err: unknown) => log.error({ err: errText(err), topic }, 'message handler failed');
      try {
        const r: unknown = this.#o.onMessage?.(topic, payload, props);
        if (r instanceof Promise) r.catch(failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  publishBatch(b: Batch): void {
    this.#buffer.push(b);
    this.#replay.arrived(b.readings);
    this.#pump();
  }

  setRetained(topic: string, payload: string): void {
    this.#retained.set(topic, payload);
    this.#retainedDirty.add(topic);
    this.#pump();
  }

  publish(topic: string, payload: string, opts: { qos?: 0 | 1; retain?: boolean; properties?: { correlationData?: Buffer } } = {}): void {
    const client = this.#client;
    if (!client || !this.#connected || this.#stopping || this.#looseInflight >= MAX_LOOSE_INFLIGHT) {
      this.#o.log.debug({ topic, connected: this.#connected }, 'message dropped: not connected or too many outstanding');
      return;
    }
    this.#looseInflight++;
    client.publish(topic, payload, { qos: opts.qos ?? 0, retain: opts.retain ?? false, properties: opts.properties ?? {} }, (err) => {
      this.#looseInflight--;
      if (err) this.#o.log.debug({ topic, err: err.message }, 'message not delivered');
    });
  }

  /** true once the queue and the in-flight window are empty; false at timeout */
  drain(timeoutMs: number): Promise<boolean> {
    // a stop is no time to pace a catch-up: what the broker takes now need not wait on disk, or be lost from memory
    this.#replay.stop();
    this.#pump();
    if (this.#idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => { clearTimeout(timer); this.#idleWaiters.delete(onIdle); resolve(ok); };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(onIdle);
    });
  }

  /**
   * after stop(): the batches still in flight go back to the buffer, for the
   * next connection to send (again: a duplicate is possible, a loss not)
   */
  handBack(): number {
    const n = this.#inflight.length;
    this.#reclaim(() => true);
    return n;
  }

  /** publishes the online status again (its payload changed) */
  refreshStatus(): void {
    if (this.#connected && !this.#stopping) this.#client?.publish(this.#o.statusTopic, this.#o.onlinePayload(), { qos: 1, retain: true });
  }

  /** the batches not acknowledged that are held in memory, oldest first */
  unsent(): Batch[] {
    return [...this.#inflight.map((e) => e.item.batch), ...this.#buffer.inMemory()];
  }

  async stop(): Promise<void> {
    const client = this.#client;
    if (!client || this.#stopping) return;
    this.#stopping = true;
    this.#replay.stop();
    if (this.#connected) {
      await bounded(1000, (done) => client.publish(this.#o.statusTopic, this.#o.offlinePayload, { qos: 1, retain: true }, () => done()));
    }
    // a graceful DISCONNECT, so the broker drops the will; forced when offline or stuck
    const graceful = this.#connected && await bounded(2000, (done) => client.end(false, {}, () => done()));
    if (!graceful) await bounded(1000, (done) => client.end(true, {}, () => done()));
    this.#connected = false;
    this.#o.log.info({ queued_batches: this.queuedBatches, inflight: this.inflight }, 'mqtt stopped');
  }

  #pump(): void {
    const client = this.#client;
    // a QoS 0 callback can run inside publish(): the outer loop carries on
    if (!client || !this.#connected || this.#stopping || this.#pumping) return;
    this.#pumping = true;
    try {
      for (const topic of this.#retainedDirty) {
        if (this.#retainedInflight >= this.#window) break;
        this.#retainedDirty.delete(topic);
        this.#retainedInflight++;
        client.publish(topic, this.#retained.get(topic) ?? '', { qos: 1, retain: true }, () => {
          this.#retainedInflight--;
          this.#pump();
        });
      }
      const qos = this.#o.mqtt.qos;
      while (this.#inflight.length < this.#window && this.#connected && this.#replay.mayGo()) {
        const item = this.#buffer.next();
        if (!item) {
          if (this.#replay.active && this.#buffer.queued === 0) this.#replay.caughtUp();
          break;
        }
        this.#replay.sent(item.batch.readings);
        const sent = ++this.#sends;
        const entry: Entry = { item, sent, failed: false };
        this.#inflight.push(entry);
        client.publish(item.batch.topic, item.batch.payload, { qos }, (err) => {
          if (entry.sent === sent) this.#settled(entry, err);
        });
      }
    } finally {
      this.#pumping = false;
    }
  }

  #settled(entry: Entry, err: Error | undefined): void {
    const i = this.#inflight.indexOf(entry);
    if (i < 0) return;
    if (this.#stopping && err) return; // stays unsent
    if (err && !(err instanceof ErrorWithReasonCode)) {
      entry.failed = true;
      setImmediate(() => this.#reclaim((e) => e.failed));
      return;
    }
    this.#inflight.splice(i, 1);
    this.#buffer.ack(entry.item);
    if (err) {
      this.#dropped++;
      this.#o.log.warn({ device: entry.item.batch.device, seq: entry.item.batch.seq, err: err.message }, 'batch refused by the broker: dropped');
    } else {
      this.#published++;
      this.#readings += entry.item.batch.readings;
    }
    this.#pump();
    if (this.#idle()) for (const w of [...this.#idleWaiters]) w();
  }

  /** moves the matching in-flight entries back to the head of the buffer, in order */
  #reclaim(match: (e: Entry) => boolean): void {
    const back = this.#inflight.filter(match);
    if (back.length === 0) return;
    this.#inflight = this.#inflight.filter((e) => !match(e));
    for (const e of back) e.sent = 0;
    this.#buffer.requeue(back.map((e) => e.item));
    this.#pump();
  }

  #idle(): boolean {
    return this.#inflight.length === 0 && this.#buffer.size === 0;
  }
}

/** runs fn and resolves true when it calls done, false after ms */
/** resolves true when fn calls done within ms, else false */
export function bounded(ms: number, fn: (done: () => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    fn(() => { clearTimeout(timer); resolve(true); });
  });
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
