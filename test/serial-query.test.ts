// The serial driver with a query/response instrument simulated on the other
// end of a socat pty: it answers "MEAS?" with a csv line, or stays silent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialDevice } from '../config/schema.js';
import { SerialDriver } from '../drivers/serial/driver.js';
import { openInstrument, ptyPair, recordingContext, type InstrumentEnd, type Recorder } from './helpers/socat.js';
import { requirePeer, sleep, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'serial tests run against socat pty pairs');

interface Rig {
  instrument: InstrumentEnd;
  rec: Recorder;
  driver: SerialDriver;
  /** when each request arrived at the instrument */
  requests: number[];
  /** whether the instrument answers, and after how long */
  behave(b: { answer: boolean; delayMs?: number }): void;
  outcome(): unknown;
}

async function withInstrument(options: Record<string, unknown>, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const pty = await ptyPair(tmp.dir);
  const instrument = await openInstrument(pty.instrument);
  const requests: number[] = [];
  let behaviour = { answer: true, delayMs: 0 };
  let weight = 0;
  instrument.onLine((line) => {
    if (line !== 'MEAS?') return;
    requests.push(Date.now());
    if (!behaviour.answer) return;
    weight++;
    const answer = `${weight}.5,0.25\r\n`;
    if (behaviour.delayMs > 0) setTimeout(() => void instrument.write(answer).catch(() => undefined), behaviour.delayMs);
    else void instrument.write(answer).catch(() => undefined);
  });
  const rec = recordingContext();
  const driver = new SerialDriver(serialDevice.parse({
    id: 'scale1', driver: 'serial', port: pty.device, baud_rate: 115200,
    request: 'MEAS?\n', poll_interval: 100, timeout: 60, format: 'csv', columns: ['weight', 'tare'],
    write_template: 'SET {tag} {value}\n', ...options,
  }));
  let outcome: unknown = 'running';
  const run = driver.run(rec.ctx).then(() => void (outcome = 'resolved'), (e: unknown) => void (outcome = e));
  try {
    await waitFor(() => rec.lastStatus()?.state === 'connected' || outcome !== 'running', 5000, 'connected');
    await fn({ instrument, rec, driver, requests, behave: (b) => void (behaviour = { delayMs: 0, ...b }), outcome: () => outcome });
    assert.is(outcome, 'running', `run() ended: ${String(outcome)}`);
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
    await withInstrument({ timeout: 300 }, async ({ rec, requests }) => {
      await waitFor(() => rec.values('weight').length >= 10, 3000, '10 answers');
      assert.equal(rec.values('weight').slice(0, 10), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]);
      assert.ok(rec.values('tare').every((t) => t === 0.25));
      assert.is(rec.timeouts, 0);
      assert.is(rec.parseErrors.length, 0);
      // on a fixed grid of 100 ms: ten intervals take 1 s, whatever the time of each exchange
      await waitFor(() => requests.length >= 15, 3000, '15 requests');
      const span = (requests[14] ?? 0) - (requests[4] ?? 0);
      assert.ok(span >= 900 && span <= 1150, `10 intervals took ${span} ms`);
    });
  });

  test('silence: each unanswered request is a timeout; three in a row mark the device, an answer clears it', async () => {
    await withInstrument({}, async ({ rec, behave }) => {
      await waitFor(() => rec.values('weight').length >= 1, 2000, 'a first answer');
      behave({ answer: false });
      await waitFor(() => rec.lastStatus()?.state === 'error', 2000, 'the error status');
      assert.equal(rec.lastStatus(), { state: 'error', error: 'no answer to 3 requests in a row' });
      assert.ok(rec.timeouts >= 3 && rec.timeouts <= 4, `${rec.timeouts} timeouts`);
      await sleep(350);
      assert.ok(rec.timeouts >= 5, `still counting: ${rec.timeouts}`);
      assert.is(rec.statuses.filter((s) => s.state === 'error').length, 1, 'the error status is set once');
      const answered = rec.values('weight').length;
      behave({ answer: true });
      await waitFor(() => rec.lastStatus()?.state === 'connected', 2000, 'connected again');
      await waitFor(() => rec.values('weight').length > answered, 2000, 'answers again');
      assert.equal(rec.statuses.map((s) => s.state), ['connecting', 'connected', 'error', 'connected']);
    });
  });

  test('a slow answer delays the next request instead of piling requests up', async () => {
    await withInstrument({ poll_interval: 50, timeout: 500 }, async ({ rec, requests, behave }) => {
      behave({ answer: true, delayMs: 150 });
      await sleep(1000);
      const n = requests.length;
      // one exchange takes ~150 ms: about 7 in a second, never the 20 the interval alone would give
      assert.ok(n >= 4 && n <= 9, `${n} requests`);
      assert.is(rec.timeouts, 0);
      assert.ok(rec.values('weight').length >= n - 1);
    });
  });

  test('write_template: writes arrive whole, between exchanges, and resolve when sent', async () => {
    await withInstrument({ poll_interval: 20, timeout: 100 }, async ({ instrument, driver, requests }) => {
      await waitFor(() => requests.length >= 3, 2000, 'polling under way');
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) writes.push(driver.write('tare', i / 2));
      writes.push(driver.write('mode', 'fast {tag}'));
      await Promise.all(writes);
      await waitFor(() => instrument.received.includes('SET mode fast {tag}\n'), 2000, 'the last write');
      await sleep(50);
      const lines = instrument.received.split('\n');
      assert.is(lines.pop(), '', 'nothing half written');
      for (const l of lines) assert.ok(l === 'MEAS?' || /^SET \w+ /.test(l), `unexpected "${l}"`);
      assert.equal(lines.filter((l) => l.startsWith('SET tare ')), Array.from({ length: 20 }, (_, i) => `SET tare ${i / 2}`));
      assert.ok(lines.filter((l) => l === 'MEAS?').length >= 3);
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
