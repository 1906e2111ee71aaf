// Batch numbers per device that keep counting across restarts (SPEC §4) and
// are never used twice, without a disk write per batch: a run reserves a
// range ahead and stores its end; a crash then skips to the end of the range
// (a gap), and a graceful stop stores the exact position (no gap).
//
// Reservations are written in the background, half a range before they are
// needed. Only when one is needed before it is on disk (the first batch of a
// device, or a disk slower than half a range of batches) is one written
// synchronously, and then to a second file: an older background write that
// lands after it can never lower the stored value. A start takes the larger
// value of the two files.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../types.js';
import { readJson, writeJsonAtomic, writeJsonAtomicSync } from './segments.js';

interface DeviceSeq {
  /** the next seq to hand out */
  next: number;
  /** seqs below this are reserved on disk */
  durable: number;
}

export interface SeqStoreOptions {
  dir: string;
  log: Logger;
  /** seqs reserved per write (default 10,000) */
  range?: number;
}

export class SeqStore {
  readonly #o: SeqStoreOptions;
  readonly #range: number;
  readonly #main: string;
  readonly #urgent: string;
  readonly #devices = new Map<string, DeviceSeq>();
  #writing: Promise<void> | undefined;
  #error: string | undefined;

  private constructor(opts: SeqStoreOptions) {
    this.#o = opts;
    this.#range = opts.range ?? 10_000;
    this.#main = join(opts.dir, 'seq.json');
    this.#urgent = join(opts.dir, 'seq-reserved.json');
  }

  /** reads what the last run stored; a store that cannot be read or written counts in memory, saying so */
  static open(opts: SeqStoreOptions): SeqStore {
    const s = new SeqStore(opts);
    try {
      mkdirSync(opts.dir, { recursive: true });
      for (const file of [s.#main, s.#urgent]) {
        const stored = readJson(file) as { devices?: Record<string, unknown> } | undefined;
        for (const [id, v] of Object.entries(stored?.devices ?? {})) {
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) continue;
          const d = s.#devices.get(id);
          if (!d || d.next < v) s.#devices.set(id, { next: v, durable: v });
        }
      }
    } catch (err) {
      s.#fail(err);
    }
    return s;
  }

  /** why seq cannot survive a restart, if it cannot */
  get error(): string | undefined { return this.#error; }

  /** reserves a range for the device now (at its start, not on the hot path) */
  prepare(device: string): void {
    const d = this.#device(device);
    if (d.next >= d.durable) this.#reserveNow(d);
  }

  /** the hot path: the device's next seq */
  next(device: string): number {
    const d = this.#device(device);
    if (d.next >= d.durable) this.#reserveNow(d);
    else if (d.durable - d.next <= this.#range / 2) this.#writeSoon();
    return d.next++;
  }

  /** stores the exact positions: the next run continues without a gap */
  async close(): Promise<void> {
    await this.#writing;
    if (this.#error !== undefined) return;
    const exact: Record<string, number> = {};
    for (const [id, d] of this.#devices) exact[id] = d.next;
    try {
      writeJsonAtomicSync(this.#main, { devices: exact });
      rmSync(this.#urgent, { force: true });
    } catch (err) {
      this.#fail(err);
    }
  }

  #device(id: string): DeviceSeq {
    let d = this.#devices.get(id);
    if (!d) this.#devices.set(id, (d = { next: 1, durable: 1 }));
    return d;
  }

  /** what a reservation file holds: every device's end of range (beyond any seq handed out) */
  #limits(extend: DeviceSeq | 'all'): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, d] of this.#devices) {
      const grow = extend === 'all' ? d.durable - d.next <= this.#range / 2 : extend === d;
      out[id] = grow ? d.next + this.#range : d.durable;
    }
    return out;
  }

  #reserveNow(d: DeviceSeq): void {
    const limits = this.#limits(d);
    if (this.#error === undefined) {
      try {
        writeJsonAtomicSync(this.#urgent, { devices: limits });
      } catch (err) {
        this.#fail(err);
      }
    }
    d.durable = d.next + this.#range;
  }

  #writeSoon(): void {
    // the next batch after this write asks again if it is still needed
    if (this.#error !== undefined || this.#writing) return;
    const limits = this.#limits('all');
    this.#writing = writeJsonAtomic(this.#main, { devices: limits }, true).then(() => {
      for (const [id, end] of Object.entries(limits)) {
        const d = this.#devices.get(id);
        if (d && end > d.durable) d.durable = end;
      }
    }, (err: unknown) => this.#fail(err)).finally(() => {
      this.#writing = undefined;
    });
  }

  #fail(err: unknown): void {
    if (this.#error !== undefined) return;
    this.#error = `${this.#o.dir}: ${err instanceof Error ? err.message : String(err)}`;
    this.#o.log.error({ dir: this.#o.dir, err: this.#error }, 'seq store unusable: seq counts in memory only and starts again at 1 after a restart');
  }
}
