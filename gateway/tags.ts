// Per-tag processing (SPEC §3): type, scale/offset, decimals, min/max,
// deadband, min_interval, max_interval, in that order. This is the hot path:
// input() does one Map lookup and a few branches, and allocates nothing but
// the Reading it hands on. Timers exist only while a value is held back and
// for the heartbeat, never per reading.
import { reachesBand, roundToDecimals } from './rounding.js';
import { isTopicLevel } from './topics.js';
import type { TagConfig, ValueType } from '../config/schema.js';
import type { Clock, DeviceCounters, Quality, RawValue, Reading, TimerHandle } from './types.js';

/** Keys a device may invent when its map lists no tags; beyond this they count as parse errors. */
export const MAX_DISCOVERED_TAGS = 1024;

type Scalar = number | boolean | string | null;

/**
 * The value converted to the tag's type; undefined when it cannot be (a parse
 * error). null means "no value" (a bad reading) and passes in every type.
 */
export function coerceValue(type: ValueType | undefined, raw: RawValue): RawValue | undefined {
  if (typeof raw === 'object' && raw !== null) return coerceArray(type, raw);
  return coerceScalar(type, raw);
}

function coerceScalar(type: ValueType | undefined, raw: Scalar): Scalar | undefined {
  if (raw === null) return null;
  switch (type) {
    case undefined:
      if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
      // text that is a number becomes one; "1e400" overflows to Infinity, which is no reading
      if (typeof raw === 'string') return isDecimal(raw) ? finite(Number(raw)) : raw;
      return raw;
    case 'number':
      return toNumber(raw);
    case 'integer': {
      const n = toNumber(raw);
      return n !== undefined && Number.isInteger(n) ? n : undefined;
    }
    case 'boolean':
      return toBoolean(raw);
    case 'string':
      return typeof raw === 'string' ? raw : String(raw);
  }
}

// A new array only when an element actually changes: arrays from drivers are
// usually already of the right type.
function coerceArray(type: ValueType | undefined, raw: readonly Scalar[]): RawValue | undefined {
  if (type === undefined) return raw;
  let out: Scalar[] | undefined;
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i] as Scalar;
    const c = coerceScalar(type, e);
    if (c === undefined) return undefined;
    if (c !== e && out === undefined) out = raw.slice(0, i);
    if (out !== undefined) out.push(c);
  }
  return out ?? raw;
}

function toNumber(raw: number | boolean | string): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  return isDecimal(raw) ? finite(Number(raw)) : undefined;
}

const finite = (n: number): number | undefined => (Number.isFinite(n) ? n : undefined);

const BOOLEAN_WORDS = new Map<string, boolean>([['true', true], ['on', true], ['1', true], ['false', false], ['off', false], ['0', false]]);

function toBoolean(raw: number | boolean | string): boolean | undefined {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'number') return raw === 1 ? true : raw === 0 ? false : undefined;
  // only short strings can be spelled "TRUE" or " Off": spare the copy otherwise
  return BOOLEAN_WORDS.get(raw) ?? (raw.length <= 16 ? BOOLEAN_WORDS.get(raw.trim().toLowerCase()) : undefined);
}

/**
 * A plain decimal like "21.5", "-3e2", " 7 ". Number() alone would also take
 * "", " ", "0x1F", "0b1" and "Infinity", which no sensor means as a number.
 */
