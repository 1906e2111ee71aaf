// MqttPublisher's catch-up against a real Mosquitto, its pace and delay on an
// injected clock: time moves only when the test says, so the number of
// batches handed out is exact and no wall-clock speed is judged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../gateway/clock.js';
import { MqttPublisher, type PublisherOptions } from '../gateway/publisher.js';
import { waitFor } from './helpers/peers.js';
import { collect, startMosquitto, type Collected, type TestBroker } from './helpers/mosquitto.js';
import { captureLog, cleanupsAfterEach, mkBatch, mqttConfig, MqttProxy, orderReport, seqOf } from './helpers/mqtt-fixtures.js';

const DATA = 'gw/devices/+/data';
const cleanups = cleanupsAfterEach(test);

async function broker(): Promise<TestBroker> {
  const b = await startMosquitto();
  cleanups.push(() => b.stop());
  return b;
}

async function subscriber(url: string): Promise<Collected> {
  const c = await collect(url, DATA);
  cleanups.push(() => c.close());
  return c;
}

function publisher(url: string, over: Partial<Omit<PublisherOptions, 'mqtt'>> = {}) {
  const cap = captureLog();
  const pub = new MqttPublisher({
    mqtt: mqttConfig(url, { max_inflight: 16 }), statusTopic: 'gw/status', onlinePayload: () => '{"state":"online"}', offlinePayload: '{"state":"offline"}',
    log: cap.log, maxQueuedBytes: 64 * 1024 * 1024, reconnect: { minMs: 100, maxMs: 400 }, ...over,
  });
  cleanups.push(() => pub.stop());
  return { pub, ...cap };
}

const seqs = (c: Collected) => c.messages.map((m) => seqOf(m.payload));

/** every batch handed out has been acknowledged, and no timer can hand out more until the clock moves */
async function settled(pub: MqttPublisher, published: number, what: string): Promise<void> {
  await waitFor(() => pub.publishedBatches >= published && pub.inflight === 0, 10_000, what);
  assert.is(pub.publishedBatches, published, what);
}

test('a backlog at a connect goes at replay_rate; live batches pushed meanwhile follow it in seq order; after it live data is not paced', async () => {
  const b = await broker();
  const c = await subscriber(b.url);
  const clock = new FakeClock();
  // mkBatch holds 1 reading: 10 readings/s is a batch every 100 ms; the burst is 1 reading
  const { pub, lines } = publisher(b.url, { clock, replay: { rate: 10, jitterMs: 0 } });
  const BACKLOG = 60;
  for (let s = 1; s <= BACKLOG; s++) pub.publishBatch(mkBatch(s));
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  // the burst, and the batch that empties it
  await settled(pub, 2, 'the first burst');
  let last = BACKLOG;
  for (let k = 1; k <= 4; k++) {
    pub.publishBatch(mkBatch(++last)); // live: queued behind the backlog
    clock.advance(1000);
    await settled(pub, 2 + 10 * k, `after ${k} simulated seconds`);
    assert.is(pub.queuedBatches, last - (2 + 10 * k), 'the rest waits');
  }
  assert.equal(seqs(c), Array.from({ length: 42 }, (_, i) => i + 1), 'oldest first, nothing of the live data yet');
  // what is left, a second at a time (ten batches each, within the window of 16)
  for (let k = 5; pub.queuedBatches > 0; k++) {
    clock.advance(1000);
    await settled(pub, Math.min(last, 2 + 10 * k), `after ${k} simulated seconds`);
  }
  clock.advance(100); // the next turn of the pump finds the buffer empty
  assert.is(last, 64);
  assert.ok(lines.some((l) => l.msg === 'backlog replayed'), 'the end of the catch-up is logged');
  // caught up: a live batch goes at once, the clock standing still
  pub.publishBatch(mkBatch(++last));
  pub.publishBatch(mkBatch(++last));
  await settled(pub, last, 'live data, not paced');
  await waitFor(() => c.messages.length >= last, 10_000, 'every batch at the subscriber');
  assert.equal(orderReport(seqs(c), last), { missing: 0, duplicates: 0, outOfOrder: 0 });
});

