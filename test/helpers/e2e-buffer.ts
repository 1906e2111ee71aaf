// For the store-and-forward tests: a counter stream into the instrument end of
// a pty, a delivery report by (device, seq), the batches a buffer dir holds
// (read with the buffer's own parser), and the stats payload.
import { closeSync, constants, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseFrames } from '../../gateway/buffer/frames.js';
import { latest, type Data, type Instrument, type Sub } from './e2e.js';
import { sleep } from './peers.js';

/** writes `n=<i>` for i in [from, to] at about perSecond, in bursts every 20 ms */
export async function streamCounter(instrument: Instrument, from: number, to: number, perSecond: number, stop?: () => boolean): Promise<number> {
  const perBurst = Math.max(1, Math.round(perSecond / 50));
  let i = from;
  while (i <= to && !stop?.()) {
    let chunk = '';
    for (let k = 0; k < perBurst && i <= to; k++, i++) chunk += `n=${i}\n`;
    instrument.write(chunk);
    await sleep(20);
  }
  return i - 1;
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

export interface Delivery {
  /** data messages received, duplicates included */
  messages: number;
  /** distinct (device, seq) */
  batches: number;
  /** messages that repeated a (device, seq) already received, with the same payload */
  duplicates: number;
  /** a (device, seq) received with two different payloads: must never happen */
  conflicting: number;
  /** first arrivals whose seq is not above the previous first arrival */
  outOfOrder: number;
  /** counter values of the distinct batches, in seq order */
  values: number[];
  /** values that appear in two distinct batches: must never happen */
  repeatedValues: number;
}

/** judges one device's data messages, in arrival order */
export function delivery(batches: Data[]): Delivery {
  const bySeq = new Map<number, string>();
  let duplicates = 0, conflicting = 0, outOfOrder = 0, last = 0;
  for (const b of batches) {
    const text = JSON.stringify(b);
    const seen = bySeq.get(b.seq);
    if (seen !== undefined) {
      duplicates++;
      if (seen !== text) conflicting++;
      continue;
    }
    if (b.seq <= last) outOfOrder++;
    last = b.seq;
    bySeq.set(b.seq, text);
  }
  const values = [...bySeq.entries()].sort((a, b) => a[0] - b[0])
    .flatMap(([, text]) => (JSON.parse(text) as Data).readings.filter((r) => r.tag === 'n').map((r) => r.value as number));
  return { messages: batches.length, batches: bySeq.size, duplicates, conflicting, outOfOrder, values, repeatedValues: values.length - new Set(values).size };
}

/** 1..n that are not in values */
export function missing(values: number[], n: number): number[] {
  const have = new Set(values);
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (!have.has(i)) out.push(i);
  return out;
}

/** the batches in the segment files of a buffer dir, as the gateway would replay them */
export function batchesOnDisk(dir: string): Data[] {
  const out: Data[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.seg')).sort()) {
    parseFrames(readFileSync(join(dir, name)), 0, (r) => out.push(JSON.parse(r.batch.payload) as Data));
  }
  return out;
}

export interface BufferStatsPayload { bytes: number; batches: number; dropped_batches: number; oldest_ts: number | null; damaged_records: number; mode: string; error?: string }

export function bufferStats(sub: Sub): BufferStatsPayload | undefined {
  return (latest(sub, 'edgegate/gw1/stats') as { buffer?: BufferStatsPayload } | undefined)?.buffer;
}

/** one line for the record of what a fault test saw */
export function figures(what: string, f: Record<string, number>): void {
  console.log(`  [figures] ${what}: ${Object.entries(f).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}
