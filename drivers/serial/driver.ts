// The serial driver: a line-oriented ASCII instrument on a serial port, either
// streaming on its own or answering a request sent every poll_interval.
import { SerialPortStream } from '@serialport/stream';
import type { SerialDeviceConfig } from '../../config/schema.js';
import { PermanentError, type Driver, type DriverContext, type RawValue, type TimerHandle, type WriteOutcome } from '../../gateway/types.js';
import { createParser, Fields, type LineParser } from './formats.js';
import { escapeSample, LineSplitter } from './lines.js';
import { openError, osBinding, portFile, removedError } from './ports.js';

export interface SerialDriverDeps {
  /** a serialport BindingInterface (the demo passes the mock binding); default: the OS binding */
  binding?: unknown;
}

const MISSES_BEFORE_ERROR = 3;
/**
 * Lines split in one go. A flooding device hands over 64 KB chunks of ~3,000
 * lines; split at once they would hold the event loop for tens of
 * milliseconds, and every other device, timer and broker packet with it.
 */
export const SLICE_LINES = 256;

// @serialport/bindings-interface's own types do not resolve under NodeNext
type StreamBinding = ConstructorParameters<typeof SerialPortStream>[0]['binding'];

export class SerialDriver implements Driver {
  private connection: Connection | undefined;

  constructor(
    private readonly config: SerialDeviceConfig,
    private readonly deps: SerialDriverDeps = {},
  ) {}

  get devicePath(): string | undefined {
    return portFile(this.config.port, this.deps.binding);
  }

  /** bytes allocated for an unfinished line (bounded by max_line_length) */
  get lineBufferBytes(): number {
    return this.connection?.splitter.capacity ?? 0;
  }

  async run(ctx: DriverContext): Promise<void> {
    if (ctx.signal.aborted) return;
    if (this.connection) throw new Error(`${this.config.port} is already in use by this driver`);
    const parse = createParser(this.config);
    ctx.setStatus('connecting');
    const port = this.createPort();
    try {
      await openPort(port, this.config.port);
    } catch (e) {
      if (ctx.signal.aborted) return;
      throw e;
    }
    if (ctx.signal.aborted) {
      await closePort(port);
      return;
    }
    const connection = new Connection(this.config, ctx, port, parse, () => {
      if (this.connection === connection) this.connection = undefined;
    });
    this.connection = connection;
    return connection.start();
  }

  /** resolves once the command has left (`sent`), or with write_ack once the device acknowledged it */
  async write(key: string, value: number | boolean | string): Promise<WriteOutcome> {
    const template = this.config.write_template;
    if (template === undefined) throw new Error('this device has no write_template');
    const connection = this.connection;
    if (!connection) throw new Error(`${this.config.port} is not open`);
    // one pass, so a value that contains "{tag}" is written as it is
    const text = template.replace(/\{(tag|value)\}/g, (_, what: string) => (what === 'tag' ? key : String(value)));
    // a long command holds the line for polls and other writes: 1 KiB takes ~1 s at 9,600 baud
    const bytes = Buffer.byteLength(text);
    const max = this.config.max_write_bytes;
    if (bytes > max) throw new Error(`the command would be ${bytes} bytes, more than max_write_bytes (${max}) allows`);
    const ack = this.config.write_ack;
    if (ack === undefined) {
      await connection.exclusive(() => connection.send(text));
      return { sent: true };
    }
    const pattern = new RegExp(ack.pattern.replace(/\{(tag|value)\}/g, (_, what: string) => escapeRegExp(what === 'tag' ? key : String(value))));
    await connection.exclusive(() => connection.sendAndAwait(text, pattern, ack.timeout));
    return { sent: true, acknowledged: true };
  }

  private createPort(): SerialPortStream {
    const c = this.config;
    const options = { path: c.port, baudRate: c.baud_rate, dataBits: c.data_bits, parity: c.parity, stopBits: c.stop_bits, autoOpen: false };
    try {
      return new SerialPortStream({ ...options, binding: (this.deps.binding ?? osBinding) as StreamBinding });
    } catch (e) {
      throw new PermanentError(`invalid serial settings for ${c.port}: ${(e as Error).message}`);
    }
  }
}

/** One open port, from open to close: its handlers, timers and poll schedule. */
class Connection {
  readonly splitter: LineSplitter;
  private readonly fields = new Fields();
  /** polls and writes take turns, so a write never lands inside a request/answer exchange */
  private turn: Promise<void> = Promise.resolve();
  private ended = false;
  private settle: (err?: Error) => void = () => undefined;
  private watchdog: TimerHandle | undefined;
  private pollTimer: TimerHandle | undefined;
  private answerTimer: TimerHandle | undefined;
  /** set while a request waits for its answer */
  private reply: ((answered: boolean) => void) | undefined;
  /** set while a write waits for its acknowledgement: the line that matches is consumed */
  private ack: { pattern: RegExp; settle: (err?: Error) => void } | undefined;
  private nextPollAt = 0;
  private misses = 0;
  private lastDataAt = 0;
  /** chunks not yet split: the first one from chunkAt on */
  private readonly chunks: Buffer[] = [];
  private chunkAt = 0;
  /** the next slice, when one is due */
  private slice: NodeJS.Immediate | undefined;

