// The disk buffer: one FIFO of batches, each one in memory, on disk or both,
// handed to the publisher oldest first and kept until it is acknowledged.
//
// Every batch gets an lsn (its place in the FIFO) at push(). Order: handed
// out (in flight) < retry < read back from disk (ahead) < only on disk (runs)
// < in memory (mem). Writes go in lsn order, so what is on disk is always the
// oldest part of what is not acknowledged; memory keeps the newest part, up
// to memoryBytes, and what leaves memory is read back from disk in its turn.
//
// When it writes: `always`: every batch, synced before it may be handed out
// (a group commit of the batches that came meanwhile). `on_outage`: only
// while the broker is away or more than spillBytes wait behind a full
// in-flight window; then everything not acknowledged is written, in flight
// included. A healthy broker therefore costs no disk write at all.
// A disk that fails (a full one, typically) is written no more: memory holds
// the batches, bounded by fallbackBytes (oldest dropped), the mode says why,
// and a probe every retryMs (disk-probe.ts) finds out when it works again.
import { accessSync, constants } from 'node:fs';
import { ByteBoundedQueue } from '../publish-queue.js';
import type { Batch, Logger } from '../types.js';
import { DiskProbe } from './disk-probe.js';
import { OverflowLog } from './overflow.js';
import { ACKED, DROPPED, OUT, QUEUED, ReadBack, type Rec } from './read-back.js';
import { SegmentLog, type Segment } from './segment-log.js';
import { openForAppend, type OpenForAppend } from './segments.js';
import type { BatchBuffer, BufferedBatch, BufferStats } from './types.js';
import { WriteQueue } from './write-queue.js';

export interface DiskBufferOptions {
  dir: string;
  /** buffer.max_size: the bound of the segment files */
  maxBytes: number;
  durability: 'on_outage' | 'always';
  /** the memory bound while the disk is unusable */
  fallbackBytes: number;
  log: Logger;
  /** the disk failed (mode memory, with the reason) or works again */
  onModeChange?: (mode: 'disk' | 'memory', error?: string) => void;
  open?: OpenForAppend;
  memoryBytes?: number;
  spillBytes?: number;
  segmentBytes?: number;
  /** how often a disk that failed is probed (default 5 s) */
  retryMs?: number;
  /** monotonic ms, for read pacing */
  now?: () => number;
}

const GROUP_BYTES = 1024 * 1024;
const MARK_INTERVAL_MS = 5000;

export class DiskBuffer implements BatchBuffer {
  onReadable: (() => void) | undefined;
  readonly #o: DiskBufferOptions;
  readonly #disk: SegmentLog;
  readonly #always: boolean;
  readonly #memoryBytes: number;
  readonly #spillBytes: number;
  readonly #now: () => number;
  readonly #overflow: OverflowLog;
  readonly #mem = new ByteBoundedQueue<Rec>(Infinity);
  readonly #unwritten = new WriteQueue<Rec>((r) => r.st === ACKED || r.st === DROPPED);
  readonly #back: ReadBack;
  #retry: Rec[] = [];
  #out: Rec[] = [];
  #nextLsn = 0;
  #size = 0;
  #memOnlyBytes = 0;
  #damaged = 0;
  #online = false;
  #error: string | undefined;
  readonly #probe: DiskProbe;
  #flushing: Promise<void> | undefined;
  #flushAgain = false;
  #closing = false;
  #markTimer: NodeJS.Timeout | undefined;

