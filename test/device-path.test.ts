// Waiting for a missing port to come back: the wait itself on a fake
// filesystem and a fake clock, the supervisor using it, and the watch on a
// real directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { configSchema } from '../config/schema.js';
import { FakeClock, systemClock } from '../gateway/clock.js';
import { fsProbe, waitForRetry, watchDirs, type PathProbe, type RetryCause } from '../gateway/device-path.js';
import { DeviceTask } from '../gateway/device.js';
import { createLogger } from '../gateway/logger.js';
import type { Driver, DriverContext } from '../gateway/types.js';
import { tempDir, waitFor } from './helpers/peers.js';

const settle = () => new Promise((r) => setImmediate(r));
const BY_ID = '/dev/serial/by-id/usb-FTDI-if00';

/** files, directories and symlinks in memory; a change notifies the watchers of its directory */
class FakeFs implements PathProbe {
  readonly entries = new Set<string>(['/', '/dev']);
  readonly links = new Map<string, string>();
  readonly watchers = new Map<string, Set<(broken?: boolean) => void>>();

  exists(path: string): boolean {
    const target = this.links.get(path);
    return target !== undefined ? this.exists(target) : this.entries.has(path);
  }
  linkTarget(path: string): string | undefined {
    return this.links.get(path);
  }
  watch(dir: string, onChange: (broken?: boolean) => void): (() => void) | undefined {
    if (!this.exists(dir)) return undefined;
    const set = this.watchers.get(dir) ?? new Set();
    this.watchers.set(dir, set.add(onChange));
    return () => void set.delete(onChange);
  }
  /** creates a file or directory; `quietly`: the watch misses it */
  add(path: string, quietly = false): void {
    this.entries.add(path);
    if (!quietly) this.notify(dirname(path));
  }
  link(path: string, target: string): void {
    this.links.set(path, target);
    this.notify(dirname(path));
  }
  remove(path: string): void {
    this.entries.delete(path);
    this.links.delete(path);
    this.notify(dirname(path));
  }
  notify(dir: string, broken = false): void {
    for (const fn of [...(this.watchers.get(dir) ?? [])]) fn(broken);
  }
  /** the directories watched now */
  get watching(): string[] {
    return [...this.watchers].filter(([, set]) => set.size > 0).map(([dir]) => dir).sort();
  }
}

/** a wait whose outcome can be looked at while it is pending */
function waiting(path: string, ms: number, fs: FakeFs, clock: FakeClock, signal = new AbortController().signal) {
  let cause: RetryCause | 'waiting' = 'waiting';
  const done = waitForRetry(path, ms, { clock, signal, probe: fs, checkMs: 250 }).then((c) => void (cause = c));
  return { done, cause: () => cause };
}

test('a missing port: the backoff timer does not end the wait, the port appearing ends it at once', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  fs.add('/dev/serial');
  fs.add('/dev/serial/by-id');
  const w = waiting(BY_ID, 1000, fs, clock);
  assert.equal(fs.watching, ['/dev/serial/by-id']);
  clock.advance(600_000);
  await settle();
  assert.is(w.cause(), 'waiting', 'still waiting after 10 minutes');
  fs.add('/dev/ttyUSB0');
  fs.link(BY_ID, '/dev/ttyUSB0');
  await settle();
  assert.is(w.cause(), 'appeared', 'at once, without the clock moving');
  assert.equal(fs.watching, [], 'every watch stopped');
  assert.is(clock.pending, 0, 'every timer stopped');
});

test('a change the watch misses is found by the periodic check', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const w = waiting('/dev/ttyUSB0', 1000, fs, clock);
  fs.add('/dev/ttyUSB0', true);
  clock.advance(249);
  await settle();
  assert.is(w.cause(), 'waiting');
  clock.advance(1);
  await settle();
  assert.is(w.cause(), 'appeared');
  assert.is(clock.pending, 0);
});

test('a port that exists: the wait is the backoff, to the millisecond', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  fs.add('/dev/ttyUSB0');
  const w = waiting('/dev/ttyUSB0', 4000, fs, clock);
  assert.equal(fs.watching, ['/dev'], 'watched all the same: it may vanish during the wait');
  clock.advance(3999);
  await settle();
  assert.is(w.cause(), 'waiting');
  clock.advance(1);
  await settle();
  assert.is(w.cause(), 'timer');
  assert.equal(fs.watching, []);
  assert.is(clock.pending, 0);
});

