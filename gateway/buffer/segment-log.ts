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
  grownChunk, listSegments, openForAppend, readChunk, readJson, ReadPool, scanSegment, segmentPath, syncDir, writeAll, writeJsonAtomic,
  type AppendFile, type Lease, type OpenForAppend,
} from './segments.js';

export const READ_CHUNK_BYTES = 1024 * 1024;
/** a segment that fails this many reads in a row is given up: its records are counted as damaged */
const MAX_READ_FAILURES = 3;

export interface Segment {
  id: number;
  size: number;
  /** every lsn in it is below endLsn */
  endLsn: number;
}

/**
 * records of one segment that exist only on disk, from `from` on: `count` of
 * them, their lsns from firstLsn and below endLsn (a frame outside is not one)
 */
interface Run {
  seg: Segment; from: number; count: number; firstLsn: number; endLsn: number; firstTs: number | null;
  chunk: number; inDamage: boolean; failures: number;
}

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
      this.#runs.set(id, newRun(seg, s.firstOff, s.records, s.firstLsn, s.maxLsn + 1, s.firstTs));
      this.#unread += s.records;
      records += s.records;
    }
    return { nextLsn: Math.max(maxLsn + 1, this.#ackedBelow), records, damaged };
  }

  /**
   * Appends the frames of these records in one write (after the oldest
   * segments are dropped if max_size needs room); sets each one's place.
   * Throws when the write or the sync fails: then the records whose frames
   * reached the file whole (and synced, when asked) have their place, the
   * others have none, and the segment holds nothing else.
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
    const at = w.seg.size;
    const { written, error: writeError } = await writeAll(w.file, buf, at);
    let error = writeError;
    if (error === undefined && sync) error = await w.file.datasync().then(() => undefined, (err: unknown) => err);
    if (error === undefined) {
      this.#place(w.seg, recs, frames, recs.length, bytes);
      return;
    }
    // the frames that reached the file whole; after a failed sync none is known to be there
    let whole = 0, end = at;
    if (writeError !== undefined) {
      while (whole < frames.length && end + frames[whole]!.length <= at + written) end += frames[whole++]!.length;
      if (whole > 0 && sync && await w.file.datasync().then(() => false, () => true)) { whole = 0; end = at; }
    }
    // the rest goes, so that a torn frame never sits where the next one would be read
    let size = end;
    await w.file.truncate(end).catch((err: unknown) => {
      size = at + written;
      this.#o.log.warn({ segment: w.seg.id, err: errText(err) }, 'disk buffer: cannot cut a failed write off a segment');
    });
    this.#place(w.seg, recs, frames, whole, size - at);
    // a file whose write failed takes no more: the next write starts a new segment
    this.#writer = undefined;
    await w.file.close().catch(() => undefined);
    throw error;
  }

  /** the first n records are in seg, `grown` bytes after its old end */
  #place(seg: Segment, recs: Placed[], frames: Buffer[], n: number, grown: number): void {
    let off = seg.size;
    for (let k = 0; k < n; k++) {
      const r = recs[k]!;
      r.seg = seg.id;
      r.off = off;
      off += frames[k]!.length;
    }
    seg.size += grown;
    this.#bytes += grown;
    if (n > 0) seg.endLsn = Math.max(seg.endLsn, recs[n - 1]!.lsn + 1);
  }

  /** a written record leaves memory: it is read back from disk when its turn comes; false when its segment is gone */
  addUnread(r: Placed & { batch: { firstTs: number } }): boolean {
    const seg = this.#segments.find((s) => s.id === r.seg);
    if (!seg || r.off === undefined) return false;
    const run = this.#runs.get(seg.id);
    if (run) {
      run.count++;
      run.endLsn = r.lsn + 1;
    } else {
      this.#runs.set(seg.id, newRun(seg, r.off, 1, r.lsn, r.lsn + 1, r.batch.firstTs));
    }
    this.#unread++;
    return true;
  }

  /**
   * Reads on in the oldest run: about a chunk of records, in order.
   * `lost` counts records a run should have held but did not (damaged,
   * missing, or the file unreadable since written): the run ends there, so
   * that nothing ever waits for bytes that are not there.
   */
  async read(): Promise<{ records: ReadRecord[]; lost: number }> {
    const run = this.#runs.values().next().value;
    if (!run) return { records: [], lost: 0 };
    const seg = run.seg;
    const from = run.from;
    let c: Awaited<ReturnType<typeof readChunk>>;
    let lease: Lease | undefined;
    try {
      if (this.#reader?.seg !== seg) {
        const old = this.#reader;
        this.#reader = undefined;
        await old?.fh.close();
        this.#reader = { seg, fh: await open(segmentPath(this.#o.dir, seg.id), 'r') };
      }
      c = await readChunk(this.#reader.fh, from, seg.size, run.chunk, run.inDamage, (n) => (lease = this.#pool.take(n)).buf);
    } catch (err) {
      if (this.#runs.get(seg.id) !== run) return { records: [], lost: 0 };
      const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
      if (!gone && ++run.failures < MAX_READ_FAILURES) throw err;
      this.#o.log.error({ segment: seg.id, batches: run.count, err: errText(err) }, 'disk buffer: a segment cannot be read: its batches are skipped');
      return { records: [], lost: this.#endRun(run) };
    }
    if (this.#runs.get(seg.id) !== run) return { records: [], lost: 0 }; // dropped meanwhile
    run.failures = 0;
    const records: ReadRecord[] = [];
    let next = c.next;
    let ended = c.eof;
    const held = lease!;
    for (const f of c.frames) {
      const lsn = f.record.lsn;
      if (lsn < this.#ackedBelow || lsn < run.firstLsn) continue; // a copy of one written again after a failed write
      if (records.length === run.count || lsn >= run.endLsn) { next = f.off; ended = true; break; }
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
    const lost = ended || run.from >= seg.size ? this.#endRun(run) : 0;
    if (run.count === 0) this.#runs.delete(seg.id);
    return { records, lost };
  }

  /** the run is over: the records it still counts are not there; returns how many */
  #endRun(run: Run): number {
    const lost = run.count;
    this.#unread -= lost;
    run.count = 0;
    this.#runs.delete(run.seg.id);
    return lost;
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
      try {
        if (sync) await prev.file.datasync();
      } finally {
        await prev.file.close();
      }
    }
    const seg: Segment = { id: ++this.#lastId, size: 0, endLsn: 0 };
    const file = await this.#open(segmentPath(this.#o.dir, seg.id));
    // listed and the writer at once: deleteBelow leaves the writer alone, and deletes an empty segment left by a failure
    this.#segments.push(seg);
    const w = (this.#writer = { seg, file });
    if (sync) {
      try {
        await syncDir(this.#o.dir);
      } catch (err) {
        this.#writer = undefined;
        await file.close().catch(() => undefined);
        throw err;
      }
    }
    return w;
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

function newRun(seg: Segment, from: number, count: number, firstLsn: number, endLsn: number, firstTs: number | null): Run {
  return { seg, from, count, firstLsn, endLsn, firstTs, chunk: READ_CHUNK_BYTES, inDamage: false, failures: 0 };
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
