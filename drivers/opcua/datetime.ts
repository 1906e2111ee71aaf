// node-opcua decodes every DateTime through the `long` library: a 64-bit
// Long, a division, a modulo and a multiplication, each a new Long. A data
// change carries two DateTimes (source and server timestamp), and those Longs
// were more than half of all the bytes the gateway allocated per OPC UA
// reading (a sampling allocation profile at 30,000 changes/s: 55 %), most of
// its garbage collections and a good share of its CPU. The same result is
// computed here with doubles, exactly: the 64-bit count of 100 ns since 1601
// is split in base 2^32, and every intermediate stays below 2^53.
//
// The decoder is swapped in node-opcua-date-time's exports, which the
// DataValue decoder reads at each call (node-opcua-basic-types re-exports it
// through a getter). node-opcua is pinned exactly; should the module change
// shape, nothing is replaced and node-opcua's own decoder stays.
import { createRequire } from 'node:module';

const TWO_32 = 4294967296;
/** ms from 1601-01-01 to 1970-01-01 */
const EPOCH_1601_MS = 11644473600000;

interface BinaryStream { readInteger(): number }

/** [date, picoseconds] from the two little-endian 32-bit halves of an OPC UA DateTime, as node-opcua returns them */
export function dateTimeOfHalves(lo: number, hi: number): [Date, number] {
  const h = hi >>> 0;
  const l = lo >>> 0;
  // (h * 2^32 + l) / 10,000 without a 64-bit integer: h = q * 10,000 + r
  const q = Math.floor(h / 10000);
  const r = h - q * 10000;
  const low = r * TWO_32 + l; // < 10,000 * 2^32 < 2^53
  const lowMs = Math.floor(low / 10000);
  const ms = q * TWO_32 + lowMs - EPOCH_1601_MS;
  // the 100 ns steps below the millisecond, in picoseconds
  return [new Date(ms), (low - lowMs * 10000) * 100000];
}

/** node-opcua's decodeHighAccuracyDateTime(stream), exactly, without `long` */
export function decodeHighAccuracyDateTime(stream: BinaryStream): [Date, number] {
  const lo = stream.readInteger();
  const hi = stream.readInteger();
  return dateTimeOfHalves(lo, hi);
}

let installed: boolean | undefined;

/** replaces node-opcua's DateTime decoder with the exact one above; true when it did (once per process) */
export function installFastDateTime(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  try {
    const here = createRequire(import.meta.url);
    const basic = createRequire(here.resolve('node-opcua-client')).resolve('node-opcua-basic-types');
    const dateTime = createRequire(basic).resolve('node-opcua-date-time');
    const encodeDecode = createRequire(dateTime)(dateTime.replace(/index\.js$/, 'encode_decode.js')) as Record<string, unknown>;
    const desc = Object.getOwnPropertyDescriptor(encodeDecode, 'decodeHighAccuracyDateTime');
    if (typeof desc?.value !== 'function' || !desc.writable) return false;
    encodeDecode.decodeHighAccuracyDateTime = decodeHighAccuracyDateTime;
    installed = true;
  } catch {
    // another layout of node-opcua: its own decoder stays
  }
  return installed;
}
