import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TagConfig, ValueType } from '../config/schema.js';
import { FakeClock } from '../gateway/clock.js';
import { MAX_DISCOVERED_TAGS, TagPipeline, coerceValue } from '../gateway/tags.js';
import { newCounters, type DeviceCounters, type RawValue, type Reading } from '../gateway/types.js';

const T0 = 1_764_250_000_000;

function setup(tags: Record<string, TagConfig>, passUnknown?: boolean) {
  const clock = new FakeClock(T0);
  const out: Reading[] = [];
  const counters = newCounters();
  const p = new TagPipeline({ tags, clock, out: (r) => out.push(r), counters, connected: true, ...(passUnknown === undefined ? {} : { passUnknown }) });
  const values = () => out.map((r) => r.value);
  return { clock, out, counters, p, values };
}

function settled(c: DeviceCounters, extraOut = 0): void {
  assert.is(c.readings_in + extraOut, c.readings_out + c.filtered + c.out_of_range + c.parse_errors, `counters do not add up: ${JSON.stringify(c)}`);
}

// ------------------------------------------------------------ coerceValue

/** [type, raw, expected]: undefined expected is a parse error */
const conversions: [ValueType | undefined, RawValue, RawValue | undefined][] = [
  // no type: numbers stay, numeric strings become numbers, the rest stays
  [undefined, 21.5, 21.5], [undefined, '21.5', 21.5], [undefined, '-3e2', -300], [undefined, ' 7 ', 7],
  [undefined, 'open', 'open'], [undefined, '', ''], [undefined, '0x1F', '0x1F'], [undefined, 'Infinity', 'Infinity'],
  [undefined, true, true], [undefined, null, null], [undefined, NaN, undefined], [undefined, Infinity, undefined],
  ['number', 4, 4], ['number', '21.5', 21.5], ['number', '.5', 0.5], ['number', '-3e2', -300], ['number', '+1E-2', 0.01],
  ['number', true, 1], ['number', false, 0], ['number', NaN, undefined], ['number', -Infinity, undefined],
  ...['', ' ', 'abc', '1.2.3', '1e', 'e5', '0x10', 'NaN', 'Infinity', '12abc', '-', '.'].map((bad): [ValueType, RawValue, undefined] => ['number', bad, undefined]),
  ['integer', 12, 12], ['integer', '12', 12], ['integer', '1e3', 1000], ['integer', true, 1],
  ['integer', 12.5, undefined], ['integer', '12.5', undefined], ['integer', 'twelve', undefined],
  ['string', 'abc', 'abc'], ['string', 21.5, '21.5'], ['string', false, 'false'], ['string', null, null],
];

test('coerceValue: no type, number, integer (no fractions), string', () => {
  for (const [type, raw, expected] of conversions) assert.is(coerceValue(type, raw), expected, `${type} ${JSON.stringify(raw)}`);
  const arr = [1, 'a', true] as const;
  assert.is(coerceValue(undefined, arr), arr, 'arrays pass as they are without a type');
  assert.equal(coerceValue('number', ['1', 2]), [1, 2]);
  assert.is(coerceValue('number', ['1', 'x']), undefined);
  // text that overflows a double is no reading: a parse error, not Infinity (published as null)
  assert.is(coerceValue(undefined, '1e400'), undefined);
  assert.is(coerceValue('number', '-1e400'), undefined);
});

test('coerceValue: boolean', () => {
  for (const t of [true, 1, 'true', 'TRUE', 'on', 'On', '1', 'True']) assert.is(coerceValue('boolean', t), true, String(t));
  for (const f of [false, 0, 'false', 'False', 'off', 'OFF', '0', ' off ']) assert.is(coerceValue('boolean', f), false, String(f));
  for (const bad of [2, -1, 0.5, 'yes', 'no', '', 'truthy']) assert.is(coerceValue('boolean', bad), undefined, String(bad));
});

// ------------------------------------------------------------ steps in isolation

test('name: tag.name or the key; unknown keys are ignored and not counted', () => {
  const { p, out, counters } = setup({ T: { name: 'temperature' }, H: {} });
  p.input('T', 21.5, T0, 'good');
  p.input('H', 40, T0 + 1, 'uncertain');
  p.input('X', 1, T0 + 2, 'good');
  assert.equal(out, [
    { tag: 'temperature', value: 21.5, ts: T0, quality: 'good' },
    { tag: 'H', value: 40, ts: T0 + 1, quality: 'uncertain' },
  ]);
  assert.is(counters.readings_in, 2);
  assert.is(counters.readings_out, 2);
  settled(counters);
});

