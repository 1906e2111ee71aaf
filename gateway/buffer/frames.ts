// One batch on disk is one frame:
//
//   magic (4) | body length (u32 LE) | CRC-32 of the body (u32 LE) | body
//   body: version (u8) | lsn (f64) | seq (f64) | firstTs (f64) | readings (u32)
//         | device length (u16) | device | topic length (u16) | topic | payload
//
// `lsn` numbers the records of the buffer across restarts, so a record tells
// its place itself: records acknowledged before they were written leave gaps,
// and a reader needs no index. The magic starts with 0xF5, a byte that never
// occurs in UTF-8, so after damage the parser finds the next frame by
// searching for it, and the CRC tells a real frame from a chance match.
import { crc32 } from './crc32.js';
import type { Batch } from '../types.js';

export const MAGIC = Buffer.from([0xf5, 0xeb, 0x47, 0x42]);
export const HEADER_BYTES = 12;
const MAGIC_WORD = MAGIC.readUInt32BE(0);
const VERSION = 1;
const FIXED_BODY = 1 + 8 + 8 + 8 + 4;
/** larger lengths are damage: batches are bounded by batch.max_bytes */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface StoredRecord {
  lsn: number;
  /** its payload is decoded from `raw` when asked for */
  batch: Batch;
  /** the payload's bytes: a view of the buffer read */
  raw: Buffer;
}

/** the frame of one record, ready to append */
export function encodeFrame(lsn: number, b: Batch): Buffer {
  const device = Buffer.byteLength(b.device);
  const topic = Buffer.byteLength(b.topic);
  const payload = Buffer.byteLength(b.payload);
  const bodyBytes = FIXED_BODY + 2 + device + 2 + topic + payload;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(bodyBytes, 4);
  let o = HEADER_BYTES;
  o = buf.writeUInt8(VERSION, o);
  o = buf.writeDoubleLE(lsn, o);
  o = buf.writeDoubleLE(b.seq, o);
  o = buf.writeDoubleLE(b.firstTs, o);
  o = buf.writeUInt32LE(b.readings, o);
  o = buf.writeUInt16LE(device, o);
  o += buf.write(b.device, o, 'utf8');
  o = buf.writeUInt16LE(topic, o);
  o += buf.write(b.topic, o, 'utf8');
  buf.write(b.payload, o, 'utf8');
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_BYTES)), 8);
  return buf;
}

function decodeBody(body: Buffer): StoredRecord | undefined {
  if (body.length < FIXED_BODY + 4 || body[0] !== VERSION) return undefined;
  let o = 1;
  const lsn = body.readDoubleLE(o); o += 8;
  const seq = body.readDoubleLE(o); o += 8;
  const firstTs = body.readDoubleLE(o); o += 8;
  const readings = body.readUInt32LE(o); o += 4;
  const deviceLen = body.readUInt16LE(o); o += 2;
  const device = body.toString('utf8', o, (o += deviceLen));
  if (o + 2 > body.length) return undefined;
  const topicLen = body.readUInt16LE(o); o += 2;
  if (o + topicLen > body.length) return undefined;
  const topic = body.toString('utf8', o, (o += topicLen));
  const raw = body.subarray(o);
  return { lsn, batch: { device, seq, topic, readings, firstTs, get payload() { return raw.toString('utf8'); } }, raw };
}

export interface ParseResult {
  /** bytes of the input that are done with (records and damage); the rest waits for more */
  consumed: number;
  /** damaged regions begun in this call (each torn or corrupt stretch counts once) */
  damaged: number;
  /** the input ended inside damage: pass it to the next call, so the stretch counts once */
  inDamage: boolean;
}

/**
 * Parses the frames in `buf`, calling onRecord with each intact record and the
 * offset of its frame in `buf`. `after` is how many bytes of the segment follow
 * `buf`: a frame that cannot fit in them is damage (a torn write at the end, a
 * corrupt length), one that can waits for more input.
 */
export function parseFrames(
  buf: Buffer, after: number, onRecord: (r: StoredRecord, offset: number, frameBytes: number) => void, inDamage = false,
): ParseResult {
  let i = 0;
  let damaged = 0;
  const final = after === 0;
  /** damage at i: continue at the next magic after it; false when there is none yet */
  const skip = (): boolean => {
    if (!inDamage) damaged++;
    inDamage = true;
    const next = buf.indexOf(MAGIC, i + 1);
    if (next >= 0) { i = next; return true; }
    // keep a tail that may hold the start of a magic split across reads
    i = final ? buf.length : Math.max(i, buf.length - (MAGIC.length - 1));
    return false;
  };
  while (i < buf.length) {
    const left = buf.length - i;
    if (left < HEADER_BYTES) {
      if (!final) break;
      if (!skip()) break;
      continue;
    }
    if (buf.readUInt32BE(i) !== MAGIC_WORD) { if (!skip()) break; continue; }
    const len = buf.readUInt32LE(i + 4);
    if (len > MAX_BODY_BYTES || HEADER_BYTES + len > left + after) { if (!skip()) break; continue; }
    if (HEADER_BYTES + len > left) break;
    const body = buf.subarray(i + HEADER_BYTES, i + HEADER_BYTES + len);
    const record = crc32(body) === buf.readUInt32LE(i + 8) ? decodeBody(body) : undefined;
    if (!record) { if (!skip()) break; continue; }
    inDamage = false;
    onRecord(record, i, HEADER_BYTES + len);
    i += HEADER_BYTES + len;
  }
  return { consumed: i, damaged, inDamage };
}