  private constructor(opts: DiskBufferOptions, disk: SegmentLog, segmentBytes: number) {
    this.#o = opts;
    this.#probe = new DiskProbe({
      dir: opts.dir, open: opts.open ?? openForAppend, freeBytes: Math.min(GROUP_BYTES, segmentBytes), intervalMs: opts.retryMs ?? 5000,
      log: opts.log, onUsable: () => this.#recovered(),
    });
    this.#disk = disk;
    this.#always = opts.durability === 'always';
    this.#memoryBytes = opts.memoryBytes ?? 4 * 1024 * 1024;
    this.#spillBytes = opts.spillBytes ?? 1024 * 1024;
    this.#now = opts.now ?? (() => performance.now());
    this.#overflow = new OverflowLog(opts.log, 'disk buffer');
    this.#back = new ReadBack(disk, opts.log, this.#now, (lost) => { this.#damaged += lost; this.#size -= lost; }, () => this.onReadable?.());
  }

  /** opens dir, recovers what the last run left; throws when dir is unusable */
  static async open(opts: DiskBufferOptions): Promise<DiskBuffer> {
    const segmentBytes = opts.segmentBytes ?? Math.min(16 * 1024 * 1024, Math.max(64 * 1024, Math.floor(opts.maxBytes / 8)));
    const disk = new SegmentLog({ dir: opts.dir, maxBytes: opts.maxBytes, segmentBytes, log: opts.log, ...(opts.open ? { open: opts.open } : {}) });
    const r = await disk.recover();
    accessSync(opts.dir, constants.W_OK);
    const b = new DiskBuffer(opts, disk, segmentBytes);
    b.#nextLsn = r.nextLsn;
    b.#size = r.records;
    b.#damaged = r.damaged;
    if (r.records > 0 || r.damaged > 0) opts.log.info({ dir: opts.dir, batches: r.records, bytes: disk.bytes, damaged_records: r.damaged }, 'disk buffer recovered');
    if (r.damaged > 0) opts.log.warn({ dir: opts.dir, damaged_records: r.damaged }, 'disk buffer: damaged records skipped');
    b.#markTimer = setInterval(() => b.#saveMark(), MARK_INTERVAL_MS);
    b.#markTimer.unref();
    return b;
  }

  get size(): number { return this.#size; }
  get queued(): number { return this.#size - this.#out.length; }

  push(batch: Batch): void {
    if (this.#closing) return;
    const r: Rec = { batch, bytes: Buffer.byteLength(batch.payload), lsn: this.#nextLsn++, st: QUEUED };
    this.#size++;
    this.#memOnlyBytes += r.bytes;
    this.#mem.push(r, (old) => this.#dropOne(old));
    this.#unwritten.push(r);
    if (this.#wantsWrite()) this.#flushSoon();
  }

  next(): BufferedBatch | undefined {
    if (this.#closing) return undefined;
    let r = this.#retry.shift();
    if (!r && this.#back.busy) {
      r = this.#back.shift();
      if (!r) return undefined;
    }
    if (!r) {
      const m = this.#mem.peek();
      if (!m || (this.#always && !this.#error && m.seg === undefined)) return undefined;
      r = this.#mem.shift() as Rec;
    }
    this.#unlease(r);
    r.st = OUT;
    insertByLsn(this.#out, r);
    return r;
  }

  ack(item: BufferedBatch): void {
    const r = item as Rec;
    if (r.st !== OUT) return;
    this.#out.splice(this.#out.indexOf(r), 1);
    this.#settle(r, ACKED);
    this.#unwritten.trim();
    this.#disk.deleteBelow(this.#lowest(), this.#keepCurrentSegment());
    this.#overflow.level(this.#disk.bytes, this.#o.maxBytes);
  }

  requeue(items: readonly BufferedBatch[]): void {
    for (const r of items as readonly Rec[]) {
      if (r.st !== OUT) continue;
      this.#out.splice(this.#out.indexOf(r), 1);
      r.st = QUEUED;
      insertByLsn(this.#retry, r);
    }
  }

  setOnline(online: boolean): void {
    this.#online = online;
    if (this.#wantsWrite()) this.#flushSoon();
  }

  inMemory(): Batch[] {
    return [...this.#retry, ...this.#back.records, ...this.#mem.toArray()].map((r) => r.batch);
  }

  stats(): BufferStats {
    const oldest = this.#oldest();
    return {
      bytes: this.#disk.bytes + this.#memOnlyBytes, batches: this.#size, dropped_batches: this.#overflow.total,
      oldest_ts: oldest.lsn < this.#nextLsn ? oldest.ts : null, damaged_records: this.#damaged,
      mode: this.#error === undefined ? 'disk' : 'memory', ...(this.#error !== undefined ? { error: this.#error } : {}),
    };
  }

  /** writes and syncs everything not acknowledged, records the acknowledged mark */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#markTimer);
    await this.#probe.stop();
    while (this.#flushing) await this.#flushing;
    // what memory holds is lost at the stop unless the disk takes it now
    if (this.#error !== undefined) await this.#probe.now();
    if (this.#error === undefined) {
      this.#flushSoon();
      while (this.#flushing) await this.#flushing;
    }
    const lost = this.#error === undefined ? 0 : this.#unwritten.pending().length;
    if (lost > 0) this.#o.log.error({ batches: lost, err: this.#error }, 'disk buffer unusable at stop: batches held in memory are lost');
    try {
      await this.#disk.sync();
      if (this.#disk.segments > 0) await this.#disk.saveMark(this.#lowest());
    } catch (err) {
      this.#o.log.error({ err: errText(err) }, 'disk buffer: cannot sync at stop');
    }
    await this.#disk.close();
  }

  #wantsWrite(): boolean {
    if (this.#error !== undefined) return false;
    return this.#always || !this.#online || this.#closing || this.#mem.bytes > this.#spillBytes;
  }

  #flushSoon(): void {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    // one tick later: the batches pushed meanwhile go in the same write (and sync)
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush()).finally(() => {
      this.#flushing = undefined;
      if (this.#flushAgain) {
        this.#flushAgain = false;
        if (this.#wantsWrite()) this.#flushSoon();
      }
    });
  }

  async #flush(): Promise<void> {
    for (;;) {
      const group = this.#unwritten.take(GROUP_BYTES);
      if (group.length === 0) return;
      let failed: { err: unknown } | undefined;
      try {
        await this.#disk.append(group, this.#always || this.#closing, (seg, unread) => this.#onSegmentDropped(seg, unread));
      } catch (err) {
        failed = { err };
      }
      // a failed write may still have put its first batches on disk: those have a place, the rest is written later
      for (const r of group) if (r.seg !== undefined && (r.st === QUEUED || r.st === OUT)) this.#memOnlyBytes -= r.bytes;
      if (failed) {
        this.#unwritten.putBack(group.filter((r) => r.seg === undefined));
        this.#degrade(failed.err);
      }
      this.#evict();
      this.#disk.deleteBelow(this.#lowest(), true);
      this.onReadable?.();
      if (failed) return;
    }
  }

  /** with `always` the segment appended to stays until it is full: otherwise every batch would create a file */
  #keepCurrentSegment(): boolean {
    return this.#always || this.#flushing !== undefined;
  }

  /** written batches leave memory, oldest first, beyond memoryBytes: read back from disk in their turn */
  #evict(): void {
    while (this.#mem.bytes > this.#memoryBytes) {
      const r = this.#mem.peek();
      if (!r || r.seg === undefined) return;
      this.#mem.shift();
      this.#toDisk(r);
    }
  }

  /** leaves memory to be read back; a segment gone meanwhile would hold it nowhere: counted as damaged, never waited for */
  #toDisk(r: Rec): void {
    if (this.#disk.addUnread(r)) return;
    this.#settle(r, DROPPED);
    this.#damaged++;
    this.#o.log.warn({ lsn: r.lsn, segment: r.seg }, 'disk buffer: a batch is not in its segment any more: skipped');
  }

  #onSegmentDropped(seg: Segment, unread: number): void {
    let n = unread;
    const drop = (r: Rec) => { this.#settle(r, DROPPED); n++; };
    this.#back.dropSegment(seg.id, drop);
    while (this.#mem.peek()?.seg === seg.id) drop(this.#mem.shift()!);
    this.#retry = this.#retry.filter((r) => (r.seg === seg.id ? (drop(r), false) : true));
    this.#size -= unread;
    this.#overflow.dropped(n, { max_size: this.#o.maxBytes, segment: seg.id });
  }

  /** memory full while the disk is unusable: the oldest batch in memory goes (unless it is on disk already) */
  #dropOne(r: Rec): void {
    if (r.seg !== undefined) {
      this.#toDisk(r);
      return;
    }
    this.#settle(r, DROPPED);
    this.#unwritten.trim();
    this.#overflow.dropped(1, { max_queued_bytes: this.#mem.maxBytes, device: r.batch.device, seq: r.batch.seq });
  }

  /**
   * its payload decoded now, the read buffer goes back to the pool: a string
   * that lives only while in flight costs the garbage collector little
   */
  #unlease(r: Rec): void {
    if (!r.lease) return;
    r.batch = { ...r.batch };
    this.#disk.release(r.lease);
    r.lease = undefined;
  }

  #settle(r: Rec, st: typeof ACKED | typeof DROPPED): void {
    if (r.seg === undefined) this.#memOnlyBytes -= r.bytes;
    this.#unlease(r);
    r.st = st;
    this.#size--;
  }

  /** the oldest batch not acknowledged (its lsn: every one below is acknowledged or dropped) */
  #oldest(): { lsn: number; ts: number | null } {
    let low: { lsn: number; ts: number | null } = { lsn: this.#nextLsn, ts: null };
    for (const r of [this.#out[0], this.#retry[0], this.#back.first, this.#mem.peek()]) if (r && r.lsn < low.lsn) low = { lsn: r.lsn, ts: r.batch.firstTs };
    const unread = this.#disk.firstUnread();
    return unread && unread.lsn < low.lsn ? unread : low;
  }

  #lowest(): number {
    return this.#oldest().lsn;
  }

  #saveMark(): void {
    if (this.#disk.segments === 0 || this.#error !== undefined) return;
    this.#disk.saveMark(this.#lowest()).catch((err: unknown) => this.#o.log.debug({ err: errText(err) }, 'disk buffer: cannot save the acknowledged mark'));
  }

  #degrade(err: unknown): void {
    if (this.#error !== undefined) return;
    this.#error = `${this.#o.dir}: ${errText(err)}`;
    this.#mem.maxBytes = this.#o.fallbackBytes;
    this.#o.log.error({ dir: this.#o.dir, err: errText(err), max_memory_bytes: this.#o.fallbackBytes },
      'disk buffer unusable: batches are kept in memory (bounded) until it works again');
    this.#o.onModeChange?.('memory', this.#error);
    if (!this.#closing) this.#probe.start();
  }

  #recovered(): void {
    if (this.#error === undefined) return;
    this.#error = undefined;
    this.#mem.maxBytes = Infinity;
    this.#o.log.info({ dir: this.#o.dir }, 'disk buffer usable again');
    this.#o.onModeChange?.('disk');
    if (!this.#closing && this.#wantsWrite()) this.#flushSoon();
  }
}

/** out and retry stay sorted by lsn; items nearly always go at the end */
function insertByLsn(list: Rec[], r: Rec): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.lsn > r.lsn) i--;
  list.splice(i, 0, r);
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
