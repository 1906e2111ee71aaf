// The edge node's own MQTT connection (MQTT.js 5): clean start, session
// expiry 0, a last will that is the NDEATH of this very connection. MQTT.js
// builds a new CONNECT from client.options on every reconnect and emits
// 'reconnect' just before, so that is where the next bdSeq and its will go in.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { baseClientOptions, type MqttSettings } from '../../mqtt-options.js';
import { RateLimitedLog, safeUrl } from '../../logger.js';
import type { Clock, Logger } from '../../types.js';
import type { BdSeqStore } from './bdseq.js';
import { encode } from './payload.js';

// exponential, as the JSON publisher's: every attempt also stores the next bdSeq (a synced write)
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30_000;
const ERROR_LOG_MS = 60_000;
/** how long an NDEATH we publish ourselves may take before the connection is closed anyway */
const NDEATH_WAIT_MS = 2000;

export interface EdgeConnectionOptions {
  settings: MqttSettings;
  /** spBv1.0/<group>/NDEATH/<edge_node> */
  deathTopic: string;
  /** subscribed (QoS 1) on every connect, before online() is called */
  subscriptions: string[];
  bdSeq: BdSeqStore;
  clock: Clock;
  log: Logger;
  /** connected and subscribed: a new Sparkplug session may begin */
  online(): void;
  /** the connection is gone (the will is the NDEATH) */
  offline(): void;
  message(topic: string, payload: Buffer): void;
}

export class EdgeConnection {
  #client: MqttClient | undefined;
  #bdSeq = 0;
  #up = false;
  #stopped = false;
  readonly #o: EdgeConnectionOptions;

  constructor(opts: EdgeConnectionOptions) {
    this.#o = opts;
  }

  /** the bdSeq of the current (or coming) CONNECT: NBIRTH carries it */
  get bdSeq(): number { return this.#bdSeq; }
  get connected(): boolean { return this.#up && this.#client?.connected === true; }

  start(): void {
    const o = this.#o;
    this.#bdSeq = o.bdSeq.take();
    const errors = new RateLimitedLog(o.log, ERROR_LOG_MS, () => o.clock.monotonic());
    const options: IClientOptions = {
      ...baseClientOptions(o.settings, RECONNECT_MIN_MS, 'sparkplug'),
      protocolVersion: 5, protocolId: 'MQTT', clean: true,
      properties: { sessionExpiryInterval: 0 },
      will: this.#will(),
    };
    const client = mqtt.connect(o.settings.url, options);
    this.#client = client;
    client.on('reconnect', () => {
      this.#bdSeq = o.bdSeq.take();
      client.options.will = this.#will();
      client.options.reconnectPeriod = Math.min(RECONNECT_MAX_MS, (client.options.reconnectPeriod ?? RECONNECT_MIN_MS) * 2);
    });
    client.on('connect', () => {
      client.options.reconnectPeriod = RECONNECT_MIN_MS;
      client.subscribe(o.subscriptions, { qos: 1 }, (err) => {
        if (err) {
          o.log.warn({ err: err.message }, 'sparkplug subscriptions refused; reconnecting');
          client.stream.destroy();
          return;
        }
        this.#up = true;
        o.log.info({ url: safeUrl(o.settings.url), bd_seq: this.#bdSeq }, 'sparkplug connected');
        o.online();
      });
    });
    client.on('close', () => {
      if (!this.#up) return;
      this.#up = false;
      o.log.warn({ url: safeUrl(o.settings.url) }, 'sparkplug connection lost');
      o.offline();
    });
    // a refused CONNECT (wrong credentials, not authorized) must show at the default level; once a minute is enough
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      // a broker without MQTT 5 (the embedded one, older brokers) refuses the version: Sparkplug 3.0
      // allows MQTT 3.1.1 with a clean session, which is what the next attempt asks for
      if ((code === 1 || code === 132) && client.options.protocolVersion === 5) {
        client.options.protocolVersion = 4;
        delete client.options.properties;
        o.log.info({ url: safeUrl(o.settings.url) }, 'the broker does not speak MQTT 5: sparkplug goes on with MQTT 3.1.1 (clean session)');
        return;
      }
      const fields = { url: safeUrl(o.settings.url), err: err.message, code };
      if (errors.take()) errors.warn(fields, 'sparkplug connection error');
      else o.log.debug(fields, 'sparkplug connection error');
    });
    client.on('message', (topic, payload) => o.message(topic, payload));
  }

  /** QoS 0 and not retained, as Sparkplug wants every message but NDEATH; false when not connected */
  publish(topic: string, payload: Buffer, done?: (err?: Error) => void): boolean {
    const client = this.#client;
    if (!client || !this.connected) return false;
    client.publish(topic, payload, { qos: 0, retain: false }, done);
    return true;
  }

  /**
   * The primary host went offline: NDEATH, disconnect, and connect again with
   * the next bdSeq (the session starts over and waits for the host).
   */
  async restart(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    await this.#goodbye(client);
    // stopped or replaced meanwhile: this client stays closed (it would reconnect forever, a bdSeq each time)
    if (this.#stopped || this.#client !== client) return;
    client.reconnect();
  }

  /** an intentional disconnect publishes its NDEATH first (the will is only for a death without goodbye) */
  async stop(): Promise<void> {
    const client = this.#client;
    this.#stopped = true;
    this.#client = undefined;
    if (!client) return;
    await this.#goodbye(client);
  }

  async #goodbye(client: MqttClient): Promise<void> {
    const wasUp = this.#up && client.connected;
    this.#up = false;
    if (wasUp) {
      this.#o.offline();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, NDEATH_WAIT_MS);
        client.publish(this.#o.deathTopic, this.#death(), { qos: 1, retain: false }, () => { clearTimeout(t); resolve(); });
      });
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => client.end(true, {}, () => resolve()), NDEATH_WAIT_MS);
      // the will is not sent on a normal DISCONNECT: the NDEATH above stands in for it
      client.end(false, {}, () => { clearTimeout(t); resolve(); });
    });
  }

  #death(): Buffer {
    const now = this.#o.clock.now();
    return encode({ timestamp: now, metrics: [{ name: 'bdSeq', type: 'Int64', value: this.#bdSeq, timestamp: now }] });
  }

  #will(): NonNullable<IClientOptions['will']> {
    return { topic: this.#o.deathTopic, payload: this.#death(), qos: 1, retain: false };
  }
}
