// The serial driver with a query/response instrument simulated on the other
// end of a socat pty: it answers "MEAS?" with a csv line, or stays silent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialDevice } from '../config/schema.js';
import { SerialDriver } from '../drivers/serial/driver.js';
import { systemClock } from '../gateway/clock.js';
import type { Clock } from '../gateway/types.js';
import { openInstrument, ptyPair, recordingContext, type InstrumentEnd, type Recorder } from './helpers/socat.js';
import { requirePeer, runInBackground, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'serial tests run against socat pty pairs');

interface Rig {
  instrument: InstrumentEnd;
  rec: Recorder;
  driver: SerialDriver;
  /** when each request arrived at the instrument */
  requests: number[];
  /** per request: answers the instrument still owed (delayed, not yet written) when it arrived */
  owedAtRequest: number[];
  /** every timer the driver set: its delay, and when it is due on the monotonic clock, as the driver computed it */
  timers: Array<{ ms: number; due: number }>;
  /** per entry of rec.statuses: the timeouts counted when it was set */
  timeoutsAtStatus: number[];
  /** whether the instrument answers, and after how long */
  behave(b: { answer: boolean; delayMs?: number }): void;
  outcome(): unknown;
}

/** the system clock, noting each timer the driver sets */
function watchedClock(): { clock: Clock; timers: Rig['timers'] } {
  const timers: Rig['timers'] = [];
  // the driver reads monotonic() and computes a delay from it: due = that reading + delay
  let last = 0;
  const clock: Clock = {
    now: () => systemClock.now(),
    monotonic: () => (last = systemClock.monotonic()),
    setTimeout: (fn, ms) => {
      timers.push({ ms, due: last + ms });
      return systemClock.setTimeout(fn, ms);
    },
    clearTimeout: (h) => systemClock.clearTimeout(h),
  };
  return { clock, timers };
}

async function withInstrument(options: Record<string, unknown>, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const pty = await ptyPair(tmp.dir);
  const instrument = await openInstrument(pty.instrument);
  const requests: number[] = [];
  const owedAtRequest: number[] = [];
  let owed = 0;
  let behaviour = { answer: true, delayMs: 0 };
  let weight = 0;
  instrument.onLine((line) => {
    if (line !== 'MEAS?') return;
    requests.push(Date.now());
    owedAtRequest.push(owed);
    if (!behaviour.answer) return;
    weight++;
    const answer = `${weight}.5,0.25\r\n`;
    if (behaviour.delayMs > 0) {
      owed++;
      // not before delayMs on the clock the requests are timed with (a timer may fire a little early)
      const due = Date.now() + behaviour.delayMs;
      const later = (): void => {
        if (Date.now() < due) {
          setTimeout(later, due - Date.now());
          return;
        }
        owed--;
        void instrument.write(answer).catch(() => undefined);
      };
      setTimeout(later, behaviour.delayMs);
    } else void instrument.write(answer).catch(() => undefined);
  });
  const { clock, timers } = watchedClock();
  const rec = recordingContext('dev1', clock);
  const timeoutsAtStatus: number[] = [];
  const ctx = {
    ...rec.ctx,
    setStatus: (state: Parameters<Recorder['ctx']['setStatus']>[0], error?: string) => {
      timeoutsAtStatus.push(rec.timeouts);
      rec.ctx.setStatus(state, error);
    },
  };
  // timeout 300: generous for a round trip through socat, where a test is not about the timeout itself
  const driver = new SerialDriver(serialDevice.parse({
    id: 'scale1', driver: 'serial', port: pty.device, baud_rate: 115200,
    request: 'MEAS?\n', poll_interval: 100, timeout: 300, format: 'csv', columns: ['weight', 'tare'],
    write_template: 'SET {tag} {value}\n', ...options,
  }));
  const { done: run, outcome } = runInBackground(driver, ctx);
  try {
    await waitFor(() => rec.lastStatus()?.state === 'connected' || outcome() !== 'running', 5000, 'connected');
    await fn({
      instrument, rec, driver, requests, owedAtRequest, timers, timeoutsAtStatus,
      behave: (b) => void (behaviour = { delayMs: 0, ...b }), outcome,
    });
    assert.is(outcome(), 'running', `run() ended: ${String(outcome())}`);
  } finally {
    rec.abort();
    await run;
    await instrument.close();
    await pty.stop();
    tmp.remove();
  }
}

