// Honest values (SPEC §5): no deadband edge lost to binary floating point, no
// float noise past `decimals`, no text in a number tag, no heartbeat fresher
// than the device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { opcuaTag, serialTag, type TagConfig } from '../config/schema.js';
import { numberText } from '../gateway/batcher.js';
import { FakeClock } from '../gateway/clock.js';
import { TagPipeline } from '../gateway/tags.js';
import { newCounters, type Reading } from '../gateway/types.js';

const T0 = 1_764_250_000_000;

function setup(tags: Record<string, TagConfig>, connected = true) {
  const clock = new FakeClock(T0);
  const out: Reading[] = [];
  const counters = newCounters();
  const p = new TagPipeline({ tags, clock, out: (r) => out.push(r), counters, connected });
  return { clock, out, counters, p, values: () => out.map((r) => r.value) };
}

/** decimal places of a number as JavaScript prints it */
const places = (x: number): number => (String(x).split('.')[1] ?? '').length;
/** a + b as a person writes the sum: the decimal, read back as the nearest double */
const decimalSum = (a: number, b: number): number => Number((a + b).toFixed(Math.max(places(a), places(b))));

const DEADBANDS = [0.1, 0.2, 0.05, 0.5, 1, 0.01, 0.25, 2.5, 10, 0.001, 0.3, 0.7];
const STARTS = [0, 21.5, -3.3, 1000.1, 123456.78, 0.07, -0.15, 99.99, 9876543.21, -273.15, 4.35, 1e-3];

// ------------------------------------------------------------ deadband

test('deadband: 21.5 then 21.7 with deadband 0.2 passes (21.7 - 21.5 is 0.19999999999999929 in binary)', () => {
  const { p, values } = setup({ T: { type: 'number', deadband: 0.2 } });
  for (const v of [21.5, 21.7, 21.5, 21.6, 21.3]) p.input('T', v, T0, 'good');
  assert.equal(values(), [21.5, 21.7, 21.5, 21.3]);
});

test('deadband grid: a change of exactly d passes up and down, 0.99 d does not, across magnitudes', () => {
  const failures: string[] = [];
  for (const d of DEADBANDS) {
    for (const v0 of STARTS) {
      const up = decimalSum(v0, d);
      const down = decimalSum(v0, -d);
      const { p, values } = setup({ T: { type: 'number', deadband: d } });
      p.input('T', v0, T0, 'good');
      p.input('T', v0 + d * 0.99, T0, 'good'); // clearly short of d: dropped
      p.input('T', up, T0, 'good'); // exactly d: passes
      p.input('T', decimalSum(up, -d * 0.99), T0, 'good'); // dropped
      p.input('T', v0, T0, 'good'); // exactly d back: passes
      p.input('T', decimalSum(v0, -d * 0.99), T0, 'good'); // dropped
      p.input('T', down, T0, 'good'); // exactly d below: passes
      const got = values();
      const want = [v0, up, v0, down];
      if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`d=${d} v0=${v0}: ${JSON.stringify(got)}`);
    }
  }
  assert.equal(failures, [], `${failures.length} of ${DEADBANDS.length * STARTS.length} cases lost an edge`);
});

test('deadband: the tolerance never lets an equal value or a step of 0.99 d through, even where doubles are coarse', () => {
  const { p, values } = setup({ T: { type: 'number', deadband: 0.001 } });
  for (const v of [1e12, 1e12, 1e12 + 0.0009, 1e12 + 0.002]) p.input('T', v, T0, 'good');
  assert.equal(values(), [1e12, 1e12 + 0.002]);
});

test('deadband grid with scale and offset: a raw step worth exactly d in published units passes, 0.99 d does not', () => {
  const failures: string[] = [];
  const conversions = [{ scale: 0.1 }, { scale: 0.01, offset: -40 }, { offset: -273.15 }, { scale: 0.001, offset: 1000 }, { scale: 2.5, offset: 0.1 }];
  for (const conv of conversions) {
    const scale = conv.scale ?? 1;
    for (const d of [0.1, 0.2, 0.5, 1, 2.5]) {
      const step = Number((d / scale).toFixed(10)); // the raw step a person computes
      for (const r0 of [0, 215, 1234, 65535, 3]) {
        const { p, values } = setup({ T: { type: 'number', deadband: d, ...conv } });
        p.input('T', r0, T0, 'good');
        p.input('T', r0 + step * 0.99, T0, 'good');
        p.input('T', decimalSum(r0, step), T0, 'good');
        p.input('T', r0, T0, 'good');
        if (values().length !== 3) failures.push(`${JSON.stringify(conv)} d=${d} raw ${r0}: ${JSON.stringify(values())}`);
      }
    }
  }
  assert.equal(failures, []);
});

// ------------------------------------------------------------ decimals

