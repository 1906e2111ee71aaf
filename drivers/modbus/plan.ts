// The reads of one poll: tags of the same area at contiguous (or
// overlapping) addresses share one request, up to 125 registers or 2000 bits,
// so a meter with 40 registers in a row costs one request, not 40. Gaps are
// not bridged: a device may answer an address in a hole with an exception.
import { PermanentError } from '../../gateway/types.js';
import {
  FC_READ_COILS, FC_READ_DISCRETE, FC_READ_HOLDING, FC_READ_INPUT, MAX_READ_BITS, MAX_READ_REGISTERS, readRequest,
} from './pdu.js';
import { sizeOf, typeOf, type ModbusTagConfig, type RegisterType } from './values.js';

export interface PlannedTag {
  key: string;
  tag: ModbusTagConfig;
  /** 'bool' for bits */
  type: 'bool' | RegisterType;
  /** bit index, or byte offset of the first register, within the block's answer */
  offset: number;
}

export interface ReadBlock {
  area: ModbusTagConfig['area'];
  start: number;
  count: number;
  /** the request PDU, built once */
  request: Buffer;
  tags: PlannedTag[];
}

const FUNCTION: Record<ModbusTagConfig['area'], number> = {
  coil: FC_READ_COILS,
  discrete: FC_READ_DISCRETE,
  holding: FC_READ_HOLDING,
  input: FC_READ_INPUT,
};

const AREAS: ModbusTagConfig['area'][] = ['coil', 'discrete', 'holding', 'input'];

export function planReads(tags: Record<string, ModbusTagConfig>, limits = { registers: MAX_READ_REGISTERS, bits: MAX_READ_BITS }): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  for (const area of AREAS) {
    const bits = area === 'coil' || area === 'discrete';
    const max = bits ? limits.bits : limits.registers;
    const inArea = Object.entries(tags)
      .filter(([, t]) => t.area === area)
      .map(([key, tag]) => ({ key, tag, size: sizeOf(tag) }))
      .sort((a, b) => a.tag.address - b.tag.address || b.size - a.size);
    let open: { start: number; end: number; members: typeof inArea } | undefined;
    const close = (): void => {
      if (!open) return;
      const { start, end } = open;
      blocks.push({
        area, start, count: end - start,
        request: readRequest(FUNCTION[area], start, end - start),
        tags: open.members.map((m) => ({ key: m.key, tag: m.tag, type: typeOf(m.tag), offset: bits ? m.tag.address - start : 2 * (m.tag.address - start) })),
      });
      open = undefined;
    };
    for (const m of inArea) {
      const start = m.tag.address;
      const end = start + m.size;
      if (end > 0x10000) throw new PermanentError(`tag ${m.key}: ${m.size} registers from address ${start} run past 65535`);
      if (open && start <= open.end && Math.max(open.end, end) - open.start <= max) {
        open.end = Math.max(open.end, end);
        open.members.push(m);
      } else {
        close();
        open = { start, end, members: [m] };
      }
    }
    close();
  }
  return blocks;
}
