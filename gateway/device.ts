// One device as a cooperative task: the driver runs under a supervisor loop
// (jittered backoff on failure, permanent errors stop it), and its readings go
// through the tag pipeline into the batcher. Nothing here awaits per reading.
import type { BatchSettings, DeviceConfig } from '../config/schema.js';
import { createDriver, type DriverDeps } from '../drivers/registry.js';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { fsProbe, waitForRetry, type PathProbe } from './device-path.js';
import { Batcher } from './batcher.js';
import { RateLimitedLog } from './logger.js';
import { TagPipeline } from './tags.js';
import {
  newCounters, type Batch, type Clock, type DeviceCounters, type DeviceState, type Driver,
  type DriverContext, type Logger, type Quality, type RawValue, type Reading, type WriteOutcome,
} from './types.js';
import { checkWrite } from './writes.js';

export interface DeviceStatus {
  state: DeviceState;
  since: number;
  error?: string;
}

export interface DeviceTaskOptions {
  config: DeviceConfig;
  gatewayId: string;
  topicPrefix: string;
  batchDefaults: BatchSettings;
  clock: Clock;
  log: Logger;
  nextSeq: () => number;
  onBatch: (b: Batch) => void;
  onStatus: (deviceId: string, status: DeviceStatus) => void;
  /** every reading that leaves the tag pipeline (for retained last values), in the batcher's onAdd order */
  onReading?: (deviceId: string, r: Reading) => void;
  driverDeps?: DriverDeps;
  backoff?: BackoffOptions;
  /** how the port file of a driver is watched while it is missing (a fake filesystem in tests) */
  pathProbe?: PathProbe;
  /** a created driver, for tests; else the registry makes one */
  driver?: Driver;
}

const PARSE_LOG_INTERVAL_MS = 10_000;
/**
 * writes handed to the driver and not finished yet: a slow line (a serial
 * device at 9,600 baud) queues writes behind each other, and a flood of them
 * must be refused, not held in memory for minutes
 */
export const MAX_PENDING_WRITES = 32;
/** a connection that stayed up this long ends a failure episode: backoff starts again at its first step */
const STABLE_CONNECTION_MS = 30_000;

export class DeviceTask {
  readonly id: string;
  readonly counters: DeviceCounters = newCounters();
  status: DeviceStatus;
  private readonly pipeline: TagPipeline;
  private readonly batcher: Batcher;
  private readonly abort = new AbortController();
  private readonly parseLog: RateLimitedLog;
  /** every line of the task and its driver names the device through this binding, so no call adds it again */
  private readonly log: Logger;
  private driver: Driver | undefined;
  private connectedSince: number | undefined;
  private loop: Promise<void> | undefined;
  private pendingWrites = 0;

  constructor(private readonly opts: DeviceTaskOptions) {
    const { config, clock } = opts;
    this.id = config.id;
    this.status = { state: 'connecting', since: clock.now() };
    this.driver = opts.driver;
    this.log = opts.log.child({ device: config.id });
    this.parseLog = new RateLimitedLog(this.log, PARSE_LOG_INTERVAL_MS, () => clock.monotonic());
    const onReading = opts.onReading;
    const deviceId = config.id;
    this.batcher = new Batcher({
      gatewayId: opts.gatewayId,
      deviceId: config.id,
      topic: `${opts.topicPrefix}/devices/${config.id}/data`,
      settings: { ...opts.batchDefaults, ...stripUndefined(config.batch ?? {}) },
      clock,
      nextSeq: opts.nextSeq,
      onBatch: opts.onBatch,
      // announced once the batch it goes into is settled: a batch closed because this
      // reading does not fit leaves without it, the batch it fills carries it (and its
      // retained tag value goes out with that batch)
      ...(onReading ? { onAdd: (r: Reading) => onReading(deviceId, r) } : {}),
      // an OPC UA device may list 10,000 tags: a cache smaller than that would be rebuilt on every pass
      knownTags: Object.keys(config.tags).length,
    });
    const batcher = this.batcher;
    const tags = config.tags as Record<string, import('../config/schema.js').TagConfig>;
    this.pipeline = new TagPipeline({
      tags,
      clock,
      counters: this.counters,
      passUnknown: Object.keys(tags).length === 0,
      out: (r) => batcher.add(r),
    });
  }

  start(): void {
    this.loop ??= this.supervise();
  }