test('a port that vanishes during the backoff (udev removes it after the hangup) is retried when it is back', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  fs.add('/dev/ttyUSB0');
  const w = waiting('/dev/ttyUSB0', 30_000, fs, clock);
  clock.advance(10);
  fs.remove('/dev/ttyUSB0');
  clock.advance(2000);
  await settle();
  assert.is(w.cause(), 'waiting');
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(w.cause(), 'appeared', 'long before the 30 s of backoff');
});

test('/dev/serial/by-id gone with the last adapter: the nearest directory is watched, then the new ones', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const w = waiting(BY_ID, 1000, fs, clock);
  assert.equal(fs.watching, ['/dev']);
  fs.add('/dev/ttyUSB0');
  fs.add('/dev/serial');
  assert.equal(fs.watching, ['/dev/serial']);
  fs.add('/dev/serial/by-id');
  assert.equal(fs.watching, ['/dev/serial/by-id']);
  assert.is(w.cause(), 'waiting');
  fs.link(BY_ID, '/dev/ttyUSB0');
  await settle();
  assert.is(w.cause(), 'appeared');
  assert.equal(fs.watching, []);
});

test('a by-id link whose target is not there yet: the target\'s directory is watched too', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  fs.add('/dev/serial');
  fs.add('/dev/serial/by-id');
  fs.link(BY_ID, '/dev/ttyUSB0');
  assert.equal(watchDirs(BY_ID, fs), ['/dev/serial/by-id', '/dev']);
  const w = waiting(BY_ID, 1000, fs, clock);
  assert.equal(fs.watching, ['/dev', '/dev/serial/by-id']);
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(w.cause(), 'appeared');
});

test('a broken watch is set up again by the next check', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const w = waiting('/dev/ttyUSB0', 1000, fs, clock);
  fs.notify('/dev', true);
  assert.equal(fs.watching, []);
  clock.advance(250);
  assert.equal(fs.watching, ['/dev']);
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(w.cause(), 'appeared');
});

test('stopped while waiting: resolves at once, nothing left behind', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const stop = new AbortController();
  const w = waiting('/dev/ttyUSB0', 1000, fs, clock, stop.signal);
  stop.abort();
  await settle();
  assert.is(w.cause(), 'aborted');
  assert.equal(fs.watching, []);
  assert.is(clock.pending, 0);
});

/** a driver whose port is a file on the fake filesystem: open fails unless it exists */
class PortDriver implements Driver {
  runs = 0;
  constructor(readonly devicePath: string, private readonly fs: FakeFs) {}
  run(ctx: DriverContext): Promise<void> {
    this.runs++;
    if (!this.fs.exists(this.devicePath)) return Promise.reject(new Error(`cannot open ${this.devicePath}: ENOENT (no such port)`));
    ctx.setStatus('connected');
    // unplugged at once: a flapping adapter, which would grow the backoff
    return Promise.reject(new Error(`${this.devicePath}: device removed`));
  }
}

function supervised(driver: Driver, fs: FakeFs, clock: FakeClock) {
  const config = configSchema.parse({ devices: [{ id: 'd', driver: 'serial', port: '/dev/ttyUSB0' }] }).devices[0]!;
  return new DeviceTask({
    config, gatewayId: 'gw', topicPrefix: 'p', batchDefaults: { max_readings: 500, max_bytes: 262_144, max_wait: 1000 },
    clock, log: createLogger({ level: 'silent' }), nextSeq: () => 1, onBatch: () => {}, onStatus: () => {},
    driver, backoff: { random: () => 1 }, pathProbe: fs,
  });
}

/** the backoff waits in turn: no retry a millisecond before each ends, one when it does */
async function expectBackoff(clock: FakeClock, driver: PortDriver, waits: number[]): Promise<void> {
  for (const wait of waits) {
    const runs = driver.runs;
    clock.advance(wait - 1);
    await settle();
    assert.is(driver.runs, runs, `no retry before ${wait} ms`);
    clock.advance(1);
    await settle();
    assert.is(driver.runs, runs + 1, `retry after ${wait} ms`);
  }
}

