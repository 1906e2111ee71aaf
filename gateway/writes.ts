// Writes arriving over MQTT reach a device only when the tag is writable and
// the value fits the tag's type, min and max.
import type { TagConfig } from '../config/schema.js';
import { coerceValue, valueTypeOf } from './tags.js';

export type WriteCheck = { ok: true; value: number | boolean | string } | { ok: false; error: string };

export function checkWrite(tag: TagConfig, raw: unknown): WriteCheck {
  if (!tag.writable) return { ok: false, error: 'tag is not writable' };
  // a tag without a type takes numbers; Modbus register types imply theirs
  const type = valueTypeOf(tag.type) ?? 'number';
  const isScalar = typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'string';
  const value = isScalar ? coerceValue(type, raw) : undefined;
  if (value === undefined || value === null || Array.isArray(value)) {
    return { ok: false, error: `expected a value of type ${type}, got ${JSON.stringify(raw)?.slice(0, 40)}` };
  }
  if (typeof value === 'number') {
    if (tag.min !== undefined && value < tag.min) return { ok: false, error: `value ${value} is below min ${tag.min}` };
    if (tag.max !== undefined && value > tag.max) return { ok: false, error: `value ${value} is above max ${tag.max}` };
  }
  return { ok: true, value: value as number | boolean | string };
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
