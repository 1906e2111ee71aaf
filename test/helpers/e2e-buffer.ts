// For the store-and-forward tests: a delivery report by (device, seq), the batches a buffer dir holds
// (read with the buffer's own parser), the stats payload, and a real small filesystem.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFrames } from '../../gateway/buffer/frames.js';
import { latest, type Data, type Sub } from './e2e.js';
import { IN_CI, tempDir } from './peers.js';

export interface Delivery {
  /** data messages received, duplicates included */
  messages: number;
  /** distinct (device, seq) */
  batches: number;
  /** messages that repeated a (device, seq) already received, with the same payload */
  duplicates: number;
  /** a (device, seq) received with two different payloads: must never happen */
  conflicting: number;
  /** first arrivals whose seq is not above the previous first arrival */
  outOfOrder: number;
  /** counter values of the distinct batches, in seq order */
  values: number[];
  /** values that appear in two distinct batches: must never happen */
  repeatedValues: number;
}

/** judges one device's data messages, in arrival order */
export function delivery(batches: Data[]): Delivery {
  const bySeq = new Map<number, string>();
  let duplicates = 0, conflicting = 0, outOfOrder = 0, last = 0;
  for (const b of batches) {
    const text = JSON.stringify(b);
    const seen = bySeq.get(b.seq);
    if (seen !== undefined) {
      duplicates++;
      if (seen !== text) conflicting++;
      continue;
    }
    if (b.seq <= last) outOfOrder++;
    last = b.seq;
    bySeq.set(b.seq, text);
  }
  const values = [...bySeq.entries()].sort((a, b) => a[0] - b[0])
    .flatMap(([, text]) => (JSON.parse(text) as Data).readings.filter((r) => r.tag === 'n').map((r) => r.value as number));
  return { messages: batches.length, batches: bySeq.size, duplicates, conflicting, outOfOrder, values, repeatedValues: values.length - new Set(values).size };
}

/** 1..n that are not in values */
export function missing(values: number[], n: number): number[] {
  const have = new Set(values);
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (!have.has(i)) out.push(i);
  return out;
}

/** the batches in the segment files of a buffer dir, as the gateway would replay them */
export function batchesOnDisk(dir: string): Data[] {
  const out: Data[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.seg')).sort()) {
    parseFrames(readFileSync(join(dir, name)), 0, (r) => out.push(JSON.parse(r.batch.payload) as Data));
  }
  return out;
}

export interface BufferStatsPayload { bytes: number; batches: number; dropped_batches: number; oldest_ts: number | null; damaged_records: number; mode: string; error?: string }

export function bufferStats(sub: Sub): BufferStatsPayload | undefined {
  return (latest(sub, 'edgegate/gw1/stats') as { buffer?: BufferStatsPayload } | undefined)?.buffer;
}

/** one line for the record of what a fault test saw */
export function figures(what: string, f: Record<string, number>): void {
  console.log(`  [figures] ${what}: ${Object.entries(f).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}

/**
 * A tmpfs of `size` (e.g. "3m") on a fresh directory: a filesystem that
 * really fills. Mounting needs root: under CI that is a requirement (CI runs
 * as root); elsewhere the test is skipped, loudly. unmount() also removes
 * the directory; call it once whatever wrote there has stopped.
 */
export function smallFilesystem(size: string, why: string): { dir: string; unmount(): void } | undefined {
  if (process.getuid?.() !== 0) {
    const msg = `mounting a ${size} tmpfs needs root: ${why}`;
    if (IN_CI) throw new Error(`required under CI: ${msg}`);
    console.warn(`\n!!! SKIPPING: ${msg}\n`);
    return undefined;
  }
  const t = tempDir('edgegate-smallfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', t.dir], { stdio: 'pipe' });
  } catch (err) {
    t.remove();
    throw new Error(`cannot mount a tmpfs on ${t.dir}: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
  return {
    dir: t.dir,
    unmount() {
      execFileSync('umount', [t.dir], { stdio: 'pipe' });
      t.remove();
    },
  };
}
