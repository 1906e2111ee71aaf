// The supervisor of one device task, with a scripted driver and a fake clock:
// backoff, permanent errors, status, timeouts, writes and the flush on stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configSchema, type DeviceConfig } from '../config/schema.js';
import { FakeClock } from '../gateway/clock.js';
import { DeviceTask, MAX_PENDING_WRITES, type DeviceStatus } from '../gateway/device.js';
import { createLogger } from '../gateway/logger.js';
import { PermanentError, type Batch, type Driver, type DriverContext, type Logger, type Reading } from '../gateway/types.js';
import { BadPayload, checkWrite, NotJson, parseWritePayload, WriteLog } from '../gateway/writes.js';

const log = createLogger({ level: 'silent' });
const settle = () => new Promise((r) => setImmediate(r));

function device(extra: Record<string, unknown> = {}): DeviceConfig {
  const cfg = configSchema.parse({
    devices: [{ id: 'dev1', driver: 'serial', port: '/dev/null', write_template: 'SET {tag} {value}\n', tags: { T: { name: 'temperature' }, sp: { writable: true, type: 'number', min: 0, max: 100 }, ro: {}, any: { writable: true }, on: { writable: true, type: 'boolean' }, mode: { writable: true, type: 'string' }, temp_sp: { writable: true, type: 'integer', scale: 0.1, offset: -40, min: -40, max: 85 } }, ...extra }],
  });
  return cfg.devices[0]!;
}

/** a driver whose every run() is decided by the test */
class ScriptedDriver implements Driver {
  runs = 0;
  ctx: DriverContext | undefined;
  writes: Array<[string, unknown]> = [];
  constructor(private readonly script: (n: number, ctx: DriverContext) => Promise<void>) {}
  run(ctx: DriverContext): Promise<void> {
    this.ctx = ctx;
    return this.script(this.runs++, ctx);
  }
  async write(key: string, value: number | boolean | string): Promise<void> {
    this.writes.push([key, value]);
  }
}

/** each wait in turn: no retry a millisecond before it ends, exactly one when it does */
async function expectRetries(clock: FakeClock, driver: ScriptedDriver, waits: number[]): Promise<void> {
  for (const w of waits) {
    const before = driver.runs;
    clock.advance(w - 1);
    await settle();
    assert.is(driver.runs, before, `no retry before ${w} ms`);
    clock.advance(1);
    await settle();
    assert.is(driver.runs, before + 1, `retry after ${w} ms`);
  }
}

function untilAborted(ctx: DriverContext): Promise<void> {
  return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
}

function makeTask(driver: Driver, clock: FakeClock, extra: Record<string, unknown> = {}, random = () => 1) {
  const statuses: DeviceStatus[] = [];
  const batches: Batch[] = [];
  let seq = 0;
  const task = new DeviceTask({
    config: device(extra), gatewayId: 'gw', topicPrefix: 'edgegate/gw',
    batchDefaults: { max_readings: 500, max_bytes: 256 * 1024, max_wait: 1000 },
    clock, log, nextSeq: () => ++seq, onBatch: (b) => batches.push(b), onStatus: (_id, s) => statuses.push(s),
    driver, backoff: { random },
  });
  return { task, statuses, batches };
}

test('a failing open is retried with exponential backoff 1 s → 30 s and counted', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async () => { throw new Error('cannot open /dev/ttyX: ENOENT'); });
  const { task, statuses } = makeTask(driver, clock);
  task.start();
  await settle();
  assert.is(driver.runs, 1);
  assert.is(task.status.state, 'disconnected');
  assert.match(task.status.error ?? '', /ENOENT/);
  const waits = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
  await expectRetries(clock, driver, waits);
  assert.is(task.counters.reconnects, waits.length + 1);
  assert.ok(statuses.some((s) => s.state === 'connecting'));
  await task.stop();
});

