// The serial driver when the port is missing, vanishes, returns, or the
// device is stopped: run() rejects or resolves as the supervisor expects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialPort } from 'serialport';
import { serialDevice } from '../config/schema.js';
import { SerialDriver } from '../drivers/serial/driver.js';
import { createSerialDriver } from '../drivers/serial/index.js';
import { osBinding } from '../drivers/serial/ports.js';
import { openInstrument, ptyPair, recordingContext, type Recorder } from './helpers/socat.js';
import { requirePeer, runInBackground, sleep, tempDir, waitFor } from './helpers/peers.js';

const enabled = requirePeer('socat', 'serial tests run against socat pty pairs');

function config(port: string, extra: Record<string, unknown> = {}) {
  return serialDevice.parse({ id: 'd', driver: 'serial', port, ...extra });
}

/** run() with its outcome observable while it is still pending */
const start = (driver: SerialDriver, rec: Recorder) => runInBackground(driver, rec.ctx);

async function connected(rec: Recorder, r: { outcome(): unknown }): Promise<void> {
  await waitFor(() => rec.lastStatus()?.state === 'connected' || r.outcome() !== 'running', 5000, 'connected');
  assert.is(r.outcome(), 'running', `run() ended: ${String(r.outcome())}`);
}

/** whether another program could open (and lock) the port now */
async function canOpen(path: string): Promise<boolean> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  const ok = await new Promise<boolean>((resolve) => port.open((err) => resolve(!err)));
  if (ok) await new Promise<void>((resolve) => port.close(() => resolve()));
  return ok;
}

/**
 * Opens the port as another program would and writes a line into it; resolves,
 * the port closed again, once `arrived` sees the line at the far end. The pty
 * pair passes bytes in order: whatever was written to the port before has
 * arrived by then.
 */
async function sayThrough(path: string, line: string, arrived: () => boolean): Promise<void> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  try {
    await new Promise<void>((resolve, reject) => port.write(line, (err) => (err ? reject(err) : port.drain((e) => (e ? reject(e) : resolve())))));
    await waitFor(arrived, 5000, `"${line.trim()}" at the far end`);
  } finally {
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }
}

test('a missing port: run() rejects with ENOENT in the message', async () => {
  const tmp = tempDir();
  try {
    const rec = recordingContext();
    const path = `${tmp.dir}/ttyUSB9`;
    const err = await createSerialDriver(config(path)).run(rec.ctx).then(() => undefined, (e: unknown) => e as Error);
    assert.instance(err, Error);
    assert.is(err?.message, `cannot open ${path}: ENOENT (no such port)`);
    assert.equal(rec.statuses, [{ state: 'connecting' }]);
  } finally {
    tmp.remove();
  }
});

test('stopped before it started: run() resolves without touching the port', async () => {
  const rec = recordingContext();
  rec.abort();
  await new SerialDriver(config('/nonexistent/tty')).run(rec.ctx);
  assert.equal(rec.statuses, []);
});

