// Writes arriving over MQTT reach a device only when the tag is writable and
// the value fits the tag's type, min and max. min and max are in the units
// the tag publishes (after scale and offset), so a numeric write is converted
// back to the device's raw units before it is sent.
import type { TagConfig } from '../config/schema.js';
import { coerceValue, valueTypeOf } from './tags.js';

export type WriteCheck = { ok: true; value: number | boolean | string } | { ok: false; error: string };

export function checkWrite(tag: TagConfig, raw: unknown): WriteCheck {
  if (!tag.writable) return { ok: false, error: 'tag is not writable' };
  // a tag without a type takes numbers; Modbus register types imply theirs
  const type = valueTypeOf(tag.type) ?? 'number';
  const isScalar = typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'string';
  // the type is the raw value's: with scale or offset an integer tag takes any number, checked once converted back
  const scaled = tag.scale !== undefined || tag.offset !== undefined;
  const value = isScalar ? coerceValue(scaled && type === 'integer' ? 'number' : type, raw) : undefined;
  if (value === undefined || value === null || Array.isArray(value)) {
    return { ok: false, error: `expected a value of type ${type}, got ${JSON.stringify(raw)?.slice(0, 40)}` };
  }
  if (typeof value === 'string' && CONTROL.test(value)) {
    // a newline or other control character would let one write smuggle a second command onto the line
    return { ok: false, error: 'a string value must not contain control characters' };
  }
  if (typeof value === 'number') {
    if (tag.min !== undefined && value < tag.min) return { ok: false, error: `value ${value} is below min ${tag.min}` };
    if (tag.max !== undefined && value > tag.max) return { ok: false, error: `value ${value} is above max ${tag.max}` };
    if (scaled) return toRaw(tag, value, type);
  }
  return { ok: true, value: value as number | boolean | string };
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/** the inverse of `value * scale + offset` */
function toRaw(tag: TagConfig, value: number, type: string): WriteCheck {
  const scale = tag.scale ?? 1;
  if (scale === 0) return { ok: false, error: 'tag has scale 0: its raw value cannot be derived' };
  let raw = (value - (tag.offset ?? 0)) / scale;
  raw = Number(raw.toPrecision(12)); // 21.5 / 0.1 is 214.99999999999997, not 215
  if (type === 'integer' && !Number.isInteger(raw)) {
    return { ok: false, error: `value ${value} is not a whole number of raw units (scale ${scale}, offset ${tag.offset ?? 0})` };
  }
  return { ok: true, value: raw };
}

/** a write payload: a JSON value, {"value": x}, or bare text taken as a string */
export function parseWritePayload(payload: Buffer): unknown {
  const text = payload.toString('utf8').trim();
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in v) return (v as { value: unknown }).value;
    return v;
  } catch {
    return text;
  }
}
