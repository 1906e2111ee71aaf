// SIGHUP reload with real peers: changed, added and removed devices restart,
// unchanged ones keep their task and lose nothing; an invalid config is refused.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { counterValues, dataOf, gatewayConfig, Instrument, latest, serialDevice, setup, waitForState, type Sub } from './helpers/e2e.js';
import { writeConfig } from './helpers/gateway.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';
import { ptyPair } from './helpers/socat.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') && requirePeer('socat', 'serial ports are socat pty pairs');

function statusHistory(sub: Sub, device: string): string[] {
  return sub.messages.filter((m) => m.topic === `edgegate/gw1/devices/${device}/status` && m.payload).map((m) => (JSON.parse(m.payload) as { state: string }).state);
}

if (enabled) {
  test('SIGHUP: the unchanged device keeps running without a gap; changed, added and removed devices restart', async () => {
    const e = await setup();
    const dir2 = join(e.dir, 'second');
    mkdirSync(dir2);
    const pty2 = await ptyPair(dir2);
    const inst2 = new Instrument(pty2.instrument);
    try {
      const sub = await e.subscribe(e.broker!.url);
      const a = serialDevice('a', e.pty!.device);
      const b = serialDevice('b', pty2.device);
      const base = gatewayConfig(e.broker!.url, e.dir, [a, b]);
      const gw = e.start(base);
      await waitForState(sub, 'a', 'connected');
      await waitForState(sub, 'b', 'connected');
      const stream = e.feed();
      stream.start(1, Infinity, 100);
      await sleep(500);
      const aStatusesBefore = statusHistory(sub, 'a').length;

      // b changes (a new tag name): b restarts, a is kept
      const changed = gatewayConfig(e.broker!.url, e.dir, [a, serialDevice('b', pty2.device, { tags: { n: { name: 'count' } } })]);
      writeConfig(e.dir, changed);
      const bStatusesBefore = statusHistory(sub, 'b').length;
      gw.signal('SIGHUP');
      await waitFor(() => gw.logs().some((l) => l.msg === 'configuration reloaded'), 5000, 'the reload');
      const reloaded = gw.logs().find((l) => l.msg === 'configuration reloaded')!;
      assert.equal(reloaded.kept, ['a']);
      assert.equal(reloaded.restarted, ['b']);
      // b's retained status still says connected: the restarted task's own one is a later message
      await waitFor(() => statusHistory(sub, 'b').slice(bStatusesBefore).includes('connected'), 10_000, 'the restarted b connected');
      inst2.write('n=7\n');
      await waitFor(() => dataOf(sub, 'b').some((d) => d.readings.some((r) => r.tag === 'count' && r.value === 7)), 5000, 'b with its new tag name');

      // an invalid config is refused, the old one keeps running
      writeFileSync(join(e.dir, 'config.yaml'), 'devices:\n  - id: a\n    driver: serial\n    port: 5\n');
      gw.signal('SIGHUP');
      await waitFor(() => gw.logs().some((l) => String(l.msg).startsWith('reload refused') && String(l.msg).includes('devices[0].port')), 5000, 'the refusal');

      // b removed, c added on b's port: b's retained status is cleared, c runs
      writeConfig(e.dir, gatewayConfig(e.broker!.url, e.dir, [a, serialDevice('c', pty2.device)]));
      gw.signal('SIGHUP');
      await waitFor(() => gw.logs().filter((l) => l.msg === 'configuration reloaded').length === 2, 5000, 'the second reload');
      const second = gw.logs().filter((l) => l.msg === 'configuration reloaded')[1]!;
      assert.equal([second.kept, second.removed, second.added], [['a'], ['b'], ['c']]);
      await waitFor(() => latest(sub, 'edgegate/gw1/devices/b/status') === undefined, 3000, 'b status cleared');
      await waitForState(sub, 'c', 'connected');
      inst2.write('n=8\n');
      await waitFor(() => counterValues(dataOf(sub, 'c')).includes(8), 5000, 'data from the added device');

      // a new stats_interval takes effect at once
      writeConfig(e.dir, gatewayConfig(e.broker!.url, e.dir, [a, serialDevice('c', pty2.device)], { stats_interval: '100ms' }));
      gw.signal('SIGHUP');
      await waitFor(() => gw.logs().filter((l) => l.msg === 'configuration reloaded').length === 3, 5000, 'the third reload');
      const statsTs = () => sub.messages.filter((m) => m.topic === 'edgegate/gw1/stats').map((m) => (JSON.parse(m.payload) as { ts: number }).ts);
      const statsBefore = statsTs().length;
      // the first of these may still come from the old 500 ms timer
      await waitFor(() => statsTs().length - statsBefore >= 8, 5000, '8 stats after the reload');
      const ts = statsTs().slice(statsBefore);
      const gaps = ts.slice(1).map((t, i) => t - ts[i]!).sort((x, y) => x - y);
      const median = gaps[Math.floor(gaps.length / 2)]!;
      assert.ok(median >= 50 && median < 300, `stats every ${median} ms (median of ${gaps.join(', ')}) after stats_interval 500ms -> 100ms`);

      const n = await stream.stop();
      await waitFor(() => counterValues(dataOf(sub, 'a')).length >= n, 5000, `all ${n} values of a`);
      assert.equal(counterValues(dataOf(sub, 'a')), Array.from({ length: n }, (_, i) => i + 1), 'a lost nothing across three reloads');
      assert.is(statusHistory(sub, 'a').length, aStatusesBefore, 'a never changed state');
      const r = await gw.stop();
      assert.is(r.code, 0);
    } finally {
      inst2.close();
      await pty2.stop();
      await e.cleanup();
    }
  });
}

test.run();
