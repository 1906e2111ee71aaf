// The disk buffer beyond the shared contract, in-process and fast: when it
// writes and when not, what survives a stop and a crash, damaged segments,
// the max_size bound, and a disk that cannot be written.
import { appendFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskBuffer, type DiskBufferOptions } from '../gateway/buffer/disk-buffer.js';
import { encodeFrame } from '../gateway/buffer/frames.js';
import { openForAppend, type AppendFile } from '../gateway/buffer/segments.js';
import type { BatchBuffer } from '../gateway/buffer/types.js';
import { buffersAfterEach, take } from './helpers/buffer-contract.js';
import { captureLog, mkBatch } from './helpers/mqtt-fixtures.js';
import { sleep, waitFor } from './helpers/peers.js';

const { newDir, track, untrack } = buffersAfterEach(test, 'edgegate-disk-');

async function buffer(dir: string, over: Partial<DiskBufferOptions> = {}) {
  const cap = captureLog();
  const b = await DiskBuffer.open({ dir, maxBytes: 64 * 1024 * 1024, durability: 'on_outage', fallbackBytes: 1024 * 1024, log: cap.log, ...over });
  track(b);
  return { b, ...cap };
}

const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort();
const diskBytes = (dir: string) => segments(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** something is on disk, and every batch the buffer counts is there (none waits in memory to be written) */
const written = (b: BatchBuffer, dir: string) => diskBytes(dir) > 0 && b.stats().bytes === diskBytes(dir);

/** takes and acknowledges everything the buffer holds, checking each payload is intact; returns the seqs */
async function drainAll(b: BatchBuffer): Promise<number[]> {
  const got = await take(b, b.queued);
  for (const i of got) {
    assert.is((JSON.parse(i.batch.payload) as { seq: number }).seq, i.batch.seq, 'the payload of the batch');
    b.ack(i);
  }
  return got.map((i) => i.batch.seq);
}

/** a crash: the buffer is abandoned without close() */
function abandon(b: DiskBuffer): void {
  untrack(b);
}

test('on_outage with the broker up: batches flow and nothing is written to disk', async () => {
  const dir = newDir();
  const { b } = await buffer(dir);
  b.setOnline(true);
  for (let s = 1; s <= 2000; s++) {
    b.push(mkBatch(s));
    for (const i of await take(b, 1)) b.ack(i);
  }
  await sleep(20);
  assert.equal(segments(dir), []);
  assert.is(b.stats().bytes, 0);
  await b.close();
  assert.equal(readdirSync(dir), [], 'not even a mark file');
});

test('on_outage with the broker away: written as they come; in flight ones too; all back after a restart', async () => {
  const dir = newDir();
  const { b } = await buffer(dir);
  b.setOnline(true);
  for (let s = 1; s <= 5; s++) b.push(mkBatch(s));
  const inflight = await take(b, 3);
  b.ack(inflight[0]!);
  b.setOnline(false);
  for (let s = 6; s <= 10; s++) b.push(mkBatch(s));
  await waitFor(() => segments(dir).length === 1 && written(b, dir), 10_000, 'written');
  abandon(b); // a crash: what was written survives
  const { b: again } = await buffer(dir);
  assert.is(again.size, 9);
  assert.equal(await drainAll(again), range(2, 10), 'the in-flight 2 and 3 included, in order');
});

test('always: a batch is handed out only once it is on disk; a crash loses nothing handed out', async () => {
  const dir = newDir();
  const { b } = await buffer(dir, { durability: 'always' });
  b.setOnline(true);
  b.push(mkBatch(1));
  assert.is(b.next(), undefined, 'not before it is synced');
  const [first] = await take(b, 1);
  assert.is(first!.batch.seq, 1);
  assert.ok(diskBytes(dir) > 0, 'on disk');
  for (let s = 2; s <= 50; s++) b.push(mkBatch(s));
  const got = await take(b, 49);
  for (const i of got.slice(0, 20)) b.ack(i);
  abandon(b);
  const { b: again } = await buffer(dir);
  const seqs = await drainAll(again);
  assert.ok(range(22, 50).every((s) => seqs.includes(s)), 'every unacknowledged batch is back');
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'in order');
});

