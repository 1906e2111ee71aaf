// The serial driver against a real pty (socat): streaming instruments in
// every format, a steady stream of lines, and bad input of every kind.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialDevice } from '../config/schema.js';
import { SerialDriver } from '../drivers/serial/driver.js';
import { openInstrument, ptyPair, recordingContext, type InstrumentEnd, type PtyPair, type Recorder } from './helpers/socat.js';
import { requirePeer, runInBackground, sleep, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'serial tests run against socat pty pairs');

interface Rig {
  pty: PtyPair;
  instrument: InstrumentEnd;
  rec: Recorder;
  driver: SerialDriver;
  run: Promise<void>;
  /** 'running', 'resolved' or the rejection */
  outcome(): unknown;
}

/** a driver reading a pty, the instrument end open; always torn down */
async function withDriver(options: Record<string, unknown>, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const pty = await ptyPair(tmp.dir);
  const instrument = await openInstrument(pty.instrument);
  const rec = recordingContext();
  const driver = new SerialDriver(serialDevice.parse({ id: 'd', driver: 'serial', port: pty.device, baud_rate: 115200, ...options }));
  const { done: run, outcome } = runInBackground(driver, rec.ctx);
  try {
    await waitFor(() => rec.lastStatus()?.state === 'connected' || outcome() !== 'running', 5000, 'the driver to connect');
    assert.is(outcome(), 'running', `run() ended early: ${String(outcome())}`);
    await fn({ pty, instrument, rec, driver, run, outcome });
  } finally {
    rec.abort();
    await run;
    await instrument.close();
    await pty.stop();
    tmp.remove();
  }
}

