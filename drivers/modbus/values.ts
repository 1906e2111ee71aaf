// Tag values to and from registers. A register is 16 bits, sent high byte
// first. Multi-register numbers are big-endian words by default
// (word_order: big, the first register holds the most significant word);
// word_order: little reverses the words; byte_swap swaps the two bytes in
// every register (strings included). Reading allocates nothing but strings.
import type { z } from 'zod';
import { modbusTagType, type modbusTag } from '../../config/schema.js';

export type ModbusTagConfig = z.output<typeof modbusTag>;
export type RegisterType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64' | 'string';

/** the tag's type with the area's default: bool for coils and discrete inputs, uint16 for registers */
export const typeOf: (tag: ModbusTagConfig) => 'bool' | RegisterType = modbusTagType;

/** registers (or bits) a tag occupies */
export function sizeOf(tag: ModbusTagConfig): number {
  switch (typeOf(tag)) {
    case 'bool': case 'int16': case 'uint16': return 1;
    case 'int32': case 'uint32': case 'float32': return 2;
    case 'float64': return 4;
    case 'string': return tag.length ?? 1;
  }
}

// one scratch buffer: the bytes of a multi-register value put in big-endian order
const scratch = Buffer.alloc(8);

/** copies `words` registers from src at offset into scratch in big-endian order */
function arrange(src: Buffer, offset: number, words: number, little: boolean, swap: boolean): void {
  for (let w = 0; w < words; w++) {
    const from = offset + 2 * (little ? words - 1 - w : w);
    scratch[2 * w] = src[swap ? from + 1 : from] as number;
    scratch[2 * w + 1] = src[swap ? from : from + 1] as number;
  }
}

/**
 * The value of a register tag whose first register is at byte offset in
 * data (big-endian registers, as read). Non-finite floats are null.
 */
export function decodeRegisters(type: RegisterType, tag: ModbusTagConfig, data: Buffer, offset: number): number | string | null {
  const little = tag.word_order === 'little';
  const swap = tag.byte_swap;
  switch (type) {
    case 'uint16': return swap ? (data[offset] as number) | ((data[offset + 1] as number) << 8) : data.readUInt16BE(offset);
    case 'int16': {
      const u = swap ? (data[offset] as number) | ((data[offset + 1] as number) << 8) : data.readUInt16BE(offset);
      return u >= 0x8000 ? u - 0x10000 : u;
    }
    case 'int32': arrange(data, offset, 2, little, swap); return scratch.readInt32BE(0);
    case 'uint32': arrange(data, offset, 2, little, swap); return scratch.readUInt32BE(0);
    case 'float32': {
      arrange(data, offset, 2, little, swap);
      const v = scratch.readFloatBE(0);
      return Number.isFinite(v) ? v : null;
    }
    case 'float64': {
      arrange(data, offset, 4, little, swap);
      const v = scratch.readDoubleBE(0);
      return Number.isFinite(v) ? v : null;
    }
    case 'string': return decodeString(data, offset, tag.length ?? 1, swap);
  }
}

/** latin1 (every byte is a character); ends at the first NUL, trailing spaces dropped */
function decodeString(data: Buffer, offset: number, registers: number, swap: boolean): string {
  const bytes = Buffer.allocUnsafe(registers * 2);
  for (let i = 0; i < registers * 2; i += 2) {
    bytes[i] = data[offset + (swap ? i + 1 : i)] as number;
    bytes[i + 1] = data[offset + (swap ? i : i + 1)] as number;
  }
  const nul = bytes.indexOf(0);
  return bytes.toString('latin1', 0, nul === -1 ? bytes.length : nul).trimEnd();
}

/** bit i of a read-bits answer (LSB of the first byte is the first bit) */
export function decodeBit(data: Buffer, bit: number): boolean {
  return (((data[bit >> 3] as number) >> (bit & 7)) & 1) === 1;
}

const RANGES: Partial<Record<RegisterType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/** The registers to write for a value (big-endian registers, word order and byte swap applied). Throws a readable error. */
export function encodeRegisters(type: RegisterType, tag: ModbusTagConfig, value: number | boolean | string): Buffer {
  const words = sizeOf(tag);
  const be = Buffer.alloc(words * 2);
  if (type === 'string') {
    const text = String(value);
    const bytes = Buffer.from(text, 'latin1');
    if (bytes.length > be.length || bytes.toString('latin1') !== text) {
      throw new Error(`"${text.slice(0, 20)}" does not fit ${words} registers of latin1 text`);
    }
    bytes.copy(be);
  } else {
    const n = typeof value === 'boolean' ? (value ? 1 : 0) : typeof value === 'number' ? value : Number.NaN;
    if (!Number.isFinite(n)) throw new Error(`expected a number for a ${type} tag, got ${JSON.stringify(value)}`);
    const range = RANGES[type];
    if (range !== undefined) {
      if (!Number.isInteger(n)) throw new Error(`expected an integer for a ${type} tag, got ${n}`);
      if (n < range[0] || n > range[1]) throw new Error(`${n} is outside the ${type} range ${range[0]}..${range[1]}`);
    }
    switch (type) {
      case 'int16': be.writeInt16BE(n); break;
      case 'uint16': be.writeUInt16BE(n); break;
      case 'int32': be.writeInt32BE(n); break;
      case 'uint32': be.writeUInt32BE(n); break;
      case 'float32':
        if (Math.abs(n) > 3.4028234663852886e38) throw new Error(`${n} is outside the float32 range`);
        be.writeFloatBE(n);
        break;
      case 'float64': be.writeDoubleBE(n); break;
    }
  }
  // the inverse of arrange(): word order, then byte swap
  const out = Buffer.allocUnsafe(be.length);
  const little = tag.word_order === 'little' && type !== 'string';
  for (let w = 0; w < words; w++) {
    const to = 2 * (little ? words - 1 - w : w);
    out[to] = be[tag.byte_swap ? 2 * w + 1 : 2 * w] as number;
    out[to + 1] = be[tag.byte_swap ? 2 * w : 2 * w + 1] as number;
  }
  return out;
}

/** a coil write: true/false, 1/0 */
export function encodeBit(value: number | boolean | string): boolean {
  if (value === true || value === 1) return true;
  if (value === false || value === 0) return false;
  throw new Error(`expected true or false for a coil, got ${JSON.stringify(value)}`);
}
