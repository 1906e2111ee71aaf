// The catch-up after an outage on an injected clock: the pace of the token
// bucket over simulated time, the rise of the pace when readings come in
// faster than the rate, and the random delay, only ever with a backlog.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../gateway/clock.js';
import { BacklogReplay, BURST_MS, DRAIN_MARGIN, MEASURE_MS, ReplayPacer } from '../gateway/replay.js';
import { captureLog } from './helpers/mqtt-fixtures.js';

/**
 * a pump that hands out batches of `size` readings while the pacer lets it,
 * and sleeps as told (plus `lateMs`, a late timer) otherwise; returns the
 * readings handed out over `ms` of simulated time
 */
function pump(pacer: ReplayPacer, clock: FakeClock, ms: number, size: number, lateMs = 0, onTick?: (at: number) => void): number {
  const end = clock.monotonic() + ms;
  // a pacer that never says wait must fail the test, not hang it
  const cap = 10 * (pacer.rate * ms) / 1000 + 10 * size;
  let out = 0;
  while (clock.monotonic() < end && out <= cap) {
    const wait = pacer.wait();
    if (wait === 0) {
      pacer.take(size);
      out += size;
      continue;
    }
    const step = Math.min(wait + lateMs, end - clock.monotonic());
    onTick?.(step);
    clock.advance(step);
  }
  return out;
}

test('pacer: readings handed out over simulated time match the rate, within the burst and one batch', () => {
  for (const [rate, size, late] of [[1000, 50, 0], [1000, 50, 7], [100_000, 500, 3], [100, 500, 0], [25, 1, 1]] as const) {
    const clock = new FakeClock();
    const pacer = new ReplayPacer(rate, clock);
    const seconds = 120;
    const out = pump(pacer, clock, seconds * 1000, size, late);
    const burst = Math.max(1, (rate * BURST_MS) / 1000);
    const ideal = rate * seconds;
    assert.ok(out >= ideal - size && out <= ideal + burst + size, `rate ${rate}, batches of ${size}, timers ${late} ms late: ${out} readings in ${seconds} s (ideal ${ideal})`);
  }
});

test('pacer: a batch larger than the burst goes, and the next one waits for its readings', () => {
  const clock = new FakeClock();
  const pacer = new ReplayPacer(100, clock);
  assert.is(pacer.wait(), 0);
  pacer.take(500);
  assert.is(pacer.wait(), 4900, '500 readings at 100/s: 5 s, less the 10 readings of the burst');
  clock.advance(4899);
  assert.ok(pacer.wait() > 0);
  clock.advance(1);
  assert.is(pacer.wait(), 0);
});

test('pacer: a pause (window full, broker slow) saves no more than the small burst', () => {
  const clock = new FakeClock();
  const pacer = new ReplayPacer(1000, clock);
  clock.advance(60_000);
  let out = 0;
  while (pacer.wait() === 0 && out < 100_000) { pacer.take(10); out += 10; }
  assert.is(out, 110, 'a minute idle gives 100 ms worth (and the batch that empties it), not 60,000 readings at once');
});

test('pacer: readings coming in faster than the rate raise the pace so that the backlog drains', () => {
  const clock = new FakeClock();
  const pacer = new ReplayPacer(1000, clock);
  // live data at 2000 readings/s: 20 per 10 ms
  let due = 0;
  const live = (ms: number) => { due += ms * 2; const n = Math.floor(due); due -= n; pacer.arrived(n); };
  pump(pacer, clock, MEASURE_MS, 10, 0, live);
  pacer.wait();
  assert.ok(Math.abs(pacer.incoming - 2000) < 20, `incoming ${pacer.incoming}`);
  assert.ok(Math.abs(pacer.rate - 2000 * DRAIN_MARGIN) < 30, `pace ${pacer.rate}`);
  const out = pump(pacer, clock, 20_000, 10, 0, live);
  assert.ok(Math.abs(out / 20 - 2500) < 30, `${out / 20} readings/s`);
});

