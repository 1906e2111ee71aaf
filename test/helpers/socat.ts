// Serial peers for tests: a socat pty pair stands in for a cable with an
// instrument on the far end. The driver opens `device`; the test plays the
// instrument on `instrument`.
//
// How the instrument end is driven, and why:
// - In-process tests (driver and instrument in one event loop) use
//   openInstrument(), a serialport stream on the pty: its reads and writes are
//   non-blocking, so a 1 MiB write waits for the driver to drain the pty
//   instead of blocking the very loop that has to read it. fs.writeSync on a
//   pty opened with fs.openSync(path, 'r+') blocks once the pty buffer is full
//   and deadlocks such a test.
// - When the reader is another process (the gateway CLI), plain
//   fs.openSync(path, 'r+') + fs.writeSync is simple and reliable.
//
// Measured behaviour this relies on: socat removes both links when it gets
// SIGTERM, so opening the device afterwards fails with ENOENT; a new socat on
// the same links works for a new open. When socat dies, a read pending on the
// device end fails with EBADF or (now and then, under load) returns 0 bytes,
// which plain serialport retries forever; the driver's binding turns both into
// `close` with err.disconnected === true within a few ms. Closing the
// instrument end does not stop socat. A pty ignores the baud rate.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SerialPortStream } from '@serialport/stream';
import { osBinding } from '../../drivers/serial/ports.js';
import type { Clock, DeviceState, DriverContext, Logger, RawValue } from '../../gateway/types.js';
import { systemClock } from '../../gateway/clock.js';
import { coerceValue } from '../../gateway/tags.js';
import { sleep, which } from './peers.js';

export interface PtyPair {
  /** the link the driver opens */
  device: string;
  /** the link the test writes to and reads from, as the instrument */
  instrument: string;
  /** kills socat: both links vanish */
  stop(): Promise<void>;
  /** starts socat again on the same links */
  restart(): Promise<void>;
}

const children = new Set<ChildProcess>();
let exitHooked = false;

/** whatever happens to the test, no socat outlives the process */
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL');
  });
}

export async function ptyPair(dir: string): Promise<PtyPair> {
  hookExit();
  const device = join(dir, 'dev');
  const instrument = join(dir, 'instr');
  let child: ChildProcess | undefined = await startSocat(device, instrument);
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c) await kill(c);
    // links are left behind only when socat had to be SIGKILLed
    rmSync(device, { force: true });
    rmSync(instrument, { force: true });
  };
  return {
    device,
    instrument,
    stop,
    async restart() {
      await stop();
      child = await startSocat(device, instrument);
    },
  };
}

async function startSocat(device: string, instrument: string): Promise<ChildProcess> {
  const socat = which('socat') ?? 'socat';
  const child = spawn(socat, ['-d', '-d', `pty,raw,echo=0,link=${device}`, `pty,raw,echo=0,link=${instrument}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // a test that fails before stop() must not hang on socat: the exit hook kills it
  child.unref();
  (child.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null)?.unref?.();
  let log = '';
  child.stderr?.setEncoding('utf8');
  // keep draining stderr: a full pipe would block socat in the middle of a transfer
  child.stderr?.on('data', (d: string) => {
    if (log.length < 16_384) log += d;
  });
  const end = Date.now() + 5000;
  // ready once the transfer loop runs, not merely when the links appear
  while (!(log.includes('starting data transfer loop') && existsSync(device) && existsSync(instrument))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`socat exited early: ${log.trim()}`);
    if (Date.now() > end) {
      await kill(child);
      throw new Error(`socat did not start within 5 s: ${log.trim()}`);
    }
    await sleep(5);
  }
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/** the instrument end of a pty pair, in the same process as the driver */
export interface InstrumentEnd {
  /** everything received from the driver so far */
  readonly received: string;
  /** resolves when the bytes have been handed to the pty */
  write(data: string | Buffer): Promise<void>;
  /** called with each "\n"-terminated line received from the driver */
  onLine(fn: ((line: string) => void) | undefined): void;
  close(): Promise<void>;
}

export async function openInstrument(path: string): Promise<InstrumentEnd> {
  // the driver's OS binding: a plain SerialPort spins forever on a hung-up pty (see ports.ts)
  const binding = osBinding as unknown as ConstructorParameters<typeof SerialPortStream>[0]['binding'];
  const port = new SerialPortStream({ path, baudRate: 115200, autoOpen: false, binding });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  let received = '';
  let pending = '';
  let lineFn: ((line: string) => void) | undefined;
  // the pty vanishes under this port when a test kills socat: expected, not a failure
  port.on('error', () => undefined);
  port.on('data', (chunk: Buffer) => {
    const text = chunk.toString('latin1');
    received += text;
    pending += text;
    let nl = pending.indexOf('\n');
    while (nl !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lineFn?.(line);
      nl = pending.indexOf('\n');
    }
  });
  return {
    get received() {
      return received;
    },
    write: (data) =>
      new Promise<void>((resolve, reject) => {
        port.write(data, (err) => (err ? reject(err) : port.drain((e) => (e ? reject(e) : resolve()))));
      }),
    onLine(fn) {
      lineFn = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (!port.isOpen) resolve();
        else port.close(() => resolve());
      }),
  };
}

/** a DriverContext that records everything a driver reports */
export interface Recorder {
  ctx: DriverContext;
  emits: Array<{ key: string; value: RawValue; ts: number }>;
  statuses: Array<{ state: DeviceState; error?: string }>;
  parseErrors: Array<{ reason: string; sample?: string }>;
  readonly timeouts: number;
  abort(): void;
  /** the values emitted for one key, in order */
  values(key: string): Array<RawValue | undefined>;
  lastStatus(): { state: DeviceState; error?: string } | undefined;
}

// every method a no-op, whatever methods the Logger interface grows
const silent: Logger = new Proxy({} as Logger, {
  get: (_target, name) => (name === 'child' ? () => silent : () => undefined),
});

export function recordingContext(deviceId = 'dev1', clock: Clock = systemClock): Recorder {
  const controller = new AbortController();
  let timeouts = 0;
  const rec: Recorder = {
    emits: [],
    statuses: [],
    parseErrors: [],
    get timeouts() {
      return timeouts;
    },
    abort: () => controller.abort(),
    // as an untyped tag sees them: a serial driver emits text, the tag converts it
    values: (key) => rec.emits.filter((e) => e.key === key).map((e) => coerceValue(undefined, e.value)),
    lastStatus: () => rec.statuses[rec.statuses.length - 1],
    ctx: {
      deviceId,
      log: silent,
      clock,
      signal: controller.signal,
      emit: (key, value, ts) => void rec.emits.push({ key, value, ts }),
      setStatus: (state, error) => void rec.statuses.push(error === undefined ? { state } : { state, error }),
      parseError: (reason, sample) => void rec.parseErrors.push(sample === undefined ? { reason } : { reason, sample }),
      timeout: () => void timeouts++,
    },
  };
  return rec;
}
