// Sparkplug B payloads through Eclipse Tahu's encoder (sparkplug-payload,
// protobufjs inside), and the mapping from edgegate tags to Sparkplug
// datatypes. protobufjs decodes 64-bit integers as Long objects: every value
// that leaves this file is a plain JS number.
//
// Births (and NDEATH) go through Tahu's encodePayload, which always writes
// each metric's datatype. DDATA and NDATA should not carry it (Sparkplug 3.0,
// payloads-metric-datatype-not-req: the host knows it from the birth), so
// they are written by encodeData straight through the protobufjs Payload type
// that Tahu's encoder uses too: the same wire format, without the datatype.
import { get } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import proto from 'sparkplug-payload/lib/sparkplugPayloadProto.js';
import { modbusTagType, type DeviceConfig, type TagConfig } from '../../../config/schema.js';
import type { RawValue } from '../../types.js';

export type { UMetric, UPayload };
export type DataType = 'Int16' | 'UInt16' | 'Int32' | 'UInt32' | 'Int64' | 'Float' | 'Double' | 'Boolean' | 'String';

const codec = get('spBv1.0')!;

export function encode(p: UPayload): Buffer {
  const bytes = codec.encodePayload(p);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const { Payload } = proto.org.eclipse.tahu.protobuf;
type ProtoMetric = proto.org.eclipse.tahu.protobuf.Payload.IMetric;
type ProtoPropertyValue = proto.org.eclipse.tahu.protobuf.Payload.IPropertyValue;

/** the datatype codes of sparkplug_b.proto, for the types edgegate publishes */
const TYPE_CODE: Record<DataType, number> = { Int16: 2, Int32: 3, Int64: 4, UInt16: 6, UInt32: 7, Float: 9, Double: 10, Boolean: 11, String: 12 };

type ValueField = 'intValue' | 'longValue' | 'floatValue' | 'doubleValue' | 'booleanValue' | 'stringValue';
const FIELD: Record<DataType, ValueField> = {
  Int16: 'intValue', Int32: 'intValue', UInt16: 'intValue', Int64: 'longValue', UInt32: 'longValue',
  Float: 'floatValue', Double: 'doubleValue', Boolean: 'booleanValue', String: 'stringValue',
};

function setValue(target: ProtoMetric & ProtoPropertyValue, type: DataType, value: UMetric['value']): void {
  if (value === null || value === undefined) target.isNull = true;
  else (target as Record<ValueField, unknown>)[FIELD[type]] = value;
}

/**
 * DDATA and NDATA: metrics by alias, without datatype (and without name
 * unless one is given). Each metric's `type` only chooses the value field.
 */
export function encodeData(p: UPayload): Buffer {
  const metrics: ProtoMetric[] = [];
  for (const m of p.metrics ?? []) {
    const out: ProtoMetric = { timestamp: m.timestamp ?? null };
    if (m.name != null) out.name = m.name;
    if (m.alias != null) out.alias = m.alias;
    if (m.isHistorical) out.isHistorical = true;
    setValue(out, m.type as DataType, m.value);
    if (m.properties) {
      const keys = Object.keys(m.properties);
      out.properties = {
        keys,
        values: keys.map((k) => {
          const v = m.properties![k]!;
          const pv: ProtoPropertyValue = { type: TYPE_CODE[v.type as DataType] };
          setValue(pv, v.type as DataType, v.value as UMetric['value']);
          return pv;
        }),
      };
    }
    metrics.push(out);
  }
  const bytes = Payload.encode({ timestamp: p.timestamp ?? null, seq: p.seq ?? null, metrics }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** a metric's datatype by its name or alias, from the birth that defined it */
export type TypeLookup = (m: { name?: string | null; alias?: number }) => DataType | undefined;

/**
 * Throws on bytes that are no Sparkplug B payload. A metric sent without its
 * datatype (data and command messages should leave it out) takes it from
 * typeOf; Tahu's decoder alone would read no value for it.
 */
export function decode(bytes: Uint8Array, typeOf?: TypeLookup): UPayload {
  const p = codec.decodePayload(bytes);
  const metrics = p.metrics ?? [];
  if (!metrics.some((m) => m.type === undefined)) return p;
  const raw = Payload.decode(bytes).metrics;
  metrics.forEach((m, i) => {
    if (m.type !== undefined) return;
    const r = raw[i]!;
    const alias = toNumber(r.alias);
    const type = typeOf?.({ name: m.name, ...(alias !== undefined ? { alias } : {}) });
    if (type !== undefined) m.type = type;
    if (r.isNull) m.value = null;
    else if (type !== undefined) m.value = readValue(type, r);
    else {
      const field = (r as { value?: ValueField }).value;
      m.value = field === undefined ? null : (r[field] as UMetric['value']) ?? null;
    }
  });
  return p;
}

function readValue(type: DataType, r: ProtoMetric): UMetric['value'] {
  const v = r[FIELD[type]];
  if (v === undefined || v === null) return null;
  // intValue is a uint32 on the wire: signed types come back through two's complement
  if (type === 'Int16' || type === 'Int32') return (v as number) | 0;
  // longValue is a uint64 on the wire: an Int64 is signed
  if (type === 'Int64') return toNumber(typeof v === 'object' && 'toSigned' in v ? v.toSigned() : v) ?? null;
  if (type === 'UInt32') return toNumber(v) ?? null;
  return v as UMetric['value'];
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
/** a tag whose datatype comes from its value (not Modbus, no type in the map) */
export function typedByValue(device: DeviceConfig, tag: TagConfig): boolean {
  return device.driver !== 'modbus-rtu' && device.driver !== 'modbus-tcp' && (tag as { type?: string }).type === undefined;
}

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