test('the random delay: only for a backlog, drawn from the injected source; live-only traffic is not delayed', async () => {
  const b = await broker();
  const c = await subscriber(b.url);
  const proxy = new MqttProxy(b.port);
  await proxy.open();
  cleanups.push(() => proxy.close());
  const clock = new FakeClock();
  const draws: number[] = [];
  const { pub } = publisher(proxy.url, { clock, replay: { rate: 0, jitterMs: 10_000 }, random: () => { draws.push(0.5); return 0.5; } });
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  pub.publishBatch(mkBatch(1));
  await settled(pub, 1, 'live data with nothing queued goes at once');
  assert.equal(draws, [], 'no delay drawn without a backlog');

  // the broker away for a while: a backlog builds up
  await proxy.close();
  await waitFor(() => !pub.connected, 10_000, 'disconnected');
  for (let s = 2; s <= 21; s++) pub.publishBatch(mkBatch(s));
  await proxy.open();
  await waitFor(() => pub.connected, 10_000, 'reconnected');
  // the pump runs inside the connect handler: had it sent anything, it would be in flight now
  assert.equal({ inflight: pub.inflight, published: pub.publishedBatches, queued: pub.queuedBatches }, { inflight: 0, published: 1, queued: 20 });
  assert.equal(draws, [0.5]);
  clock.advance(4999);
  assert.is(pub.inflight, 0, 'still waiting');
  clock.advance(1);
  await settled(pub, 21, 'the backlog after 5 s (half of replay_jitter)');
  await waitFor(() => c.messages.length >= 21, 10_000, 'every batch at the subscriber');
  assert.equal(orderReport(seqs(c), 21), { missing: 0, duplicates: 0, outOfOrder: 0 });
});

test('a connection lost during the delay: nothing goes at the old timer; the next connect draws again', async () => {
  const b = await broker();
  const proxy = new MqttProxy(b.port);
  await proxy.open();
  cleanups.push(() => proxy.close());
  const clock = new FakeClock();
  let draws = 0;
  const { pub } = publisher(proxy.url, { clock, replay: { rate: 0, jitterMs: 2000 }, random: () => { draws++; return 0.5; } });
  for (let s = 1; s <= 5; s++) pub.publishBatch(mkBatch(s));
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  assert.is(draws, 1);
  await proxy.close();
  await waitFor(() => !pub.connected, 10_000, 'disconnected');
  assert.is(clock.pending, 0, 'the delay timer cleared with the connection');
  clock.advance(5000);
  await proxy.open();
  await waitFor(() => pub.connected, 10_000, 'reconnected');
  assert.is(draws, 2);
  assert.is(pub.inflight, 0);
  clock.advance(1000);
  await settled(pub, 5, 'the backlog');
  await pub.stop();
  assert.is(clock.pending, 0, 'no timer left after stop');
});


test('a stop does not wait on the pace: drain() sends the rest of the backlog at once', async () => {
  const b = await broker();
  const c = await subscriber(b.url);
  const clock = new FakeClock();
  // one reading a second: paced, the backlog would take a minute of the fake clock, which stands still
  const { pub } = publisher(b.url, { clock, replay: { rate: 1, jitterMs: 0 } });
  const BACKLOG = 60;
  for (let s = 1; s <= BACKLOG; s++) pub.publishBatch(mkBatch(s));
  pub.start();
  await waitFor(() => pub.connected, 10_000, 'connected');
  await settled(pub, 2, 'the first burst');
  assert.ok(await pub.drain(10_000), 'drained with the clock standing still');
  await waitFor(() => c.messages.length >= BACKLOG, 10_000, 'every batch at the subscriber');
  assert.equal(orderReport(seqs(c), BACKLOG), { missing: 0, duplicates: 0, outOfOrder: 0 });
});

test.run();
