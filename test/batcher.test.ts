import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BatchSettings } from '../config/schema.js';
import { Batcher, numberText, stringText, utf8Length } from '../gateway/batcher.js';
import { FakeClock } from '../gateway/clock.js';
import type { Batch, Quality, RawValue, Reading } from '../gateway/types.js';

const T0 = 1_764_250_000_000;
const BIG: BatchSettings = { max_readings: 1_000_000, max_bytes: 1 << 30, max_wait: 1000 };

function setup(settings: Partial<BatchSettings> = {}, firstSeq = 1) {
  const clock = new FakeClock(T0);
  const batches: Batch[] = [];
  let seq = firstSeq;
  let seqCalls = 0;
  const b = new Batcher({
    gatewayId: 'line1-pi',
    deviceId: 'boiler',
    topic: 'edgegate/line1-pi/devices/boiler/data',
    settings: { ...BIG, ...settings },
    clock,
    nextSeq: () => { seqCalls++; return seq++; },
    onBatch: (x) => batches.push(x),
  });
  return { b, clock, batches, seqCalls: () => seqCalls };
}

const r = (tag: string, value: RawValue, ts = T0, quality: Quality = 'good'): Reading => ({ tag, value, ts, quality });
const parsed = (x: Batch) => JSON.parse(x.payload) as { gateway: string; device: string; seq: number; readings: Reading[] };

test('payload: the exact bytes of SPEC §4', () => {
  const { b, batches } = setup({}, 42);
  b.add(r('temperature', 21.5, 1764250000123));
  b.flush();
  assert.is(batches.length, 1);
  assert.is(batches[0]!.payload, '{"gateway":"line1-pi","device":"boiler","seq":42,"readings":[{"tag":"temperature","value":21.5,"ts":1764250000123,"quality":"good"}]}');
  assert.equal({ ...batches[0]!, payload: '' }, {
    device: 'boiler', seq: 42, topic: 'edgegate/line1-pi/devices/boiler/data', payload: '', readings: 1, firstTs: 1764250000123,
  });
});

test('payload: every value kind, escaping and qualities, round trip', () => {
  const { b, batches } = setup({}, 7);
  const input: Reading[] = [
    r('temperature', -3.25, T0 + 1),
    r('unit', '°C "quoted"\n', T0 + 2, 'uncertain'),
    r('relay', true, T0 + 3),
    r('relay', false, T0 + 4, 'bad'),
    r('missing', null, T0 + 5, 'bad'),
    r('levels', [1, 'a', null, false], T0 + 6),
    r('größe 🌡', 1e21, T0 + 7),
  ];
  for (const x of input) b.add(x);
  b.stop();
  const payload = batches[0]!.payload;
  assert.is(payload,
    '{"gateway":"line1-pi","device":"boiler","seq":7,"readings":[' +
    '{"tag":"temperature","value":-3.25,"ts":1764250000001,"quality":"good"},' +
    '{"tag":"unit","value":"°C \\"quoted\\"\\n","ts":1764250000002,"quality":"uncertain"},' +
    '{"tag":"relay","value":true,"ts":1764250000003,"quality":"good"},' +
    '{"tag":"relay","value":false,"ts":1764250000004,"quality":"bad"},' +
    '{"tag":"missing","value":null,"ts":1764250000005,"quality":"bad"},' +
    '{"tag":"levels","value":[1,"a",null,false],"ts":1764250000006,"quality":"good"},' +
    '{"tag":"größe 🌡","value":1e+21,"ts":1764250000007,"quality":"good"}]}');
  assert.equal(parsed(batches[0]!), { gateway: 'line1-pi', device: 'boiler', seq: 7, readings: input });
  assert.is(JSON.stringify(JSON.parse(payload)), payload, 'no spaces, key order as in SPEC');
});

test('ts: across seconds, and odd ones (fractional, tiny) as String() prints them', () => {
  const { b, batches } = setup();
  const tss = [T0 + 999, T0 + 1000, T0 + 1001, T0 - 1, 1764250000123.5, 0, 999, 1000];
  for (const ts of tss) b.add(r('a', 1, ts, 'bad'));
  b.flush();
  assert.equal(parsed(batches[0]!).readings.map((x) => x.ts), tss);
  assert.ok(batches[0]!.payload.includes('"ts":1764250000123.5,'));
});

test('NaN and Infinity become null', () => {
  const { b, batches } = setup();
  b.add(r('a', NaN));
  b.add(r('a', Infinity));
  b.add(r('a', [1, NaN]));
  b.flush();
  assert.equal(parsed(batches[0]!).readings.map((x) => x.value), [null, null, [1, null]]);
});

