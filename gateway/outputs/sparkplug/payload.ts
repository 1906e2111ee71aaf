// Sparkplug B payloads through Eclipse Tahu's encoder (sparkplug-payload,
// protobufjs inside), and the mapping from edgegate tags to Sparkplug
// datatypes. protobufjs decodes 64-bit integers as Long objects: every value
// that leaves this file is a plain JS number.
import { get } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import { modbusTagType, type DeviceConfig, type TagConfig } from '../../../config/schema.js';
import type { RawValue } from '../../types.js';

export type { UMetric, UPayload };
export type DataType = 'Int16' | 'UInt16' | 'Int32' | 'UInt32' | 'Int64' | 'Float' | 'Double' | 'Boolean' | 'String';

const codec = get('spBv1.0')!;

export function encode(p: UPayload): Buffer {
  const bytes = codec.encodePayload(p);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** throws on bytes that are no Sparkplug B payload */
export function decode(bytes: Uint8Array): UPayload {
  return codec.decodePayload(bytes);
}

interface LongLike { low: number; high: number; unsigned?: boolean; toNumber?: () => number }

/** a protobufjs Long (or a number) as a number; beyond 2^53 precision is lost, as it is for any JS number */
export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'object' || v === null || !('low' in v) || !('high' in v)) return undefined;
  const l = v as LongLike;
  if (typeof l.toNumber === 'function') return l.toNumber();
  const high = l.unsigned ? l.high >>> 0 : l.high;
  return high * 2 ** 32 + (l.low >>> 0);
}

const MODBUS_TYPES: Record<string, DataType> = {
  bool: 'Boolean', int16: 'Int16', uint16: 'UInt16', int32: 'Int32', uint32: 'UInt32', float32: 'Float', float64: 'Double', string: 'String',
};

/**
 * A tag's datatype. Modbus: the register type (a scaled or offset register
 * value is a Double). Other drivers: integer → Int64, number → Double,
 * boolean → Boolean, string → String; an untyped tag takes it from its
 * current value (a number → Double, a boolean → Boolean, else String).
 */
export function dataTypeOf(device: DeviceConfig, tag: TagConfig, current: RawValue | undefined): DataType {
  if (device.driver === 'modbus-rtu' || device.driver === 'modbus-tcp') {
    const t = tag as Parameters<typeof modbusTagType>[0];
    if ((t.scale ?? 1) !== 1 || (t.offset ?? 0) !== 0) return 'Double';
    return MODBUS_TYPES[modbusTagType(t)] ?? 'Double';
  }
  switch ((tag as { type?: string }).type) {
    case 'integer': return 'Int64';
    case 'number': return 'Double';
    case 'boolean': return 'Boolean';
    case 'string': return 'String';
  }
  if (typeof current === 'number') return 'Double';
  if (typeof current === 'boolean') return 'Boolean';
  return 'String';
}

/**
 * A reading's value in the metric's datatype; null (is_null) when it has
 * none or cannot be one (text in an untyped tag that was born a number).
 */
export function metricValue(type: DataType, v: RawValue): number | boolean | string | null {
  if (v === null) return null;
  if (type === 'String') return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (typeof v === 'object') return null;
  if (type === 'Boolean') return typeof v === 'boolean' ? v : typeof v === 'number' ? v !== 0 : v === 'true' ? true : v === 'false' ? false : null;
  const n = typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : Number(v);
  return Number.isFinite(n) ? n : null;
}

/** a command's value as the write path takes it (Long → number; the decoder reads a UInt32 above 2^31 as negative) */
export function commandValue(m: UMetric): unknown {
  if (m.value === null || m.value === undefined) return null;
  const n = toNumber(m.value);
  if (n !== undefined) return m.type === 'UInt32' && n < 0 ? n + 2 ** 32 : n;
  return m.value;
}