test('with the least jitter the waits are 1, 1, 2, 4, 8 s, then 15 s (half of the 30 s cap)', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async () => { throw new Error('no port'); });
  const { task } = makeTask(driver, clock, {}, () => 0);
  task.start();
  await settle();
  await expectRetries(clock, driver, [1000, 1000, 2000, 4000, 8000, 15000, 15000]);
  await task.stop();
});

test('backoff starts again at 1 s only after the connection stayed up; a flapping port keeps backing off', async () => {
  const clock = new FakeClock();
  let failNow: (() => void) | undefined;
  const driver = new ScriptedDriver(async (n, ctx) => {
    if (n < 3) throw new Error('no port');
    ctx.setStatus('connected');
    if (n < 6) throw new Error('port vanished at once'); // flapping: connected, then gone
    return new Promise<void>((resolve, reject) => {
      failNow = () => reject(new Error('unplugged after a long run'));
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  });
  const { task } = makeTask(driver, clock);
  task.start();
  await settle();
  for (const w of [1000, 2000, 4000, 8000, 16000, 30000]) { clock.advance(w); await settle(); }
  assert.is(driver.runs, 7, 'the flapping runs kept growing the wait');
  assert.is(task.status.state, 'connected');
  clock.advance(60_000);
  failNow!();
  await settle();
  assert.is(task.status.state, 'disconnected');
  clock.advance(999);
  await settle();
  assert.is(driver.runs, 7);
  clock.advance(1);
  await settle();
  assert.is(driver.runs, 8, 'after a minute of good connection the next wait is 1 s again');
  await task.stop();
});

test('a permanent error stops the task instead of looping', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async () => { throw new PermanentError('driver not available'); });
  const { task } = makeTask(driver, clock);
  task.start();
  await settle();
  clock.advance(120_000);
  await settle();
  assert.is(driver.runs, 1);
  assert.is(task.status.state, 'error');
  assert.is(task.status.error, 'driver not available');
  await task.stop();
});

test('readings flow through the pipeline and the open batch is flushed on stop', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async (_n, ctx) => {
    ctx.setStatus('connected');
    for (let i = 0; i < 3; i++) ctx.emit('T', 20 + i, clock.now());
    ctx.emit('unknown', 1, clock.now());
    return untilAborted(ctx);
  });
  const { task, batches } = makeTask(driver, clock);
  task.start();
  await settle();
  assert.is(batches.length, 0);
  await task.stop();
  assert.is(batches.length, 1);
  const payload = JSON.parse(batches[0]!.payload) as { device: string; seq: number; readings: Array<{ tag: string; value: number }> };
  assert.is(payload.device, 'dev1');
  assert.is(payload.seq, 1);
  assert.equal(payload.readings.map((r) => [r.tag, r.value]), [['temperature', 20], ['temperature', 21], ['temperature', 22]]);
  assert.is(task.counters.readings_in, 3);
  assert.is(clock.pending, 0, 'no timers left behind');
});

test('heartbeats follow the device status: none while it is not connected; a changes-only driver stamps them now', async () => {
  for (const changesOnly of [false, true]) {
    const clock = new FakeClock();
    const driver = Object.assign(new ScriptedDriver(async (_n, ctx) => { ctx.setStatus('connected'); return untilAborted(ctx); }), { reportsChangesOnly: changesOnly });
    const readings: Reading[] = [];
    const task = new DeviceTask({
      config: device({ tags: { T: { deadband: 1, max_interval: 1000 } } }), gatewayId: 'gw', topicPrefix: 'edgegate/gw',
      batchDefaults: { max_readings: 500, max_bytes: 256 * 1024, max_wait: 1000 },
      clock, log, nextSeq: () => 1, onBatch: () => undefined, onStatus: () => undefined, onReading: (_d, r) => readings.push(r), driver,
    });
    task.start();
    await settle();
    const ctx = driver.ctx!;
    const t0 = clock.now();
    ctx.emit('T', 10, t0 - 20);
    clock.advance(500);
    ctx.emit('T', 10.5, t0 + 480); // inside the band
    ctx.setStatus('disconnected', 'connection lost; reconnecting');
    clock.advance(5000);
    assert.equal(readings.map((r) => r.value), [10], `no heartbeat while disconnected (changes only: ${changesOnly})`);
    ctx.setStatus('connected');
    clock.advance(1000);
    if (changesOnly) {
      assert.equal(readings.map((r) => [r.value, r.ts - t0]), [[10, -20], [10.5, 6500]], 'a live subscription confirms its latest value now');
    } else {
      assert.is(readings.length, 1, 'reconnecting confirms nothing');
      ctx.emit('T', 10.6, t0 + 6500);
      clock.advance(0);
      assert.equal(readings.map((r) => [r.value, r.ts - t0]), [[10, -20], [10.6, 6500]]);
    }
    await task.stop();
  }
});

