// The small interfaces at the seams of the gateway. Drivers import only this
// file (and their own config type); everything stateful lives in the core.

export type Quality = 'good' | 'uncertain' | 'bad';

export type DeviceState = 'connecting' | 'connected' | 'disconnected' | 'error';

/** A scalar value as read from a device, before per-tag processing. */
export type RawValue = number | boolean | string | null | readonly (number | boolean | string | null)[];

/** One processed reading, as it appears in a batch payload. */
export interface Reading {
  /** the tag name used on MQTT */
  tag: string;
  value: RawValue;
  /** ms since the Unix epoch */
  ts: number;
  quality: Quality;
}

/** Time, injected so that filters, the batcher and the supervisor can be tested instantly. */
export interface Clock {
  /** wall-clock ms since the epoch: for timestamps only */
  now(): number;
  /**
   * ms on a clock that never steps (NTP corrections, a Pi without a real-time
   * clock): for intervals and deadlines; only differences mean anything
   */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
export type TimerHandle = { readonly __timer: unique symbol } | object;

/** The subset of a pino logger that the core and drivers use. */
export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  fatal(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * What the core hands a driver for one run. `emit` is the hot path: it is
 * synchronous and allocates nothing beyond what the driver passes in.
 */
export interface DriverContext {
  readonly deviceId: string;
  readonly log: Logger;
  readonly clock: Clock;
  /** aborted when the device is stopped; run() must then resolve promptly */
  readonly signal: AbortSignal;
  /** a raw value for the tag with this source key (the key in the device map) */
  emit(key: string, value: RawValue, ts: number, quality?: Quality): void;
  /** state changes of the device connection; `error` is a short human text */
  setStatus(state: DeviceState, error?: string): void;
  /** bad input from the device: counted, logged with a rate limit */
  parseError(reason: string, sample?: string): void;
  /** a request that got no answer in time (query/response devices): counted; the driver sets the status */
  timeout(): void;
  /** the driver's library lost the connection and re-establishes it by itself: counted as a reconnect */
  reconnecting?(): void;
}

/**
 * A driver produces readings until its signal is aborted. run() resolves when
 * aborted and rejects when the connection fails; the supervisor then retries
 * with backoff. A driver never retries its own connection.
 */
export interface Driver {
  run(ctx: DriverContext): Promise<void>;
  /**
   * The file the driver opens (a serial port), if it opens one. While it does
   * not exist the supervisor does not retry on its timer but waits for the
   * file to appear, and retries at once when it does (a USB adapter plugged
   * back in).
   */
  readonly devicePath?: string | undefined;
  /**
   * The driver emits a value only when it changes (an OPC UA subscription):
   * while the device is connected, the latest value it emitted still holds,
   * so a heartbeat carries the current time. Otherwise (streaming and polled
   * devices) a heartbeat carries the latest reading's own ts.
   */
  readonly reportsChangesOnly?: boolean;
  /**
   * write a checked value to a writable tag; rejects with a readable error.
   * Resolves with what the write result adds to `ok` where the device's
   * confirmation is weaker or stronger than done (a serial line: sent, acknowledged).
   */
  write?(key: string, value: number | boolean | string): Promise<WriteOutcome | void>;
}

/** extra fields of a successful write's result */
export interface WriteOutcome {
  /** handed to the line; the device did not confirm it unless `acknowledged` */
  sent?: true;
  /** the device answered with the configured acknowledgement */
  acknowledged?: true;
}

/** Marks an error that retrying cannot fix (bad config for this driver). */
export class PermanentError extends Error {
  readonly permanent = true;
}

/** One encoded batch of a device, ready for the broker or the buffer. */
export interface Batch {
  device: string;
  seq: number;
  /** P/devices/<device>/data */
  topic: string;
  /** the JSON payload of SPEC §4 */
  payload: string;
  /** number of readings in it */
  readings: number;
  /** ts of the first reading in it */
  firstTs: number;
}

/** Per-device counters, as in the stats payload. */
export interface DeviceCounters {
  readings_in: number;
  readings_out: number;
  filtered: number;
  parse_errors: number;
  out_of_range: number;
  timeouts: number;
  reconnects: number;
}

export function newCounters(): DeviceCounters {
  return { readings_in: 0, readings_out: 0, filtered: 0, parse_errors: 0, out_of_range: 0, timeouts: 0, reconnects: 0 };
}
