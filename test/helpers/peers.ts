// Real peers (mosquitto, socat, python3 with pymodbus) are required under CI;
// on a developer machine without them a test file skips its cases loudly.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

const found = new Map<string, string | undefined>();

/** the absolute path of a program, or undefined */
export function which(cmd: string): string | undefined {
  if (!found.has(cmd)) {
    const extra = ['/usr/sbin', '/sbin', '/usr/local/sbin'];
    const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { env: { ...process.env, PATH: `${process.env.PATH}:${extra.join(':')}` }, encoding: 'utf8' });
    found.set(cmd, r.status === 0 ? r.stdout.trim() || undefined : undefined);
  }
  return found.get(cmd);
}

/**
 * true when the program is there. Missing under CI: throws (the run fails).
 * Missing elsewhere: prints a loud warning and returns false (skip).
 */
export function requirePeer(cmd: string, why: string): boolean {
  if (which(cmd)) return true;
  const msg = `${cmd} not found: ${why}. Install it (apt-get install ${cmd}).`;
  if (IN_CI) throw new Error(`required peer missing under CI: ${msg}`);
  console.warn(`\n!!! SKIPPING: ${msg}\n`);
  return false;
}

/** a TCP port that was free a moment ago on 127.0.0.1 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** a fresh temp directory and its remover */
export function tempDir(prefix = 'edgegate-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** resolves when cond() is true; rejects after ms with the message */
export async function waitFor(cond: () => boolean, ms: number, what: string, stepMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** a driver's run() in the background: `done` settles either way, outcome() is 'running', 'resolved' or the rejection */
export function runInBackground<C>(driver: { run(ctx: C): Promise<void> }, ctx: C): { done: Promise<void>; outcome(): unknown } {
  let outcome: unknown = 'running';
  const done = driver.run(ctx).then(() => void (outcome = 'resolved'), (e: unknown) => void (outcome = e));
  return { done, outcome: () => outcome };
}
