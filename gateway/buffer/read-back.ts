// The disk buffer's batches read back from disk, in order, a chunk ahead of
// the publisher. Reads are paced (a chunk per READ_PACE_MS at most), so that
// timers and the other tasks get their turn between chunks of a replay.
import type { Batch, Logger } from '../types.js';
import type { SegmentLog } from './segment-log.js';
import type { Lease } from './segments.js';
import type { BufferedBatch } from './types.js';

export const QUEUED = 0, OUT = 1, ACKED = 2, DROPPED = 3;

/** one batch in the disk buffer */
export interface Rec extends BufferedBatch {
  batch: Batch;
  /** its place in the buffer's FIFO, across restarts */
  readonly lsn: number;
  /** segment and offset, once written */
  seg?: number;
  off?: number;
  st: number;
  /** read back and not handed out yet: the read buffer its payload is a view of */
  lease?: Lease;
}

const READ_AHEAD_LOW = 256 * 1024;
const READ_PACE_MS = 25;

export class ReadBack {
  #ahead: Rec[] = [];
  #bytes = 0;
  #reading = false;

  constructor(
    private readonly disk: SegmentLog,
    private readonly log: Logger,
    private readonly now: () => number,
    /** records a segment should have held but did not (damage since written) */
    private readonly onLost: (n: number) => void,
    private readonly onReady: () => void,
  ) {}

  /** records on disk come before anything in memory: true while there are any, read or not */
  get busy(): boolean {
    // while a read is on its way its records are in neither place
    return this.#ahead.length > 0 || this.disk.unread > 0 || this.#reading;
  }

  get first(): Rec | undefined { return this.#ahead[0]; }
  get records(): readonly Rec[] { return this.#ahead; }

  /** the next record read back, or undefined while a read is on its way */
  shift(): Rec | undefined {
    const r = this.#ahead.shift();
    if (r) this.#bytes -= r.bytes;
    if (this.#bytes < READ_AHEAD_LOW) this.#read();
    return r;
  }

  /** the records of a segment dropped for max_size (the oldest, so at the head) */
  dropSegment(seg: number, drop: (r: Rec) => void): void {
    while (this.#ahead[0]?.seg === seg) {
      const r = this.#ahead.shift()!;
      this.#bytes -= r.bytes;
      drop(r);
    }
  }

  #read(): void {
    if (this.#reading || this.disk.unread === 0) return;
    this.#reading = true;
    const started = this.now();
    this.disk.read().then(async ({ records, lost }) => {
      // in sight at once, before the pause: the acknowledged mark and segment deletion look here for the oldest batch
      for (const s of records) {
        this.#ahead.push({ batch: s.batch, bytes: s.raw.length, lsn: s.lsn, seg: s.seg, off: s.off, st: QUEUED, lease: s.lease });
        this.#bytes += s.raw.length;
      }
      if (lost > 0) {
        this.log.warn({ lost }, 'disk buffer: records missing from a segment (damaged since written): skipped');
        this.onLost(lost);
      }
      const wait = READ_PACE_MS - (this.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.#reading = false;
      this.onReady();
    }, (err: unknown) => {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'disk buffer: read failed; trying again in 1 s');
      setTimeout(() => { this.#reading = false; this.onReady(); }, 1000).unref();
    });
  }
}
