// Segment files: append-only files of frames (frames.ts), named by a number
// that grows, so that their order is the order of the records in them. Here:
// naming and listing, reading frames from a file in chunks, scanning a file at
// startup, appending, and small JSON state files replaced atomically.
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { HEADER_BYTES, MAX_BODY_BYTES, parseFrames, type StoredRecord } from './frames.js';

const SUFFIX = '.seg';

export function segmentPath(dir: string, id: number): string {
  return join(dir, `${String(id).padStart(12, '0')}${SUFFIX}`);
}

/** the ids of the segment files in dir, oldest first */
export function listSegments(dir: string): number[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(SUFFIX) && /^\d+$/.test(n.slice(0, -SUFFIX.length)))
    .map((n) => Number(n.slice(0, -SUFFIX.length)))
    .sort((a, b) => a - b);
}

export interface FrameAt {
  record: StoredRecord;
  /** where the frame starts in the file, and where it ends */
  off: number;
  end: number;
}

export interface Chunk {
  frames: FrameAt[];
  /** the file offset to continue from */
  next: number;
  damaged: number;
  inDamage: boolean;
  /** the file ended before the size it was believed to have: nothing more is there */
  eof: boolean;
}

/** one read buffer, used again for every chunk: for reads that keep nothing of it (the startup scan) */
export class Scratch {
  #buf = Buffer.alloc(0);

  get(bytes: number): Buffer {
    if (this.#buf.length < bytes) this.#buf = Buffer.allocUnsafeSlow(bytes);
    return this.#buf.subarray(0, bytes);
  }
}

/**
 * Read buffers used again instead of allocated per chunk, for the replay: it
 * reads hundreds of MB in 1 MiB chunks, faster than the garbage collector
 * frees buffers, and RSS grew by tens of MB. A chunk's records are views of
 * it, so it comes back once the last of them is released (handed out, its
 * payload decoded then, or dropped).
 */
export class ReadPool {
  #free: Buffer[] = [];

  constructor(private readonly chunkBytes: number, private readonly keep = 4) {}

  take(bytes: number): Lease {
    const buf = bytes <= this.chunkBytes ? this.#free.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes) : Buffer.allocUnsafeSlow(bytes);
    return { buf, refs: 0 };
  }

  /** one record viewing the chunk is done with it */
  release(lease: Lease): void {
    if (--lease.refs > 0) return;
    if (lease.buf.length === this.chunkBytes && this.#free.length < this.keep) this.#free.push(lease.buf);
  }
}

/** a read buffer and the number of records still viewing it */
export interface Lease { readonly buf: Buffer; refs: number }

/**
 * Reads the frames in [from, size) of an open segment, about `chunkBytes` of
 * it. A frame larger than the chunk makes no progress: the caller reads again
 * with a larger chunk (grownChunk).
 */
export async function readChunk(
  fh: FileHandle, from: number, size: number, chunkBytes: number, inDamage: boolean, alloc: (bytes: number) => Buffer,
): Promise<Chunk> {
  const want = Math.max(0, Math.min(chunkBytes, size - from));
  const buf = alloc(want).subarray(0, want);
  let got = 0;
  while (got < want) {
    const { bytesRead } = await fh.read(buf, got, want - got, from + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  // a file shorter than believed ends here
  const end = got < want ? from + got : size;
  const frames: FrameAt[] = [];
  const r = parseFrames(buf.subarray(0, got), end - from - got, (record, off, bytes) => {
    frames.push({ record, off: from + off, end: from + off + bytes });
  }, inDamage);
  return { frames, next: from + r.consumed, damaged: r.damaged, inDamage: r.inDamage, eof: got < want };
}

/** the chunk size that lets the frame at the start of buf through (for frames larger than a chunk) */
export function grownChunk(chunkBytes: number): number {
  return Math.min(chunkBytes * 2, HEADER_BYTES + MAX_BODY_BYTES);
}

export interface SegmentScan {
  size: number;
  /** records at or above the acknowledged mark */
  records: number;
  firstOff: number;
  firstLsn: number;
  firstTs: number | null;
  /** the highest lsn in the file, acknowledged or not (-1: none) */
  maxLsn: number;
  damaged: number;
}

/** reads a whole segment at startup: counts its records and the damage */
export async function scanSegment(path: string, ackedBelow: number, chunkBytes: number): Promise<SegmentScan> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const s: SegmentScan = { size, records: 0, firstOff: size, firstLsn: Infinity, firstTs: null, maxLsn: -1, damaged: 0 };
    let from = 0;
    let chunk = chunkBytes;
    let inDamage = false;
    const scratch = new Scratch();
    while (from < size) {
      const c = await readChunk(fh, from, size, chunk, inDamage, (n) => scratch.get(n));
      for (const f of c.frames) {
        s.maxLsn = Math.max(s.maxLsn, f.record.lsn);
        if (f.record.lsn < ackedBelow) continue;
        if (s.records++ === 0) {
          s.firstOff = f.off;
          s.firstLsn = f.record.lsn;
          s.firstTs = f.record.batch.firstTs;
        }
      }
      s.damaged += c.damaged;
      inDamage = c.inDamage;
      chunk = c.next === from ? grownChunk(chunk) : chunkBytes;
      from = c.next;
    }
    return s;
  } finally {
    await fh.close();
  }
}

/** the few calls the writer makes on a segment file: a seam for tests of a failing disk */
export interface AppendFile {
  /** may write fewer bytes than asked without an error (a filling filesystem does) */
  write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export type OpenForAppend = (path: string) => Promise<AppendFile>;

/**
 * A new file, appended to by positional writes at the size the writer knows
 * it holds. Not O_APPEND: with it the kernel writes at the real end whatever
 * the position says, and after a short write the offsets the writer computes
 * and the file part ways. Exclusive: a file of that name is never overwritten.
 */
export const openForAppend: OpenForAppend = (path) => open(path, 'wx');

/**
 * Writes buf at position, again for the rest after a short write. Returns the
 * bytes that reached the file and the error that stopped it, if any.
 */
export async function writeAll(file: AppendFile, buf: Buffer, position: number): Promise<{ written: number; error?: unknown }> {
  let written = 0;
  while (written < buf.length) {
    let n: number;
    try {
      n = (await file.write(buf, written, buf.length - written, position + written)).bytesWritten;
    } catch (error) {
      return { written, error };
    }
    if (n <= 0) return { written, error: new Error(`short write: ${written} of ${buf.length} bytes, then none`) };
    written += n;
  }
  return { written };
}

/** makes a new directory entry durable (a power cut must not lose a created file) */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** small state files: replaced whole by rename, so a reader sees the old or the new one */
export async function writeJsonAtomic(path: string, value: unknown, durable: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  if (durable) {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(value));
      await fh.sync();
    } finally {
      await fh.close();
    }
  } else {
    await writeFile(tmp, JSON.stringify(value));
  }
  await rename(tmp, path);
}

export function writeJsonAtomicSync(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(value));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** the parsed file, undefined when it is missing; throws on garbage */
export function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as unknown;
}