if (enabled) {
  test('abort: run() resolves, the port is closed, nothing is read afterwards', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    const instrument = await openInstrument(pty.instrument);
    try {
      const rec = recordingContext();
      const driver = new SerialDriver(config(pty.device, { no_data_timeout: 5000, request: 'MEAS?\n', poll_interval: 50, timeout: 40 }));
      const r = start(driver, rec);
      await connected(rec, r);
      await instrument.write('n=1\n');
      await waitFor(() => rec.values('n').length === 1, 5000, 'a reading');
      assert.not.ok(await canOpen(pty.device), 'the driver holds the port (locked)');
      const t0 = Date.now();
      rec.abort();
      await r.done;
      assert.is(String(r.outcome()), 'resolved');
      assert.ok(Date.now() - t0 < 2000, `promptly: ${Date.now() - t0} ms`);
      assert.ok(await canOpen(pty.device), 'the port is free again');
      // a request written just before the stop may still be on its way through socat: a line
      // written into the port after it is the last of what the driver sent to arrive
      await sayThrough(pty.device, 'FENCE\n', () => instrument.received.includes('FENCE\n'));
      const sent = instrument.received.indexOf('FENCE\n') + 'FENCE\n'.length;
      await instrument.write('n=2\n');
      await sleep(400); // several poll intervals: no timer of the stopped run fires
      assert.equal(rec.values('n'), [1]);
      assert.is(instrument.received.length, sent, 'no request after the stop');
      await driver.write('x', 1).then(() => assert.unreachable('write after stop'), (e: Error) => assert.match(e.message, /no write_template|not open/));
    } finally {
      await instrument.close();
      await pty.stop();
      tmp.remove();
    }
  });

  test('socat killed while running: run() rejects quickly with a disconnect error, every time', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    let rec = recordingContext();
    try {
      // repeated: a dying pty sometimes fails the pending read (EBADF), sometimes ends it (0 bytes)
      for (let i = 0; i < 10; i++) {
        if (i > 0) await pty.restart();
        rec = recordingContext();
        const r = start(new SerialDriver(config(pty.device)), rec);
        await connected(rec, r);
        await pty.stop();
        // counted from when socat has gone: stop() itself waits for it to exit
        const t0 = Date.now();
        await waitFor(() => r.outcome() !== 'running', 5000, `run() to end (round ${i})`);
        const took = Date.now() - t0;
        const err = r.outcome() as Error;
        assert.instance(err, Error);
        assert.is(err.message, `${pty.device}: device removed`);
        assert.ok(took < 2000, `took ${took} ms`);
      }
    } finally {
      rec.abort();
      await pty.stop();
      tmp.remove();
    }
  });

  test('a read from a hung-up tty is a disconnect, not the endless retry of plain serialport', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    try {
      const port = await osBinding.open({ path: pty.device, baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1, lock: true, rtscts: false, xon: false, xoff: false, xany: false, hupcl: true, vmin: 1, vtime: 0 });
      await pty.stop();
      await sleep(50);
      // no read was pending while the pty hung up: this one reads 0 bytes (end of file), every time
      let timer: NodeJS.Timeout | undefined;
      const hang = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still reading after 5 s'), 5000)));
      const read = port.read(Buffer.alloc(64), 0, 64).then((r) => `read ${r.bytesRead} bytes`, (e: Error & { disconnect?: boolean }) => `${e.message} ${String(e.disconnect)}`);
      const result = await Promise.race([read, hang]);
      clearTimeout(timer);
      assert.is(result, 'the device hung up (end of file) true');
      await (port as unknown as { close(): Promise<void> }).close();
    } finally {
      await pty.stop();
      tmp.remove();
    }
  });

  test('socat restarted on the same links: a new run() reads again', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    try {
      const driver = new SerialDriver(config(pty.device));
      const rec1 = recordingContext();
      const r1 = start(driver, rec1);
      await connected(rec1, r1);
      await pty.stop();
      await r1.done;
      assert.instance(r1.outcome(), Error);

      // while it is gone, a retry fails the way a missing port does
      const rec2 = recordingContext();
      const missing = await driver.run(rec2.ctx).then(() => undefined, (e: Error) => e);
      assert.match(missing?.message ?? '', 'ENOENT');

      await pty.restart();
      const instrument = await openInstrument(pty.instrument);
      try {
        const rec3 = recordingContext();
        const r3 = start(driver, rec3);
        await connected(rec3, r3);
        await instrument.write('T=22.5\n');
        await waitFor(() => rec3.values('T').length === 1, 5000, 'a reading after the restart');
        assert.equal(rec3.values('T'), [22.5]);
        rec3.abort();
        await r3.done;
        assert.is(r3.outcome(), 'resolved');
      } finally {
        await instrument.close();
      }
    } finally {
      await pty.stop();
      tmp.remove();
    }
  });

  test('the instrument end closing and reopening does not disturb the driver', async () => {
    const tmp = tempDir();
    const pty = await ptyPair(tmp.dir);
    try {
      const rec = recordingContext();
      const r = start(new SerialDriver(config(pty.device)), rec);
      await connected(rec, r);
      for (let i = 1; i <= 3; i++) {
        const instrument = await openInstrument(pty.instrument);
        await instrument.write(`n=${i}\n`);
        await waitFor(() => rec.values('n').length === i, 5000, `reading ${i}`);
        await instrument.close();
      }
      assert.is(r.outcome(), 'running');
      rec.abort();
      await r.done;
    } finally {
      await pty.stop();
      tmp.remove();
    }
  });
}

test.run();
