#!/usr/bin/env node
// Runs each compiled test file (dist/test/**/*.test.js) in its own process, so
// a file that hangs or leaks cannot take the others down, then prints one
// summary line `N passed, N failed, N skipped`. Zero tests run is a failure.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
const filter = process.argv[2];
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 300_000);

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = find(testDir).filter((f) => !filter || f.includes(filter));
let passed = 0, failed = 0, skipped = 0;
const failures = [];

for (const file of files) {
  const name = relative(root, file);
  process.stdout.write(`\n# ${name}\n`);
  const started = Date.now();
  const result = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    const timer = setTimeout(() => { out += `\n[runner] ${name} timed out after ${FILE_TIMEOUT_MS} ms\n`; child.kill('SIGKILL'); }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
  const total = Number(/Total:\s+(\d+)/.exec(result.out)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(result.out)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(result.out)?.[1] ?? 0);
  let bad = total - ok - skip;
  if (result.code !== 0 && bad === 0) bad = 1; // crashed, timed out or failed outside a test
  passed += ok; skipped += skip; failed += bad;
  if (bad > 0) failures.push(`${name} (exit ${result.code ?? result.signal})`);
  process.stdout.write(`# ${name}: ${ok} passed, ${bad} failed, ${skip} skipped in ${Date.now() - started} ms\n`);
}

if (failures.length) process.stdout.write(`\nFailed files:\n  ${failures.join('\n  ')}\n`);
if (passed + failed === 0) {
  process.stdout.write('\nno tests ran\n0 passed, 1 failed\n');
  process.exit(1);
}
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
