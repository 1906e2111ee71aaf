// Modbus RTU framing on a serial port: [unit][PDU][CRC lo][CRC hi]. RTU frames
// carry no length, so the answer's length follows from the request; bytes
// that arrive while no request waits (a late answer after a timeout, line
// noise) are dropped before the next request goes out, and every request
// waits for 3.5 characters of silence on the line first.
import { readSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
// pinned with serialport 13.0.0, as in ../serial/ports.ts
import { unixRead } from '@serialport/bindings-cpp/dist/unix-read.js';
import { unixWrite } from '@serialport/bindings-cpp/dist/unix-write.js';
import { SerialPortStream } from '@serialport/stream';
import { openError, osBinding, removedError } from '../serial/ports.js';
import { inFlight, type InFlight, type Transport } from './bus.js';
import { answerLength, crc16, FrameError, ModbusTimeout } from './pdu.js';

export interface RtuLine {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits: 1 | 1.5 | 2;
}

/** the longest RTU frame: unit, 253 bytes of PDU, CRC */
const MAX_FRAME = 256;

type StreamBinding = ConstructorParameters<typeof SerialPortStream>[0]['binding'];

interface Pending {
  unit: number;
  fc: number;
  /** bytes of the normal answer frame */
  frameLength: number;
  call: InFlight;
}

/** bits on the wire per character: start bit, data bits, parity bit, stop bits */
export function bitsPerChar(line: Pick<RtuLine, 'dataBits' | 'parity' | 'stopBits'>): number {
  return 1 + line.dataBits + (line.parity === 'none' ? 0 : 1) + line.stopBits;
}

type UnixPort = Parameters<typeof unixRead>[0]['binding'];
type OsPort = Awaited<ReturnType<typeof osBinding.open>>;

/**
 * The OS binding (a hung-up tty reported as a disconnect), reading and
 * writing without a trip through libuv's thread pool: serialport reads and
 * writes with fs.read/fs.write, each a hand-off to another thread and back,
 * which costs every exchange two thread wake-ups on top of the wire time.
 * The port is non-blocking, so a direct read or write of a few bytes returns
 * at once, or with EAGAIN, on which serialport waits for its poller as usual.
 */
export const rtuBinding = {
  list: () => osBinding.list(),
  async open(options: object): Promise<OsPort> {
    const port = await osBinding.open(options);
    if (process.platform === 'win32') return port;
    const unixPort = port as unknown as UnixPort;
    port.read = (buffer, offset, length) => unixRead({ binding: unixPort, buffer, offset, length, fsReadAsync: readNow });
    (port as unknown as { write(buffer: Buffer): Promise<void> }).write = (buffer) => unixWrite({ binding: unixPort, buffer, fsWriteAsync: writeNow });
    return port;
  },
};

type ReadAsync = NonNullable<Parameters<typeof unixRead>[0]['fsReadAsync']>;
type WriteAsync = NonNullable<Parameters<typeof unixWrite>[0]['fsWriteAsync']>;

const readNow = (async (fd: number, buffer: Buffer, offset: number, length: number) => {
  const bytesRead = readSync(fd, buffer, offset, length, null);
  // 0 bytes from a non-blocking tty: hung up (see ../serial/ports.ts)
  if (bytesRead === 0) throw Object.assign(new Error('the device hung up (end of file)'), { code: 'EOF', disconnect: true });
  return { bytesRead, buffer };
}) as unknown as ReadAsync;

const writeNow = (async (fd: number, buffer: Buffer, offset: number, length: number) => {
  return { bytesWritten: writeSync(fd, buffer, offset, length), buffer };
}) as unknown as WriteAsync;

export class RtuTransport implements Transport {
  onLost: ((err: Error) => void) | undefined;
  private port: SerialPortStream | undefined;
  private readonly rx = Buffer.alloc(MAX_FRAME);
  private rxLength = 0;
  private pending: Pending | undefined;
  private lastByteAt = 0;
  private closing = false;
  /** 3.5 characters of silence, in ms */
  private readonly gapMs: number;

  constructor(private readonly line: RtuLine, private readonly binding: unknown = rtuBinding) {
    this.gapMs = (3.5 * bitsPerChar(line) * 1000) / line.baudRate;
  }

  async open(): Promise<void> {
    const { path, baudRate, dataBits, parity, stopBits } = this.line;
    const port = new SerialPortStream({ path, baudRate, dataBits, parity, stopBits, autoOpen: false, binding: this.binding as StreamBinding });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(openError(path, err)) : resolve())));
    this.port = port;
    // reading from the start: a vanished device is noticed only while a read is pending
    port.on('data', this.onData);
    port.on('error', this.onError);
    port.on('close', this.onClose);
  }

  async exchange(unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer> {
    const port = this.port;
    if (!port || this.closing) throw new Error(`${this.line.path} is not open`);
    const quiet = this.gapMs - (performance.now() - this.lastByteAt);
    if (quiet > 0) await silence(quiet);
    this.rxLength = 0;
    const frame = Buffer.allocUnsafe(pdu.length + 3);
    frame[0] = unit;
    pdu.copy(frame, 1);
    frame.writeUInt16LE(crc16(frame, 0, pdu.length + 1), pdu.length + 1);
    const call = inFlight(timeoutMs, () => new ModbusTimeout(`no answer from unit ${unit} within ${timeoutMs} ms`));
    this.pending = { unit, fc: pdu[0] as number, frameLength: answerLength(pdu) + 3, call };
    port.write(frame, (err) => {
      if (err) call.settle(new Error(`${this.line.path}: ${err.message}`));
    });
    return call.answer;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.pending?.call.settle(new Error(`${this.line.path} was closed`));
    const port = this.port;
    if (!port) return;
    port.off('data', this.onData);
    port.off('close', this.onClose);
    // errors of a port being torn down have no one left to tell, but must not crash the process
    port.on('error', () => undefined);
    if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastByteAt = performance.now();
    const p = this.pending;
    // nobody is waiting: a late answer or noise, dropped
    if (!p || p.call.settled) return;
    const room = MAX_FRAME - this.rxLength;
    chunk.copy(this.rx, this.rxLength, 0, Math.min(room, chunk.length));
    this.rxLength += Math.min(room, chunk.length);
    this.parse(p, chunk.length > room);
  };

  private parse(p: Pending, overflow: boolean): void {
    const rx = this.rx;
    for (;;) {
      // leading bytes that cannot start the answer are noise (or the tail of an earlier frame)
      let skip = 0;
      while (skip < this.rxLength && rx[skip] !== p.unit) skip++;
      if (skip > 0) this.shift(skip);
      if (this.rxLength < 2) break;
      const fc = rx[1] as number;
      const need = fc === p.fc ? p.frameLength : fc === (p.fc | 0x80) ? 5 : 0;
      if (need === 0) {
        this.shift(1);
        continue;
      }
      if (this.rxLength < need) break;
      const crc = rx.readUInt16LE(need - 2);
      if (crc !== crc16(rx, 0, need - 2)) p.call.settle(new FrameError('CRC error', Buffer.from(rx.subarray(0, need))));
      else p.call.settle(undefined, Buffer.from(rx.subarray(1, need - 2)));
      return;
    }
    if (overflow) p.call.settle(new FrameError('answer longer than any Modbus frame'));
  }

  private shift(n: number): void {
    this.rx.copyWithin(0, n, this.rxLength);
    this.rxLength -= n;
  }

  private readonly onError = (err: Error): void => this.lose(new Error(`${this.line.path}: ${err.message}`, { cause: err }));

  private readonly onClose = (err: (Error & { disconnected?: boolean }) | null): void => {
    const path = this.line.path;
    this.lose(err?.disconnected ? removedError(path, err) : new Error(`${path} was closed`, { cause: err ?? undefined }));
  };

  private lose(err: Error): void {
    if (this.closing) return;
    this.pending?.call.settle(err);
    this.onLost?.(err);
  }
}

/**
 * Waits at least ms. Timers have a resolution of 1 ms, while 3.5 characters
 * at 115200 baud last 0.33 ms: short waits yield to the event loop until the
 * time has passed instead of sleeping a whole millisecond.
 */
function silence(ms: number): Promise<void> {
  if (ms >= 2) return new Promise((resolve) => setTimeout(resolve, Math.ceil(ms)));
  const until = performance.now() + ms;
  return new Promise((resolve) => {
    const check = (): void => {
      if (performance.now() >= until) resolve();
      else setImmediate(check);
    };
    setImmediate(check);
  });
}
