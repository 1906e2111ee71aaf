// The records on disk: segment files in order, the runs of records that exist
// only on disk (not read back yet), appending with the max_size bound, reading
// runs back in order, deleting segments once everything in them is
// acknowledged, and the acknowledged mark that survives restarts.
import { mkdirSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../types.js';
import { encodeFrame, type StoredRecord } from './frames.js';
import {
  grownChunk, listSegments, openForAppend, readChunk, readJson, ReadPool, scanSegment, segmentPath, syncDir, writeJsonAtomic,
  type AppendFile, type Lease, type OpenForAppend,
} from './segments.js';

export const READ_CHUNK_BYTES = 1024 * 1024;

export interface Segment {
  id: number;
  size: number;
  /** every lsn in it is below endLsn */
  endLsn: number;
}

/** records of one segment that exist only on disk, from `from` on */
interface Run { seg: Segment; from: number; count: number; firstLsn: number; firstTs: number | null; chunk: number; inDamage: boolean }

/** a record with its place on disk once written */
export interface Placed { lsn: number; seg?: number; off?: number }

/** a record read back: a view of a pooled read buffer, released with release() */
export type ReadRecord = Required<Placed> & StoredRecord & { lease: Lease };

export interface SegmentLogOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  log: Logger;
  open?: OpenForAppend;
}

export class SegmentLog {
  readonly #o: SegmentLogOptions;
  readonly #open: OpenForAppend;
  readonly #cursorPath: string;
  #segments: Segment[] = [];
  #runs = new Map<number, Run>();
  #unread = 0;
  #bytes = 0;
  #writer: { seg: Segment; file: AppendFile } | undefined;
  #reader: { seg: Segment; fh: FileHandle } | undefined;
  readonly #pool = new ReadPool(READ_CHUNK_BYTES);
  #ackedBelow = 0;
  #savedMark = -1;
  /** ids only grow: a new segment never takes the name of one still being deleted */
  #lastId = 0;
  #appending = false;
  /** deletions on their way: close() waits for them */
  #unlinking = new Set<Promise<void>>();

  constructor(opts: SegmentLogOptions) {
    this.#o = opts;
    this.#open = opts.open ?? openForAppend;
    this.#cursorPath = join(opts.dir, 'cursor.json');
  }

