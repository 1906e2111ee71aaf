// Store-and-forward end to end: a counter on a socat pty → the gateway CLI →
// a Mosquitto with persistence → a subscriber with a persistent session
// (fixed client id, clean start off, QoS 1), which therefore also gets what
// was published while it was cut off by a broker restart.
//
// The broker is stopped with SIGTERM, not SIGKILL: Mosquitto saves its
// sessions and queued messages on a graceful stop, while a SIGKILLed one can
// lose what it had acknowledged (PUBACK) and not yet delivered. That would be
// the broker's loss, and it would hide the gateway's: with SIGTERM every loss
// the subscriber sees is the gateway's.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dataOf, gatewayConfig, serialDevice, setup, waitForState } from './helpers/e2e.js';
import { batchesOnDisk, bufferStats, delivery, figures, missing } from './helpers/e2e-buffer.js';
import { startMosquitto, type TestBroker } from './helpers/mosquitto.js';
import { MqttProxy } from './helpers/mqtt-fixtures.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');

const SUB = { clientId: 'e2e-buffer-subscriber', clean: false } as const;

/** a persistent broker that already knows the subscriber's session */
async function persistentBroker(): Promise<TestBroker> {
  return startMosquitto({ persistence: true });
}

/** connections the gateway has made so far (its log lines) */
const connects = (logs: Array<Record<string, unknown>>) => logs.filter((l) => l.msg === 'mqtt connected').length;

/** the counter values in the segment files of a buffer dir (none before the dir exists) */
function valuesOnDisk(dir: string): Set<number> {
  if (!existsSync(dir)) return new Set();
  return new Set(batchesOnDisk(dir).flatMap((b) => b.readings.filter((r) => r.tag === 'n').map((r) => r.value as number)));
}