test('timeouts and parse errors are counted; the status stays the driver\'s to set', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async (_n, ctx) => {
    ctx.setStatus('connected');
    for (let i = 0; i < 5; i++) ctx.timeout();
    ctx.parseError('bad line', 'xx\u0000');
    return untilAborted(ctx);
  });
  const { task } = makeTask(driver, clock);
  task.start();
  await settle();
  assert.is(task.counters.timeouts, 5);
  assert.is(task.counters.parse_errors, 1);
  assert.is(task.status.state, 'connected');
  driver.ctx!.setStatus('error', 'no answer to 3 requests in a row');
  assert.is(task.status.state, 'error');
  driver.ctx!.setStatus('connected');
  assert.is(task.status.state, 'connected');
  await task.stop();
});

test('bad data is logged at most once per 10 s per device, with the count held back', async () => {
  const clock = new FakeClock();
  const lines: Array<Record<string, unknown>> = [];
  const capture: Logger = {
    trace() {}, debug() {}, info() {}, error() {}, fatal() {},
    warn(obj: object | string) { if (typeof obj === 'object') lines.push(obj as Record<string, unknown>); },
    child() { return capture; },
  };
  const driver = new ScriptedDriver(async (_n, ctx) => { ctx.setStatus('connected'); return untilAborted(ctx); });
  const task = new DeviceTask({
    config: device(), gatewayId: 'gw', topicPrefix: 'p', batchDefaults: { max_readings: 500, max_bytes: 262144, max_wait: 1000 },
    clock, log: capture, nextSeq: () => 1, onBatch: () => {}, onStatus: () => {}, driver,
  });
  task.start();
  await settle();
  for (let i = 0; i < 1000; i++) driver.ctx!.parseError('garbage', `line ${i}`);
  clock.advance(10_000);
  driver.ctx!.parseError('garbage', 'after');
  const bad = lines.filter((l) => l.reason === 'garbage');
  assert.is(bad.length, 2);
  assert.is(bad[0]!.sample, 'line 0');
  assert.is(bad[1]!.suppressed, 999);
  assert.is(bad[1]!.parse_errors, 1001);
  assert.is(task.counters.parse_errors, 1001);
  await task.stop();
});