test('a graceful close keeps exactly what was not acknowledged', async () => {
  const dir = newDir();
  const { b } = await buffer(dir, { durability: 'always' });
  b.setOnline(true);
  for (let s = 1; s <= 100; s++) b.push(mkBatch(s));
  const got = await take(b, 60);
  for (const i of got.slice(0, 40)) b.ack(i);
  await b.close();
  const { b: again } = await buffer(dir);
  assert.equal(await drainAll(again), range(41, 100), 'acknowledged ones are not sent again');
  await again.close();
  const { b: third } = await buffer(dir);
  assert.is(third.size, 0);
});

test('a backlog larger than memory is read back from disk in order, live batches behind it', async () => {
  const dir = newDir();
  const { b } = await buffer(dir, { memoryBytes: 16 * 1024, segmentBytes: 64 * 1024 });
  b.setOnline(false);
  for (let s = 1; s <= 3000; s++) {
    b.push(mkBatch(s, 'd1', 200));
    if (s % 100 === 0) await sleep(1);
  }
  await waitFor(() => segments(dir).length > 3, 10_000, 'more than 3 segments');
  b.setOnline(true);
  const first = await take(b, 1000);
  for (let s = 3001; s <= 3100; s++) b.push(mkBatch(s, 'd1', 200)); // live data meanwhile
  for (const i of first) {
    assert.is((JSON.parse(i.batch.payload) as { seq: number }).seq, i.batch.seq, 'a payload read back from disk');
    b.ack(i);
  }
  const seqs = [...first.map((i) => i.batch.seq), ...await drainAll(b)];
  assert.equal(seqs, range(1, 3100));
  await waitFor(() => segments(dir).length <= 1, 10_000, 'acknowledged segments to be deleted');
});

test('max_size: the oldest segments go, counted and warned about once; the newest are kept', async () => {
  const dir = newDir();
  const { b, lines } = await buffer(dir, { maxBytes: 256 * 1024, segmentBytes: 32 * 1024, memoryBytes: 8 * 1024 });
  b.setOnline(false);
  const N = 2000;
  for (let s = 1; s <= N; s++) {
    b.push(mkBatch(s, 'd1', 500));
    if (s % 50 === 0) await sleep(1);
  }
  // every batch kept is written, every segment dropped is deleted
  const frames = range(1, N).map((s) => encodeFrame(0, mkBatch(s, 'd1', 500)).length);
  await waitFor(() => written(b, dir) && diskBytes(dir) === frames.slice(N - b.size).reduce((n, x) => n + x, 0), 10_000, 'the writes and deletions to land');
  assert.ok(diskBytes(dir) <= 256 * 1024, `${diskBytes(dir)} bytes on disk`);
  const st = b.stats();
  assert.ok(st.dropped_batches > 1000, `dropped ${st.dropped_batches}`);
  assert.is(st.dropped_batches + st.batches, N);
  assert.is(lines.filter((l) => l.level === 'warn' && l.msg?.includes('full')).length, 1, 'one warning per episode');
  b.setOnline(true);
  const kept = await drainAll(b);
  assert.equal(kept, range(N - kept.length + 1, N));
  assert.ok(lines.some((l) => l.level === 'info' && l.msg?.includes('below half full')), 'the end of the episode is logged');
});

/** a buffer with some records in two segments, closed; returns the segment files */
async function filled(dir: string, n: number): Promise<string[]> {
  const { b } = await buffer(dir, { segmentBytes: 8 * 1024 });
  b.setOnline(false);
  for (let s = 1; s <= n; s++) {
    b.push(mkBatch(s, 'd1', 100));
    if (s % 10 === 0) await sleep(1);
  }
  await b.close();
  untrack(b);
  return segments(dir).map((f) => join(dir, f));
}