if (enabled) {
  test('kv: fields emitted with the time the line completed', async () => {
    await withDriver({ format: 'kv' }, async ({ instrument, rec }) => {
      const before = Date.now();
      await instrument.write('T=21.5;H=40\r\n');
      await waitFor(() => rec.emits.length >= 2, 5000, 'two readings');
      assert.equal(rec.emits.map((e) => [e.key, e.value]), [['T', '21.5'], ['H', '40']], "the line's text: the tag converts it");
      const ts = rec.emits[0]?.ts ?? 0;
      assert.ok(ts >= before && ts <= Date.now(), `ts ${ts}`);
      assert.is(rec.emits[1]?.ts, ts);
      assert.equal(rec.statuses, [{ state: 'connecting' }, { state: 'connected' }]);
    });
  });

  test('json, csv and regex lines over the pty', async () => {
    await withDriver({ format: 'json' }, async ({ instrument, rec }) => {
      await instrument.write('{"T":21.5,"st":{"ok":true}}\n');
      await waitFor(() => rec.emits.length >= 2, 5000, 'json readings');
      assert.equal(rec.emits.map((e) => [e.key, e.value]), [['T', 21.5], ['st.ok', true]]);
    });
    await withDriver({ format: 'csv', columns: ['weight', 'tare'], delimiter: '\r' }, async ({ instrument, rec }) => {
      await instrument.write('12.5,0.5\r\n3,1\r');
      await waitFor(() => rec.emits.length >= 4, 5000, 'csv readings');
      assert.equal(rec.values('weight'), [12.5, 3]);
      assert.equal(rec.values('tare'), [0.5, 1]);
      assert.is(rec.parseErrors.length, 0);
    });
    await withDriver({ format: 'regex', pattern: String.raw`^W:\s*(?<weight>[-\d.]+)\s*g$`, delimiter: '<EOT>' }, async ({ instrument, rec }) => {
      await instrument.write('W: 12.5 g<EO');
      await sleep(20);
      await instrument.write('T>E: overload<EOT>W: -1 g<EOT>');
      await waitFor(() => rec.emits.length >= 2 && rec.parseErrors.length >= 1, 5000, 'regex readings');
      assert.equal(rec.values('weight'), [12.5, -1]);
      assert.equal(rec.parseErrors, [{ reason: 'line does not match the pattern', sample: 'E: overload' }]);
    });
  });

  test('a steady stream of ~400 lines/s: every counter value once, in order', async () => {
    await withDriver({ format: 'kv' }, async ({ instrument, rec }) => {
      const total = 1200;
      for (let i = 1; i <= total; ) {
        let burst = '';
        for (let k = 0; k < 4 && i <= total; k++, i++) burst += `n=${i};T=${(20 + (i % 10) / 10).toFixed(1)}\n`;
        await instrument.write(burst);
        await sleep(10);
      }
      await waitFor(() => rec.values('n').length >= total, 10_000, `${total} counter values`);
      await sleep(100);
      assert.equal(rec.values('n'), Array.from({ length: total }, (_, i) => i + 1));
      assert.is(rec.parseErrors.length, 0);
    });
  });

  test('garbage, binary noise, half lines and a 1 MiB line: counted, alive, memory bounded', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await withDriver({ format: 'kv', max_line_length: 4096 }, async ({ instrument, rec, driver, outcome }) => {
      await instrument.write('n=1\n');
      await waitFor(() => rec.values('n').length === 1, 5000, 'the first line');
      gc();
      const heap0 = process.memoryUsage().heapUsed;
      const rss0 = process.memoryUsage().rss;

      await instrument.write('this is not kv at all\n');
      await instrument.write(Buffer.from([0x00, 0xff, 0xfe, 0x01, 0x02, 0x0a]));
      let seed = 42;
      const random = Buffer.alloc(64 * 1024);
      for (let i = 0; i < random.length; i++) random[i] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
      await instrument.write(random);
      await instrument.write('\nn=abc;T\n=;=;=\n');
      // 1 MiB without a delimiter, in pieces, checking the held bytes as it arrives
      let maxHeld = 0;
      const piece = Buffer.alloc(64 * 1024, 0x78);
      for (let i = 0; i < 16; i++) {
        await instrument.write(piece);
        maxHeld = Math.max(maxHeld, driver.lineBufferBytes);
      }
      await instrument.write('\nn=2\nT=2');
      await waitFor(() => rec.values('n').length === 2, 5000, 'the line after the noise');
      maxHeld = Math.max(maxHeld, driver.lineBufferBytes);

      assert.is(outcome(), 'running');
      assert.equal(rec.values('n'), [1, 2], 'every good line, nothing from the bad ones');
      const reasons = rec.parseErrors.map((p) => p.reason);
      assert.ok(reasons.includes('line longer than 4096 bytes'), reasons.join(' | '));
      assert.ok(reasons.includes('binary data or control characters'), reasons.join(' | '));
      assert.ok(reasons.includes('expected key=value at column 1'), reasons.join(' | '));
      assert.is(reasons.filter((r) => r === 'line longer than 4096 bytes').length, 1 + countOverlong(random), 'one error per overlong line');
      for (const p of rec.parseErrors) assert.ok((p.sample ?? '').length <= 200, 'samples are short');
      assert.ok(maxHeld <= 4096, `splitter held ${maxHeld} bytes`);

      gc();
      const heapGrowth = process.memoryUsage().heapUsed - heap0;
      const rssGrowth = process.memoryUsage().rss - rss0;
      assert.ok(heapGrowth < 8 * 1024 * 1024, `heap grew by ${heapGrowth} bytes`);
      assert.ok(rssGrowth < 64 * 1024 * 1024, `rss grew by ${rssGrowth} bytes`);
    });
  });

  test('no_data_timeout: a silent instrument makes run() reject', async () => {
    await withDriver({ format: 'kv', no_data_timeout: 1000 }, async ({ instrument, rec, run, outcome }) => {
      // data keeps it alive well past the timeout: a line every ~100 ms for 2 s
      let quiet = 0;
      let written = 0;
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        await instrument.write(`n=${written++}\n`);
        quiet = Date.now();
        await sleep(100);
      }
      assert.is(outcome(), 'running');
      await run;
      const err = outcome() as Error;
      assert.instance(err, Error);
      assert.is(err.message, 'no data for 1000 ms');
      const after = Date.now() - quiet;
      assert.ok(after >= 950 && after < 2500, `rejected ${after} ms after the last line`);
      assert.is(rec.values('n').length, written);
    });
  });
}

/** lines in random bytes that exceed 4096 bytes (the seeded noise has none, but stay honest) */
function countOverlong(buf: Buffer): number {
  let n = 0;
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x0a) {
      if (i - start > 4096) n++;
      start = i + 1;
    }
  }
  return n;
}

test.run();
