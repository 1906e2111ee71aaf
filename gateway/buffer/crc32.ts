// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320: the one of zlib, gzip
// and PNG) of the disk buffer's frames. `zlib.crc32` computes it natively, but
// only since Node 20.15 / 22.2; older Node 20 releases get the table-driven
// version below, which gives the same value for every input, so a buffer
// written under one Node reads back under any other. The namespace import is
// deliberate: a named import of an export that Node lacks fails at link time.
import * as zlib from 'node:zlib';

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** the CRC-32 of `data` in plain JavaScript (one table look-up per byte) */
export function crc32Js(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** true when this Node computes CRC-32 natively (Node 20.15+, 22.2+) */
export const NATIVE_CRC32 = typeof native === 'function';

/** the CRC-32 of `data`, as an unsigned 32-bit number */
export const crc32: (data: Uint8Array) => number = native ?? crc32Js;
