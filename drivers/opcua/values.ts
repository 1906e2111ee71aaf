// OPC UA values ⇄ gateway values. Reading: a DataValue becomes a raw value,
// a timestamp and a quality. Writing: a checked JSON value becomes a Variant
// of the node's built-in DataType, or a readable refusal.
import type { Quality, RawValue } from '../../gateway/types.js';
import { DataType, Variant, VariantArrayType, type DataValue, type StatusCode } from './ua.js';

type Scalar = number | boolean | string | null;

/** a value node-opcua decoded that the gateway cannot carry: a per-tag error */
export class UnsupportedValue {
  constructor(readonly reason: string) {}
}

/** severity bits of a StatusCode (Part 4, 7.39): 00 good, 01 uncertain, 10/11 bad */
export function qualityOf(status: StatusCode): Quality {
  const severity = status.value >>> 30;
  return severity === 0 ? 'good' : severity === 1 ? 'uncertain' : 'bad';
}

/** the source timestamp, else the server timestamp; undefined when the server gave neither */
export function timestampOf(dv: DataValue): number | undefined {
  return msOf(dv.sourceTimestamp) ?? msOf(dv.serverTimestamp);
}

// node-opcua decodes the OPC UA "no time" (year 1601) as a date before the Unix epoch
function msOf(t: Date | null | undefined): number | undefined {
  const ms = t ? t.getTime() : 0;
  return ms > 0 ? ms : undefined;
}

const TWO_32 = 2 ** 32;

function scalarOf(type: DataType, v: unknown): Scalar | UnsupportedValue {
  if (v === null || v === undefined) return null;
  switch (type) {
    case DataType.Null: return null;
    case DataType.Boolean: return Boolean(v);
    case DataType.SByte: case DataType.Byte: case DataType.Int16: case DataType.UInt16:
    case DataType.Int32: case DataType.UInt32: case DataType.Float: case DataType.Double:
      return v as number;
    // node-opcua keeps 64-bit integers as [high, low]; beyond 2^53 precision is lost
    case DataType.Int64: { const [hi = 0, lo = 0] = v as number[]; return (hi | 0) * TWO_32 + (lo >>> 0); }
    case DataType.UInt64: { const [hi = 0, lo = 0] = v as number[]; return (hi >>> 0) * TWO_32 + (lo >>> 0); }
    case DataType.String: return v as string;
    case DataType.DateTime: { const ms = (v as Date).getTime(); return Number.isFinite(ms) ? ms : null; }
    default: return new UnsupportedValue(`values of DataType ${DataType[type]} are not supported`);
  }
}

/** a Variant as a gateway value: numbers, booleans, strings, DateTime as ms, and arrays of those */
export function rawValueOf(variant: Variant): RawValue | UnsupportedValue {
  const type = variant.dataType;
  if (variant.arrayType === VariantArrayType.Scalar) return scalarOf(type, variant.value);
  if (variant.arrayType === VariantArrayType.Matrix) return new UnsupportedValue('matrix values are not supported');
  const items = variant.value as ArrayLike<unknown> | null;
  if (items === null || items === undefined) return [];
  const out: Scalar[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const s = scalarOf(type, items[i]);
    if (s instanceof UnsupportedValue) return s;
    out[i] = s;
  }
  return out;
}

/** what a writable node takes, learnt once per tag */
export interface NodeType {
  dataType: DataType;
  /** valueRank: -1 scalar, ≥ 1 array */
  array: boolean;
}

const INT_RANGES: Partial<Record<DataType, [number, number]>> = {
  [DataType.SByte]: [-128, 127],
  [DataType.Byte]: [0, 255],
  [DataType.Int16]: [-32768, 32767],
  [DataType.UInt16]: [0, 65535],
  [DataType.Int32]: [-2147483648, 2147483647],
  [DataType.UInt32]: [0, 4294967295],
  [DataType.Int64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [DataType.UInt64]: [0, Number.MAX_SAFE_INTEGER],
};
const FLOAT_MAX = 3.4028234663852886e38;

export type WriteConversion = { ok: true; variant: Variant } | { ok: false; error: string };

/** a checked JSON value as a Variant of the node's type, of the matching JSON kind (1 is no Boolean); numbers must fit the type's range */
export function toVariant(node: NodeType, value: number | boolean | string): WriteConversion {
  const { dataType } = node;
  const name = DataType[dataType] ?? String(dataType);
  const refuse = (why: string): WriteConversion => ({ ok: false, error: `the node is ${name}: ${why}` });
  if (node.array) return refuse('array nodes cannot be written from MQTT');
  const ok = (v: unknown): WriteConversion => ({ ok: true, variant: new Variant({ dataType, value: v }) });
  const range = INT_RANGES[dataType];
  if (range) {
    if (typeof value !== 'number' || !Number.isInteger(value)) return refuse(`expected an integer, got ${JSON.stringify(value)}`);
    if (value < range[0] || value > range[1]) return refuse(`${value} is out of range ${range[0]}..${range[1]}`);
    return ok(value);
  }
  switch (dataType) {
    case DataType.Boolean:
      if (typeof value === 'boolean') return ok(value);
      return refuse(`expected true or false, got ${JSON.stringify(value)}`);
    case DataType.Float:
    case DataType.Double:
      if (typeof value !== 'number' || !Number.isFinite(value)) return refuse(`expected a number, got ${JSON.stringify(value)}`);
      if (dataType === DataType.Float && Math.abs(value) > FLOAT_MAX) return refuse(`${value} is out of the Float range`);
      return ok(value);
    case DataType.String:
      if (typeof value !== 'string') return refuse(`expected a string, got ${JSON.stringify(value)}`);
      return ok(value);
    case DataType.DateTime: {
      const d = typeof value === 'number' ? new Date(value) : typeof value === 'string' ? new Date(value) : undefined;
      if (d === undefined || !Number.isFinite(d.getTime())) return refuse(`expected ms since the epoch or an ISO date, got ${JSON.stringify(value)}`);
      return ok(d);
    }
    default:
      return refuse('writes of this DataType are not supported');
  }
}