export function isDecimal(s: string): boolean {
  const n = s.length;
  let i = 0;
  while (i < n && isSpace(s.charCodeAt(i))) i++;
  let c = s.charCodeAt(i);
  if (c === 43 /* + */ || c === 45 /* - */) c = s.charCodeAt(++i);
  let digits = 0;
  while (c >= 48 && c <= 57) { digits++; c = s.charCodeAt(++i); }
  if (c === 46 /* . */) {
    c = s.charCodeAt(++i);
    while (c >= 48 && c <= 57) { digits++; c = s.charCodeAt(++i); }
  }
  if (digits === 0) return false;
  if (c === 101 /* e */ || c === 69 /* E */) {
    c = s.charCodeAt(++i);
    if (c === 43 || c === 45) c = s.charCodeAt(++i);
    let exp = 0;
    while (c >= 48 && c <= 57) { exp++; c = s.charCodeAt(++i); }
    if (exp === 0) return false;
  }
  while (i < n && isSpace(s.charCodeAt(i))) i++;
  return i === n;
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** The conversion a tag asks for; Modbus register types are decoded by the driver already. */
export function valueTypeOf(type: TagConfig['type']): ValueType | undefined {
  switch (type) {
    case undefined: return undefined;
    case 'number': case 'integer': case 'boolean': case 'string': return type;
    case 'bool': return 'boolean';
    case 'int16': case 'uint16': case 'int32': case 'uint32': return 'integer';
    case 'float32': case 'float64': return 'number';
  }
}

function sameValue(a: RawValue, b: RawValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const DEADBAND_NONE = 0, DEADBAND_CHANGED = 1, DEADBAND_BAND = 2;

interface Sink {
  readonly clock: Clock;
  readonly out: (r: Reading) => void;
  readonly counters: DeviceCounters;
  /** the device is `connected`: only then is a heartbeat sent */
  connected: boolean;
  /** the driver reports changes only: while connected, its latest value holds now */
  changesOnly: boolean;
}

/** The state of one tag, built once; every field is set in the constructor so the shape never changes. */
class TagState {
  readonly name: string;
  readonly type: ValueType | undefined;
  readonly scaled: boolean;
  readonly scale: number;
  readonly offset: number;
  readonly rounded: boolean;
  /** 10^decimals */
  readonly factor: number;
  /** |offset| * factor: the magnitude a rounded value may have lost by cancellation */
  readonly roundFloor: number;
  readonly ranged: boolean;
  readonly min: number;
  readonly max: number;
  private readonly deadbandMode: number;
  private readonly deadband: number;
  /** max(deadband, |offset|): the least magnitude the deadband's tolerance is taken from */
  private readonly bandFloor: number;
  private readonly minInterval: number;
  private readonly maxInterval: number;
  /** whether sentAt must be kept: only then is the clock read on a send */
  private readonly timed: boolean;
  // the last value sent, which the deadband compares with and the heartbeat repeats
  private sent = false;
  private lastValue: RawValue = null;
  private lastQuality: Quality = 'good';
  private sentAt = 0;
  // the latest value held back by min_interval
  private holding = false;
  private heldValue: RawValue = null;
  private heldTs = 0;
  private heldQuality: Quality = 'good';
  // the latest value the device delivered (also one the deadband dropped), kept for the heartbeat
  private latestValue: RawValue = null;
  private latestTs = 0;
  private latestQuality: Quality = 'good';
  private holdTimer: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  // timer callbacks, made on the first use: most tags (10,000 of an OPC UA device) never arm a timer
  private onHoldEnd: (() => void) | undefined;
  private onHeartbeat: (() => void) | undefined;

  constructor(key: string, config: TagConfig, private readonly sink: Sink) {
    this.name = config.name ?? key;
    this.type = valueTypeOf(config.type);
    this.scale = config.scale ?? 1;
    this.offset = config.offset ?? 0;
    this.scaled = this.scale !== 1 || this.offset !== 0;
    this.rounded = config.decimals !== undefined;
    this.factor = 10 ** (config.decimals ?? 0);
    this.roundFloor = Math.abs(this.offset) * this.factor;
    this.min = config.min ?? -Infinity;
    this.max = config.max ?? Infinity;
    this.ranged = config.min !== undefined || config.max !== undefined;
    this.deadband = config.deadband ?? 0;
    this.deadbandMode = config.deadband === undefined ? DEADBAND_NONE : config.deadband === 0 ? DEADBAND_CHANGED : DEADBAND_BAND;
    this.bandFloor = Math.max(this.deadband, Math.abs(this.offset));
    this.minInterval = config.min_interval ?? 0;
    this.maxInterval = config.max_interval ?? 0;
    this.timed = this.minInterval > 0 || this.maxInterval > 0;
  }

  /** a converted, scaled, in-range value: deadband, then min_interval */
  offer(v: RawValue, ts: number, q: Quality): void {
    if (this.maxInterval > 0) {
      this.latestValue = v;
      this.latestTs = ts;
      this.latestQuality = q;
      // a heartbeat that found nothing to confirm stopped: a delivered value restarts it
      if (this.heartbeatTimer === null && this.sent && this.sink.connected) this.armHeartbeat(this.sentAt + this.maxInterval - this.sink.clock.monotonic());
    }
    if (this.deadbandMode !== DEADBAND_NONE && this.sent && q === this.lastQuality && !this.differs(v)) {
      // back within the band of what the subscriber has: a held value would now mislead
      if (this.holding) { this.holding = false; this.sink.counters.filtered++; }
      this.sink.counters.filtered++;
      return;
    }
    if (!this.timed) { this.send(v, ts, q, 0); return; }
    const now = this.sink.clock.monotonic();
    if (this.minInterval > 0 && this.sent && now - this.sentAt < this.minInterval) {
      if (this.holding) this.sink.counters.filtered++;
      else if (this.holdTimer === null) this.holdTimer = this.sink.clock.setTimeout(this.onHoldEnd ??= () => { this.holdTimer = null; this.sendHeld(); }, this.sentAt + this.minInterval - now);
      this.holding = true;
      this.heldValue = v;
      this.heldTs = ts;
      this.heldQuality = q;
      return;
    }
    this.send(v, ts, q, now);
  }

  private differs(v: RawValue): boolean {
    const last = this.lastValue;
    if (this.deadbandMode === DEADBAND_BAND && typeof v === 'number' && typeof last === 'number') {
      return reachesBand(v, last, this.deadband, this.bandFloor);
    }
    return !sameValue(v, last);
  }

  private send(v: RawValue, ts: number, q: Quality, now: number): void {
    this.sent = true;
    this.lastValue = v;
    this.lastQuality = q;
    this.sentAt = now;
    this.sink.counters.readings_out++;
    this.sink.out({ tag: this.name, value: v, ts, quality: q });
    if (this.maxInterval > 0 && this.heartbeatTimer === null) this.armHeartbeat(this.maxInterval);
  }

  private armHeartbeat(ms: number): void {
    this.heartbeatTimer = this.sink.clock.setTimeout(this.onHeartbeat ??= () => this.heartbeat(), ms > 0 ? ms : 0);
  }

  private sendHeld(): void {
    if (!this.holding) return;
    this.holding = false;
    this.send(this.heldValue, this.heldTs, this.heldQuality, this.sink.clock.monotonic());
  }

  // One timer per period: readings that pass only move sentAt, and the timer
  // re-arms for whatever remains of the period when it fires. A heartbeat
  // claims no more than the device did (SPEC §3): it carries the latest value
  // the device delivered with that reading's own ts (so one that came before
  // the last send goes again with its old ts: a consumer sees its age), and
  // none at all while the device is not connected. The timer then stops, and
  // the next delivered value or the next connect (changes-only drivers)
  // starts it again.
  private heartbeat(): void {
    this.heartbeatTimer = null;
    const sink = this.sink;
    if (!sink.connected) return;
    const now = sink.clock.monotonic();
    const due = this.sentAt + this.maxInterval;
    if (now < due) {
      this.armHeartbeat(due - now);
    } else if (this.holding) {
      // max_interval shorter than min_interval: the held value is the latest one
      if (this.holdTimer !== null) { sink.clock.clearTimeout(this.holdTimer); this.holdTimer = null; }
      this.sendHeld();
    } else if (sink.changesOnly) {
      // a subscription that is alive reports any change: its latest value holds now
      this.send(this.latestValue, sink.clock.now(), this.latestQuality, now);
    } else {
      // the device's own ts: a reading it sent no newer says its age, never that it is fresh
      this.send(this.latestValue, this.latestTs, this.latestQuality, now);
    }
  }

  /** the device connected again: a changes-only driver may report nothing more, so its heartbeat restarts here */
  reconnected(): void {
    if (this.sink.changesOnly && this.sent && this.maxInterval > 0 && this.heartbeatTimer === null) this.armHeartbeat(this.maxInterval);
  }

  /** the last state goes out, then no timer is left */
  stop(): void {
    this.sendHeld();
    const clock = this.sink.clock;
    if (this.holdTimer !== null) { clock.clearTimeout(this.holdTimer); this.holdTimer = null; }
    if (this.heartbeatTimer !== null) { clock.clearTimeout(this.heartbeatTimer); this.heartbeatTimer = null; }
  }
}

export interface TagPipelineOptions {
  /** keyed by the source key the driver emits */
  tags: Record<string, TagConfig>;
  clock: Clock;
  out: (r: Reading) => void;
  counters: DeviceCounters;
  /** the device map lists no tags: every key passes with default processing */
  passUnknown?: boolean;
  /** whether the device is connected at the start (default false); see setConnected() */
  connected?: boolean;
}

/** The per-tag processing of one device, between its driver and its batcher. */
export class TagPipeline {
  private readonly sink: Sink;
  private readonly counters: DeviceCounters;
  private readonly passUnknown: boolean;
  private readonly byKey = new Map<string, TagState>();
  private readonly byName = new Map<string, { key: string; tag: TagConfig }>();
  private stopped = false;

  constructor(opts: TagPipelineOptions) {
    this.sink = { clock: opts.clock, out: opts.out, counters: opts.counters, connected: opts.connected ?? false, changesOnly: false };
    this.counters = opts.counters;
    this.passUnknown = opts.passUnknown ?? false;
    for (const [key, tag] of Object.entries(opts.tags)) this.add(key, tag);
  }

  /** one raw value from the driver; after stop() values are ignored */
  input(key: string, value: RawValue, ts: number, quality: Quality): void {
    let t = this.byKey.get(key);
    if (t === undefined) {
      if (!this.passUnknown || this.stopped) return;
      // a stream of garbage keys must not grow memory without bound, and a key
      // that cannot be a topic level must never reach the retained tag topics
      if (this.byKey.size >= MAX_DISCOVERED_TAGS || !isTopicLevel(key)) {
        this.counters.readings_in++;
        this.counters.parse_errors++;
        return;
      }
      t = this.add(key, {});
    }
    if (this.stopped) return;
    const c = this.counters;
    c.readings_in++;
    let v = coerceValue(t.type, value);
    if (v === undefined) { c.parse_errors++; return; }
    if (typeof v === 'number') {
      if (t.scaled) v = v * t.scale + t.offset;
      if (t.rounded) v = roundToDecimals(v, t.factor, t.roundFloor);
      if (t.ranged && (v < t.min || v > t.max)) { c.out_of_range++; return; }
    }
    t.offer(v, ts, quality);
  }

  /**
   * The device's state: heartbeats go out only while it is `connected`.
   * `changesOnly`: the driver reports a value only when it changes (an OPC UA
   * subscription), so while connected its latest value still holds and a
   * heartbeat carries the current time; otherwise the latest reading's ts.
   */
  setConnected(connected: boolean, changesOnly = false): void {
    const sink = this.sink;
    const was = sink.connected;
    sink.connected = connected;
    sink.changesOnly = changesOnly;
    if (connected && !was && !this.stopped) for (const t of this.byKey.values()) t.reconnected();
  }

  /** a tag by its MQTT name, for writes */
  lookup(name: string): { key: string; tag: TagConfig } | undefined {
    return this.byName.get(name);
  }

  /** sends the values still held back by min_interval and cancels every timer */
  stop(): void {
    this.stopped = true;
    for (const t of this.byKey.values()) t.stop();
  }

  private add(key: string, tag: TagConfig): TagState {
    const t = new TagState(key, tag, this.sink);
    this.byKey.set(key, t);
    this.byName.set(t.name, { key, tag });
    return t;
  }
}