  /** bytes of the segment files */
  get bytes(): number { return this.#bytes; }
  /** records only on disk, not read back yet */
  get unread(): number { return this.#unread; }
  get segments(): number { return this.#segments.length; }

  /** the oldest record only on disk: its lsn and firstTs (a lower bound once reading has begun) */
  firstUnread(): { lsn: number; ts: number | null } | undefined {
    const run = this.#runs.values().next().value;
    return run ? { lsn: run.firstLsn, ts: run.firstTs } : undefined;
  }

  /** scans the segments left by the last run; returns the lsn to continue from */
  async recover(): Promise<{ nextLsn: number; records: number; damaged: number }> {
    const { dir } = this.#o;
    mkdirSync(dir, { recursive: true });
    const mark = readJson(this.#cursorPath) as { acked_below?: unknown } | undefined;
    this.#ackedBelow = typeof mark?.acked_below === 'number' ? mark.acked_below : 0;
    let maxLsn = -1, records = 0, damaged = 0;
    for (const id of listSegments(dir)) {
      this.#lastId = id;
      const path = segmentPath(dir, id);
      let s: Awaited<ReturnType<typeof scanSegment>>;
      try {
        s = await scanSegment(path, this.#ackedBelow, READ_CHUNK_BYTES);
      } catch (err) {
        // unreadable as a whole: kept aside for a look, never read again
        this.#o.log.error({ segment: path, err: err instanceof Error ? err.message : String(err) }, 'disk buffer: unreadable segment set aside');
        await rename(path, `${path}.damaged`).catch(() => undefined);
        damaged++;
        continue;
      }
      maxLsn = Math.max(maxLsn, s.maxLsn);
      damaged += s.damaged;
      if (s.records === 0) {
        await unlink(path);
        continue;
      }
      const seg: Segment = { id, size: s.size, endLsn: s.maxLsn + 1 };
      this.#segments.push(seg);
      this.#bytes += s.size;
      this.#runs.set(id, { seg, from: s.firstOff, count: s.records, firstLsn: s.firstLsn, firstTs: s.firstTs, chunk: READ_CHUNK_BYTES, inDamage: false });
      this.#unread += s.records;
      records += s.records;
    }
    return { nextLsn: Math.max(maxLsn + 1, this.#ackedBelow), records, damaged };
  }

  /**
   * Appends the frames of these records in one write (after the oldest
   * segments are dropped if max_size needs room); sets each one's place.
   */
  async append(recs: Array<Placed & { batch: StoredRecord['batch'] }>, sync: boolean, onDrop: (seg: Segment, unread: number) => void): Promise<void> {
    this.#appending = true;
    try {
      await this.#append(recs, sync, onDrop);
    } finally {
      this.#appending = false;
    }
  }

  async #append(recs: Array<Placed & { batch: StoredRecord['batch'] }>, sync: boolean, onDrop: (seg: Segment, unread: number) => void): Promise<void> {
    const frames = recs.map((r) => encodeFrame(r.lsn, r.batch));
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    let w = this.#writer;
    if (!w || w.seg.size >= this.#o.segmentBytes) w = await this.#roll(sync);
    // the newest data is kept: the oldest segments make room, the one written to last of all
    while (this.#bytes + bytes > this.#o.maxBytes && this.#segments.length > 0) {
      if (this.#segments[0] === w.seg) {
        if (w.seg.size === 0) break;
        w = await this.#roll(sync);
        continue;
      }
      this.#drop(this.#segments[0]!, onDrop);
    }
    const buf = frames.length === 1 ? frames[0]! : Buffer.concat(frames, bytes);
    await w.file.write(buf, 0, buf.length, w.seg.size);
    if (sync) await w.file.datasync();
    let off = w.seg.size;
    recs.forEach((r, k) => {
      r.seg = w.seg.id;
      r.off = off;
      off += frames[k]!.length;
    });
    w.seg.size += bytes;
    this.#bytes += bytes;
    w.seg.endLsn = Math.max(w.seg.endLsn, recs[recs.length - 1]!.lsn + 1);
  }

  /** a written record leaves memory: it is read back from disk when its turn comes */
  addUnread(r: Placed & { batch: { firstTs: number } }): void {
    const seg = this.#segments.find((s) => s.id === r.seg);
    if (!seg || r.off === undefined) return;
    const run = this.#runs.get(seg.id);
    if (run) run.count++;
    else this.#runs.set(seg.id, { seg, from: r.off, count: 1, firstLsn: r.lsn, firstTs: r.batch.firstTs, chunk: READ_CHUNK_BYTES, inDamage: false });
    this.#unread++;
  }

  /**
   * Reads on in the oldest run: about a chunk of records, in order.
   * `lost` counts records a run should have held but did not (damage since written).
   */
  async read(): Promise<{ records: ReadRecord[]; lost: number }> {
    const run = this.#runs.values().next().value;
    if (!run) return { records: [], lost: 0 };
    const seg = run.seg;
    if (this.#reader?.seg !== seg) {
      await this.#reader?.fh.close();
      this.#reader = undefined;
      this.#reader = { seg, fh: await open(segmentPath(this.#o.dir, seg.id), 'r') };
    }
    const from = run.from;
    let c: Awaited<ReturnType<typeof readChunk>>;
    let lease: Lease | undefined;
    try {
      c = await readChunk(this.#reader.fh, from, seg.size, run.chunk, run.inDamage, (n) => (lease = this.#pool.take(n)).buf);
    } catch (err) {
      if (this.#runs.get(seg.id) !== run) return { records: [], lost: 0 };
      throw err;
    }
    if (this.#runs.get(seg.id) !== run) return { records: [], lost: 0 }; // dropped meanwhile
    const records: ReadRecord[] = [];
    let next = c.next;
    const held = lease!;
    for (const f of c.frames) {
      if (f.record.lsn < this.#ackedBelow) continue;
      if (records.length === run.count) { next = f.off; break; }
      records.push({ ...f.record, seg: seg.id, off: f.off, lease: held });
    }
    held.refs = records.length + 1;
    this.#pool.release(held);
    run.count -= records.length;
    this.#unread -= records.length;
    run.from = next;
    run.inDamage = c.inDamage;
    run.chunk = next === from && records.length === 0 ? grownChunk(run.chunk) : READ_CHUNK_BYTES;
    const last = records[records.length - 1];
    if (last) { run.firstLsn = last.lsn + 1; run.firstTs = last.batch.firstTs; }
    let lost = 0;
    if (run.from >= seg.size && run.count > 0) {
      lost = run.count;
      this.#unread -= lost;
      run.count = 0;
    }
    if (run.count === 0) this.#runs.delete(seg.id);
    return { records, lost };
  }

  /** a record read back no longer needs its read buffer */
  release(lease: Lease): void {
    this.#pool.release(lease);
  }

  /**
   * deletes the segments whose records all lie below `lsn` (acknowledged or
   * dropped); the one appended to only when keepCurrent is false or it is full
   */
  deleteBelow(lsn: number, keepCurrent: boolean): void {
    for (;;) {
      const seg = this.#segments[0];
      if (!seg || seg.endLsn > lsn || this.#runs.has(seg.id)) return;
      if (seg === this.#writer?.seg) {
        if (this.#appending || (keepCurrent && seg.size < this.#o.segmentBytes)) return;
        const file = this.#writer.file;
        this.#writer = undefined;
        void file.close().catch(() => undefined);
      }
      this.#remove(seg);
    }
  }

  /** everything below lsn is acknowledged: recorded so that a restart does not send it again */
  async saveMark(lsn: number): Promise<void> {
    if (lsn === this.#savedMark) return;
    await writeJsonAtomic(this.#cursorPath, { acked_below: lsn }, false);
    this.#savedMark = lsn;
  }

  async sync(): Promise<void> {
    await this.#writer?.file.datasync();
  }

  async close(): Promise<void> {
    await Promise.all(this.#unlinking);
    await this.#reader?.fh.close().catch(() => undefined);
    this.#reader = undefined;
    await this.#writer?.file.close().catch(() => undefined);
    this.#writer = undefined;
  }

  async #roll(sync: boolean): Promise<{ seg: Segment; file: AppendFile }> {
    const prev = this.#writer;
    this.#writer = undefined;
    if (prev) {
      if (sync) await prev.file.datasync();
      await prev.file.close();
    }
    const seg: Segment = { id: ++this.#lastId, size: 0, endLsn: 0 };
    const file = await this.#open(segmentPath(this.#o.dir, seg.id));
    if (sync) await syncDir(this.#o.dir);
    this.#segments.push(seg);
    return (this.#writer = { seg, file });
  }

  #drop(seg: Segment, onDrop: (seg: Segment, unread: number) => void): void {
    const run = this.#runs.get(seg.id);
    const unread = run?.count ?? 0;
    this.#runs.delete(seg.id);
    this.#unread -= unread;
    onDrop(seg, unread);
    this.#remove(seg);
  }

  #remove(seg: Segment): void {
    this.#segments = this.#segments.filter((s) => s !== seg);
    this.#bytes -= seg.size;
    if (this.#reader?.seg === seg) {
      void this.#reader.fh.close().catch(() => undefined);
      this.#reader = undefined;
    }
    const p = unlink(segmentPath(this.#o.dir, seg.id)).catch((err: unknown) => {
      this.#o.log.warn({ segment: seg.id, err: err instanceof Error ? err.message : String(err) }, 'disk buffer: cannot delete a segment');
    }).finally(() => this.#unlinking.delete(p));
    this.#unlinking.add(p);
  }
}