test('max_readings flushes when reached', () => {
  const { b, batches, clock } = setup({ max_readings: 3 });
  for (let i = 0; i < 7; i++) b.add(r('a', i, T0 + i));
  assert.equal(batches.map((x) => x.readings), [3, 3]);
  assert.equal(batches.map((x) => x.firstTs), [T0, T0 + 3]);
  assert.equal(parsed(batches[1]!).readings.map((x) => x.value), [3, 4, 5]);
  assert.is(b.pending, 1);
  assert.is(clock.pending, 1, 'the open batch has its max_wait timer, the closed ones none');
});

test('max_wait: one timer per batch, armed by its first reading', () => {
  const { b, batches, clock } = setup({ max_wait: 1000 });
  assert.is(clock.pending, 0);
  b.add(r('a', 1));
  clock.advance(600);
  b.add(r('a', 2));
  assert.is(clock.pending, 1);
  clock.advance(399);
  assert.is(batches.length, 0);
  clock.advance(1);
  assert.is(batches.length, 1);
  assert.is(batches[0]!.readings, 2);
  assert.is(b.pending, 0);
  assert.is(clock.pending, 0);
  clock.advance(5000);
  assert.is(batches.length, 1, 'no timer while empty');
  b.add(r('a', 3));
  clock.advance(1000);
  assert.equal(batches.map((x) => x.seq), [1, 2]);
});

test('whichever comes first: max_readings before max_wait, then max_wait', () => {
  const { b, batches, clock } = setup({ max_readings: 3, max_wait: 1000 });
  b.add(r('a', 1));
  clock.advance(500);
  b.add(r('a', 2));
  b.add(r('a', 3));
  assert.is(batches.length, 1);
  assert.is(clock.pending, 0, 'the timer of a batch closed by count is cancelled');
  b.add(r('a', 4));
  clock.advance(999);
  assert.is(batches.length, 1);
  clock.advance(1);
  assert.equal(batches.map((x) => x.readings), [3, 1]);
});

test('max_bytes: no payload exceeds it, in UTF-8 bytes, and each batch is as full as allowed', () => {
  const input: Reading[] = [];
  // two to four bytes per character in UTF-8: counting UTF-16 units would overshoot
  for (let i = 0; i < 60; i++) input.push(r(i % 3 ? '温度' : 't', ['€', 'é', '🌡', 'a"'][i % 4]!.repeat(i % 7), T0 + i));
  // every limit in a range, so that each kind of reading meets the boundary exactly
  for (let max = 230; max <= 600; max++) {
    const { b, batches } = setup({ max_bytes: max });
    for (const x of input) b.add(x);
    b.stop();
    let seen = 0;
    for (const [i, x] of batches.entries()) {
      const bytes = Buffer.byteLength(x.payload);
      // room is kept for the longest seq, so the limit holds with 16 digits in its place
      const reserved = bytes - String(x.seq).length + 16;
      assert.ok(reserved <= max, `max ${max}, batch ${i}: ${bytes} bytes`);
      const readings = parsed(x).readings;
      assert.equal(readings, input.slice(seen, seen + readings.length));
      seen += readings.length;
      const next = input[seen];
      if (next) {
        // the next reading would not have fitted, even with seq at its longest
        assert.ok(reserved + 1 + Buffer.byteLength(JSON.stringify(next)) > max, `max ${max}, batch ${i} was closed early`);
      }
    }
    assert.is(seen, input.length);
  }
});

test('max_bytes: a reading larger than max_bytes goes alone, after what was open', () => {
  const { b, batches } = setup({ max_bytes: 200 });
  b.add(r('a', 1));
  b.add(r('a', 2));
  b.add(r('big', 'x'.repeat(500)));
  assert.equal(batches.map((x) => x.readings), [2, 1]);
  assert.is(parsed(batches[1]!).readings[0]!.tag, 'big');
  assert.is(b.pending, 0);
  b.add(r('a', 3));
  assert.is(b.pending, 1);
});

test('seq comes from nextSeq at flush time, in order; an empty flush takes none', () => {
  const { b, batches, seqCalls } = setup({ max_readings: 2 }, 100);
  b.flush();
  b.stop();
  assert.is(seqCalls(), 0);
  for (let i = 0; i < 6; i++) b.add(r('a', i));
  assert.equal(batches.map((x) => x.seq), [100, 101, 102]);
  assert.equal(batches.map((x) => parsed(x).seq), [100, 101, 102]);
  assert.is(seqCalls(), 3);
});

test('flush and stop: close the open batch and leave no timer', () => {
  const { b, batches, clock } = setup();
  b.add(r('a', 1));
  b.flush();
  assert.is(batches.length, 1);
  assert.is(clock.pending, 0);
  b.add(r('a', 2));
  b.stop();
  assert.is(batches.length, 2);
  assert.is(clock.pending, 0);
  assert.is(b.pending, 0);
});