test('pacer: the pace falls back to the rate once readings come in slower again', () => {
  const clock = new FakeClock();
  const pacer = new ReplayPacer(1000, clock);
  pacer.arrived(20_000);
  clock.advance(MEASURE_MS);
  pacer.wait();
  assert.is(pacer.rate, 4000 * DRAIN_MARGIN);
  clock.advance(MEASURE_MS);
  pacer.wait();
  assert.is(pacer.rate, 1000);
});

function replay(over: { rate?: number; jitterMs?: number; random?: () => number } = {}) {
  const clock = new FakeClock();
  const cap = captureLog();
  let resumed = 0;
  const r = new BacklogReplay({ rate: over.rate ?? 0, jitterMs: over.jitterMs ?? 0, clock, random: over.random ?? (() => 0.5), log: cap.log, resume: () => { resumed++; } });
  return { r, clock, ...cap, resumed: () => resumed };
}

test('replay: the random delay only with a backlog; live-only traffic goes at once', () => {
  const { r, clock, resumed } = replay({ jitterMs: 4000, random: () => 0.75 });
  r.connected(0);
  assert.ok(r.mayGo(), 'nothing queued at the connect: no delay');
  assert.not.ok(r.active);
  assert.is(clock.pending, 0, 'no timer');

  r.connected(12);
  assert.ok(r.holding);
  assert.not.ok(r.mayGo(), 'a backlog waits for the delay');
  clock.advance(2999);
  assert.not.ok(r.mayGo());
  assert.is(resumed(), 0);
  clock.advance(1);
  assert.is(resumed(), 1, 'the pump resumed when the delay ended');
  assert.ok(r.mayGo());
  r.caughtUp();
  assert.not.ok(r.active);
});

test('replay: the delay is drawn anew at every connect and stays within replay_jitter', () => {
  const draws = [0, 0.2, 0.999999];
  const { r, clock, lines } = replay({ jitterMs: 3000, random: () => draws.shift() ?? 0 });
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    r.connected(1);
    delays.push((lines.at(-1)?.obj as { delay_ms: number }).delay_ms);
    r.stop();
  }
  assert.equal(delays, [0, 600, 2999]);
  assert.is(clock.pending, 0);
});

test('replay: a connection lost during the delay or the pace clears its timers; the next connect decides again', () => {
  const { r, clock, resumed } = replay({ rate: 10, jitterMs: 1000 });
  r.connected(5);
  assert.is(clock.pending, 1);
  r.stop();
  assert.is(clock.pending, 0);
  clock.advance(2000);
  assert.is(resumed(), 0);

  r.connected(5);
  clock.advance(500);
  assert.ok(r.mayGo());
  r.sent(2);
  assert.not.ok(r.mayGo(), 'the burst of 1 reading is spent, and more');
  assert.is(clock.pending, 1, 'one timer to resume the pump');
  assert.not.ok(r.mayGo());
  assert.is(clock.pending, 1, 'still one');
  r.stop();
  assert.is(clock.pending, 0);
  assert.ok(r.mayGo(), 'not active: nothing paced');
});

test('replay: live data after the catch-up is not paced', () => {
  const { r } = replay({ rate: 1 });
  r.connected(3);
  assert.ok(r.mayGo());
  r.sent(500);
  assert.not.ok(r.mayGo());
  r.caughtUp();
  for (let i = 0; i < 100; i++) {
    assert.ok(r.mayGo());
    r.sent(500);
  }
});

test('replay: a pace raised above replay_rate is warned about once per catch-up', () => {
  const { r, clock, lines } = replay({ rate: 100 });
  r.connected(1);
  for (let s = 0; s < 30; s++) {
    r.arrived(1000);
    clock.advance(1000);
    for (let n = 0; n < 1000 && r.mayGo(); n++) r.sent(10);
  }
  assert.is(lines.filter((l) => l.level === 'warn' && l.msg?.includes('faster than buffer.replay_rate')).length, 1);
});

test.run();