  /** stops the driver, emits held-back values, flushes the open batch */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    this.pipeline.stop();
    this.batcher.stop();
  }

  get config(): DeviceConfig {
    return this.opts.config;
  }

  /** the largest write payload and device command this device takes */
  get maxWriteBytes(): number {
    return this.opts.config.max_write_bytes;
  }

  /** a write from MQTT: checked against the tag, then handed to the driver */
  async write(tagName: string, raw: unknown): Promise<WriteOutcome | void> {
    const found = this.pipeline.lookup(tagName);
    if (!found) throw new Error(`unknown tag "${tagName}" on device ${this.id}`);
    const checked = checkWrite(found.tag, raw);
    if (!checked.ok) throw new Error(checked.error);
    if (!this.driver?.write) throw new Error(`device ${this.id} does not support writes`);
    if (this.status.state !== 'connected' && this.status.state !== 'error') throw new Error(`device ${this.id} is ${this.status.state}`);
    if (this.pendingWrites >= MAX_PENDING_WRITES) {
      throw new Error(`device ${this.id} is busy: ${this.pendingWrites} writes are still waiting for it; try again later`);
    }
    this.pendingWrites++;
    try {
      return await this.driver.write(found.key, checked.value);
    } finally {
      this.pendingWrites--;
    }
  }

  private setStatus(state: DeviceState, error?: string): void {
    if (state === this.status.state && error === this.status.error) return;
    if (state === 'connected') this.connectedSince ??= this.opts.clock.monotonic();
    else if (state !== 'error') this.connectedSince = undefined;
    this.status = error === undefined ? { state, since: this.opts.clock.now() } : { state, since: this.opts.clock.now(), error };
    this.pipeline.setConnected(state === 'connected', this.driver?.reportsChangesOnly === true);
    this.opts.onStatus(this.id, this.status);
  }

  private context(): DriverContext {
    const pipeline = this.pipeline;
    const counters = this.counters;
    const log = this.log;
    return {
      deviceId: this.id,
      log,
      clock: this.opts.clock,
      signal: this.abort.signal,
      emit(key: string, value: RawValue, ts: number, quality: Quality = 'good') {
        pipeline.input(key, value, ts, quality);
      },
      setStatus: (state, error) => this.setStatus(state, error),
      parseError: (reason, sample) => {
        counters.parse_errors++;
        if (this.parseLog.take()) this.parseLog.warn({ reason, sample: sample?.slice(0, 80), parse_errors: counters.parse_errors }, 'bad data from device');
      },
      // counted only: the driver knows what an answer is, so it alone decides the status
      timeout: () => {
        counters.timeouts++;
      },
      reconnecting: () => {
        counters.reconnects++;
      },
    };
  }

  private async supervise(): Promise<void> {
    const { clock } = this.opts;
    const log = this.log;
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      this.setStatus('connecting');
      try {
        this.driver ??= await createDriver(this.opts.config, { ...this.opts.driverDeps, gatewayId: this.opts.gatewayId });
        await this.driver.run(this.context());
        if (signal.aborted) break;
        throw new Error('driver stopped unexpectedly');
      } catch (err) {
        if (signal.aborted) break;
        const message = err instanceof Error ? err.message : String(err);
        if ((err as { permanent?: boolean }).permanent) {
          this.setStatus('error', message);
          log.error({ err: message }, 'device stopped: this error cannot be fixed by retrying');
          return;
        }
        // a connection that stayed up resets the backoff; one that fails at once (a flapping port) does not
        if (this.connectedSince !== undefined && clock.monotonic() - this.connectedSince >= STABLE_CONNECTION_MS) attempt = 0;
        this.setStatus('disconnected', message);
        const delay = backoffDelay(attempt++, this.opts.backoff);
        this.counters.reconnects++;
        const path = this.driver?.devicePath;
        if (path === undefined) {
          log.warn({ err: message, retry_in_ms: delay }, 'device failed; retrying');
          await sleep(clock, delay, signal);
          continue;
        }
        const probe = this.opts.pathProbe ?? fsProbe;
        if (probe.exists(path)) log.warn({ err: message, retry_in_ms: delay, port: path }, 'device failed; retrying');
        else log.warn({ err: message, port: path }, 'device failed; waiting for its port to appear');
        if ((await waitForRetry(path, delay, { clock, signal, probe })) === 'appeared') {
          // a device plugged back in is a fresh start, whatever the backoff had grown to
          attempt = 0;
          log.info({ port: path }, 'port appeared; retrying at once');
        }
      }
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