test('onAdd: each batch carries exactly the readings announced since the one before, also when max_bytes or max_readings closes it', () => {
  for (const settings of [{ max_bytes: 200 }, { max_readings: 3 }, { max_bytes: 330, max_readings: 3 }]) {
    const clock = new FakeClock(T0);
    const announced: string[] = [];
    const carried: string[][] = [];
    let seq = 1;
    const b = new Batcher({
      gatewayId: 'gw', deviceId: 'd', topic: 't', settings: { ...BIG, ...settings }, clock, nextSeq: () => seq++,
      onAdd: (x) => announced.push(String(x.value)),
      onBatch: (x) => {
        assert.is(announced.length, x.readings, `batch ${x.seq}: announced since the previous batch`);
        carried.push(parsed(x).readings.map((y) => String(y.value)));
        assert.equal(announced.splice(0), carried.at(-1));
      },
    });
    for (let i = 0; i < 20; i++) b.add(r('t', 'v'.repeat(i % 7) + i));
    b.stop();
    assert.is(carried.flat().length, 20);
    assert.ok(carried.length > 3, `${carried.length} batches`);
  }
});

test('onBatch may add again: the batcher is reset before it is called', () => {
  const clock = new FakeClock(T0);
  const batches: Batch[] = [];
  let seq = 1;
  const b: Batcher = new Batcher({
    gatewayId: 'g', deviceId: 'd', topic: 't', settings: { ...BIG, max_readings: 1 }, clock,
    nextSeq: () => seq++,
    onBatch: (x) => { batches.push(x); if (batches.length === 1) b.add(r('again', 2)); },
  });
  b.add(r('a', 1));
  assert.equal(batches.map((x) => parsed(x).readings[0]!.tag), ['a', 'again']);
});

test('10,000 readings make one valid JSON batch', () => {
  const { b, batches } = setup();
  const tags = ['temperature', 'humidity', 'état', 'pressure'];
  for (let i = 0; i < 10_000; i++) {
    const value = i % 3 === 0 ? i / 7 : i % 3 === 1 ? `v${i}°` : i % 2 === 0;
    b.add(r(tags[i % tags.length]!, value, T0 + i, i % 5 === 0 ? 'uncertain' : 'good'));
  }
  b.stop();
  assert.is(batches.length, 1);
  const p = parsed(batches[0]!);
  assert.is(p.readings.length, 10_000);
  assert.is(p.readings[9999]!.ts, T0 + 9999);
  assert.is(p.readings[3]!.value, 3 / 7);
  assert.is(p.readings[4]!.value, 'v4°');
});

test('numberText prints what JSON.stringify prints, for every kind of number', () => {
  const fixed = [0, -0, 1, -1, 0.5, -0.5, 0.001, -0.001, 0.0005, 21.5, 1013.25, 0.1 + 0.2, 1 + Number.EPSILON, 999.999, 1e-7,
    2147483.647, 2147483.648, -2147483.648, 1e21, 123456789.123, 5e-324, Number.MAX_VALUE, 1764250000123, 2 ** 53 + 2];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const random: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const mag = 10 ** Math.floor(rnd() * 12 - 4);
    const decimals = Math.floor(rnd() * 6);
    const v = (rnd() - 0.5) * mag;
    random.push(v, Number(v.toFixed(decimals)), Math.round(v * 1000) / 1000, Math.fround(v));
  }
  for (const v of [...fixed, ...random]) assert.is(numberText(v), JSON.stringify(v), String(v));
  assert.is(numberText(NaN), 'null');
  assert.is(numberText(-Infinity), 'null');
});

test('stringText is JSON.stringify, and counts its UTF-8 bytes', () => {
  const { b, batches } = setup();
  for (const s of ['', 'plain', '°C', '温度', 'a"b', 'back\\slash', 'tab\tnew\n', '\u0001', '🌡 hot', '\ud800 lone', 'x\udc00', 'é'.repeat(50)]) {
    assert.is(stringText(s), JSON.stringify(s), JSON.stringify(s));
    b.add(r('s', s));
  }
  b.flush();
  assert.equal(parsed(batches[0]!).readings.map((x) => x.value).length, 12);
});

test('utf8Length agrees with Buffer.byteLength', () => {
  for (const s of ['', 'abc', '°C', '€', '温度', '🌡', 'a\u00ffb\u0800c', '\ud800', 'x\udc00y', '\ud83c']) {
    assert.is(utf8Length(s), Buffer.byteLength(s), JSON.stringify(s));
  }
});

test.run();