test('writes reach only writable tags, checked against type, min and max', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async (_n, ctx) => { ctx.setStatus('connected'); return untilAborted(ctx); });
  const { task } = makeTask(driver, clock);
  task.start();
  await settle();
  await task.write('sp', 42);
  await task.write('sp', 7.5);
  assert.equal(driver.writes, [['sp', 42], ['sp', 7.5]]);
  const refused = async (tag: string, v: unknown, re: RegExp) => {
    try { await task.write(tag, v); assert.unreachable(`write ${tag}=${String(v)} should fail`); } catch (e) { assert.match((e as Error).message, re); }
  };
  await refused('temperature', 1, /not writable/);
  await refused('ro', 1, /not writable/);
  await refused('sp', 'abc', /expected a value of type number/);
  // the JSON value must be of the tag's type: nothing is converted between kinds
  await refused('sp', '7.5', /expected a value of type number, got "7.5"/);
  await refused('sp', true, /expected a value of type number/);
  await refused('on', 1, /expected a value of type boolean, got 1/);
  await refused('on', 'true', /expected a value of type boolean/);
  await refused('mode', 5, /expected a value of type string, got 5/);
  await refused('sp', new NotJson('hello'), /the payload is not JSON: "hello"/);
  await refused('ro', new NotJson('hello'), /not writable/);
  await refused('any', [1], /expected a value of type number, boolean or string/);
  await refused('sp', { a: 1 }, /expected a value of type number/);
  await refused('sp', 101, /above max 100/);
  await refused('sp', -1, /below min 0/);
  await refused('nope', 1, /unknown tag/);
  await refused('mode', 'auto\nRESET ALL', /control characters/);
  await task.write('mode', 'auto');
  // published as raw * 0.1 - 40: a write of 21.5 °C goes to the device as 615
  await task.write('temp_sp', 21.5);
  await refused('temp_sp', 21.55, /not a whole number of raw units/);
  await refused('temp_sp', 90, /above max 85/);
  // without a type any JSON scalar goes to the device, which knows what it takes
  await task.write('any', 'x');
  await task.write('on', false);
  assert.equal(driver.writes.slice(2), [['mode', 'auto'], ['temp_sp', 615], ['any', 'x'], ['on', false]]);
  await task.stop();
});

test('writes waiting for a slow device are bounded: one more is refused as busy, and taken again once they finish', async () => {
  const clock = new FakeClock();
  const driver = new ScriptedDriver(async (_n, ctx) => { ctx.setStatus('connected'); return untilAborted(ctx); });
  // the line is busy: every write waits until the test lets it finish
  const release: Array<() => void> = [];
  driver.write = (key, value) => { driver.writes.push([key, value]); return new Promise<void>((r) => release.push(r)); };
  const { task } = makeTask(driver, clock);
  task.start();
  await settle();
  const waiting = Array.from({ length: MAX_PENDING_WRITES }, (_, i) => task.write('sp', i));
  try {
    await task.write('sp', 99);
    assert.unreachable('a write beyond the bound should be refused');
  } catch (e) {
    assert.match((e as Error).message, `device dev1 is busy: ${MAX_PENDING_WRITES} writes are still waiting for it`);
  }
  assert.is(driver.writes.length, MAX_PENDING_WRITES, 'the refused write never reached the driver');
  release.shift()!();
  await waiting[0];
  const next = task.write('sp', 50);
  assert.is(driver.writes.length, MAX_PENDING_WRITES + 1, 'room again once one finished');
  for (const r of release.splice(0)) r();
  await Promise.all([...waiting, next]);
  await task.stop();
});

test('write payloads: a JSON value or {"value": x}; anything else is not JSON', () => {
  const parse = (t: string) => parseWritePayload(Buffer.from(t), 1024);
  assert.is(parse(' 21.5 '), 21.5);
  assert.is(parse('"auto"'), 'auto');
  assert.is(parse('true'), true);
  assert.is(parse('{"value":7}'), 7);
  assert.equal(parse('[1,2]'), [1, 2]);
  assert.ok(parse('auto') instanceof NotJson);
  assert.ok(parse('') instanceof NotJson);
});

test('write payloads are bounded: over max_write_bytes or nested too deeply they are refused unparsed', () => {
  const refusal = (v: unknown) => (v instanceof BadPayload ? v.error : `accepted ${String(v)}`);
  const parse = (t: string, max = 1024) => parseWritePayload(Buffer.from(t), max);
  assert.is(refusal(parse(`"${'x'.repeat(1_000_000)}"`)), 'the payload is 1000002 bytes, more than max_write_bytes (1024) allows');
  assert.is(parse(`"${'x'.repeat(1022)}"`), 'x'.repeat(1022), 'exactly the limit is accepted');
  assert.is(refusal(parse(`"${'x'.repeat(1023)}"`)), 'the payload is 1025 bytes, more than max_write_bytes (1024) allows');
  // far beyond what a stack can take, with a limit that lets it in
  const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
  assert.is(refusal(parse(deep, 4 * 1024 * 1024)), 'the payload is nested too deeply (a write is one value)');
  assert.is(refusal(parse('{"value":'.repeat(40) + '1' + '}'.repeat(40))), 'the payload is nested too deeply (a write is one value)');
  // brackets inside strings, also after an escaped quote, are text
  assert.is(parse(`"${'['.repeat(100)}"`), '['.repeat(100));
  assert.is(parse(`{"value":"\\"${'{'.repeat(100)}"}`), `"${'{'.repeat(100)}`);
  assert.equal(parse('[[[1]]]'), [[[1]]], 'shallow nesting is parsed and left to the type check');
  assert.is(parse('1e400'), Infinity);
});

