// The disk buffer on a disk that fills: short writes (which a filling
// filesystem returns without an error), ENOSPC, space again, records that are
// not where the buffer put them. Whatever the disk does, nothing is believed
// on disk that is not, delivery never stalls, and the mode recovers by itself.
import { readdirSync, readFileSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskBuffer, type DiskBufferOptions } from '../gateway/buffer/disk-buffer.js';
import { encodeFrame, parseFrames } from '../gateway/buffer/frames.js';
import type { Batch } from '../gateway/types.js';
import { buffersAfterEach, drain, take } from './helpers/buffer-contract.js';
import { FaultyDisk } from './helpers/faulty-disk.js';
import { captureLog, mkBatch } from './helpers/mqtt-fixtures.js';
import { sleep, waitFor } from './helpers/peers.js';

const { newDir, track } = buffersAfterEach(test, 'edgegate-full-');

async function buffer(dir: string, disk: FaultyDisk, over: Partial<DiskBufferOptions> = {}) {
  const cap = captureLog();
  const modes: string[] = [];
  const b = await DiskBuffer.open({
    dir, maxBytes: 64 * 1024 * 1024, durability: 'on_outage', fallbackBytes: 1024 * 1024, log: cap.log, open: disk.open,
    memoryBytes: 8 * 1024, segmentBytes: 16 * 1024, retryMs: 20, onModeChange: (m) => modes.push(m), ...over,
  });
  track(b);
  return { b, modes, ...cap };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const batches = (from: number, to: number) => range(from, to).map((s) => mkBatch(s, 'd1', 200));
const frameBytes = (list: Batch[]) => list.reduce((n, x) => n + encodeFrame(0, x).length, 0);
const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => join(dir, n));

/** what the segment files hold: the seqs of their whole records, and the damage */
function onDisk(dir: string): { seqs: number[]; damaged: number; bytes: number } {
  const seqs: number[] = [];
  let damaged = 0, bytes = 0;
  for (const f of segments(dir)) {
    const buf = readFileSync(f);
    bytes += buf.length;
    damaged += parseFrames(buf, 0, (r) => seqs.push(r.batch.seq)).damaged;
  }
  return { seqs, damaged, bytes };
}

/** pushes in steps of 20, a tick apart, as batches come in */
async function pushAll(b: DiskBuffer, list: Batch[]): Promise<void> {
  for (let i = 0; i < list.length; i++) {
    b.push(list[i]!);
    if (i % 20 === 19) await sleep(1);
  }
}

/** takes and acknowledges everything, checking each payload; a buffer that stalls fails here */
async function drainAll(b: DiskBuffer): Promise<number[]> {
  const got = await drain(b);
  for (const i of got) assert.is((JSON.parse(i.batch.payload) as { seq: number }).seq, i.batch.seq, 'the payload of the batch');
  return got.map((i) => i.batch.seq);
}

test('a short write with no error: the rest is written behind it, every batch read back', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const all = batches(1, 200);
  disk.rule = ({ write }) => (write === 0 ? frameBytes(all.slice(0, 80)) + 37 : undefined);
  const { b } = await buffer(dir, disk, { segmentBytes: 1024 * 1024 });
  b.setOnline(false);
  for (const x of all) b.push(x); // one group, one write
  await waitFor(() => onDisk(dir).seqs.length === 200, 20_000, 'everything written');
  assert.is(disk.shortWrites, 1);
  assert.equal(onDisk(dir), { seqs: range(1, 200), damaged: 0, bytes: frameBytes(all) });
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 200));
  assert.equal({ mode: b.stats().mode, damaged: b.stats().damaged_records, dropped: b.stats().dropped_batches }, { mode: 'disk', damaged: 0, dropped: 0 });
});

test('a short write in the middle of a group, then ENOSPC: the batches it did not cover stay in memory, none believed on disk', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const all = batches(1, 200);
  disk.rule = ({ write }) => (write === 0 ? frameBytes(all.slice(0, 80)) + 37 : write === 1 ? 'enospc' : undefined);
  const { b, modes } = await buffer(dir, disk, { segmentBytes: 1024 * 1024, retryMs: 60_000 });
  b.setOnline(false);
  for (const x of all) b.push(x);
  await waitFor(() => b.stats().mode === 'memory', 20_000, 'memory mode');
  assert.match(b.stats().error ?? '', /ENOSPC/);
  assert.equal(modes, ['memory']);
  // the torn 81st frame is gone: the file holds exactly the 80 whole ones
  assert.equal(onDisk(dir), { seqs: range(1, 80), damaged: 0, bytes: frameBytes(all.slice(0, 80)) });
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 200), 'the 80 read back from disk, the rest from memory, in order');
  assert.equal({ damaged: b.stats().damaged_records, dropped: b.stats().dropped_batches, size: b.size }, { damaged: 0, dropped: 0, size: 0 });
});

test('a short write that ends at a frame boundary, then ENOSPC: the whole frames are on disk, the rest in memory', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const all = batches(1, 100);
  disk.rule = ({ write }) => (write === 0 ? frameBytes(all.slice(0, 40)) : write === 1 ? 'enospc' : undefined);
  const { b } = await buffer(dir, disk, { segmentBytes: 1024 * 1024, retryMs: 60_000 });
  b.setOnline(false);
  for (const x of all) b.push(x);
  await waitFor(() => b.stats().mode === 'memory', 20_000, 'memory mode');
  assert.equal(onDisk(dir), { seqs: range(1, 40), damaged: 0, bytes: frameBytes(all.slice(0, 40)) });
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 100));
  assert.is(b.stats().damaged_records, 0);
});

