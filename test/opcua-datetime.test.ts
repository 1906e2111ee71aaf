// The DateTime decoder the driver installs in node-opcua: the same Date and
// picoseconds as node-opcua's own (64-bit `long` arithmetic) for every value,
// and in use when a DataValue is decoded.
import { createRequire } from 'node:module';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dateTimeOfHalves, decodeHighAccuracyDateTime } from '../drivers/opcua/datetime.js';
import { DataValue } from '../drivers/opcua/ua.js';

const require = createRequire(import.meta.url);
const fromClient = createRequire(require.resolve('node-opcua-client'));
const { BinaryStream } = fromClient('node-opcua-binary-stream') as { BinaryStream: new (size: number) => { rewind(): void } };
const dateTime = fromClient('node-opcua-date-time') as {
  bn_hundredNanoSecondFrom1601ToDate(high: number, low: number): [Date, number];
  bn_dateToHundredNanoSecondFrom1601(date: Date, picoseconds: number): [number, number];
};

function same(hi: number, lo: number): void {
  const [d1, p1] = dateTimeOfHalves(lo | 0, hi | 0);
  const [d2, p2] = dateTime.bn_hundredNanoSecondFrom1601ToDate(hi, lo);
  assert.is(d1.getTime(), d2.getTime(), `ms of ${hi}:${lo}`);
  assert.is(p1, p2, `picoseconds of ${hi}:${lo}`);
}

test('the same Date and picoseconds as node-opcua for every kind of value', () => {
  // OPC UA's "no time", the 1970 epoch, now, the largest DateTime
  same(0, 0);
  const [h, l] = dateTime.bn_dateToHundredNanoSecondFrom1601(new Date(0), 0);
  same(h, l);
  const [hn, ln] = dateTime.bn_dateToHundredNanoSecondFrom1601(new Date(), 123_400_000);
  same(hn, ln);
  same(0x7fffffff, 0xffffffff);
  // halves with the top bit set (readInteger gives them negative)
  same(0xffffffff, 0xffffffff);
  same(0x80000000, 0x80000000);
  let seed = 42;
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
  for (let i = 0; i < 100_000; i++) same(rand() >>> (i % 3 === 0 ? 0 : 7), rand());
  // every 100 ns step of a millisecond around now
  for (let k = 0; k < 20_000; k++) same(hn, (ln + k) >>> 0);
});

test('installed with the driver: a decoded DataValue takes its timestamps from it, unchanged', () => {
  const encodeDecode = require(fromClient.resolve('node-opcua-date-time').replace(/index\.js$/, 'encode_decode.js')) as { decodeHighAccuracyDateTime: unknown };
  assert.ok(encodeDecode.decodeHighAccuracyDateTime === decodeHighAccuracyDateTime, 'loading the driver\'s node-opcua installs the decoder');
  const source = new Date(1_764_250_000_123), server = new Date(1_764_250_000_456);
  const dv = new DataValue({ sourceTimestamp: source, sourcePicoseconds: 7_000_000, serverTimestamp: server, value: { dataType: 'Double', value: 1.5 } });
  const stream = new BinaryStream(dv.binaryStoreSize());
  dv.encode(stream as never);
  stream.rewind();
  let calls = 0;
  const original = encodeDecode.decodeHighAccuracyDateTime as unknown as (s: unknown) => unknown;
  (encodeDecode as Record<string, unknown>).decodeHighAccuracyDateTime = (s: unknown) => { calls++; return original(s); };
  try {
    const back = new DataValue();
    back.decode(stream as never);
    assert.is(calls, 2, 'both timestamps went through the installed decoder');
    assert.is(back.sourceTimestamp?.getTime(), source.getTime());
    assert.is(back.sourcePicoseconds, 7_000_000);
    assert.is(back.serverTimestamp?.getTime(), server.getTime());
    assert.is(back.value.value, 1.5);
  } finally {
    (encodeDecode as Record<string, unknown>).decodeHighAccuracyDateTime = original;
  }
});

test.run();
