// sd_notify: the datagrams (through libc, to a Python listener standing in for
// systemd), the environment contract, and the watchdog's health gating on a
// fake clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../gateway/clock.js';
import { PublisherProgress, type Health } from '../gateway/health.js';
import { openNotifySocket, SdNotify, sockaddrUn, type NotifySocket } from '../gateway/sdnotify.js';
import { ServiceNotifier, type ServiceSummary } from '../gateway/service-notifier.js';
import type { Clock } from '../gateway/types.js';
import { captureLog, cleanupsAfterEach } from './helpers/mqtt-fixtures.js';
import { notifyListener, requirePython } from './helpers/notify-listener.js';
import { tempDir, waitFor } from './helpers/peers.js';

const cleanups = cleanupsAfterEach(test);
const havePython = requirePython('the sd_notify tests receive datagrams on a Python unix socket');

/** a socket that records what it was given */
function recorder(): NotifySocket & { sent: string[] } {
  const sent: string[] = [];
  return { sent, send: (m) => { sent.push(m); }, close: () => {} };
}

test('sockaddr_un: a path ends with NUL, an abstract name starts with one', () => {
  const p = sockaddrUn('/run/systemd/notify');
  assert.is(p.length, 2 + '/run/systemd/notify'.length + 1);
  assert.is(p.readUInt16LE(0), 1);
  assert.is(p.subarray(2, -1).toString(), '/run/systemd/notify');
  assert.is(p.at(-1), 0);
  const a = sockaddrUn('@sd-notify-1');
  assert.is(a.length, 2 + 1 + 'sd-notify-1'.length);
  assert.is(a[2], 0);
  assert.is(a.subarray(3).toString(), 'sd-notify-1');
  assert.throws(() => sockaddrUn(''), /not a usable/);
  assert.throws(() => sockaddrUn(`/${'x'.repeat(120)}`), /not a usable/);
});

test('no NOTIFY_SOCKET: silent, nothing opened, and the watchdog variables are consumed', async () => {
  const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '2000000' };
  let opened = false;
  const n = await SdNotify.fromEnv(captureLog().log, env, async () => { opened = true; return recorder(); });
  assert.is(n.active, false);
  assert.is(opened, false);
  assert.is(n.watchdogMs, undefined);
  assert.equal(env, {});
  n.ready('x'); n.watchdog(); n.stopping(); // no-ops
});