test('checkWrite: a non-finite number says so; refused values are quoted briefly', () => {
  const tag = device().tags.sp!;
  const any = device().tags.any!;
  assert.equal(checkWrite(tag, Infinity), { ok: false, error: 'the value is not a finite number' });
  assert.equal(checkWrite(any, -Infinity), { ok: false, error: 'the value is not a finite number' });
  assert.equal(checkWrite(tag, [[[1]]]), { ok: false, error: 'expected a value of type number, got an array' });
  assert.equal(checkWrite(tag, { a: 1 }), { ok: false, error: 'expected a value of type number, got an object' });
  assert.equal(checkWrite(tag, null), { ok: false, error: 'expected a value of type number, got null' });
  assert.equal(checkWrite(tag, 'x'.repeat(100)), { ok: false, error: `expected a value of type number, got "${'x'.repeat(40)}"` });
  assert.equal(checkWrite(tag, new BadPayload('too big')), { ok: false, error: 'too big' });
  assert.equal(checkWrite(device().tags.ro!, new BadPayload('too big')), { ok: false, error: 'tag is not writable' });
});

test('the write log: 5,000 writes give a line per 10 s per outcome, every write counted', () => {
  const clock = new FakeClock();
  const lines: Array<{ level: string; msg: string } & Record<string, unknown>> = [];
  const capture: Logger = {
    trace() {}, debug() {}, error() {}, fatal() {},
    info(obj: object | string, msg?: string) { if (typeof obj === 'object') lines.push({ level: 'info', msg: msg ?? '', ...obj }); },
    warn(obj: object | string, msg?: string) { if (typeof obj === 'object') lines.push({ level: 'warn', msg: msg ?? '', ...obj }); },
    child() { return capture; },
  };
  const writes = new WriteLog(capture, () => clock.monotonic());
  for (let i = 0; i < 5000; i++) {
    writes.result('dev1', 'sp', i % 5 === 4 ? { ok: false, error: `bad ${i}` } : { ok: true });
    if (i % 7 === 0) writes.badResponseTopic('dev1', 'sp', 'reply/#');
    if (i === 2500) clock.advance(10_000);
  }
  writes.flush();
  assert.is(lines.length, 6, 'first and after 10 s, for accepted, refused and bad response topics');
  clock.advance(9_999);
  writes.flush();
  assert.is(lines.length, 6, 'nothing before the interval has passed');
  clock.advance(1);
  writes.flush();
  writes.flush();
  const accounted = (pick: (l: (typeof lines)[number]) => boolean) => lines.filter(pick).reduce((n, l) => n + (l.msg === 'write' ? 1 : 0) + ((l.suppressed as number | undefined) ?? 0), 0);
  assert.is(accounted((l) => l.ok === true), 4000);
  assert.is(accounted((l) => l.ok === false), 1000);
  assert.is(lines.filter((l) => l.msg.includes('response')).reduce((n, l) => n + (l.level === 'warn' && l.msg.startsWith('write:') ? 1 : 0) + ((l.suppressed as number | undefined) ?? 0), 0), 715);
  assert.is(lines.length, 9, 'one closing line each');
  assert.equal(lines.find((l) => l.ok === false), { level: 'info', msg: 'write', device: 'dev1', tag: 'sp', ok: false, error: 'bad 4' });
  assert.equal(lines.filter((l) => l.msg === 'writes held back from the log').map((l) => l.ok), [true, false]);
});

test.run();
