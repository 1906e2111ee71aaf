// The seam between the core and the consumers of its readings (Home
// Assistant discovery, the Sparkplug B edge node, the HTTP page). The core
// fans every reading, batch, device status and reload out to each output;
// an output owns its connection, buffer and retry, and never blocks the core:
// its hooks are synchronous, cheap, and their errors stay in the output.
import type { DeviceConfig, ResolvedConfig } from '../../config/schema.js';
import type { BufferStats } from '../buffer/types.js';
import type { DeviceStatus } from '../device.js';
import type { Health } from '../health.js';
import type { Batch, Clock, DeviceCounters, Logger, Reading, WriteOutcome } from '../types.js';

/** one device as outputs see it */
export interface DeviceView {
  readonly id: string;
  readonly config: DeviceConfig;
  readonly status: DeviceStatus;
  readonly counters: DeviceCounters;
}

/** what the JSON publisher to the main broker is doing */
export interface BrokerView {
  /** the resolved URL (the embedded broker's real one), without credentials */
  url: string;
  connected: boolean;
  buffer: BufferStats & { mode: string };
  /** batches waiting (not acknowledged), in flight included */
  queued_batches: number;
  inflight: number;
  published_batches: number;
  published_readings: number;
}

/** the read side of the core, and its write path, as every output gets it */
export interface GatewayContext {
  readonly log: Logger;
  readonly clock: Clock;
  readonly version: string;
  /** ms since the epoch when the gateway started */
  readonly startedAt: number;
  /** the configuration in force (a reload replaces it before outputs hear of it) */
  config(): ResolvedConfig;
  /** the running devices, in config order */
  devices(): DeviceView[];
  device(id: string): DeviceView | undefined;
  /** the latest reading of each tag of a device that left its tag pipeline, by tag name */
  latest(device: string): ReadonlyMap<string, Reading> | undefined;
  broker(): BrokerView;
  /** the P/stats payload the core publishes, computed now (event-loop delay not reset) */
  stats(): GatewayStats;
  /** the systemd watchdog's own check */
  health(): Health;
  /**
   * a write to a device's tag by its MQTT name, through the same checks as
   * P/devices/<d>/set/<t> (writable, type, min/max, pending bound); rejects
   * with a readable error
   */
  write(device: string, tag: string, value: unknown): Promise<WriteOutcome | void>;
  /** publish every tag's latest value again on its retained topic P/devices/<d>/tags/<t> */
  republishTagStates(): void;
}

export interface GatewayStats {
  ts: number;
  uptime_s: number;
  /** readings read from all devices per second since the previous P/stats */
  readings_per_s: number;
  rss_bytes: number;
  event_loop_delay_p99_ms: number;
  buffer: BufferStats;
  devices: Record<string, { state: string } & DeviceCounters>;
}

export interface ReloadChanges {
  restarted: string[];
  added: string[];
  removed: string[];
  kept: string[];
}

/**
 * A consumer of the gateway's readings. The constructor assigns; start()
 * opens connections; stop() closes them and is awaited at shutdown. Hooks are
 * called synchronously on the hot path (reading) or per batch: they must not
 * await, and should not allocate much per reading.
 */
export interface Output {
  /** for logs: "homeassistant", "sparkplug", "http" */
  readonly name: string;
  start(ctx: GatewayContext): Promise<void>;
  stop(): Promise<void>;
  /**
   * a reading left a device's tag pipeline (after filters). The order with
   * batch() is a contract: a device's reading is announced after every batch
   * that does not carry it was closed (a batch closed because this reading
   * would overflow max_bytes comes first) and before the batch that carries it
   * is closed. So a batch b carries exactly the b.readings readings of its
   * device announced since that device's previous batch, in order.
   */
  reading?(device: string, r: Reading): void;
  /** a device's batch was closed (the JSON output sends it); see reading() for the order */
  batch?(b: Batch): void;
  /** a device's status changed (also at add, and "disconnected" at removal and stop) */
  status?(device: string, s: DeviceStatus): void;
  /** after a reload took effect: devices restarted, added, removed; ctx.config() is the new one */
  reload?(changes: ReloadChanges, prev: ResolvedConfig): Promise<void> | void;
}
