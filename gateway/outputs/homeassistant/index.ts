// Home Assistant discovery (SPEC §4a) as an output: its own MQTT connection
// publishes one retained config per device and one for the gateway; the
// states are the core's retained tag topics, the commands its set topics.
// It needs no reading on the hot path: only start, reload and HA's birth.
import { connect, type MqttClient } from 'mqtt';
import type { ResolvedConfig } from '../../../config/schema.js';
import { RateLimitedLog, safeUrl } from '../../logger.js';
import { baseClientOptions } from '../../mqtt-options.js';
import { bounded } from '../../publisher.js';
import type { TimerHandle } from '../../types.js';
import type { GatewayContext, Output } from '../output.js';
import { discoveryConfigs } from './discovery.js';
import { scanOwnConfigs } from './scan.js';

export interface HomeAssistantOptions {
  /** how long retained configs under the prefix are read at start to find stale ones (default 5 s, as zigbee2mqtt) */
  scanMs?: number;
  /** the wait after HA's birth before configs and states go out again (default: 5 s plus up to 10 s at random) */
  birthDelayMs?: () => number;
  reconnectMs?: number;
}

const SCAN_MS = 5000;
const BIRTH_DELAY_MS = 5000;
/** many gateways on one broker must not all answer HA's restart in the same instant */
const BIRTH_JITTER_MS = 10_000;
const ERROR_LOG_INTERVAL_MS = 60_000;

export class HomeAssistantOutput implements Output {
  readonly name = 'homeassistant';
  private ctx: GatewayContext | undefined;
  private client: MqttClient | undefined;
  private ha: ResolvedConfig['homeassistant'] | undefined;
  /** what is retained now, by topic, as this run published it */
  private published = new Map<string, string>();
  private scanned = false;
  /** aborted by stop(): a scan in progress ends with it */
  private stopping = new AbortController();
  private birthTimer: TimerHandle | undefined;
  private errors: RateLimitedLog | undefined;

  constructor(private readonly opts: HomeAssistantOptions = {}) {}

  async start(ctx: GatewayContext): Promise<void> {
    this.ctx = ctx;
    this.stopping = new AbortController();
    const config = ctx.config();
    // the section is read once: a change of it takes effect after a restart (the core warns)
    this.ha = config.homeassistant;
    const url = config.mqtt.url === 'embedded' ? ctx.broker().url : config.mqtt.url;
    const options = baseClientOptions({ ...config.mqtt, url, client_id: `${config.mqtt.client_id}-ha` }, this.opts.reconnectMs ?? 2000);
    const log = ctx.log.child({ component: 'homeassistant' });
    this.errors = new RateLimitedLog(log, ERROR_LOG_INTERVAL_MS, () => ctx.clock.monotonic());
    const client = connect(url, options);
    this.client = client;
    client.on('connect', () => this.connected());
    client.on('message', (topic, payload) => this.message(topic, payload));
    client.on('error', (err) => {
      if (this.errors?.take()) this.errors.warn({ url: safeUrl(url), err: err.message }, 'home assistant discovery: mqtt error');
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.birthTimer) this.ctx?.clock.clearTimeout(this.birthTimer);
    this.birthTimer = undefined;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    // the configs stay retained: with the gateway's status offline HA shows the entities unavailable
    const graceful = client.connected && await bounded(2000, (done) => client.end(false, {}, done));
    if (!graceful) await bounded(1000, (done) => client.end(true, {}, done));
  }

  /** a reload: changed configs go out again, those of removed devices are cleared */
  reload(): void {
    const next = this.configs();
    for (const [topic, payload] of next) if (this.published.get(topic) !== payload) this.publish(topic, payload);
    for (const topic of this.published.keys()) if (!next.has(topic)) this.publish(topic, '');
    this.published = next;
  }

  private configs(): Map<string, string> {
    const config = this.ctx!.config();
    return discoveryConfigs({
      gatewayId: config.gateway.id, prefix: config.mqtt.topic_prefix, discoveryPrefix: this.ha!.discovery_prefix, version: this.ctx!.version,
    }, config.devices);
  }

  private publish(topic: string, payload: string): void {
    this.client?.publish(topic, payload, { qos: 1, retain: true });
  }

  /** every connect: the configs again (a broker without persistence lost them), HA's status, and once per run the stale scan */
  private connected(): void {
    const client = this.client;
    if (!client) return;
    client.subscribe(this.ha!.status_topic, { qos: 1 }, (err) => {
      if (err && this.errors?.take()) this.errors.warn({ topic: this.ha!.status_topic, err: err.message }, 'home assistant discovery: subscribe failed');
    });
    this.published = this.configs();
    for (const [topic, payload] of this.published) this.publish(topic, payload);
    this.ctx!.log.info({ component: 'homeassistant', configs: this.published.size }, 'home assistant discovery published');
    if (this.scanned) return;
    this.scanned = true;
    void this.clearStale(client);
  }

  private async clearStale(client: MqttClient): Promise<void> {
    const gatewayId = this.ctx!.config().gateway.id;
    const signal = this.stopping.signal;
    try {
      const found = await scanOwnConfigs(client, this.ha!.discovery_prefix, gatewayId, this.opts.scanMs ?? SCAN_MS, { signal, clock: this.ctx!.clock });
      if (this.client !== client) return;
      // judged against what is configured now, after the wait: a reload meanwhile counts
      const stale = [...found].filter((t) => !this.published.has(t));
      for (const topic of stale) this.publish(topic, '');
      if (stale.length > 0) this.ctx!.log.info({ component: 'homeassistant', cleared: stale }, 'home assistant: configs of devices no longer configured cleared');
    } catch (err) {
      if (signal.aborted || this.client !== client) return;
      // the connection went during the scan: the next connect scans again
      this.scanned = false;
      if (this.errors?.take()) this.errors.warn({ err: err instanceof Error ? err.message : String(err) }, 'home assistant discovery: stale config scan failed');
    }
  }

  /** HA's birth: it restarted and forgot what it saw; configs and states again, after a jittered wait */
  private message(topic: string, payload: Buffer): void {
    if (topic !== this.ha?.status_topic || payload.toString().trim() !== 'online' || !this.ctx) return;
    const ctx = this.ctx;
    if (this.birthTimer) ctx.clock.clearTimeout(this.birthTimer);
    const delay = this.opts.birthDelayMs?.() ?? BIRTH_DELAY_MS + Math.random() * BIRTH_JITTER_MS;
    this.birthTimer = ctx.clock.setTimeout(() => {
      this.birthTimer = undefined;
      if (!this.client) return;
      for (const [t, p] of this.published) this.publish(t, p);
      ctx.republishTagStates();
      ctx.log.info({ component: 'homeassistant', configs: this.published.size }, 'home assistant restarted: discovery and states published again');
    }, delay);
  }
}