test('supervisor: a missing port is retried when it appears, whatever the backoff had grown to; one that exists keeps the backoff', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const driver = new PortDriver('/dev/ttyUSB0', fs);
  const task = supervised(driver, fs, clock);
  task.start();
  await settle();
  assert.is(driver.runs, 1);
  assert.is(task.status.error, 'cannot open /dev/ttyUSB0: ENOENT (no such port)');
  clock.advance(600_000);
  await settle();
  assert.is(driver.runs, 1, 'no attempt while the port is missing');
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(driver.runs, 2, 'tried the moment it appeared');
  // it opens and fails at once (a flapping port), and the port stays: 1, 2, 4, 8 s of backoff as before
  assert.is(task.status.error, '/dev/ttyUSB0: device removed');
  await expectBackoff(clock, driver, [1000, 2000, 4000, 8000]);
  // unplugged during the next 16 s of backoff: no attempt until it is back, then one at once
  clock.advance(10);
  fs.remove('/dev/ttyUSB0');
  clock.advance(600_000);
  await settle();
  assert.is(driver.runs, 6);
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(driver.runs, 7, 'retried the moment it appeared');
  // plugged back in is a fresh start: the backoff is 1 s again, not 30 s
  await expectBackoff(clock, driver, [1000, 2000]);
  await task.stop();
  assert.equal(fs.watching, [], 'no watch left after stop');
  assert.is(clock.pending, 0, 'no timer left after stop');
});

test('supervisor: stopped while it waits for the port: stop() returns, nothing left behind', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  const driver = new PortDriver('/dev/ttyUSB0', fs);
  const task = supervised(driver, fs, clock);
  task.start();
  await settle();
  assert.equal(fs.watching, ['/dev']);
  await task.stop();
  assert.equal(fs.watching, []);
  assert.is(clock.pending, 0);
  fs.add('/dev/ttyUSB0');
  await settle();
  assert.is(driver.runs, 1);
});

test('supervisor: a driver without a port file keeps the plain backoff', async () => {
  const fs = new FakeFs();
  const clock = new FakeClock();
  let runs = 0;
  const task = supervised({ run: () => (runs++, Promise.reject(new Error('refused'))) }, fs, clock);
  task.start();
  await settle();
  assert.equal(fs.watching, []);
  clock.advance(999);
  await settle();
  assert.is(runs, 1);
  clock.advance(1);
  await settle();
  assert.is(runs, 2);
  await task.stop();
});

test('the real filesystem: a symlink made in a directory that did not exist yet ends the wait through the watch alone', async () => {
  const tmp = tempDir();
  const stop = new AbortController();
  // the real probe, recording which directories are watched
  const watched = new Set<string>();
  const probe: PathProbe = {
    exists: (p) => fsProbe.exists(p),
    linkTarget: (p) => fsProbe.linkTarget(p),
    watch(dir, onChange) {
      const unwatch = fsProbe.watch(dir, onChange);
      if (!unwatch) return undefined;
      watched.add(dir);
      return () => {
        watched.delete(dir);
        unwatch();
      };
    },
  };
  try {
    const link = join(tmp.dir, 'serial', 'by-id', 'usb-x');
    const target = join(tmp.dir, 'tty');
    writeFileSync(target, '');
    let cause: RetryCause | undefined;
    // the periodic check is an hour away: only the watch can end this wait
    void waitForRetry(link, 60_000, { clock: systemClock, signal: stop.signal, probe, checkMs: 3_600_000 }).then((c) => (cause = c));
    assert.equal([...watched], [tmp.dir]);
    mkdirSync(join(tmp.dir, 'serial'));
    await waitFor(() => watched.has(join(tmp.dir, 'serial')), 5000, 'the watch to move into serial/');
    mkdirSync(join(tmp.dir, 'serial', 'by-id'));
    await waitFor(() => watched.has(join(tmp.dir, 'serial', 'by-id')), 5000, 'the watch to move into by-id/');
    symlinkSync(target, link);
    await waitFor(() => cause !== undefined, 5000, 'the wait to end');
    assert.is(cause, 'appeared');
    assert.equal([...watched], []);
  } finally {
    stop.abort();
    tmp.remove();
  }
});

test.run();
