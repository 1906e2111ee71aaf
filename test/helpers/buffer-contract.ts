// The contract every BatchBuffer passes (in the manner of MQTT.js's
// abstract_store tests): FIFO order per device, nothing leaves before it is
// acknowledged, requeue puts batches back at the head, the bound drops the
// oldest and counts them, stats follow. A buffer may answer next() with
// undefined while a read or sync is on its way: take() waits for onReadable.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame } from '../../gateway/buffer/frames.js';
import type { BatchBuffer, BufferedBatch } from '../../gateway/buffer/types.js';
import type { Batch } from '../../gateway/types.js';
import { mkBatch } from './mqtt-fixtures.js';
import { tempDir, waitFor } from './peers.js';

/**
 * The temp dirs and open buffers of a test file: after each test the buffers
 * still tracked are closed and the dirs removed. `untrack` leaves a buffer
 * open (a crash), or one the test closed itself.
 */
export function buffersAfterEach(t: { after: { each(fn: () => Promise<void>): void } }, prefix: string) {
  const dirs: Array<() => void> = [];
  const open: Array<{ close(): Promise<void> }> = [];
  t.after.each(async () => {
    for (const b of open.splice(0)) await b.close();
    for (const remove of dirs.splice(0)) remove();
  });
  return {
    newDir(): string {
      const d = tempDir(prefix);
      dirs.push(d.remove);
      return d.dir;
    },
    track<B extends { close(): Promise<void> }>(b: B): B {
      open.push(b);
      return b;
    },
    untrack(b: { close(): Promise<void> }): void {
      const i = open.indexOf(b);
      if (i >= 0) open.splice(i, 1);
    },
  };
}

export interface ContractSubject {
  buffer: BatchBuffer;
  /** bytes of payload the bound lets in, roughly */
  maxBytes: number;
  cleanup(): Promise<void>;
}

export type MakeBuffer = (opts: { maxBytes: number }) => Promise<ContractSubject>;

/** the next n batches, waiting for the buffer where it needs time */
export async function take(b: BatchBuffer, n: number, ms = 15_000): Promise<BufferedBatch[]> {
  const out: BufferedBatch[] = [];
  const end = Date.now() + ms;
  while (out.length < n) {
    const item = b.next();
    if (item) { out.push(item); continue; }
    if (Date.now() > end) throw new Error(`take: got ${out.length} of ${n} batches (queued ${b.queued})`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 20);
      function done() { clearTimeout(timer); b.onReadable = undefined; resolve(); }
      b.onReadable = done;
    });
  }
  return out;
}

/**
 * Hands out and acknowledges until the buffer is empty, as it finds them
 * (batches it finds missing or drops meanwhile leave it too); throws when
 * nothing comes for ms: a buffer that stalls fails here.
 */
export async function drain(b: BatchBuffer, ms = 5000): Promise<BufferedBatch[]> {
  const out: BufferedBatch[] = [];
  let end = Date.now() + ms;
  while (b.size > 0) {
    const item = b.next();
    if (item) {
      out.push(item);
      b.ack(item);
      end = Date.now() + ms;
      continue;
    }
    if (Date.now() > end) throw new Error(`stalled: ${out.length} handed out, ${b.queued} queued, nothing more for ${ms} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 20);
      function done() { clearTimeout(timer); b.onReadable = undefined; resolve(); }
      b.onReadable = done;
    });
  }
  return out;
}

const seqs = (items: BufferedBatch[]) => items.map((i) => i.batch.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Resolves once nothing the buffer holds is waiting to be written: the bytes
 * it reports are exactly those of the `queued` newest of `pushed`, as frames
 * when it keeps them on disk, as payloads when it keeps them in memory. Until
 * then a disk buffer may still drop its oldest segments to make room.
 */
async function settled(b: BatchBuffer, pushed: readonly Batch[], ms = 15_000): Promise<void> {
  const disk = pushed.map((x) => encodeFrame(0, x).length);
  const memory = pushed.map((x) => Buffer.byteLength(x.payload));
  const expected = () => (b.stats().mode === 'disk' ? disk : memory).slice(pushed.length - b.queued).reduce((n, x) => n + x, 0);
  try {
    await waitFor(() => b.size === b.queued && b.stats().bytes === expected(), ms, 'the buffer to settle');
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${b.queued} queued, ${b.stats().bytes} bytes, ${expected()} expected`);
  }
}