test('a torn last record (power cut mid-write) is skipped and counted; the rest is delivered', async () => {
  const dir = newDir();
  const files = await filled(dir, 100);
  const last = files[files.length - 1]!;
  truncateSync(last, statSync(last).size - 7);
  const { b, lines } = await buffer(dir);
  assert.is(b.stats().damaged_records, 1);
  assert.ok(lines.some((l) => l.level === 'warn' && l.msg?.includes('damaged')), 'warned');
  assert.equal(await drainAll(b), range(1, 99));
});

test('a corrupt record in the middle (CRC mismatch) and a garbage segment: skipped and counted, the rest delivered', async () => {
  const dir = newDir();
  const files = await filled(dir, 100);
  const first = files[0]!;
  const bytes = readFileSync(first);
  const at = bytes.indexOf('"seq":5,');
  bytes[at + 3] = bytes[at + 3]! ^ 0xff; // inside record 5's payload
  writeFileSync(first, bytes);
  appendFileSync(first, Buffer.from([0xf5, 0xeb, 0x47, 0x42, 1, 2, 3])); // a broken frame in between
  writeFileSync(join(dir, '000000000000.seg'), Buffer.alloc(5000, 0xab));
  const { b } = await buffer(dir);
  const seqs = await drainAll(b);
  assert.equal(seqs, range(1, 100).filter((s) => s !== 5));
  assert.is(b.stats().damaged_records, 3);
});

test('an unwritable buffer dir: open fails with a reason that names it', async () => {
  const dir = newDir();
  writeFileSync(join(dir, 'file'), 'x');
  const where = join(dir, 'file', 'buffer');
  try {
    await buffer(where);
    assert.unreachable('opened');
  } catch (err) {
    assert.match(String(err), /ENOTDIR|EACCES/);
  }
});

test('the disk fails mid-run: memory takes over (bounded), the mode says why; the disk is tried again and used', async () => {
  const dir = newDir();
  let failing = false;
  const flaky = async (path: string): Promise<AppendFile> => {
    const f = await openForAppend(path);
    return {
      write: (...a) => (failing ? Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })) : f.write(...a)),
      datasync: () => f.datasync(),
      truncate: (len) => f.truncate(len),
      close: () => f.close(),
    };
  };
  const modes: string[] = [];
  const { b } = await buffer(dir, { open: flaky, retryMs: 20, fallbackBytes: 20 * 1024, segmentBytes: 16 * 1024, onModeChange: (m) => modes.push(m) });
  b.setOnline(false);
  for (let s = 1; s <= 10; s++) b.push(mkBatch(s, 'd1', 100));
  await waitFor(() => written(b, dir), 10_000, 'written');
  failing = true;
  for (let s = 11; s <= 20; s++) b.push(mkBatch(s, 'd1', 100));
  await waitFor(() => b.stats().mode === 'memory', 10_000, 'memory mode');
  for (let s = 21; s <= 300; s++) {
    b.push(mkBatch(s, 'd1', 100));
    if (s % 20 === 0) await sleep(1);
  }
  assert.match(b.stats().error ?? '', /ENOSPC/);
  assert.ok(b.stats().dropped_batches > 0, 'memory is bounded: the oldest in memory dropped');
  failing = false;
  b.push(mkBatch(301, 'd1', 100));
  await waitFor(() => b.stats().mode === 'disk', 10_000, 'disk again');
  assert.equal(modes, ['memory', 'disk']);
  b.setOnline(true);
  const seqs = await drainAll(b);
  assert.equal(seqs.slice(0, 10), range(1, 10), 'what was on disk first');
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'in order');
  assert.is(seqs[seqs.length - 1], 301);
});

test.run();
