// Shared wiring for end-to-end tests: a Mosquitto, a socat pty pair, the
// gateway CLI as a child process, and a subscriber that records everything.
import { closeSync, openSync, writeSync } from 'node:fs';
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
 * Writes `n=1`, `n=2`, ... into the instrument every `everyMs` until stopped.
 * A failed write ends the stream and is thrown by stop(), not left as an
 * unhandled rejection that would end the test process before it reports.
 */
export class CounterStream {
  private n = 0;
  private running = true;
  private error: unknown;
  private readonly done: Promise<void>;
  constructor(instrument: Instrument, everyMs: number) {
    this.done = (async () => {
      while (this.running) {
        try {
          instrument.write(`n=${this.n + 1}\n`);
        } catch (err) {
          this.error = err;
          return;
        }
        this.n++;
        await sleep(everyMs);
      }
    })();
  }
  /** lines written so far */
  get count(): number {
    return this.n;
  }
  /** stops writing; returns how many lines were written, or throws the write error */
  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    if (this.error !== undefined) throw new Error(`the instrument stream failed after ${this.n} lines: ${String(this.error)}`);
    return this.n;
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
  const streams: CounterStream[] = [];
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
    /** a counter stream into the instrument; cleanup() stops it before the pty goes */
    stream(everyMs: number): CounterStream {
      const s = new CounterStream(instrument!, everyMs);
      streams.push(s);
      return s;
    },
    start(config: object, env: NodeJS.ProcessEnv = {}) {
      const file = writeConfig(tmp.dir, config);
      gw = runCli(['run', '--config', file], { env });
      return gw;
    },
    async cleanup() {
      for (const s of streams) await s.stop().catch(() => undefined);
      instrument?.close();
      await gw?.stop(5000);
      for (const s of subs) await s.close();
      await pty?.stop();
      await broker?.stop();
      tmp.remove();
    },
  };
}