export function bufferContract(name: string, make: MakeBuffer): void {
  const t = suite(`${name}: BatchBuffer contract`);
  let subject: ContractSubject | undefined;
  const open = async (maxBytes = 64 * 1024 * 1024) => (subject = await make({ maxBytes })).buffer;
  t.after.each(async () => {
    await subject?.cleanup();
    subject = undefined;
  });

  t('hands batches out oldest first, each once', async () => {
    const b = await open();
    for (let s = 1; s <= 100; s++) b.push(mkBatch(s));
    assert.is(b.size, 100);
    const got = await take(b, 100);
    assert.equal(seqs(got), range(1, 100));
    assert.is(b.next(), undefined);
    assert.is(b.queued, 0);
    assert.is(b.size, 100, 'handed out is not delivered');
  });

  t('a batch leaves only when acknowledged; stats follow', async () => {
    const b = await open();
    for (let s = 1; s <= 10; s++) b.push(mkBatch(s));
    const got = await take(b, 4);
    assert.is(b.stats().oldest_ts, got[0]!.batch.firstTs);
    b.ack(got[1]!);
    b.ack(got[0]!);
    assert.is(b.size, 8);
    assert.is(b.stats().batches, 8);
    assert.is(b.stats().oldest_ts, got[2]!.batch.firstTs);
    b.ack(got[0]!); // twice: no effect
    assert.is(b.size, 8);
    for (const i of got.slice(2)) b.ack(i);
    for (const i of await take(b, 6)) b.ack(i);
    assert.is(b.size, 0);
    const s = b.stats();
    assert.equal({ batches: s.batches, oldest_ts: s.oldest_ts, dropped: s.dropped_batches }, { batches: 0, oldest_ts: null, dropped: 0 });
  });

  t('requeue puts batches back at the head, in order', async () => {
    const b = await open();
    for (let s = 1; s <= 10; s++) b.push(mkBatch(s));
    const got = await take(b, 6);
    b.ack(got[0]!);
    b.ack(got[1]!);
    b.requeue(got.slice(2));
    assert.is(b.size, 8);
    assert.is(b.queued, 8);
    const again = await take(b, 8);
    assert.equal(seqs(again), range(3, 10));
  });

  t('many devices interleaved with acks: per-device order, nothing lost', async () => {
    const b = await open();
    const devices = ['a', 'b', 'c'];
    const seen = new Map<string, number[]>(devices.map((d) => [d, []]));
    let pushed = 0;
    for (let round = 1; round <= 30; round++) {
      for (let k = 1; k <= 10; k++) for (const d of devices) { b.push(mkBatch(round * 100 + k, d)); pushed++; }
      for (const i of await take(b, 15)) { seen.get(i.batch.device)!.push(i.batch.seq); b.ack(i); }
    }
    for (const i of await take(b, b.queued)) { seen.get(i.batch.device)!.push(i.batch.seq); b.ack(i); }
    assert.is([...seen.values()].reduce((n, s) => n + s.length, 0), pushed);
    for (const [d, s] of seen) assert.ok(s.every((x, i) => i === 0 || x > s[i - 1]!), `device ${d} in order`);
    assert.is(b.size, 0);
  });

  t('full: the oldest batches are dropped and counted, the newest kept in order', async () => {
    const b = await open(256 * 1024);
    const max = subject!.maxBytes;
    const one = Buffer.byteLength(mkBatch(1, 'd1', 1000).payload);
    const n = Math.ceil((4 * max) / one);
    const pushed = range(1, n).map((s) => mkBatch(s, 'd1', 1000));
    // in steps, as batches come in: a disk buffer writes each step before the
    // next one comes, so that no write is larger than a step
    for (let from = 0; from < n; from += 20) {
      for (const batch of pushed.slice(from, from + 20)) b.push(batch);
      await settled(b, pushed.slice(0, from + 20));
    }
    const kept = await take(b, b.queued);
    const st = b.stats();
    assert.ok(st.dropped_batches > 0, 'dropped some');
    assert.is(st.dropped_batches + kept.length, n, 'every batch kept or counted');
    assert.ok(kept.length * one <= 2 * max, `kept ${kept.length * one} bytes for a bound of ${max}`);
    assert.equal(seqs(kept), range(n - kept.length + 1, n), 'the newest, in order');
  });

  t('after close nothing more is taken in', async () => {
    const b = await open();
    b.push(mkBatch(1));
    await b.close();
    b.push(mkBatch(2));
    assert.ok(b.size <= 1);
  });

  t.run();
}
