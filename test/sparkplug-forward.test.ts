// Store and forward's hold: a waiting batch whose device has no DBIRTH yet
// holds the queue (order) for the hold, then is dropped and counted, and the
// batches behind it go out. The clock is the test's; no timer is waited on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBuffer } from '../gateway/buffer/memory-buffer.js';
import { Forwarder } from '../gateway/outputs/sparkplug/forward.js';
import type { Batch, Reading } from '../gateway/types.js';
import { captureLog, mkBatch } from './helpers/mqtt-fixtures.js';

function rig(holdMs: number) {
  let now = 0;
  let up = true;
  const born = new Set<string>(['b']);
  const sent: Array<[string, number[], boolean]> = [];
  const dropped: Batch[] = [];
  const buffer = new MemoryBuffer({ maxBytes: 1 << 20, log: captureLog().log });
  // the retry timer is left far away: the test drives drain() itself
  const fwd = new Forwarder(buffer, {
    send(device, readings: Reading[], historical, done) {
      if (!born.has(device)) return 'wait';
      if (!up) return 'later';
      sent.push([device, readings.map((r) => r.value as number), historical]);
      done(true);
      return 'sent';
    },
    dropped: (b) => dropped.push(b),
  }, () => now, { holdMs, retryMs: 3_600_000 });
  return { fwd, buffer, born, sent, dropped, down(d: boolean) { up = !d; }, advance(ms: number) { now += ms; }, settle: () => new Promise((r) => setImmediate(r)) };
}

test('a batch whose device has no DBIRTH waits for the hold, then is dropped and counted; the batches behind it go out', async () => {
  const r = rig(5000);
  r.fwd.push(mkBatch(1, 'a'));
  r.fwd.push(mkBatch(2, 'b'));
  r.fwd.push(mkBatch(3, 'b'));
  r.fwd.setReady(true);
  await r.settle();
  assert.equal(r.sent, [], 'the head waits for its DBIRTH, order kept');
  assert.is(r.dropped.length, 0);
  r.advance(4999);
  r.fwd.drain();
  await r.settle();
  assert.equal([r.sent.length, r.dropped.length, r.buffer.size], [0, 0, 3], 'still within the hold');
  r.advance(1);
  r.fwd.drain();
  for (let i = 0; i < 5; i++) await r.settle();
  assert.equal(r.dropped.map((b) => [b.device, b.seq]), [['a', 1]], 'given up after the hold');
  assert.equal(r.sent, [['b', [2], true], ['b', [3], true]], 'the others follow, historical');
  assert.is(r.buffer.size, 0);
  await r.fwd.close();
});

test('a device born within the hold gets its batch sent, and the next wait starts a new hold', async () => {
  const r = rig(5000);
  r.fwd.push(mkBatch(1, 'a'));
  r.fwd.push(mkBatch(2, 'c'));
  r.fwd.setReady(true);
  r.advance(4000);
  r.fwd.drain();
  r.born.add('a');
  r.fwd.drain();
  for (let i = 0; i < 5; i++) await r.settle();
  assert.equal(r.sent, [['a', [1], true]]);
  // c waits: its hold starts now, not when a's did
  r.advance(4000);
  r.fwd.drain();
  await r.settle();
  assert.equal(r.dropped, []);
  r.advance(1000);
  r.fwd.drain();
  await r.settle();
  assert.equal(r.dropped.map((b) => b.device), ['c']);
  await r.fwd.close();
});

test('a device without DBIRTH is held once: after its hold all its waiting batches go at once, the others are not held again for each', async () => {
  const r = rig(5000);
  r.fwd.push(mkBatch(1, 'a'));
  r.fwd.push(mkBatch(2, 'a'));
  r.fwd.push(mkBatch(3, 'b'));
  r.fwd.push(mkBatch(4, 'a'));
  r.fwd.push(mkBatch(5, 'b'));
  r.fwd.setReady(true);
  await r.settle();
  r.advance(5000);
  r.fwd.drain();
  for (let i = 0; i < 10; i++) await r.settle();
  assert.equal(r.dropped.map((b) => [b.device, b.seq]), [['a', 1], ['a', 2], ['a', 4]], 'one hold for all of a');
  assert.equal(r.sent, [['b', [3], true], ['b', [5], true]], 'b not held behind a again');
  // a new batch of a while it is still not born: no new hold
  r.fwd.push(mkBatch(6, 'a'));
  r.fwd.drain();
  await r.settle();
  assert.equal(r.dropped.map((b) => b.seq), [1, 2, 4, 6]);
  // once born, a is waited for again
  r.fwd.born('a');
  r.fwd.push(mkBatch(7, 'a'));
  r.fwd.drain();
  await r.settle();
  assert.equal([r.dropped.length, r.buffer.size], [4, 1], 'held again after a DBIRTH');
  await r.fwd.close();
});

test('a batch that cannot be written (connection not up) waits for the connection, past the hold, and is not dropped', async () => {
  const r = rig(5000);
  r.down(true);
  r.fwd.push(mkBatch(1, 'b'));
  r.fwd.setReady(true);
  r.advance(60_000);
  r.fwd.drain();
  await r.settle();
  assert.equal([r.sent.length, r.dropped.length, r.buffer.size], [0, 0, 1], 'kept');
  r.down(false);
  r.fwd.drain();
  for (let i = 0; i < 5; i++) await r.settle();
  assert.equal(r.sent, [['b', [1], true]]);
  await r.fwd.close();
});

test.run();