  constructor(
    private readonly config: SerialDeviceConfig,
    private readonly ctx: DriverContext,
    private readonly port: SerialPortStream,
    private readonly parse: LineParser,
    private readonly onEnd: () => void,
  ) {
    this.splitter = new LineSplitter(
      { delimiter: config.delimiter, encoding: config.encoding, maxLineLength: config.max_line_length },
      (line) => this.onLine(line),
      (reason, sample) => ctx.parseError(reason, sample),
    );
  }

  start(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.settle = (err) => (err ? reject(err) : resolve());
    });
    const { port, ctx, config } = this;
    // reading starts right away: a vanished device is noticed only while a read is pending
    port.on('data', this.onData);
    port.on('close', this.onClose);
    port.on('end', this.onStreamEnd);
    port.on('error', this.onError);
    ctx.signal.addEventListener('abort', this.onAbort, { once: true });
    ctx.setStatus('connected');
    const now = ctx.clock.monotonic();
    this.lastDataAt = now;
    if (config.no_data_timeout !== undefined && config.no_data_timeout > 0) this.armWatchdog(config.no_data_timeout);
    if (config.request !== undefined) {
      this.nextPollAt = now;
      this.schedulePoll(0);
    }
    return done;
  }

  exclusive(fn: () => Promise<void>): Promise<void> {
    const next = this.turn.then(fn);
    this.turn = next.catch(() => undefined);
    return next;
  }

  /** writes text and waits until the OS has sent it */
  send(text: string): Promise<void> {
    if (this.ended) return Promise.reject(new Error(`${this.config.port} is not open`));
    return writeAll(this.port, text);
  }

  /** writes text, then waits for a line matching pattern, counted from the moment the text has left */
  async sendAndAwait(text: string, pattern: RegExp, timeoutMs: number): Promise<void> {
    const acknowledged = new Promise<void>((resolve, reject) => {
      this.ack = { pattern, settle: (err) => (err ? reject(err) : resolve()) };
    });
    // an early failure must not leave the promise unobserved
    acknowledged.catch(() => undefined);
    try {
      await this.send(text);
    } catch (e) {
      this.ack = undefined;
      throw e;
    }
    const { clock } = this.ctx;
    const timer = clock.setTimeout(() => this.settleAck(new Error(`no acknowledgement within ${formatMs(timeoutMs)}`)), timeoutMs);
    try {
      await acknowledged;
    } finally {
      clock.clearTimeout(timer);
    }
  }

  private settleAck(err?: Error): void {
    const ack = this.ack;
    this.ack = undefined;
    ack?.settle(err);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.watchdog !== undefined) this.lastDataAt = this.ctx.clock.monotonic();
    this.chunks.push(chunk);
    // while a chunk is being sliced, one the port had already read waits its turn
    if (this.slice === undefined) this.splitSome();
  };

  /**
   * Splits SLICE_LINES lines of the first chunk waiting. When lines are left,
   * the port is paused and the next slice comes after the event loop has
   * turned (setImmediate: timers and I/O of the others run first): the lines
   * keep their order and nothing piles up in memory.
   */
  private readonly splitSome = (): void => {
    this.slice = undefined;
    if (this.ended) return;
    try {
      const chunk = this.chunks[0] as Buffer;
      this.chunkAt = this.splitter.push(chunk, this.chunkAt, SLICE_LINES);
      if (this.chunkAt === chunk.length) {
        this.chunks.shift();
        this.chunkAt = 0;
      }
    } catch (e) {
      // a throwing consumer must not become an uncaught exception inside the stream
      this.fail(asError(e));
      return;
    }
    if (this.ended) return;
    if (this.chunks.length > 0) {
      if (!this.port.isPaused()) this.port.pause();
      this.slice = setImmediate(this.splitSome);
    } else if (this.port.isPaused()) {
      this.port.resume();
    }
  };

  private onLine(line: string): void {
    if (this.ack !== undefined && this.ack.pattern.test(line)) {
      this.settleAck();
      return;
    }
    const ts = this.ctx.clock.now();
    const f = this.fields;
    const reason = this.parse(line, f);
    if (reason !== undefined) this.ctx.parseError(reason, escapeSample(line));
    else for (let i = 0; i < f.count; i++) this.ctx.emit(f.keys[i] as string, f.values[i] as RawValue, ts);
    // any line counts as an answer: the instrument is alive even when it says something odd
    this.answer(true);
  }

  private readonly onClose = (err: (Error & { disconnected?: boolean }) | null): void => {
    const path = this.config.port;
    if (err?.disconnected) this.fail(removedError(path, err));
    else this.fail(new Error(`${path} was closed`, { cause: err ?? undefined }));
  };

  private readonly onStreamEnd = (): void => this.fail(new Error(`${this.config.port} reached end of stream`));

  private readonly onError = (err: Error): void => this.fail(new Error(`${this.config.port}: ${err.message}`, { cause: err }));

  private readonly onAbort = (): void => {
    if (this.ended) return;
    this.cleanup();
    void closePort(this.port).then(() => this.settle());
  };

  private fail(err: Error): void {
    if (this.ended) return;
    this.cleanup();
    // closed before rejecting: the supervisor reopens the port, and the OS lock must be gone by then
    void closePort(this.port).then(() => this.settle(err));
  }

  private cleanup(): void {
    this.ended = true;
    const { clock, signal } = this.ctx;
    for (const t of [this.watchdog, this.pollTimer, this.answerTimer]) if (t !== undefined) clock.clearTimeout(t);
    this.watchdog = this.pollTimer = this.answerTimer = undefined;
    if (this.slice !== undefined) clearImmediate(this.slice);
    this.slice = undefined;
    this.chunks.length = 0;
    signal.removeEventListener('abort', this.onAbort);
    this.port.off('data', this.onData);
    this.port.off('close', this.onClose);
    this.port.off('end', this.onStreamEnd);
    this.port.off('error', this.onError);
    // errors of a port being torn down have no one left to tell, but must not crash the process
    this.port.on('error', ignore);
    this.splitter.reset();
    this.answer(false);
    this.settleAck(new Error(`${this.config.port} was closed before the write was acknowledged`));
    this.onEnd();
  }

  /** one timer per period at most: it re-arms for the rest of the period instead of on every chunk */
  private armWatchdog(ms: number): void {
    const limit = this.config.no_data_timeout as number;
    this.watchdog = this.ctx.clock.setTimeout(() => {
      this.watchdog = undefined;
      const idle = this.ctx.clock.monotonic() - this.lastDataAt;
      if (idle >= limit) this.fail(new Error(`no data for ${limit} ms`));
      else this.armWatchdog(limit - idle);
    }, ms);
  }

  private schedulePoll(delay: number): void {
    this.pollTimer = this.ctx.clock.setTimeout(() => {
      this.pollTimer = undefined;
      this.exclusive(() => this.poll()).catch((e: unknown) => this.fail(asError(e)));
    }, delay);
  }

  private async poll(): Promise<void> {
    if (this.ended) return;
    const { ctx, config } = this;
    const answered = new Promise<boolean>((resolve) => {
      this.reply = resolve;
    });
    await this.send(config.request as string);
    if (this.ended) return;
    // counted from the moment the request has left, not from when it was queued
    if (this.reply) this.answerTimer = ctx.clock.setTimeout(() => this.onAnswerTimeout(), config.timeout);
    const ok = await answered;
    if (this.answerTimer !== undefined) ctx.clock.clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
    if (this.ended) return;
    if (ok) {
      if (this.misses >= MISSES_BEFORE_ERROR) ctx.setStatus('connected');
      this.misses = 0;
    } else {
      ctx.timeout();
      if (++this.misses === MISSES_BEFORE_ERROR) ctx.setStatus('error', `no answer to ${MISSES_BEFORE_ERROR} requests in a row`);
    }
    // on the fixed grid of poll_interval; a slot missed while waiting is skipped, not caught up
    const now = ctx.clock.monotonic();
    this.nextPollAt += config.poll_interval;
    if (this.nextPollAt < now) this.nextPollAt = now;
    this.schedulePoll(this.nextPollAt - now);
  }

  private onAnswerTimeout(): void {
    this.answerTimer = undefined;
    this.answer(false);
  }

  private answer(answered: boolean): void {
    const reply = this.reply;
    this.reply = undefined;
    reply?.(answered);
  }
}

function ignore(): void {}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** "2 s" for whole seconds, else "1500 ms" */
function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function openPort(port: SerialPortStream, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    port.open((err) => (err ? reject(openError(path, err)) : resolve()));
  });
}

function closePort(port: SerialPortStream): Promise<void> {
  return new Promise((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve()));
}

function writeAll(port: SerialPortStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // a write to a closed stream would wait for an 'open' that never comes
    if (!port.isOpen) {
      reject(new Error(`${port.path} is not open`));
      return;
    }
    const onClose = (): void => done(new Error(`${port.path} was closed during a write`));
    const done = (err?: Error | null): void => {
      port.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    port.once('close', onClose);
    port.write(text, (err) => {
      if (err) done(err);
      else port.drain((e) => done(e));
    });
  });
}