if (enabled) {
  test('requests every poll_interval, answers parsed, no timeouts', async () => {
    await withInstrument({ timeout: 2000 }, async ({ rec, timers }) => {
      await waitFor(() => rec.values('weight').length >= 10, 10_000, '10 answers');
      assert.equal(rec.values('weight').slice(0, 10), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]);
      assert.ok(rec.values('tare').every((t) => t === 0.25));
      assert.is(rec.timeouts, 0);
      assert.is(rec.parseErrors.length, 0);
      // the poll timers (the answer timer waits `timeout`, 2 s): each request is due on a fixed grid
      // of 100 ms, whatever the time of each exchange, so the schedule neither drifts nor piles up;
      // only a slot the exchange overran is skipped, and the next request then goes at once
      const polls = () => timers.filter((t) => t.ms < 1000);
      await waitFor(() => polls().length >= 21, 10_000, '21 polls');
      const due = polls().slice(0, 21).map((t) => t.due);
      const ms = polls().slice(0, 21).map((t) => t.ms);
      const gaps = due.slice(1).map((d, i) => d - due[i]!);
      // (fractional ms: a grid step is 100 up to rounding, a drifting schedule would add each exchange's time)
      const step = (gap: number) => Math.abs(gap - 100) < 0.001;
      gaps.forEach((gap, i) => assert.ok(step(gap) || (gap > 100 && ms[i + 1] === 0), `poll ${i + 1}: ${gap} ms after the one before, delay ${ms[i + 1]} ms`));
      const onGrid = gaps.filter(step).length;
      assert.ok(onGrid >= gaps.length / 2, `${onGrid} of ${gaps.length} intervals on the grid`);
    });
  });

  test('silence: each unanswered request is a timeout; three in a row mark the device, an answer clears it', async () => {
    await withInstrument({}, async ({ rec, behave, timeoutsAtStatus }) => {
      await waitFor(() => rec.values('weight').length >= 1, 5000, 'a first answer');
      const before = rec.timeouts;
      behave({ answer: false });
      await waitFor(() => rec.lastStatus()?.state === 'error', 10_000, 'the error status');
      assert.equal(rec.lastStatus(), { state: 'error', error: 'no answer to 3 requests in a row' });
      // set by the third timeout in a row (fewer of them since the silence only if one came before it)
      const atError = timeoutsAtStatus[timeoutsAtStatus.length - 1] ?? 0;
      assert.ok(atError >= 3 && atError - before <= 3, `error status at ${atError} timeouts, ${before} before the silence`);
      await waitFor(() => rec.timeouts >= atError + 2, 10_000, 'still counting');
      assert.is(rec.statuses.filter((s) => s.state === 'error').length, 1, 'the error status is set once');
      const answered = rec.values('weight').length;
      behave({ answer: true });
      await waitFor(() => rec.lastStatus()?.state === 'connected', 10_000, 'connected again');
      await waitFor(() => rec.values('weight').length > answered, 10_000, 'answers again');
      assert.equal(rec.statuses.map((s) => s.state), ['connecting', 'connected', 'error', 'connected']);
    });
  });

  test('a slow answer delays the next request instead of piling requests up', async () => {
    await withInstrument({ poll_interval: 50, timeout: 2000 }, async ({ rec, requests, owedAtRequest, behave }) => {
      behave({ answer: true, delayMs: 150 });
      const from = requests.length;
      await waitFor(() => requests.length >= from + 6, 10_000, 'six slow exchanges');
      // each exchange takes at least the 150 ms of the answer: never the 50 ms interval alone
      const slow = requests.slice(from);
      const gaps = slow.slice(1).map((t, i) => t - slow[i]!);
      assert.ok(gaps.every((gap) => gap >= 150), `requests ${gaps.join(', ')} ms apart`);
      // a request goes out only once the answer to the one before has come
      assert.equal(owedAtRequest.slice(from), slow.map(() => 0), 'answers owed when each request arrived');
      assert.is(rec.timeouts, 0);
      assert.ok(rec.values('weight').length >= requests.length - 1);
    });
  });

  test('write_template: writes arrive whole, between exchanges, and resolve when sent', async () => {
    await withInstrument({ poll_interval: 20, timeout: 100 }, async ({ instrument, driver, requests }) => {
      await waitFor(() => requests.length >= 3, 5000, 'polling under way');
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) writes.push(driver.write('tare', i / 2));
      writes.push(driver.write('mode', 'fast {tag}'));
      await Promise.all(writes);
      await waitFor(() => instrument.received.includes('SET mode fast {tag}\n'), 5000, 'the last write');
      // polling goes on: taken when the last line in has arrived whole
      let received = '';
      await waitFor(() => (received = instrument.received).endsWith('\n'), 5000, 'a whole line last');
      const lines = received.split('\n');
      assert.is(lines.pop(), '', 'nothing half written');
      for (const l of lines) assert.ok(l === 'MEAS?' || /^SET \w+ /.test(l), `unexpected "${l}"`);
      assert.equal(lines.filter((l) => l.startsWith('SET tare ')), Array.from({ length: 20 }, (_, i) => `SET tare ${i / 2}`));
      assert.ok(lines.filter((l) => l === 'MEAS?').length >= 3);
    });
  });

  test('write: a command longer than max_write_bytes is refused whole, nothing of it on the line', async () => {
    await withInstrument({ max_write_bytes: 16 }, async ({ instrument, driver }) => {
      await driver.write('mode', 'x'.repeat(20)).then(() => assert.unreachable(), (e: Error) => assert.is(e.message, 'the command would be 30 bytes, more than max_write_bytes (16) allows'));
      await driver.write('tare', 1);
      await waitFor(() => instrument.received.includes('SET tare 1\n'), 5000, 'the short write');
      assert.not.ok(instrument.received.includes('SET mode'), 'the long command reached the line');
    });
  });

  test('write: resolves as sent; with write_ack it waits for the matching line, which is consumed, not parsed', async () => {
    const ack = { pattern: '^OK {tag}={value}$', timeout: '1s' };
    await withInstrument({ request: undefined, write_ack: ack }, async ({ instrument, driver, rec }) => {
      instrument.onLine((line) => {
        const m = /^SET (\w+) (.*)$/.exec(line);
        // data keeps coming before the acknowledgement; an acknowledgement of another value is no acknowledgement
        if (m) void instrument.write(`7.5,0.25\r\nOK ${m[1]}=${m[2] === '3' ? '4' : m[2]}\r\n`).catch(() => undefined);
      });
      assert.equal(await driver.write('tare', 5), { sent: true, acknowledged: true });
      assert.equal(rec.values('weight'), [7.5], 'the data line before the acknowledgement is data');
      assert.equal(rec.parseErrors, [], 'the acknowledgement is not parsed as data');
      const wrong = await driver.write('tare', 3).then(() => 'resolved', (e: Error) => e.message);
      assert.is(wrong, 'no acknowledgement within 1 s');
      assert.equal(rec.parseErrors.map((p) => p.sample), ['OK tare=4'], 'a line that is not the acknowledgement is parsed as usual');
      // a silent instrument: the write fails after the timeout, and the next write still works
      instrument.onLine(undefined);
      assert.is(await driver.write('tare', 6).then(() => 'resolved', (e: Error) => e.message), 'no acknowledgement within 1 s');
      instrument.onLine((line) => { if (line === 'SET tare 8') void instrument.write('OK tare=8\n').catch(() => undefined); });
      assert.equal(await driver.write('tare', 8), { sent: true, acknowledged: true });
    });
    await withInstrument({ request: undefined }, async ({ driver }) => {
      assert.equal(await driver.write('tare', 1), { sent: true }, 'without write_ack: sent, not acknowledged');
    });
  });

  test('write: no write_template, or the port not open, is a readable rejection', async () => {
    await withInstrument({ write_template: undefined }, async ({ driver }) => {
      await driver.write('tare', 1).then(() => assert.unreachable(), (e: Error) => assert.is(e.message, 'this device has no write_template'));
    });
    const idle = new SerialDriver(serialDevice.parse({ id: 'd', driver: 'serial', port: '/dev/ttyNONE', write_template: 'SET {tag} {value}\n' }));
    await idle.write('tare', 1).then(() => assert.unreachable(), (e: Error) => assert.is(e.message, '/dev/ttyNONE is not open'));
  });
}

test.run();
