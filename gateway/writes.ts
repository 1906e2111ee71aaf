// Writes arriving over MQTT reach a device only when the tag is writable and
// the value fits the tag's type, min and max. min and max are in the units
// the tag publishes (after scale and offset), so a numeric write is converted
// back to the device's raw units before it is sent.
import { modbusTagType, type TagConfig, type ValueType } from '../config/schema.js';
import { RateLimitedLog } from './logger.js';
import { valueTypeOf } from './tags.js';
import type { Logger } from './types.js';

export type WriteCheck = { ok: true; value: number | boolean | string } | { ok: false; error: string };

/** a write payload refused before it became a value; checkWrite reports the reason */
export class BadPayload {
  constructor(readonly error: string) {}
}

/** a write payload that is not JSON: refused with its text in the error */
export class NotJson extends BadPayload {
  constructor(readonly text: string) {
    super(`the payload is not JSON: ${JSON.stringify(text.slice(0, 40))} (a string is written in quotes)`);
  }
}

/**
 * The JSON value must already be of the tag's type: a number for number and
 * integer tags, true/false for boolean ones, a string in quotes for string
 * ones. Nothing is converted between kinds ("7" is not 7, 1 is not true). A
 * tag without a type takes any of them and the device decides (an OPC UA node
 * knows its DataType); a Modbus tag has its area's default (bool, uint16).
 */
export function checkWrite(tag: TagConfig, raw: unknown): WriteCheck {
  if (!tag.writable) return { ok: false, error: 'tag is not writable' };
  if (raw instanceof BadPayload) return { ok: false, error: raw.error };
  // JSON numbers beyond ±1.8e308 parse to ±Infinity
  if (typeof raw === 'number' && !Number.isFinite(raw)) return { ok: false, error: 'the value is not a finite number' };
  const type = valueTypeOf('area' in tag ? modbusTagType(tag) : tag.type);
  // the type is the raw value's: with scale or offset an integer tag takes any number, checked once converted back
  const scaled = tag.scale !== undefined || tag.offset !== undefined;
  if (!fits(type, raw, scaled)) {
    return { ok: false, error: `expected a value of type ${type ?? 'number, boolean or string'}, got ${describe(raw)}` };
  }
  const value = raw as number | boolean | string;
  if (typeof value === 'string' && CONTROL.test(value)) {
    // a newline or other control character would let one write smuggle a second command onto the line
    return { ok: false, error: 'a string value must not contain control characters' };
  }
  if (typeof value === 'number') {
    if (tag.min !== undefined && value < tag.min) return { ok: false, error: `value ${value} is below min ${tag.min}` };
    if (tag.max !== undefined && value > tag.max) return { ok: false, error: `value ${value} is above max ${tag.max}` };
    if (scaled) return toRaw(tag, value, type);
  }
  return { ok: true, value };
}

function fits(type: ValueType | undefined, v: unknown, scaled: boolean): boolean {
  switch (type) {
    case undefined: return (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean' || typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'integer': return typeof v === 'number' && (scaled ? Number.isFinite(v) : Number.isInteger(v));
    case 'boolean': return typeof v === 'boolean';
    case 'string': return typeof v === 'string';
  }
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** a short quote of a refused value: never the whole of a long string, never a walk through nested JSON */
function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'an object';
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v);
}

/** the inverse of `value * scale + offset` */
function toRaw(tag: TagConfig, value: number, type: ValueType | undefined): WriteCheck {
  const scale = tag.scale ?? 1;
  if (scale === 0) return { ok: false, error: 'tag has scale 0: its raw value cannot be derived' };
  let raw = (value - (tag.offset ?? 0)) / scale;
  raw = Number(raw.toPrecision(12)); // 21.5 / 0.1 is 214.99999999999997, not 215
  if (type === 'integer' && !Number.isInteger(raw)) {
    return { ok: false, error: `value ${value} is not a whole number of raw units (scale ${scale}, offset ${tag.offset ?? 0})` };
  }
  return { ok: true, value: raw };
}

/** a write is one value, or {"value": x}: deeper nesting is refused before it is parsed */
const MAX_DEPTH = 32;

/**
 * A write payload: a JSON value, or {"value": x}; anything else is a
 * BadPayload. A payload over maxBytes, or nested deeper than any write can
 * be, is refused before it is parsed, so a huge or hostile payload costs one
 * pass over its bytes at most.
 */
export function parseWritePayload(payload: Buffer, maxBytes: number): unknown {
  if (payload.length > maxBytes) return new BadPayload(`the payload is ${payload.length} bytes, more than max_write_bytes (${maxBytes}) allows`);
  if (nestingOver(payload, MAX_DEPTH)) return new BadPayload('the payload is nested too deeply (a write is one value)');
  const text = payload.toString('utf8').trim();
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in v) return (v as { value: unknown }).value;
    return v;
  } catch {
    return new NotJson(text);
  }
}

const QUOTE = 0x22, BACKSLASH = 0x5c, OPEN_ARRAY = 0x5b, OPEN_OBJECT = 0x7b, CLOSE_ARRAY = 0x5d, CLOSE_OBJECT = 0x7d;

/** true when brackets outside strings nest deeper than max (UTF-8 continuation bytes are never ASCII) */
function nestingOver(bytes: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) depth--;
  }
  return false;
}

const WRITE_LOG_INTERVAL_MS = 10_000;
const HELD_BACK = 'writes held back from the log';

/**
 * The log of writes arriving over MQTT: a line per interval at most for the
 * accepted ones, one for the refused ones (so a flood of good writes cannot
 * hide a refusal) and one for unusable response topics, each line with the
 * count held back before it. Every write still gets its result on MQTT.
 */
export class WriteLog {
  private readonly accepted: RateLimitedLog;
  private readonly refused: RateLimitedLog;
  private readonly badResponse: RateLimitedLog;

  constructor(log: Logger, now: () => number, intervalMs = WRITE_LOG_INTERVAL_MS) {
    this.accepted = new RateLimitedLog(log, intervalMs, now);
    this.refused = new RateLimitedLog(log, intervalMs, now);
    this.badResponse = new RateLimitedLog(log, intervalMs, now);
  }

  result(device: string, tag: string, result: { ok: true } | { ok: false; error: string }): void {
    if (result.ok) {
      if (this.accepted.take()) this.accepted.info({ device, tag, ok: true }, 'write');
    } else if (this.refused.take()) this.refused.info({ device, tag, ok: false, error: result.error }, 'write');
  }

  badResponseTopic(device: string, tag: string, topic: string): void {
    if (this.badResponse.take()) this.badResponse.warn({ device, tag, response_topic: topic.slice(0, 100) }, 'write: response topic is not a valid topic; no response sent there');
  }

  /** the counts held back at the end of a burst: call it now and then (it logs once per interval at most) */
  flush(): void {
    this.accepted.flush('info', { ok: true }, HELD_BACK);
    this.refused.flush('info', { ok: false }, HELD_BACK);
    this.badResponse.flush('warn', {}, 'write responses to invalid topics held back from the log');
  }
}