if (enabled) {
  test('the broker stopped and restarted 10 times during 20,000 readings: every value arrives, duplicates only as repeated seq, order kept', async () => {
    const e = await setup({ broker: false });
    const broker = await persistentBroker();
    const feed = e.feed();
    try {
      const sub = await e.subscribe(broker.url, 'edgegate/#', SUB);
      const gw = e.start(gatewayConfig(broker.url, e.dir, [serialDevice('inst1', e.pty!.device)]));
      await waitForState(sub, 'inst1', 'connected');
      const N = 20_000;
      feed.start(1, N, 700);
      let downMs = 0, peakOnDisk = 0;
      for (let k = 1; k <= 10; k++) {
        await sleep(800);
        const before = connects(gw.logs());
        await broker.stop();
        const t0 = Date.now();
        await sleep(300 + 40 * k);
        peakOnDisk = Math.max(peakOnDisk, batchesOnDisk(join(e.dir, 'buffer')).length);
        await broker.restart();
        downMs += Date.now() - t0;
        await waitFor(() => connects(gw.logs()) > before, 20_000, `the gateway reconnected after restart ${k}`);
      }
      assert.is(await feed.done(), N);
      assert.ok(peakOnDisk > 0, 'batches went to disk during the outages');
      await waitFor(() => new Set(delivery(dataOf(sub, 'inst1')).values).size >= N, 60_000, `${N} values`, 100);
      const d = delivery(dataOf(sub, 'inst1'));
      figures('broker restarted 10 times', { readings_sent: N, batches: d.batches, messages: d.messages, duplicates: d.duplicates, lost: missing(d.values, N).length, broker_down_ms: downMs, peak_batches_on_disk: peakOnDisk });
      assert.equal(missing(d.values, N), [], 'every counter value');
      assert.is(d.conflicting, 0, 'a repeated seq is the same batch');
      assert.is(d.repeatedValues, 0, 'duplicates only as repeated (device, seq)');
      assert.is(d.outOfOrder, 0, 'first arrivals in seq order');
      assert.equal(d.values, Array.from({ length: N }, (_, i) => i + 1), 'acquisition order across batches');
      await waitFor(() => bufferStats(sub)?.batches === 0, 10_000, 'the buffer empty again');
      const s = bufferStats(sub)!;
      assert.equal({ dropped: s.dropped_batches, damaged: s.damaged_records, mode: s.mode }, { dropped: 0, damaged: 0, mode: 'disk' });
      assert.is((await gw.stop()).code, 0);
    } finally {
      await feed.stop().catch(() => undefined);
      await e.cleanup();
      await broker.stop();
    }
  });

  test('SIGTERM during an outage, restart, broker back: everything read before the signal arrives; seq goes on', async () => {
    const e = await setup({ broker: false });
    const broker = await persistentBroker();
    const feed = e.feed();
    try {
      const sub = await e.subscribe(broker.url, 'edgegate/#', SUB);
      const config = gatewayConfig(broker.url, e.dir, [serialDevice('inst1', e.pty!.device)]);
      const gw = e.start(config);
      await waitForState(sub, 'inst1', 'connected');
      await feed.run(1, 1000, 1000);
      await waitFor(() => delivery(dataOf(sub, 'inst1')).values.length >= 1000, 10_000, 'the first 1000 values live');
      await broker.stop();
      await waitFor(() => gw.logs().some((l) => l.msg === 'mqtt connection lost'), 5000, 'the outage noticed');
      await feed.run(1001, 3000, 1000);
      // read, batched (max_wait 200 ms) and written to the buffer, as far as the last value
      await waitFor(() => valuesOnDisk(join(e.dir, 'buffer')).has(3000), 10_000, 'n=3000 in the disk buffer', 50);
      const t0 = Date.now();
      const r = await gw.stop(15_000);
      assert.is(r.code, 0, 'exit 0');
      assert.ok(Date.now() - t0 < 10_000, 'within 10 s');
      const buffered = batchesOnDisk(join(e.dir, 'buffer'));
      assert.ok(buffered.length > 0, 'the backlog is on disk');
      assert.ok(existsSync(join(e.dir, 'buffer', 'seq.json')), 'seq positions stored');
      const maxSeqBefore = Math.max(...buffered.map((b) => b.seq));

      // started again while the broker is still away, then the broker returns
      const gw2 = e.start(config);
      await waitFor(() => gw2.logs().some((l) => l.msg === 'disk buffer recovered'), 10_000, 'the buffer recovered');
      await waitFor(() => gw2.logs().some((l) => l.device === 'inst1' && l.state === 'connected'), 10_000, 'serial connected');
      await feed.run(3001, 3500, 1000);
      await sleep(300);
      await broker.restart();
      await waitFor(() => new Set(delivery(dataOf(sub, 'inst1')).values).size >= 3500, 30_000, '3500 values', 100);
      const d = delivery(dataOf(sub, 'inst1'));
      figures('SIGTERM during an outage', { readings_sent: 3500, batches: d.batches, messages: d.messages, duplicates: d.duplicates, lost: missing(d.values, 3500).length, buffered_at_stop: buffered.length });
      assert.equal(missing(d.values, 3500), []);
      assert.equal({ conflicting: d.conflicting, repeatedValues: d.repeatedValues, outOfOrder: d.outOfOrder }, { conflicting: 0, repeatedValues: 0, outOfOrder: 0 });
      const after = dataOf(sub, 'inst1').filter((b) => b.readings.some((x) => (x.value as number) > 3000));
      assert.ok(after.every((b) => b.seq > maxSeqBefore), 'seq after the restart goes on from where it stopped');
      await waitFor(() => bufferStats(sub)?.batches === 0, 10_000, 'the buffer empty again');
      await gw2.stop();
      assert.equal(readdirSync(join(e.dir, 'buffer')).filter((n) => n.endsWith('.seg')), [], 'no segment left');
    } finally {
      await feed.stop().catch(() => undefined);
      await e.cleanup();
      await broker.stop();
    }
  });

  // The gateway reaches the broker through a proxy, and the outage is the
  // proxy closed: the subscriber stays connected, so it sees the replay as it
  // is sent. Its duration has a floor (the bucket never hands out more than
  // its burst and one batch beyond the rate), which a slow machine only raises.
  test('buffer.replay_rate: the backlog of an outage arrives paced, before the live data, in order', async () => {
    const e = await setup();
    const proxy = new MqttProxy(e.broker!.port);
    const feed = e.feed();
    try {
      await proxy.open();
      const sub = await e.subscribe(e.broker!.url);
      const RATE = 1000, BACKLOG = 4000, LIVE = 300;
      const base = gatewayConfig(proxy.url, e.dir, [serialDevice('inst1', e.pty!.device)]);
      const gw = e.start({ ...base, buffer: { ...base.buffer, replay_rate: RATE, replay_jitter: 0 } });
      await waitForState(sub, 'inst1', 'connected');
      await proxy.close();
      await waitFor(() => gw.logs().some((l) => l.msg === 'mqtt connection lost'), 10_000, 'the outage noticed');
      await feed.run(1, BACKLOG, 2000);
      await waitFor(() => valuesOnDisk(join(e.dir, 'buffer')).has(BACKLOG), 10_000, `n=${BACKLOG} in the disk buffer`, 50);
      // live data keeps coming (100/s, well below the rate) while the backlog goes
      feed.start(BACKLOG + 1, BACKLOG + LIVE, 100);
      await proxy.open();
      const backlogIn = () => delivery(dataOf(sub, 'inst1')).values.filter((v) => v <= BACKLOG).length;
      await waitFor(() => backlogIn() > 0, 30_000, 'the replay begins', 20);
      const t0 = Date.now();
      await waitFor(() => backlogIn() >= BACKLOG, 30_000, `${BACKLOG} backlog values`, 20);
      const seconds = (Date.now() - t0) / 1000;
      assert.is(await feed.done(), BACKLOG + LIVE);
      await waitFor(() => new Set(delivery(dataOf(sub, 'inst1')).values).size >= BACKLOG + LIVE, 30_000, 'the live values', 50);
      // the log line travels another pipe than the data: waited for on its own
      await waitFor(() => gw.logs().some((l) => l.msg === 'backlog replayed'), 10_000, 'the gateway\'s log of the replay');
      const replayed = gw.logs().find((l) => l.msg === 'backlog replayed') as { readings?: number; readings_per_s?: number } | undefined;
      const d = delivery(dataOf(sub, 'inst1'));
      figures('paced replay', { replay_rate: RATE, backlog_readings: BACKLOG, seconds_at_subscriber: seconds, readings_per_s_at_subscriber: Math.round(BACKLOG / seconds), gateway_readings_per_s: replayed?.readings_per_s ?? -1 });
      // the bucket: at most 100 ms worth (the burst) and one batch of 50 beyond the rate
      assert.ok(seconds >= (BACKLOG - RATE / 10 - 50) / RATE - 0.6, `the backlog took ${seconds} s at the subscriber`);
      assert.ok(replayed !== undefined && (replayed.readings_per_s ?? Infinity) <= RATE * 1.2, `the gateway's own figure: ${JSON.stringify(replayed)}`);
      assert.equal(missing(d.values, BACKLOG + LIVE), []);
      assert.equal({ conflicting: d.conflicting, repeatedValues: d.repeatedValues, outOfOrder: d.outOfOrder }, { conflicting: 0, repeatedValues: 0, outOfOrder: 0 });
      assert.equal(d.values, Array.from({ length: BACKLOG + LIVE }, (_, i) => i + 1), 'the backlog first, then the live data, in acquisition order');
      assert.is((await gw.stop()).code, 0);
    } finally {
      await feed.stop().catch(() => undefined);
      await proxy.close();
      await e.cleanup();
    }
  });
}

test.run();
