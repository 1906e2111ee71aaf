// End to end with real peers: a kv instrument on a socat pty → the gateway CLI
// as a child process → a Mosquitto child process → a subscriber.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { counterValues, dataOf, gatewayConfig, latest, serialDevice, setup, waitForState, type Sub } from './helpers/e2e.js';
import { batchesOnDisk } from './helpers/e2e-buffer.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { freePort, requirePeer, sleep, waitFor } from './helpers/peers.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');

/** n lines of `n=<i>;T=<x>` at about `perSecond`, in bursts every 50 ms */
async function stream(write: (s: string) => void, from: number, to: number, perSecond: number): Promise<void> {
  const perBurst = Math.max(1, Math.round(perSecond / 20));
  for (let i = from; i <= to; ) {
    let chunk = '';
    for (let k = 0; k < perBurst && i <= to; k++, i++) chunk += `n=${i};T=${(20 + (i % 10) / 10).toFixed(1)}\n`;
    write(chunk);
    await sleep(50);
  }
}

/** readings the gateway has taken in from a device, by its latest stats */
function readingsIn(sub: Sub, device: string): number {
  const s = latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { readings_in: number }> } | undefined;
  return s?.devices?.[device]?.readings_in ?? 0;
}

if (enabled) {
  test('200 lines/s: every counter value exactly once, in order, in batches of at most max_readings', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)]));
      await waitForState(sub, 'inst1', 'connected');
      await stream((s) => e.instrument!.write(s), 1, 1000, 200);
      await waitFor(() => counterValues(dataOf(sub, 'inst1')).length >= 1000, 10_000, '1000 counter values');
      await sleep(300);
      const batches = dataOf(sub, 'inst1');
      assert.equal(counterValues(batches), Array.from({ length: 1000 }, (_, i) => i + 1));
      assert.equal(batches.map((b) => b.seq), Array.from({ length: batches.length }, (_, i) => i + 1), 'seq counts from 1 without gaps');
      for (const b of batches) {
        assert.ok(b.readings.length <= 50, `batch ${b.seq} has ${b.readings.length} readings`);
        assert.is(b.gateway, 'gw1');
        assert.is(b.device, 'inst1');
      }
      const tsOrdered = batches.flatMap((b) => b.readings.map((r) => r.ts)).every((t, i, a) => i === 0 || t >= a[i - 1]!);
      assert.ok(tsOrdered, 'acquisition order');
      assert.equal(latest(sub, 'edgegate/gw1/status')?.state, 'online');
      const r = await gw.stop();
      assert.is(r.code, 0);
    } finally {
      await e.cleanup();
    }
  });

  test('SIGTERM: everything already read is published, status goes offline, exit 0 within 10 s', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const config = gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)], { batch: { max_readings: 100000, max_wait: '1h' } });
      const gw = e.start(config);
      await waitForState(sub, 'inst1', 'connected');
      let text = '';
      for (let i = 1; i <= 500; i++) text += `n=${i}\n`;
      e.instrument!.write(text);
      await waitFor(() => readingsIn(sub, 'inst1') >= 500, 10_000, 'the 500 lines read (stats)');
      assert.is(dataOf(sub, 'inst1').length, 0, 'the batch is still open (max_wait 1h)');
      const t0 = Date.now();
      const r = await gw.stop(15_000);
      assert.is(r.code, 0);
      assert.ok(Date.now() - t0 < 10_000, 'exit within 10 s');
      await waitFor(() => latest(sub, 'edgegate/gw1/status')?.state === 'offline', 3000, 'offline status');
      assert.equal(counterValues(dataOf(sub, 'inst1')), Array.from({ length: 500 }, (_, i) => i + 1));
    } finally {
      await e.cleanup();
    }
  });

  test('the port vanishes (socat killed) and returns: disconnected, then connected, and data resumes', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device)]));
      await waitForState(sub, 'inst1', 'connected');
      e.instrument!.write('n=1\n');
      await waitFor(() => counterValues(dataOf(sub, 'inst1')).includes(1), 5000, 'first value');
      e.instrument!.close();
      await e.pty!.stop();
      await waitForState(sub, 'inst1', 'disconnected', 5000);
      assert.ok(String(latest(sub, 'edgegate/gw1/devices/inst1/status')?.error ?? '').length > 0, 'the status says why');
      await sleep(1500);
      await e.pty!.restart();
      await waitForState(sub, 'inst1', 'connected', 40_000);
      e.instrument!.write('n=2\n');
      await waitFor(() => counterValues(dataOf(sub, 'inst1')).includes(2), 5000, 'data after reconnect');
      await waitFor(() => {
        const s = latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { reconnects: number }> } | undefined;
        return (s?.devices?.inst1?.reconnects ?? 0) >= 1;
      }, 3000, 'reconnects counted in stats');
    } finally {
      await e.cleanup();
    }
  });

  test('garbage, binary noise, half and overlong lines: counted as parse_errors, alive, memory bounded', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device, { tags: { n: { type: 'integer' } } })]));
      await waitForState(sub, 'inst1', 'connected');
      e.instrument!.write('n=1\n');
      e.instrument!.write('this is not kv at all\n');
      e.instrument!.write(Buffer.from([0x00, 0xff, 0xfe, 0x01, 0x02, 0x0a]));
      e.instrument!.write('n=abc;\n');
      e.instrument!.write('=;=;=\n');
      const noise = Buffer.alloc(256 * 1024);
      for (let i = 0; i < 40; i++) {
        for (let k = 0; k < noise.length; k++) noise[k] = 0x21 + ((k * 7 + i) % 90); // printable, no newline
        e.instrument!.write(noise); // 10 MiB without a delimiter in all
      }
      e.instrument!.write('\nn=2\n');
      await waitFor(() => counterValues(dataOf(sub, 'inst1')).includes(2), 15_000, 'a good line after the garbage');
      await waitFor(() => {
        const s = latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { parse_errors: number }> } | undefined;
        return (s?.devices?.inst1?.parse_errors ?? 0) >= 3;
      }, 5000, 'parse_errors in stats');
      const stats = latest(sub, 'edgegate/gw1/stats') as { rss_bytes: number };
      assert.ok(stats.rss_bytes < 150 * 1024 * 1024, `rss ${stats.rss_bytes} bytes after 10 MiB of garbage`);
      assert.equal(counterValues(dataOf(sub, 'inst1')), [1, 2]);
      assert.is(latest(sub, 'edgegate/gw1/devices/inst1/status')?.state, 'connected');
    } finally {
      await e.cleanup();
    }
  });

  test('honest values: a deadband edge of exactly d, decimals, text refused by a number tag, heartbeats no fresher than the device', async () => {
    const e = await setup();
    try {
      const sub = await e.subscribe(e.broker!.url);
      const tags = {
        T: { deadband: 0.2, max_interval: '1s' },
        W: { scale: 10, decimals: 1 },
        S: { deadband: 0.5, scale: 1, min: 0, max: 100 }, // no type: a number tag
      };
      e.start(gatewayConfig(e.broker!.url, e.dir, [serialDevice('inst1', e.pty!.device, { tags })]));
      await waitForState(sub, 'inst1', 'connected');
      const readings = (tag: string) => dataOf(sub, 'inst1').flatMap((b) => b.readings.filter((r) => r.tag === tag));
      e.instrument!.write('T=21.5;W=2.03;S=abc\n');
      await waitFor(() => readings('W').length === 1, 5000, 'W published');
      assert.ok(sub.messages.some((m) => m.payload.includes('{"tag":"W","value":20.3,')), 'W published as 20.3, not 20.299999999999997');
      e.instrument!.write('T=21.7;S=50\n');
      await waitFor(() => readings('T').length === 2, 5000, 'the edge 21.5 -> 21.7 published');
      const written = Date.now();
      e.instrument!.write('T=21.8\n'); // inside the band of 21.7
      await waitFor(() => readings('T').length === 3, 5000, 'the heartbeat');
      const beat = readings('T')[2]!;
      assert.is(beat.value, 21.8, 'the heartbeat carries the latest value the device delivered');
      assert.ok(beat.ts >= written - 5 && beat.ts < written + 1000, `the heartbeat ts is that reading's (${beat.ts - written} ms after it was written)`);
      assert.equal(readings('S').map((r) => r.value), [50], '"abc" is no reading of a number tag');
      await waitFor(() => {
        const s = latest(sub, 'edgegate/gw1/stats') as { devices?: Record<string, { parse_errors: number }> } | undefined;
        return (s?.devices?.inst1?.parse_errors ?? 0) === 1;
      }, 3000, 'the parse error counted');
      // more heartbeat periods without a word from the device: the same reading, its ts unchanged
      await waitFor(() => readings('T').length >= 5, 5000, 'two more heartbeats');
      assert.equal(readings('T').slice(3).map((r) => [r.value, r.ts]), [[21.8, beat.ts], [21.8, beat.ts]], 'never fresher than the device confirmed it');
    } finally {
      await e.cleanup();
    }
  });

  test('broker down at start: readings are published once it appears', async () => {
    const e = await setup({ broker: false });
    let broker: Awaited<ReturnType<typeof startMosquitto>> | undefined;
    try {
      const port = await freePort();
      const url = `mqtt://127.0.0.1:${port}`;
      const gw = e.start(gatewayConfig(url, e.dir, [serialDevice('inst1', e.pty!.device)]));
      await waitFor(() => gw.logs().some((l) => l.device === 'inst1' && l.state === 'connected'), 10_000, 'serial connected');
      let text = '';
      for (let i = 1; i <= 300; i++) text += `n=${i}\n`;
      e.instrument!.write(text);
      const buffer = join(e.dir, 'buffer');
      const onDisk = () => existsSync(buffer) ? counterValues(batchesOnDisk(buffer)) : [];
      await waitFor(() => onDisk().includes(300), 10_000, 'the 300 values buffered while the broker is away', 50);
      broker = await startMosquitto({ port });
      const sub = await e.subscribe(broker.url);
      await waitFor(() => counterValues(dataOf(sub, 'inst1')).length >= 300, 20_000, '300 values after the broker appeared');
      assert.equal(counterValues(dataOf(sub, 'inst1')), Array.from({ length: 300 }, (_, i) => i + 1));
    } finally {
      await e.cleanup();
      await broker?.stop();
    }
  });
}

test.run();
