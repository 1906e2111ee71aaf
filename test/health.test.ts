// The health check behind the systemd watchdog, with an injected time: an
// outage or an idle gateway is healthy; batches in flight with no
// acknowledgement, or batches queued on a live connection that nothing hands
// out, for longer than the bound, are not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PublisherProgress } from '../gateway/health.js';

const STALL = 5000;
const s = (connected: boolean, queued: number, inflight: number, published: number, handedOut: number) =>
  ({ connected, queued_batches: queued, inflight, published_batches: published, handed_out_batches: handedOut });

test('queued batches on a live connection that nothing hands out for longer than the bound: unhealthy, with the reason', () => {
  const p = new PublisherProgress();
  const stalled = s(true, 1244, 0, 494, 494);
  assert.ok(p.check(stalled, 0, STALL).ok);
  assert.ok(p.check(stalled, 4999, STALL).ok, 'within the bound');
  const h = p.check(stalled, 5000, STALL);
  assert.is(h.ok, false);
  assert.match(h.reason!, /^buffer stalled: 1244 batches queued on a live connection, none handed out or acknowledged for 5 s$/);
  const moving = s(true, 1243, 1, 494, 495);
  assert.ok(p.check(moving, 5001, STALL).ok, 'a batch handed out is progress');
  assert.ok(p.check(moving, 10_000, STALL).ok);
  assert.is(p.check(moving, 10_001, STALL).ok, false, 'in flight and nothing acknowledged for the bound');
});

test('a paced replay, an outage and an idle gateway are healthy', () => {
  const p = new PublisherProgress();
  let t = 0;
  for (let i = 0; i < 100; i++, t += 4000) assert.ok(p.check(s(true, 5000 - i, 0, i, i), t, STALL).ok, 'one batch every 4 s');
  assert.ok(p.check(s(false, 900, 0, 100, 100), t, STALL).ok, 'away');
  assert.ok(p.check(s(false, 900, 0, 100, 100), t + 60_000, STALL).ok, 'still away');
  assert.ok(p.check(s(true, 0, 0, 100, 100), t + 120_000, STALL).ok, 'idle');
  assert.ok(p.check(s(true, 0, 0, 100, 100), t + 240_000, STALL).ok, 'still idle');
  assert.ok(p.check(s(true, 3, 0, 100, 100), t + 240_001, STALL).ok, 'new batches: the bound starts now');
  assert.is(p.check(s(true, 3, 0, 100, 100), t + 245_001, STALL).ok, false);
});

test('a replay held by its random delay or a slow replay_rate is no stall, however long; the bound starts when it lets go', () => {
  const p = new PublisherProgress();
  const held = { ...s(true, 5000, 0, 0, 0), replay_waiting: true };
  assert.ok(p.check(held, 0, STALL).ok);
  assert.ok(p.check(held, 60_000, STALL).ok, 'a batch of 500 readings at replay_rate 10 goes every 50 s');
  assert.ok(p.check(s(true, 5000, 0, 0, 0), 60_001, STALL).ok, 'let go: the bound counts from the last look while held');
  assert.ok(p.check(s(true, 5000, 0, 0, 0), 64_999, STALL).ok);
  assert.is(p.check(s(true, 5000, 0, 0, 0), 65_000, STALL).ok, false, 'nothing handed out after the pace let go: stalled');
});

test('the stall is counted from the last look while away', () => {
  const p = new PublisherProgress();
  assert.ok(p.check(s(false, 10, 0, 0, 0), 0, STALL).ok);
  assert.ok(p.check(s(false, 10, 0, 0, 0), 100_000, STALL).ok);
  assert.ok(p.check(s(true, 10, 0, 0, 0), 104_999, STALL).ok, 'connected since');
  assert.is(p.check(s(true, 10, 0, 0, 0), 105_000, STALL).ok, false);
  p.reset();
  assert.ok(p.check(s(true, 10, 0, 0, 0), 106_000, STALL).ok, 'a new publisher starts with a clean slate');
});

test.run();