test('WATCHDOG_USEC is in microseconds and belongs to WATCHDOG_PID', async () => {
  const open = async () => recorder();
  const log = captureLog().log;
  assert.is((await SdNotify.fromEnv(log, { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000' }, open)).watchdogMs, 30_000);
  assert.is((await SdNotify.fromEnv(log, { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }, open)).watchdogMs, 30_000);
  assert.is((await SdNotify.fromEnv(log, { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, open)).watchdogMs, undefined);
  assert.is((await SdNotify.fromEnv(log, { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: 'soon' }, open)).watchdogMs, undefined);
});

test('a socket that cannot be opened is logged once and leaves a silent notifier', async () => {
  const cap = captureLog();
  const n = await SdNotify.fromEnv(cap.log, { NOTIFY_SOCKET: '/x' }, async () => { throw new Error('no libc here'); });
  assert.is(n.active, false);
  assert.ok(cap.lines.some((l) => l.level === 'error' && l.msg?.includes('sd_notify unavailable')));
});

test('messages are KEY=VALUE lines; a newline inside a status cannot start a new field', () => {
  const sock = recorder();
  const n = new SdNotify(sock, 10_000, captureLog().log);
  n.ready('up\nWATCHDOG=1');
  n.reloading();
  n.watchdog('fine');
  n.stopping();
  assert.is(sock.sent[0], 'READY=1\nSTATUS=up WATCHDOG=1\n');
  assert.match(sock.sent[1]!, /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the configuration\n$/);
  assert.is(sock.sent[2], 'WATCHDOG=1\nSTATUS=fine\n');
  assert.is(sock.sent[3], 'STOPPING=1\nSTATUS=stopping\n');
});

if (havePython) {
  test('datagrams through libc reach a unix socket bound by another program, path and abstract', async () => {
    const tmp = tempDir();
    cleanups.push(tmp.remove);
    for (const name of ['notify.sock', `@edgegate-test-${process.pid}`]) {
      const listener = await notifyListener(tmp.dir, name);
      cleanups.push(() => listener.close());
      const n = new SdNotify(await openNotifySocket(listener.path), 4000, captureLog().log);
      n.ready('1/1 devices connected');
      n.watchdog();
      n.stopping();
      n.close();
      await waitFor(() => listener.messages.length === 3, 3000, `three datagrams on ${name}`);
      assert.equal(listener.messages.map((m) => Object.keys(m.fields)[0]), ['READY', 'WATCHDOG', 'STOPPING']);
      assert.is(listener.messages[0]!.fields.STATUS, '1/1 devices connected');
    }
  });

  test('a notify socket that went away: warned once, never thrown', async () => {
    const tmp = tempDir();
    cleanups.push(tmp.remove);
    const listener = await notifyListener(tmp.dir);
    const cap = captureLog();
    const n = new SdNotify(await openNotifySocket(listener.path), undefined, cap.log);
    cleanups.push(() => n.close());
    await listener.close();
    n.status('a'); n.status('b'); n.status('c');
    const warned = cap.lines.filter((l) => l.level === 'warn');
    assert.is(warned.length, 1);
    assert.match(JSON.stringify(warned[0]!.obj), /ECONNREFUSED|ENOENT/);
  });
}

// ------------------------------------------------------------ watchdog gating

function source(over: { health?: () => Health; summary?: Partial<ServiceSummary> } = {}) {
  let readings = 0;
  return {
    add(n: number) { readings += n; },
    healthy: over.health ?? (() => ({ ok: true })),
    summary: (): ServiceSummary => ({ devices: 2, connected: 1, readings_in: readings, mqtt_connected: true, buffer: { batches: 3, bytes: 2048 }, ...over.summary }),
  };
}

function notifier(watchdogMs: number | undefined, src: ReturnType<typeof source>, clock: Clock) {
  const sock = recorder();
  const cap = captureLog();
  const svc = new ServiceNotifier({ notify: new SdNotify(sock, watchdogMs, cap.log), source: src, log: cap.log, clock });
  return { sock, cap, svc, kinds: () => sock.sent.map((m) => m.split('=')[0]) };
}

test('READY=1 with a status line, then WATCHDOG=1 every half WatchdogSec with the status', () => {
  const clock = new FakeClock();
  const src = source();
  const { sock, svc, kinds } = notifier(4000, src, clock);
  svc.started();
  assert.is(sock.sent[0], 'READY=1\nSTATUS=1/2 devices connected, 0.0 readings/s, buffer 3 batches (2.0 KiB), mqtt connected\n');
  src.add(500);
  clock.advance(2000);
  assert.is(sock.sent[1], 'WATCHDOG=1\nSTATUS=1/2 devices connected, 250.0 readings/s, buffer 3 batches (2.0 KiB), mqtt connected\n');
  clock.advance(6000);
  assert.equal(kinds(), ['READY', 'WATCHDOG', 'WATCHDOG', 'WATCHDOG', 'WATCHDOG']);
  svc.stopping();
  clock.advance(10_000);
  assert.equal(kinds().slice(-1), ['STOPPING'], 'no ping after STOPPING=1');
  assert.is(clock.pending, 0);
});

test('a long WatchdogSec still refreshes the status every 10 s; without a watchdog only STATUS= is sent', () => {
  const clock = new FakeClock();
  const a = notifier(120_000, source(), clock);
  a.svc.started();
  clock.advance(10_000);
  assert.equal(a.kinds(), ['READY', 'WATCHDOG']);
  a.svc.close();
  const b = notifier(undefined, source(), clock);
  b.svc.started();
  clock.advance(20_000);
  assert.equal(b.kinds(), ['READY', 'STATUS', 'STATUS']);
  b.svc.close();
});

test('an unhealthy gateway gets no WATCHDOG=1, says why in STATUS=, and logs the change once each way', () => {
  const clock = new FakeClock();
  let health: Health = { ok: true };
  const { sock, cap, svc, kinds } = notifier(2000, source({ health: () => health }), clock);
  svc.started();
  clock.advance(1000);
  health = { ok: false, reason: 'publisher wedged: 4 batches in flight, no acknowledgement for 3 s' };
  clock.advance(3000);
  assert.equal(kinds(), ['READY', 'WATCHDOG', 'STATUS', 'STATUS', 'STATUS']);
  assert.match(sock.sent.at(-1)!, /^STATUS=unhealthy \(publisher wedged: 4 batches in flight/);
  health = { ok: true };
  clock.advance(1000);
  assert.equal(kinds().at(-1), 'WATCHDOG');
  assert.equal(cap.lines.filter((l) => l.level === 'warn' || l.level === 'info').map((l) => l.level), ['warn', 'info']);
  svc.close();
});

test('a watchdog timer that fires late (a blocked event loop) withholds the ping', () => {
  const fake = new FakeClock();
  let skew = 0;
  const clock: Clock = { now: () => fake.now() + skew, monotonic: () => fake.now() + skew, setTimeout: (fn, ms) => fake.setTimeout(fn, ms), clearTimeout: (h) => fake.clearTimeout(h) };
  const { sock, svc, kinds } = notifier(2000, source(), clock);
  svc.started();
  fake.advance(1000);
  skew = 1500; // this tick runs 1.5 s after it was due: more than half of WatchdogSec
  fake.advance(1000);
  assert.equal(kinds(), ['READY', 'WATCHDOG', 'STATUS']);
  assert.match(sock.sent.at(-1)!, /event loop blocked: the watchdog timer fired 1500 ms late/);
  fake.advance(1000); // on time again
  assert.equal(kinds().at(-1), 'WATCHDOG');
  svc.close();
});

test('a wall clock stepped forward (NTP at boot) is no late watchdog timer: the pings go on', () => {
  const clock = new FakeClock();
  const { svc, kinds } = notifier(2000, source(), clock);
  svc.started();
  clock.advance(1000);
  clock.stepWall(6 * 3_600_000);
  clock.advance(1000);
  clock.stepWall(-3_600_000);
  clock.advance(1000);
  assert.equal(kinds(), ['READY', 'WATCHDOG', 'WATCHDOG', 'WATCHDOG']);
  svc.close();
});

test('PublisherProgress: outage and idle are healthy; in flight with no acknowledgement for stallMs is not', () => {
  const p = new PublisherProgress();
  const stall = 5000;
  assert.ok(p.check({ connected: false, inflight: 9, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 0, stall).ok, 'an outage is no fault');
  assert.ok(p.check({ connected: false, inflight: 9, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 60_000, stall).ok);
  assert.ok(p.check({ connected: true, inflight: 0, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 61_000, stall).ok, 'idle');
  assert.ok(p.check({ connected: true, inflight: 4, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 62_000, stall).ok);
  assert.ok(p.check({ connected: true, inflight: 4, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 65_999, stall).ok, 'counted from the last idle look');
  const wedged = p.check({ connected: true, inflight: 4, published_batches: 0, queued_batches: 0, handed_out_batches: 0 }, 66_000, stall);
  assert.is(wedged.ok, false);
  assert.match(wedged.reason!, /publisher wedged: 4 batches in flight, no acknowledgement for 5 s/);
  assert.ok(p.check({ connected: true, inflight: 4, published_batches: 1, queued_batches: 0, handed_out_batches: 0 }, 68_000, stall).ok, 'an acknowledgement is progress');
  assert.ok(p.check({ connected: true, inflight: 4, published_batches: 1, queued_batches: 0, handed_out_batches: 0 }, 72_999, stall).ok);
  assert.is(p.check({ connected: true, inflight: 4, published_batches: 1, queued_batches: 0, handed_out_batches: 0 }, 73_000, stall).ok, false);
});

test.run();
