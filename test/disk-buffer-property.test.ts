// A property of the disk buffer under random write failures: whatever the
// disk does (short writes, ENOSPC, failed syncs, full for a while) and
// whatever the broker does (away, back, in-flight batches requeued), every
// batch acknowledged was handed out in order, and every batch pushed is in
// the end either delivered or counted as dropped: never lost silently, never
// believed on disk when it is not (that would show as damaged_records).
// Seeded: a failure prints the seed that reproduces the sequence of operations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskBuffer } from '../gateway/buffer/disk-buffer.js';
import type { BufferedBatch } from '../gateway/buffer/types.js';
import { drain } from './helpers/buffer-contract.js';
import { FaultyDisk } from './helpers/faulty-disk.js';
import { captureLog, mkBatch } from './helpers/mqtt-fixtures.js';
import { sleep, tempDir, waitFor } from './helpers/peers.js';

/** mulberry32: a small seeded generator */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome { pushed: number; acked: number[]; handedOut: number[]; dropped: number; damaged: number; size: number; shortWrites: number; failedWrites: number }

async function run(seed: number, durability: 'on_outage' | 'always'): Promise<Outcome> {
  const rnd = random(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const tmp = tempDir('edgegate-prop-');
  const disk = new FaultyDisk();
  disk.rule = ({ length }) => {
    const x = rnd();
    if (x < 0.08) return pick(length); // short, maybe 0 bytes
    if (x < 0.12) return 'enospc';
    return undefined;
  };
  const b = await DiskBuffer.open({
    dir: tmp.dir, maxBytes: 96 * 1024, durability, fallbackBytes: 24 * 1024, log: captureLog().log, open: disk.open,
    memoryBytes: 8 * 1024, spillBytes: 4 * 1024, segmentBytes: 12 * 1024, retryMs: 5,
  });
  const acked: number[] = [];
  const handedOut: number[] = [];
  let inflight: BufferedBatch[] = [];
  let seq = 0;
  let online = true;
  b.setOnline(true);
  try {
    for (let op = 0; op < 250; op++) {
      const x = rnd();
      if (x < 0.35) {
        for (let k = pick(12); k >= 0; k--) b.push(mkBatch(++seq, 'd1', pick(600)));
      } else if (x < 0.45) {
        online = !online;
        if (!online) { b.requeue(inflight); inflight = []; } // the connection dropped
        b.setOnline(online);
      } else if (x < 0.52) {
        disk.full = !disk.full;
      } else if (x < 0.55) {
        disk.syncFails = !disk.syncFails;
      } else if (x < 0.8 && online) {
        for (let k = pick(8); k >= 0 && inflight.length < 16; k--) {
          const item = b.next();
          if (!item) break;
          handedOut.push(item.batch.seq);
          inflight.push(item);
        }
      } else if (online && inflight.length > 0) {
        // acknowledgements come in order
        for (const item of inflight.splice(0, 1 + pick(inflight.length))) { acked.push(item.batch.seq); b.ack(item); }
      }
      if (rnd() < 0.3) await sleep(pick(3));
    }
    // the disk works again, the broker is back: everything left goes out
    disk.full = false;
    disk.syncFails = false;
    disk.rule = () => undefined;
    if (!online) b.setOnline(true);
    for (const item of inflight) { acked.push(item.batch.seq); b.ack(item); }
    await waitFor(() => b.stats().mode === 'disk', 5000, 'disk mode again');
    for (const item of await drain(b)) { handedOut.push(item.batch.seq); acked.push(item.batch.seq); }
    const st = b.stats();
    return { pushed: seq, acked, handedOut, dropped: st.dropped_batches, damaged: st.damaged_records, size: b.size, shortWrites: disk.shortWrites, failedWrites: disk.failedWrites };
  } finally {
    await b.close();
    tmp.remove();
  }
}

/** first hand-outs in increasing seq (a requeued batch is handed out again, behind none newer) */
function inOrder(handedOut: number[]): boolean {
  const firsts = handedOut.filter((s, i) => handedOut.indexOf(s) === i);
  return firsts.every((s, i) => i === 0 || s > firsts[i - 1]!);
}

for (const durability of ['on_outage', 'always'] as const) {
  test(`random write failures (${durability}): acknowledged in order, everything delivered or counted as dropped`, async () => {
    const only = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);
    const seeds = only ?? Number(process.env.PROPERTY_SEEDS ?? 12);
    const total = { pushed: 0, dropped: 0, shortWrites: 0, failedWrites: 0 };
    for (let seed = only ?? 1; seed <= seeds; seed++) {
      const o = await run(seed * 7919 + (durability === 'always' ? 1 : 0), durability).catch((err: unknown) => {
        throw new Error(`seed ${seed} (${durability}): ${String(err)}`);
      });
      const where = `seed ${seed} (${durability})`;
      const delivered = new Set(o.acked);
      assert.ok(inOrder(o.handedOut), `${where}: handed out in order`);
      assert.ok(o.acked.every((s, i) => i === 0 || s > o.acked[i - 1]!), `${where}: acknowledged in order, each once`);
      assert.is(o.damaged, 0, `${where}: nothing believed on disk that was not`);
      assert.is(o.size, 0, `${where}: the buffer is empty`);
      assert.is(delivered.size + o.dropped, o.pushed, `${where}: ${delivered.size} delivered + ${o.dropped} dropped of ${o.pushed}`);
      for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += o[k];
    }
    if (only === undefined) assert.ok(total.shortWrites > 0 && total.failedWrites > 0, "the disk did fail");
    console.log(`  [figures] property ${durability}: ${seeds} seeds, ${Object.entries(total).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  });
}

test.run();
