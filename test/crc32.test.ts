// The disk buffer's CRC-32: zlib's where Node has it (20.15+, 22.2+), else the
// JavaScript table. Both must give the same value for every input, or a buffer
// written under one Node would read back as damage under another.
import * as zlib from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32, crc32Js, NATIVE_CRC32 } from '../gateway/buffer/crc32.js';

const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** deterministic bytes (xorshift32), so a failure can be replayed */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

test('known vectors (IEEE 802.3, as zlib, gzip and PNG)', () => {
  const vectors: Array<[string, number]> = [
    ['', 0],
    ['a', 0xe8b7be43],
    ['123456789', 0xcbf43926],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ];
  for (const [text, want] of vectors) {
    assert.is(crc32Js(Buffer.from(text)), want, `crc32Js("${text}")`);
    assert.is(crc32(Buffer.from(text)), want, `crc32("${text}")`);
  }
  assert.is(crc32Js(Buffer.alloc(32, 0xff)), 0xff6cab0b, '32 bytes of 0xff');
  assert.is(crc32Js(Buffer.alloc(4096)), 0xc71c0011, '4 KiB of zeros');
});

test('the JavaScript CRC equals zlib.crc32 on random buffers of every small length and some large ones', () => {
  if (!native) {
    console.warn(`\n!!! Node.js ${process.version} has no zlib.crc32: the comparison runs on Node 20.15+ and 22.2+\n`);
    return;
  }
  for (let n = 0; n <= 1100; n++) {
    const b = bytes(n, n + 1);
    assert.is(crc32Js(b), native(b), `length ${n}`);
  }
  for (const n of [65_536, 1_000_003]) {
    const b = bytes(n, n);
    assert.is(crc32Js(b), native(b), `length ${n}`);
    // a view into a larger buffer, as the frame parser passes it
    const view = b.subarray(7, n - 5);
    assert.is(crc32Js(view), native(view), `a view of length ${view.length}`);
  }
});

test('zlib.crc32 is used where Node has it, the JavaScript CRC elsewhere', () => {
  assert.is(NATIVE_CRC32, typeof native === 'function');
  assert.is(crc32, native ?? crc32Js);
});

test.run();