test('type: conversion failures are parse errors and dropped', () => {
  const { p, values, counters } = setup({ n: { type: 'integer' }, b: { type: 'boolean' } });
  p.input('n', '12', T0, 'good');
  p.input('n', 12.5, T0, 'good');
  p.input('n', 'x', T0, 'good');
  p.input('b', 'on', T0, 'good');
  p.input('b', 'maybe', T0, 'good');
  assert.equal(values(), [12, true]);
  assert.is(counters.parse_errors, 3);
  settled(counters);
});

test('Modbus register types convert as their value type', () => {
  const { p, values, counters } = setup({ v: { area: 'holding', address: 0, type: 'int16', word_order: 'big', byte_swap: false } });
  p.input('v', 7, T0, 'good');
  p.input('v', 7.5, T0, 'good');
  assert.equal(values(), [7]);
  assert.is(counters.parse_errors, 1);
});

test('scale and offset: value * scale + offset, numbers only', () => {
  const { p, values } = setup({ a: { scale: 0.1, offset: -40 }, s: { scale: 2 } });
  p.input('a', 700, T0, 'good');
  p.input('a', '650', T0, 'good');
  p.input('s', 'text', T0, 'good');
  p.input('s', true, T0, 'good');
  assert.equal(values(), [30, 25, 'text', true]);
});

test('min and max drop and count out_of_range, after scaling', () => {
  const { p, values, counters } = setup({ a: { type: 'number', scale: 10, min: 0, max: 100 } });
  for (const v of [-1, 0, 5, 10, 10.5, 'abc']) p.input('a', v, T0, 'good');
  assert.equal(values(), [0, 50, 100]);
  assert.is(counters.out_of_range, 2);
  assert.is(counters.parse_errors, 1);
  settled(counters);
});

test('deadband absent: every reading passes', () => {
  const { p, values } = setup({ a: {} });
  for (const v of [1, 1, 1, 'x', 'x']) p.input('a', v, T0, 'good');
  assert.equal(values(), [1, 1, 1, 'x', 'x']);
});

test('deadband 0: only changed values pass, also for strings and arrays', () => {
  const { p, values, counters } = setup({ a: { deadband: 0 } });
  for (const v of [1, 1, 2, 2, 1, 'x', 'x', 'y', [1, 2], [1, 2], [1, 3]]) p.input('a', v, T0, 'good');
  assert.equal(values(), [1, 2, 1, 'x', 'y', [1, 2], [1, 3]]);
  assert.is(counters.filtered, 4);
  settled(counters);
});

test('deadband d > 0: compares with the last published value, not the last reading', () => {
  const { p, values, counters } = setup({ a: { deadband: 1 } });
  // creeping in small steps: nothing passes until the drift from the published value reaches 1
  for (const v of [10, 10.25, 10.5, 10.75, 11, 10.5, 10.25, 10, 10]) p.input('a', v, T0, 'good');
  assert.equal(values(), [10, 11, 10]);
  assert.is(counters.filtered, 6);
  settled(counters);
});

test('deadband d > 0 on string and boolean tags: only changed values pass', () => {
  const { p, values } = setup({ a: { type: 'string', deadband: 5 }, b: { type: 'boolean', deadband: 5 } });
  for (const v of ['on', 'on', 'off', 'off']) p.input('a', v, T0, 'good');
  for (const v of [true, true, false]) p.input('b', v, T0, 'good');
  assert.equal(values(), ['on', 'off', true, false]);
});

test('deadband: a change of quality always passes; the first reading always passes', () => {
  const { p, out } = setup({ a: { deadband: 10 } });
  p.input('a', 5, T0, 'bad');
  p.input('a', 5, T0 + 1, 'bad');
  p.input('a', 5, T0 + 2, 'good');
  p.input('a', 6, T0 + 3, 'good');
  p.input('a', 6, T0 + 4, 'uncertain');
  assert.equal(out.map((r) => [r.value, r.quality]), [[5, 'bad'], [5, 'good'], [6, 'uncertain']]);
});

test('min_interval: at most one per interval, the latest held value goes out at its end with its own ts', () => {
  const { p, out, clock, counters } = setup({ a: { min_interval: 1000 } });
  p.input('a', 1, T0, 'good');
  clock.advance(100);
  p.input('a', 2, T0 + 100, 'good');
  clock.advance(100);
  p.input('a', 3, T0 + 200, 'uncertain');
  assert.is(out.length, 1);
  assert.is(clock.pending, 1, 'one timer for the interval, not one per reading');
  clock.advance(799);
  assert.is(out.length, 1);
  clock.advance(1);
  assert.equal(out[1], { tag: 'a', value: 3, ts: T0 + 200, quality: 'uncertain' });
  assert.is(counters.filtered, 1, 'the superseded held value');
  assert.is(clock.pending, 0);
  // the interval restarts from the held value's send: the next one waits again
  p.input('a', 4, T0 + 1500, 'good');
  assert.is(out.length, 2);
  clock.advance(1000);
  assert.equal(out.map((r) => r.value), [1, 3, 4]);
  // a reading after a quiet interval goes straight out
  clock.advance(5000);
  p.input('a', 5, T0 + 7000, 'good');
  assert.equal(out.map((r) => r.value), [1, 3, 4, 5]);
  settled(counters);
});