test('decimals: scale 10 on 2.03 publishes 20.3, not 20.299999999999997', () => {
  const { p, out } = setup({ a: { type: 'number', scale: 10, decimals: 1 }, b: { type: 'number', scale: 10, decimals: 3 } });
  p.input('a', 2.03, T0, 'good');
  p.input('b', 2.03, T0, 'good');
  assert.equal(out.map((r) => numberText(r.value as number)), ['20.3', '20.3']);
  assert.equal(out.map((r) => JSON.stringify(r.value)), ['20.3', '20.3']);
});

test('decimals: half away from zero in decimal, as the value is written', () => {
  const cases: [number, number, string][] = [
    [1.005, 2, '1.01'], [-1.005, 2, '-1.01'], [2.675, 2, '2.68'], [0.125, 2, '0.13'], [-0.125, 2, '-0.13'],
    [1.0049, 2, '1'], [21.537, 1, '21.5'], [21.55, 1, '21.6'], [-21.55, 1, '-21.6'], [0.5, 0, '1'], [-0.5, 0, '-1'],
    [1234.5, 0, '1235'], [-0.4, 0, '0'], [-0.04, 1, '0'], [0.1 + 0.2, 15, '0.3'], [0.1 + 0.2, 2, '0.3'],
    [21.700000762939453, 2, '21.7'], // a float32 register
    [123456789.123456, 3, '123456789.123'], [1e20, 2, '100000000000000000000'], [7, 3, '7'], [1e-7, 6, '0'], [5e-7, 6, '0.000001'],
  ];
  const failures: string[] = [];
  for (const [x, k, want] of cases) {
    const { p, out } = setup({ a: { type: 'number', decimals: k } });
    p.input('a', x, T0, 'good');
    const got = numberText(out[0]!.value as number);
    if (got !== want || String(out[0]!.value) !== want) failures.push(`${x} to ${k}: ${String(out[0]!.value)}, expected ${want}`);
  }
  assert.equal(failures, []);
});

/** the reference: round the decimal text itself, half away from zero, digit by digit */
function roundText(text: string, k: number): string {
  const neg = text.startsWith('-');
  const [whole, frac = ''] = (neg ? text.slice(1) : text).split('.');
  const digits = BigInt(whole! + frac.padEnd(k + 1, '0').slice(0, k + 1));
  const n = (digits + 5n) / 10n; // the k+1-th decimal decides: 5 and up away from zero
  const s = n.toString().padStart(k + 1, '0');
  const out = k === 0 ? s : `${s.slice(0, -k)}.${s.slice(-k)}`;
  return (neg && n !== 0n ? '-' : '') + String(Number(out));
}

test('decimals grid: scaled readings round like their decimal text, for every value of three places and a scale', () => {
  const failures: string[] = [];
  for (const [scale, shift] of [[1, 0], [10, 1], [0.1, -1], [100, 2]] as const) {
    for (let i = -20000; i <= 20000; i += 7) {
      // i thousandths, scaled: the decimal a person reads is i * 10^(shift - 3)
      const raw = i / 1000;
      const exact = (() => {
        const neg = i < 0 ? '-' : '';
        const digits = String(Math.abs(i)).padStart(8, '0');
        const point = digits.length - 3 + shift;
        return `${neg}${digits.slice(0, point)}.${digits.slice(point)}`;
      })();
      for (const k of [0, 1, 2, 3]) {
        const { p, out } = setup({ a: { type: 'number', scale, decimals: k } });
        p.input('a', raw, T0, 'good');
        const got = String(out[0]!.value);
        const want = roundText(exact, k);
        if (got !== want) failures.push(`${raw} * ${scale} to ${k}: ${got}, expected ${want}`);
      }
    }
  }
  assert.equal(failures.slice(0, 10), []);
});

test('decimals: applied after scale and offset, before min/max and the deadband', () => {
  const { p, values, counters } = setup({
    r: { type: 'number', decimals: 0, min: 10 }, // 9.5 rounds to 10: in range
    d: { type: 'number', decimals: 1, deadband: 0.2 }, // 21.66 rounds to 21.7: 0.2 from 21.5
    o: { type: 'number', scale: 0.1, offset: -40, decimals: 1 },
  });
  p.input('r', 9.5, T0, 'good');
  p.input('r', 9.4, T0, 'good');
  p.input('d', 21.5, T0, 'good');
  p.input('d', 21.66, T0, 'good');
  p.input('o', 617, T0, 'good'); // 61.7 - 40 = 21.700000000000003
  assert.equal(values(), [10, 21.5, 21.7, 21.7]);
  assert.is(counters.out_of_range, 1);
});

// ------------------------------------------------------------ untyped tags with numeric keys

test('config: a tag without a type that uses scale, offset, min, max, deadband > 0 or decimals is a number tag', () => {
  for (const schema of [serialTag, opcuaTag]) {
    const base = schema === opcuaTag ? { node: 'ns=1;s=X' } : {};
    for (const keys of [{ scale: 2 }, { offset: 1 }, { min: 0 }, { max: 9 }, { deadband: 0.5 }, { decimals: 1 }]) {
      assert.is(schema.parse({ ...base, ...keys }).type, 'number', JSON.stringify(keys));
    }
    for (const keys of [{}, { deadband: 0 }, { max_interval: 1000 }, { type: 'string', deadband: 1 }]) {
      assert.is.not(schema.parse({ ...base, ...keys }).type, 'number', JSON.stringify(keys));
    }
  }
});