test('a torn first frame of a fresh segment, then ENOSPC, then space: nothing of it believed, the next segment used', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  disk.rule = ({ file, write }) => (file === 2 && write === 0 ? 100 : file === 2 ? 'enospc' : undefined);
  const { b, modes } = await buffer(dir, disk);
  b.setOnline(false);
  await pushAll(b, batches(1, 300)); // 16 KiB segments: the second one is opened after ~60 batches
  await waitFor(() => modes.length === 2, 30_000, 'memory mode, then disk again');
  assert.equal(modes, ['memory', 'disk']);
  await waitFor(() => onDisk(dir).seqs.length === 300, 30_000, 'everything written once there is space');
  const d = onDisk(dir);
  assert.equal(d.seqs, range(1, 300), 'each batch on disk once, in order');
  assert.is(d.damaged, 0, 'no torn frame left in a file');
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 300));
  assert.is(b.stats().damaged_records, 0);
});

test('ENOSPC, then space again, the broker away and back: delivered in order or counted as dropped; the mode recovers by itself', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const { b, modes } = await buffer(dir, disk, { fallbackBytes: 20 * 1024 });
  b.setOnline(false);
  await pushAll(b, batches(1, 50));
  await waitFor(() => onDisk(dir).seqs.length === 50, 20_000, 'written');
  disk.full = true;
  await pushAll(b, batches(51, 400));
  await waitFor(() => b.stats().mode === 'memory', 20_000, 'memory mode');
  assert.match(b.stats().error ?? '', /ENOSPC/);
  assert.ok(b.stats().dropped_batches > 0, 'memory is bounded: the oldest in memory dropped');
  assert.equal(onDisk(dir).damaged, 0);
  disk.full = false;
  // no push, no write: the probe alone brings the disk back
  await waitFor(() => b.stats().mode === 'disk', 20_000, 'disk mode again');
  assert.equal(modes, ['memory', 'disk']);
  assert.is(b.stats().error, undefined);
  await pushAll(b, batches(401, 450));
  b.setOnline(true);
  const seqs = await drainAll(b);
  assert.equal(seqs.slice(0, 50), range(1, 50), 'what was on disk first');
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'in order');
  assert.equal(seqs.slice(-50), range(401, 450), 'the newest');
  const st = b.stats();
  assert.is(seqs.length + st.dropped_batches, 450, 'every batch delivered or counted as dropped');
  assert.is(st.damaged_records, 0);
});

test('the broker back before memory fills: the mode and the error recover without a write', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const { b, modes } = await buffer(dir, disk);
  b.setOnline(true);
  await pushAll(b, batches(1, 20));
  for (const i of await take(b, 20)) b.ack(i);
  b.setOnline(false);
  disk.full = true;
  await pushAll(b, batches(21, 60));
  await waitFor(() => b.stats().mode === 'memory', 20_000, 'memory mode');
  b.setOnline(true);
  assert.equal(await drainAll(b), range(21, 60));
  disk.full = false;
  await waitFor(() => b.stats().mode === 'disk', 20_000, 'disk mode again');
  assert.equal(modes, ['memory', 'disk']);
  assert.is(b.stats().error, undefined);
  assert.equal(readdirSync(dir).filter((n) => !n.endsWith('.seg')), [], 'the probe leaves nothing behind');
});

test('the probe stops at close', async () => {
  const dir = newDir();
  const disk = new FaultyDisk();
  const { b } = await buffer(dir, disk, { retryMs: 5 });
  b.setOnline(false);
  disk.full = true;
  await pushAll(b, batches(1, 10));
  await waitFor(() => disk.files >= 3, 20_000, 'a few probes');
  await b.close();
  const files = disk.files;
  await sleep(100);
  assert.is(disk.files, files);
});

/** a backlog on disk, most of it only on disk (evicted from memory) */
async function backlog(dir: string, disk: FaultyDisk) {
  const r = await buffer(dir, disk);
  r.b.setOnline(false);
  await pushAll(r.b, batches(1, 300));
  await waitFor(() => onDisk(dir).seqs.length === 300, 20_000, 'written');
  const files = segments(dir);
  assert.ok(files.length >= 4, `${files.length} segments`);
  return { ...r, files };
}

test('records gone from a segment behind the buffer\'s back: skipped and counted, reading goes on', async () => {
  const dir = newDir();
  const { b, files, lines } = await backlog(dir, new FaultyDisk());
  const second = files[1]!;
  const before = onDisk(dir).seqs;
  truncateSync(second, Math.floor(statSync(second).size / 2) + 5); // in the middle of a frame
  const lost = before.filter((s) => !onDisk(dir).seqs.includes(s));
  assert.ok(lost.length > 0);
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 300).filter((s) => !lost.includes(s)));
  assert.is(b.stats().damaged_records, lost.length);
  assert.is(b.size, 0);
  assert.ok(lines.some((l) => l.level === 'warn' && String(l.msg).includes('missing')), 'warned');
});

test('a segment file that vanished: its records counted, the rest delivered', async () => {
  const dir = newDir();
  const { b, files } = await backlog(dir, new FaultyDisk());
  const before = onDisk(dir).seqs;
  unlinkSync(files[1]!);
  const lost = before.filter((s) => !onDisk(dir).seqs.includes(s));
  b.setOnline(true);
  assert.equal(await drainAll(b), range(1, 300).filter((s) => !lost.includes(s)));
  assert.is(b.stats().damaged_records, lost.length);
});

test.run();
