// Shared wiring for end-to-end tests: a Mosquitto, a socat pty pair, the
// gateway CLI as a child process, and a subscriber that records everything.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { collect, startMosquitto } from './mosquitto.js';
import { ptyPair } from './socat.js';
import { runCli, writeConfig, type CliProcess } from './gateway.js';
import { sleep, tempDir, waitFor } from './peers.js';

export interface Data {
  gateway: string;
  device: string;
  seq: number;
  readings: Array<{ tag: string; value: unknown; ts: number; quality: string }>;
}

export type Broker = Awaited<ReturnType<typeof startMosquitto>>;
export type Pty = Awaited<ReturnType<typeof ptyPair>>;
export type Sub = Awaited<ReturnType<typeof collect>>;

/** the instrument side of a pty: write lines into it */
export class Instrument {
  private fd: number | undefined;
  constructor(private readonly path: string) {}
  write(text: string | Buffer): void {
    this.fd ??= openSync(this.path, 'r+');
    const buf = typeof text === 'string' ? Buffer.from(text) : text;
    // a pty takes at most a few KiB at once: write until all of it is in
    for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off);
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * `n=<i>` lines into the instrument end of a pty (its path) in the background,
 * range after range, at about perSecond in bursts every 20 ms. The descriptor
 * is non-blocking: when the pty is full (nobody reads the other end) the feed
 * waits and stop() still ends it. A failed write ends the range and is thrown
 * by done() or stop(), never left as an unhandled rejection.
 */
export class CounterFeed {
  private fd: number | undefined;
  private stopped = false;
  private error: unknown;
  private last = 0;
  private running: Promise<void> = Promise.resolve();
  constructor(private readonly path: string) {}

  /** the last value written in full */
  get written(): number {
    return this.last;
  }

  /** writes from..to after whatever range is still running */
  start(from: number, to: number, perSecond: number): void {
    this.running = this.running.then(() => this.write(from, to, perSecond));
  }

  /** start() and done() */
  async run(from: number, to: number, perSecond: number): Promise<number> {
    this.start(from, to, perSecond);
    return this.done();
  }

  /** resolves with the last value written once the ranges are written; throws a failed write */
  async done(): Promise<number> {
    await this.running;
    if (this.error !== undefined) throw new Error(`the counter feed failed after n=${this.last}: ${String(this.error)}`);
    return this.last;
  }

  /** ends the feed, also in the middle of a range, and closes the descriptor; throws a failed write */
  async stop(): Promise<number> {
    this.stopped = true;
    try {
      return await this.done();
    } finally {
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private async write(from: number, to: number, perSecond: number): Promise<void> {
    if (this.error !== undefined) return;
    const perBurst = Math.max(1, Math.round(perSecond / 50));
    try {
      this.fd ??= openSync(this.path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
      for (let i = from; i <= to && !this.stopped; ) {
        let chunk = '';
        for (let k = 0; k < perBurst && i <= to; k++, i++) chunk += `n=${i}\n`;
        const buf = Buffer.from(chunk);
        for (let off = 0; off < buf.length; ) {
          if (this.stopped) return;
          try {
            off += writeSync(this.fd, buf, off);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
            await sleep(5);
          }
        }
        this.last = i - 1;
        await sleep(20);
      }
    } catch (err) {
      this.error ??= err;
    }
  }
}

export function serialDevice(id: string, port: string, extra: Record<string, unknown> = {}) {
  return { id, driver: 'serial', port, baud_rate: 115200, format: 'kv', ...extra };
}

export function gatewayConfig(url: string, dir: string, devices: object[], extra: Record<string, unknown> = {}) {
  return {
    gateway: { id: 'gw1' },
    mqtt: { url, qos: 1 },
    buffer: { dir: `${dir}/buffer` },
    batch: { max_readings: 50, max_wait: '200ms' },
    stats_interval: '500ms',
    devices,
    ...extra,
  };
}

/** the latest retained-or-live payload of a topic, parsed */
export function latest(sub: Sub, topic: string): Record<string, unknown> | undefined {
  for (let i = sub.messages.length - 1; i >= 0; i--) {
    const m = sub.messages[i]!;
    if (m.topic === topic) return m.payload ? (JSON.parse(m.payload) as Record<string, unknown>) : undefined;
  }
  return undefined;
}

export function dataOf(sub: Sub, device: string): Data[] {
  return sub.messages.filter((m) => m.topic === `edgegate/gw1/devices/${device}/data`).map((m) => JSON.parse(m.payload) as Data);
}

export function counterValues(batches: Data[], tag = 'n'): number[] {
  return batches.flatMap((b) => b.readings.filter((r) => r.tag === tag).map((r) => r.value as number));
}

export async function waitForState(sub: Sub, device: string, state: string, ms = 10_000): Promise<void> {
  await waitFor(() => latest(sub, `edgegate/gw1/devices/${device}/status`)?.state === state, ms, `device ${device} ${state}`);
}

/** everything one test needs; cleanup() stops all of it, on success or failure */
export async function setup(opts: { broker?: boolean; pty?: boolean } = {}) {
  const tmp = tempDir();
  const broker = opts.broker === false ? undefined : await startMosquitto();
  const pty = opts.pty === false ? undefined : await ptyPair(tmp.dir);
  const instrument = pty ? new Instrument(pty.instrument) : undefined;
  const subs: Sub[] = [];
  const feeds: CounterFeed[] = [];
  let gw: CliProcess | undefined;
  return {
    dir: tmp.dir,
    broker,
    pty,
    instrument,
    async subscribe(url: string, topic = 'edgegate/#', o: Parameters<typeof collect>[2] = {}) {
      const s = await collect(url, topic, o);
      subs.push(s);
      return s;
    },
    /** a counter feed into the instrument; cleanup() stops it before the pty goes */
    feed(): CounterFeed {
      const f = new CounterFeed(pty!.instrument);
      feeds.push(f);
      return f;
    },
    start(config: object, env: NodeJS.ProcessEnv = {}) {
      const file = writeConfig(tmp.dir, config);
      gw = runCli(['run', '--config', file], { env });
      return gw;
    },
    async cleanup() {
      for (const f of feeds) await f.stop().catch(() => undefined);
      instrument?.close();
      await gw?.stop(5000);
      for (const s of subs) await s.close();
      await pty?.stop();
      await broker?.stop();
      tmp.remove();
    },
  };
}

/**
 * A temp dir, a Mosquitto and a socat pty pair for one test, each handed to
 * the file's after-each (cleanupsAfterEach), so they go on success and failure.
 */
export async function brokerAndPty(cleanups: Array<() => Promise<void> | void>): Promise<{ dir: string; broker: Broker; pty: Pty }> {
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const pty = await ptyPair(tmp.dir);
  cleanups.push(() => pty.stop());
  return { dir: tmp.dir, broker, pty };
}
