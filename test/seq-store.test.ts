// seq per device across restarts: exact after a graceful stop, a gap (never a
// reuse) after a crash, and no disk write per batch.
import { copyFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SeqStore } from '../gateway/buffer/seq-store.js';
import { captureLog } from './helpers/mqtt-fixtures.js';
import { sleep, tempDir, waitFor } from './helpers/peers.js';

const dirs: Array<() => void> = [];
test.after.each(() => { for (const remove of dirs.splice(0)) remove(); });

function newDir(): string {
  const { dir } = tempDir('edgegate-seq-');
  // a store abandoned by a simulated crash may still be writing into it
  dirs.push(() => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }));
  return dir;
}

/**
 * What a crash leaves for the next start: the files as they are at this
 * moment, in a fresh dir. The abandoned store lives on in this process and
 * may finish a background write later, which a crashed process never does.
 */
function afterCrash(dir: string): string {
  const next = newDir();
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.tmp')) continue; // a write cut short: never renamed into place
    try {
      copyFileSync(join(dir, f), join(next, f));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return next;
}

const store = (dir: string, range = 100) => SeqStore.open({ dir, log: captureLog().log, range });
/** the state files and their mtimes (a write on its way is left out until its rename) */
const mtimes = (dir: string) => readdirSync(dir).filter((f) => !f.endsWith('.tmp')).flatMap((f) => {
  try {
    return [`${f}@${statSync(join(dir, f)).mtimeMs}`];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; // replaced meanwhile
    throw err;
  }
}).sort();

test('counts from 1 per device; a graceful stop continues exactly', async () => {
  const dir = newDir();
  const s = store(dir);
  assert.equal([s.next('a'), s.next('a'), s.next('b'), s.next('a')], [1, 2, 1, 3]);
  await s.close();
  const again = store(dir);
  assert.equal([again.next('a'), again.next('b'), again.next('c')], [4, 2, 1]);
  await again.close();
});

test('a crash skips to the end of the reserved range: a gap, never a reuse', async () => {
  let dir = newDir();
  const used = new Set<number>();
  for (let run = 0; run < 5; run++) {
    const s = store(dir);
    for (let k = 0; k < 137; k++) {
      const n = s.next('a');
      assert.not.ok(used.has(n), `seq ${n} used twice`);
      used.add(n);
      if (k % 40 === 0) await sleep(5); // background reservations land
    }
    // no close(): a crash
    dir = afterCrash(dir);
  }
  const s = store(dir);
  assert.ok(s.next('a') > Math.max(...used));
});

test('no disk write per batch: only one per half range', async () => {
  const dir = newDir();
  const s = store(dir, 1000);
  s.prepare('a');
  await sleep(20);
  const before = mtimes(dir);
  for (let k = 0; k < 400; k++) s.next('a');
  await sleep(50);
  assert.equal(mtimes(dir), before, 'nothing written within the first half of the range');
  for (let k = 0; k < 200; k++) s.next('a');
  await waitFor(() => mtimes(dir).join() !== before.join(), 10_000, 'the next range to be reserved in the background');
  await s.close();
});

test('an unreadable or unwritable store: counts in memory and says why', async () => {
  const dir = newDir();
  writeFileSync(join(dir, 'file'), 'x');
  const { log, lines } = captureLog();
  const s = SeqStore.open({ dir: join(dir, 'file', 'state'), log });
  assert.equal([s.next('a'), s.next('a')], [1, 2]);
  assert.match(s.error ?? '', /ENOTDIR|EACCES/);
  assert.is(lines.filter((l) => l.level === 'error').length, 1);
  await s.close();
  const garbled = newDir();
  writeFileSync(join(garbled, 'seq.json'), '{"devices":{"a":');
  const g = SeqStore.open({ dir: garbled, log: captureLog().log });
  assert.ok(g.error !== undefined, 'a garbled file is reported');
});

test.run();
