// `edgegate run` as systemd runs it: a NOTIFY_SOCKET (a Python listener here)
// and WATCHDOG_USEC. The lifecycle messages arrive in order; SIGHUP moves from
// a dead broker to another one, carrying the batches queued meanwhile, without
// losing a reading or restarting the device; a refused
// config keeps the old one; a publisher that gets no PUBACKs stops the pings.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { counterValues, dataOf, gatewayConfig, serialDevice, setup, waitForState, type Data } from './helpers/e2e.js';
import { writeConfig } from './helpers/gateway.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { notifyListener, requirePython, type NotifyListener } from './helpers/notify-listener.js';
import { requirePeer, sleep, waitFor } from './helpers/peers.js';
import { startSilentBroker } from './helpers/silent-broker.js';

const enabled = requirePeer('mosquitto', 'end-to-end tests publish to a real broker') &&
  requirePeer('socat', 'serial ports are socat pty pairs') &&
  requirePython('the systemd side of sd_notify is a Python unix datagram socket');

/** the first field of each message: READY, WATCHDOG, RELOADING, STOPPING or STATUS */
const kinds = (l: NotifyListener) => l.messages.map((m) => Object.keys(m.fields)[0]!);

if (enabled) {
  test('READY, WATCHDOG, RELOADING/READY around a switch to another broker and a refused config, STOPPING; no reading lost', async () => {
    const e = await setup();
    const broker2 = await startMosquitto();
    const listener = await notifyListener(e.dir);
    try {
      const sub1 = await e.subscribe(e.broker!.url);
      const sub2 = await e.subscribe(broker2.url);
      const a = serialDevice('a', e.pty!.device);
      const gw = e.start(gatewayConfig(e.broker!.url, e.dir, [a]), { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '4000000' });
      await waitFor(() => listener.with('READY').length === 1, 15_000, 'READY=1');
      await waitForState(sub1, 'a', 'connected');
      await waitFor(() => listener.with('WATCHDOG').length >= 1, 10_000, 'WATCHDOG=1');
      const stream = e.feed();
      stream.start(1, Infinity, 100);
      await sleep(700);

      // the first broker dies and batches pile up; the mqtt section then names another
      // broker: a new connection takes the queued batches over, and the device is kept
      await e.broker!.kill();
      await waitFor(() => gw.logs().some((l) => l.msg === 'mqtt connection lost'), 5000, 'the outage noticed');
      await sleep(700);
      writeConfig(e.dir, gatewayConfig(broker2.url, e.dir, [a]));
      gw.signal('SIGHUP');
      await waitFor(() => listener.with('READY').length === 2, 15_000, 'READY=1 after the reload');
      // READY=1 and the log line travel different pipes: either may come first
      await waitFor(() => gw.logs().some((l) => l.msg === 'configuration reloaded'), 5000, 'the reload logged');
      const reloaded = gw.logs().find((l) => l.msg === 'configuration reloaded')!;
      assert.equal([reloaded.kept, reloaded.restarted], [['a'], []]);
      const switched = gw.logs().find((l) => l.msg === 'mqtt settings changed: reconnected')!;
      assert.ok(Number(switched.carried_batches) > 0, 'batches from the outage carried over');
      await waitFor(() => dataOf(sub2, 'a').length > 0, 10_000, 'data on the second broker');
      await sleep(500);

      // an invalid config is refused; the old one keeps running
      writeFileSync(join(e.dir, 'config.yaml'), 'devices:\n  - id: a\n    driver: serial\n    port: 5\n');
      gw.signal('SIGHUP');
      await waitFor(() => listener.with('READY').length === 3, 10_000, 'READY=1 after the refusal');
      assert.match(listener.with('READY')[2]!.fields.STATUS!, /^reload refused \(\d+ errors\), old configuration kept; 1\/1 devices connected/);
      await waitFor(() => gw.logs().some((l) => String(l.msg).startsWith('reload refused') && String(l.msg).includes('devices[0].port')), 5000, 'the refusal logged');
      const pings = listener.with('WATCHDOG').length;
      await waitFor(() => listener.with('WATCHDOG').length > pings, 10_000, 'pings after the refusal');

      const n = await stream.stop();
      const all = (): Data[] => [...dataOf(sub1, 'a'), ...dataOf(sub2, 'a')];
      await waitFor(() => new Set(counterValues(all())).size >= n, 10_000, `all ${n} readings across both brokers`);
      const bySeq = new Map(all().map((b) => [b.seq, b]));
      const seqs = [...bySeq.keys()].sort((x, y) => x - y);
      assert.equal(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'seq goes on across the switch, no gap');
      assert.equal(counterValues(seqs.map((s) => bySeq.get(s)!)), Array.from({ length: n }, (_, i) => i + 1), 'every reading once, in order');

      const r = await gw.stop();
      assert.is(r.code, 0);
      // the datagrams reach the test through the listener's own pipe, maybe after the exit
      await waitFor(() => listener.with('STOPPING').length === 1, 5000, 'STOPPING=1');
      const k = kinds(listener);
      const first = (kind: string) => k.indexOf(kind);
      assert.ok(first('READY') === 0, `READY=1 first: ${k.join(' ')}`);
      assert.ok(first('READY') < first('WATCHDOG') && first('WATCHDOG') < first('RELOADING'), k.join(' '));
      assert.equal(k.filter((x) => x === 'RELOADING' || x === 'READY'), ['READY', 'RELOADING', 'READY', 'RELOADING', 'READY']);
      assert.is(k.at(-1), 'STOPPING', 'nothing after STOPPING=1');
      assert.ok(listener.messages.every((m) => m.fields.STATUS), 'every message carries a STATUS=');
      assert.match(listener.with('READY')[0]!.fields.STATUS!, /^\d\/1 devices connected, [\d.]+ readings\/s, buffer \d+ batches \(.+\), mqtt (dis)?connected$/);
    } finally {
      await listener.close();
      await broker2.stop();
      await e.cleanup();
    }
  });

  test('a broker that takes PUBLISHes and never acknowledges them: WATCHDOG=1 stops, STATUS= says why', async () => {
    const e = await setup({ broker: false });
    const silent = await startSilentBroker();
    const listener = await notifyListener(e.dir);
    try {
      const gw = e.start(gatewayConfig(silent.url, e.dir, [serialDevice('a', e.pty!.device)]), { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '3000000' });
      await waitFor(() => listener.with('READY').length === 1, 15_000, 'READY=1');
      const stream = e.feed();
      stream.start(1, Infinity, 50);
      await waitFor(() => gw.logs().some((l) => l.msg?.toString().startsWith('watchdog ping withheld')), 20_000, 'the watchdog to give up');
      await stream.stop();
      const withheld = gw.logs().find((l) => String(l.msg).startsWith('watchdog ping withheld'))!;
      assert.match(String(withheld.reason), /^publisher wedged: \d+ batches in flight, no acknowledgement for \d+ s$/);
      assert.ok(silent.publishes > 0, 'the broker did receive batches');
      // the log line and the datagrams travel different pipes: a ping sent before the
      // withheld one may still be on its way; the unhealthy STATUS= comes after it
      await waitFor(() => listener.messages.some((m) => m.fields.STATUS?.startsWith('unhealthy (publisher wedged')), 5000, 'the unhealthy STATUS=');
      const pings = listener.with('WATCHDOG').length;
      const statuses = listener.messages.length;
      await sleep(4000); // more than WatchdogSec: systemd would restart the service now
      assert.is(listener.with('WATCHDOG').length, pings, 'no WATCHDOG=1 while wedged');
      assert.ok(listener.messages.length > statuses, 'STATUS= updates go on');
      assert.match(listener.messages.at(-1)!.fields.STATUS!, /^unhealthy \(publisher wedged/);
      await gw.stop();
    } finally {
      await listener.close();
      await silent.close();
      await e.cleanup();
    }
  });
}

test.run();