test('max_interval: the value the device delivered again is repeated with its own ts and quality', () => {
  const { p, out, clock, counters } = setup({ a: { deadband: 0, max_interval: 60_000 } });
  assert.is(clock.pending, 0, 'no heartbeat before the first value');
  p.input('a', 7, T0 - 5, 'uncertain');
  clock.advance(30_000);
  p.input('a', 7, T0 + 30_000, 'uncertain'); // unchanged: dropped, but it confirms 7
  clock.advance(29_999);
  assert.is(out.length, 1);
  clock.advance(1);
  assert.equal(out[1], { tag: 'a', value: 7, ts: T0 + 30_000, quality: 'uncertain' }, 'the ts of the reading that confirmed it, not now');
  assert.is(counters.readings_out, 2);
  settled(counters, 1);
});

test('a wall clock stepped back an hour (NTP on a Pi without a clock) holds nothing back; heartbeats carry the new wall time', () => {
  const { p, out, clock } = setup({ a: { min_interval: 1000, max_interval: 5000 } });
  p.setConnected(true, true); // a changes-only driver: its heartbeat is stamped now
  p.input('a', 1, T0, 'good');
  clock.advance(1000);
  clock.stepWall(-3_600_000);
  p.input('a', 2, clock.now(), 'good');
  assert.equal(out.map((r) => r.value), [1, 2], 'min_interval measured on the monotonic clock');
  clock.advance(500);
  p.input('a', 3, clock.now(), 'good');
  clock.advance(500);
  assert.equal(out.map((r) => r.value), [1, 2, 3], 'the held value after min_interval, not after an hour');
  clock.advance(5000);
  assert.equal(out[3], { tag: 'a', value: 3, ts: T0 + 7000 - 3_600_000, quality: 'good' }, 'heartbeat after max_interval, stamped with the wall clock');
});

test('max_interval: a reading that passes resets the heartbeat, without a timer per reading', () => {
  const { p, out, clock } = setup({ a: { max_interval: 1000 } });
  p.setConnected(true, true);
  p.input('a', 1, T0, 'good');
  for (let i = 1; i <= 9; i++) {
    clock.advance(100);
    p.input('a', 1 + i, clock.now(), 'good');
  }
  assert.is(clock.pending, 1);
  clock.advance(100); // 1000 since the first, 100 since the last: no heartbeat yet
  assert.is(out.length, 10);
  clock.advance(899);
  assert.is(out.length, 10);
  clock.advance(1);
  assert.equal(out[10], { tag: 'a', value: 10, ts: T0 + 1900, quality: 'good' });
  assert.is(clock.pending, 1);
});

test('max_interval: readings dropped by the deadband do not count as passing; the heartbeat carries the latest of them', () => {
  const { p, out, clock } = setup({ a: { deadband: 1, max_interval: 1000 } });
  p.input('a', 1, T0, 'good');
  clock.advance(500);
  p.input('a', 1.5, clock.now(), 'good');
  clock.advance(500);
  assert.equal(out.map((r) => [r.value, r.ts]), [[1, T0], [1.5, T0 + 500]]);
});

test('deadband + min_interval + max_interval together', () => {
  const { p, out, clock, counters } = setup({ a: { deadband: 1, min_interval: 1000, max_interval: 5000 } });
  const at = (v: number) => p.input('a', v, clock.now(), 'good');
  at(10); // sent
  clock.advance(100); at(10.5); // deadband
  clock.advance(100); at(12); // held
  clock.advance(100); at(13); // held, supersedes 12
  clock.advance(100); at(10.2); // back within the band of 10: the held 13 is dropped too
  clock.advance(600); // interval ends with nothing held
  assert.equal(out.map((r) => r.value), [10]);
  clock.advance(100); at(14); // T0+1100: interval over, sent
  clock.advance(200); at(20); // held
  clock.advance(800); // sent at T0+2100 with its own ts
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[10, 0], [14, 1100], [20, 1300]]);
  clock.advance(100); at(20.5); // T0+2200: deadband
  clock.advance(4899);
  assert.is(out.length, 3);
  clock.advance(1); // heartbeat 5000 after the last send, with the latest value and its ts
  assert.equal(out[3], { tag: 'a', value: 20.5, ts: T0 + 2200, quality: 'good' });
  assert.is(counters.filtered, 5);
  p.stop();
  assert.is(clock.pending, 0);
  settled(counters, 1);
});