test('a tag with deadband, scale, min and max but no type: text is a parse error, not published', () => {
  const tag = serialTag.parse({ deadband: 0.5, scale: 1, min: 0, max: 100 });
  const { p, values, counters } = setup({ T: tag });
  for (const v of ['21.5', 'abc', 'open', '22.5']) p.input('T', v, T0, 'good');
  assert.equal(values(), [21.5, 22.5]);
  assert.is(counters.parse_errors, 2);
});

// ------------------------------------------------------------ heartbeats

test('max_interval: the latest value the device delivered, also one the deadband held back, with its own ts', () => {
  const { p, out, clock } = setup({ T: { type: 'number', deadband: 1, max_interval: 1000 } });
  p.input('T', 10, T0, 'good');
  clock.advance(300);
  p.input('T', 10.4, T0 + 300, 'good');
  clock.advance(300);
  p.input('T', 10.6, T0 + 600, 'uncertain'); // a change of quality passes
  clock.advance(100);
  p.input('T', 10.7, T0 + 700, 'uncertain');
  clock.advance(899); // 1000 after the last send is T0 + 1600
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, 0], [10.6, 600]]);
  clock.advance(1);
  assert.equal(out[2], { tag: 'T', value: 10.7, ts: T0 + 700, quality: 'uncertain' }, 'not the published 10.6, not ts = now');
});

test('max_interval: a device that delivered nothing since the last send: the same reading again, with its old ts', () => {
  const { p, out, clock } = setup({ T: { type: 'number', deadband: 0, max_interval: 1000 } });
  p.input('T', 5, T0, 'good');
  clock.advance(3000);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[5, 0], [5, 0], [5, 0], [5, 0]], 'never fresher than the device confirmed it');
  p.input('T', 5, T0 + 3500, 'good'); // unchanged, confirmed at 3500
  clock.advance(1000);
  assert.equal(out.map((r) => r.ts - T0), [0, 0, 0, 0, 3500]);
});

test('max_interval: no heartbeat while the device is not connected', () => {
  const { p, out, clock } = setup({ T: { type: 'number', deadband: 1, max_interval: 1000 } });
  p.input('T', 10, T0, 'good');
  clock.advance(500);
  p.input('T', 10.2, T0 + 500, 'good');
  p.setConnected(false);
  clock.advance(5000);
  assert.is(out.length, 1);
  assert.is(clock.pending, 0);
  p.setConnected(true);
  clock.advance(5000);
  assert.is(out.length, 1, 'a streaming device confirms nothing by connecting');
  p.input('T', 10.3, T0 + 10_500, 'good');
  clock.advance(0);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, 0], [10.3, 10_500]]);
});

test('max_interval: readings while the device is not connected arm no timer each (no timer per reading)', () => {
  const { p, out, clock } = setup({ T: { type: 'number', deadband: 1, max_interval: 1000 } });
  p.input('T', 10, T0, 'good');
  p.setConnected(false);
  clock.advance(2000);
  for (let i = 0; i < 100; i++) p.input('T', 10.1, T0 + 2000 + i, 'good'); // initial values while connecting
  assert.is(clock.pending, 0, 'no timer armed by readings that no heartbeat may follow');
  p.setConnected(true);
  p.input('T', 10.2, T0 + 3000, 'good');
  clock.advance(0);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, 0], [10.2, 3000]], 'connected again: the overdue heartbeat goes with the next reading');
});

test('max_interval, changes-only driver (OPC UA subscription): ts = now while connected, none while not, again after a reconnect', () => {
  const { p, out, clock } = setup({ T: { type: 'number', deadband: 1, max_interval: 1000 } }, false);
  p.setConnected(true, true);
  p.input('T', 10, T0 - 50, 'good');
  p.input('T', 10.5, T0 - 10, 'good'); // within the band: its source ts is older than now
  clock.advance(1000);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, -50], [10.5, 1000]]);
  clock.advance(1000);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, -50], [10.5, 1000], [10.5, 2000]]);
  p.setConnected(false, true);
  clock.advance(5000);
  assert.is(out.length, 3);
  p.setConnected(true, true); // a transferred subscription may report nothing: the heartbeat resumes by itself
  clock.advance(999);
  assert.is(out.length, 3);
  clock.advance(1);
  assert.equal(out[3], { tag: 'T', value: 10.5, ts: T0 + 8000, quality: 'good' });
  p.stop();
  assert.is(clock.pending, 0);
});

test('the hot path stays lean: a deadband tag reading in the band allocates no timer', () => {
  const { p, clock } = setup({ T: { type: 'number', deadband: 1, max_interval: 60_000 } });
  p.input('T', 10, T0, 'good');
  for (let i = 0; i < 1000; i++) p.input('T', 10 + (i % 10) / 100, T0 + i, 'good');
  assert.is(clock.pending, 1);
});

test.run();
