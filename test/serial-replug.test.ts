// A serial device unplugged and plugged back in, again and again, under its
// supervisor: each time the port's path reappears the device reads again at
// once, however far the backoff had grown. socat stands in for the adapter:
// killing it removes the link, restarting it recreates the link at the same
// path, as udev does with /dev/serial/by-id.
//
// EDGEGATE_REPLUG_PAUSE_MS=2000 makes every pause 2 s (the field campaign);
// the measured times are printed either way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configSchema } from '../config/schema.js';
import { systemClock } from '../gateway/clock.js';
import { DeviceTask, type DeviceStatus } from '../gateway/device.js';
import type { Logger } from '../gateway/types.js';
import { openInstrument, ptyPair, type InstrumentEnd } from './helpers/socat.js';
import { requirePeer, sleep, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'serial tests run against socat pty pairs');

/** back within 2 s is the requirement; the margin is for a loaded machine, the trigger is asserted apart */
const BOUND_MS = 5000;
const fixedPause = Number(process.env.EDGEGATE_REPLUG_PAUSE_MS) || undefined;
// short pauses keep the test quick; the 2.2 s one lets the backoff of the old behaviour grow past it
const PAUSES_MS = [300, 500, 2200, 300, 800, 300, 500, 300, 1000, 300].map((p) => fixedPause ?? p);

/** the messages logged, in order */
function capturingLogger(messages: string[]): Logger {
  const log: Logger = {
    trace() {}, debug() {}, fatal() {},
    info: (_o, msg) => void messages.push(String(msg)),
    warn: (_o, msg) => void messages.push(String(msg)),
    error: (_o, msg) => void messages.push(String(msg)),
    child: () => log,
  };
  return log;
}

/** writes `n=<value>` every 20 ms until stopped: the instrument streams */
function streaming(instrument: InstrumentEnd, value: number): () => void {
  const timer = setInterval(() => void instrument.write(`n=${value}\n`).catch(() => undefined), 20);
  return () => clearInterval(timer);
}

if (enabled) {
  test('unplugged and plugged back in 10 times: every replug reads again at once, triggered by the path appearing', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    const config = configSchema.parse({ devices: [{ id: 'd', driver: 'serial', port: pty.device }] }).devices[0]!;
    const readings: Array<{ value: unknown; ts: number }> = [];
    const statuses: DeviceStatus[] = [];
    const messages: string[] = [];
    const task = new DeviceTask({
      config, gatewayId: 'gw', topicPrefix: 'p', batchDefaults: { max_readings: 500, max_bytes: 262_144, max_wait: 1000 },
      clock: systemClock, log: capturingLogger(messages), nextSeq: () => 1, onBatch: () => {},
      onStatus: (_id, s) => void statuses.push(s),
      onReading: (_id, r) => void readings.push({ value: r.value, ts: r.ts }),
    });
    const took: number[] = [];
    let instrument: InstrumentEnd | undefined;
    let stopStreaming = (): void => {};
    try {
      task.start();
      for (let cycle = 0; cycle <= PAUSES_MS.length; cycle++) {
        const appearedBefore = messages.filter((m) => m === 'port appeared; retrying at once').length;
        // the link appears during restart(): counted from before it, the time is an upper bound
        const appearedAt = Date.now();
        if (cycle > 0) await pty.restart();
        instrument = await openInstrument(pty.instrument);
        stopStreaming = streaming(instrument, cycle);
        // waited for well past the bound, so that a slow recovery is measured, not only refused
        await waitFor(() => readings.some((r) => Number(r.value) === cycle), 40_000, `a reading after replug ${cycle}`, 5);
        const first = readings.find((r) => Number(r.value) === cycle)!;
        if (cycle > 0) {
          took.push(first.ts - appearedAt);
          const triggered = messages.filter((m) => m === 'port appeared; retrying at once').length - appearedBefore;
          assert.ok(triggered >= 1, `replug ${cycle}: the retry came from the backoff timer, not from the path appearing (times so far: ${took.join(', ')} ms)`);
          assert.ok(took[took.length - 1]! < BOUND_MS, `replug ${cycle}: ${took[took.length - 1]} ms (times so far: ${took.join(', ')} ms)`);
        }
        if (cycle === PAUSES_MS.length) break;
        stopStreaming();
        await instrument.close();
        await pty.stop();
        await waitFor(() => task.status.state === 'disconnected', 5000, `the removal ${cycle + 1} to be noticed`);
        assert.is(task.status.error, `${pty.device}: device removed`);
        await sleep(PAUSES_MS[cycle]!);
      }
      console.log(`replug to first reading, pauses ${PAUSES_MS.join('/')} ms: ${took.join(', ')} ms`);
      assert.ok(!statuses.some((s) => /bad file descriptor|EBADF/i.test(s.error ?? '')), 'no errno text in the status');
    } finally {
      stopStreaming();
      await instrument?.close();
      await task.stop();
      await pty.stop();
      tmp.remove();
    }
  });
}

test.run();