test('max_interval shorter than min_interval: the held value serves as the heartbeat', () => {
  const { p, out, clock } = setup({ a: { min_interval: 10_000, max_interval: 1000 } });
  p.input('a', 1, T0, 'good');
  clock.advance(500);
  p.input('a', 2, T0 + 500, 'good');
  clock.advance(500);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[1, 0], [2, 500]]);
  clock.advance(1000);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[1, 0], [2, 500], [2, 500]], 'nothing delivered since: the latest again, with its own ts');
  clock.advance(500);
  p.input('a', 3, T0 + 2500, 'good'); // within min_interval: held, and the next heartbeat sends it
  clock.advance(500);
  assert.equal(out.map((r) => [r.value, r.ts - T0]), [[1, 0], [2, 500], [2, 500], [3, 2500]]);
  p.stop();
  assert.is(clock.pending, 0);
});

test('passUnknown: every key passes with default processing', () => {
  const { p, out, counters } = setup({}, true);
  p.input('x', '1.5', T0, 'good');
  p.input('y', 'abc', T0, 'good');
  p.input('x', NaN, T0, 'good');
  assert.equal(out.map((r) => [r.tag, r.value]), [['x', 1.5], ['y', 'abc']]);
  assert.is(counters.parse_errors, 1);
  assert.equal(p.lookup('y'), { key: 'y', tag: {} });
  settled(counters);
});

test('passUnknown: the number of discovered keys is bounded', () => {
  const { p, out, counters } = setup({}, true);
  for (let i = 0; i < MAX_DISCOVERED_TAGS + 10; i++) p.input(`k${i}`, i, T0, 'good');
  assert.is(out.length, MAX_DISCOVERED_TAGS);
  assert.is(counters.parse_errors, 10);
  settled(counters);
});

test('lookup by MQTT name', () => {
  const tag: TagConfig = { name: 'setpoint', writable: true, type: 'number' };
  const { p } = setup({ SP: tag, T: {} });
  assert.equal(p.lookup('setpoint'), { key: 'SP', tag });
  assert.is(p.lookup('SP'), undefined);
  assert.is(p.lookup('T')?.key, 'T');
});

test('stop(): held values go out, no timer is left, later input is ignored', () => {
  const { p, out, clock, counters } = setup({ a: { min_interval: 1000, max_interval: 3000 }, b: { max_interval: 100 } });
  p.input('a', 1, T0, 'good');
  p.input('b', 1, T0, 'good');
  clock.advance(10);
  p.input('a', 2, T0 + 10, 'bad');
  assert.is(clock.pending, 3);
  p.stop();
  assert.equal(out.map((r) => [r.tag, r.value, r.ts - T0, r.quality]), [['a', 1, 0, 'good'], ['b', 1, 0, 'good'], ['a', 2, 10, 'bad']]);
  assert.is(clock.pending, 0);
  p.input('a', 3, T0 + 20, 'good');
  clock.advance(10_000);
  assert.is(out.length, 3);
  assert.is(clock.pending, 0);
  settled(counters);
});

test('all steps in order, counters add up', () => {
  const { p, out, clock, counters } = setup({
    T: { name: 'temperature', type: 'number', scale: 0.5, offset: 0, min: -40, max: 125, deadband: 0.2, min_interval: 500 },
  });
  const inputs: [unknown, number][] = [
    ['43', 0], // 21.5 sent
    ['43.2', 100], // 21.6: deadband
    ['x', 150], // parse error
    ['9999', 200], // 4999.5: out of range
    ['43.8', 300], // 21.9: held
    ['44.4', 400], // 22.2: held, supersedes 21.9
  ];
  for (const [v, dt] of inputs) {
    clock.advance(T0 + dt - clock.now());
    p.input('T', v as string, T0 + dt, 'good');
  }
  clock.advance(1000);
  assert.equal(out.map((r) => [r.tag, r.value, r.ts - T0]), [['temperature', 21.5, 0], ['temperature', 22.2, 400]]);
  assert.equal(
    [counters.readings_in, counters.readings_out, counters.filtered, counters.parse_errors, counters.out_of_range],
    [6, 2, 2, 1, 1],
  );
  settled(counters);
  assert.is(clock.pending, 0);
});

test.run();
