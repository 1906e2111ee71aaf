// For the tests of what is shipped (the npm package, the Debian packages):
// commands run to completion, and `edgegate demo` from an installed copy,
// watched until its data arrives on the broker it prints.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ROOT } from './gateway.js';
import { waitFor } from './peers.js';

/** the heavy package tests run when this is set (.ci/run sets it, once) */
export const PACKAGES_ENABLED = process.env.EDGEGATE_TEST_PACKAGES === '1';

export function skipPackagesLoudly(test: (name: string, fn: () => void) => void): void {
  test('packages: not built', () => {
    console.warn('\n!!! SKIPPING the package builds and installs: set EDGEGATE_TEST_PACKAGES=1 (.ci/run does)\n');
  });
}

export const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export interface Ran { code: number | null; stdout: string; stderr: string }

/** runs a command to its end; the environment loses what would tie a run to this checkout */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Ran {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 300_000,
    env: { ...process.env, JOURNAL_STREAM: '', NODE_PATH: '', EDGEGATE_CONFIG: '', ...opts.env },
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/**
 * `argv demo`: waits for the banner's mosquitto_sub line, subscribes there,
 * waits for data batches with the serial and OPC UA tags, stops it with
 * SIGTERM and expects exit 0. Returns the number of batches seen.
 */
export async function demoDelivers(argv: string[], opts: { cwd: string; timeoutMs: number }): Promise<number> {
  const [cmd, ...args] = argv;
  const proc = spawn(cmd!, [...args, 'demo', '--duration', String(Math.ceil(opts.timeoutMs / 1000) + 60)], {
    cwd: opts.cwd,
    env: { ...process.env, JOURNAL_STREAM: '', NODE_PATH: '', EDGEGATE_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '', err = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => { children.delete(proc); resolve(code); }));
  const alive = () => {
    if (proc.exitCode !== null) throw new Error(`the demo exited ${proc.exitCode}: ${err.slice(-2000)}${out.slice(-2000)}`);
    return true;
  };
  let client: mqtt.MqttClient | undefined;
  try {
    await waitFor(() => alive() && /mosquitto_sub -h (\S+) -p (\d+)/.test(out), opts.timeoutMs, 'the demo banner', 50);
    const [, host, port] = /mosquitto_sub -h (\S+) -p (\d+)/.exec(out)!;
    client = await mqtt.connectAsync(`mqtt://${host}:${port}`);
    const data: Array<{ readings: Array<{ tag: string }> }> = [];
    client.on('message', (topic, payload) => { if (topic.endsWith('/data')) data.push(JSON.parse(payload.toString())); });
    await client.subscribeAsync('edgegate/demo/#');
    const tags = () => new Set(data.flatMap((b) => b.readings.map((r) => r.tag)));
    await waitFor(() => alive() && data.length >= 2 && tags().has('counter') && tags().has('temperature'), opts.timeoutMs,
      'demo data batches with counter (OPC UA) and temperature (serial)', 50);
    await client.endAsync();
    client = undefined;
    proc.kill('SIGTERM');
    const kill = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(kill);
    if (code !== 0) throw new Error(`the demo exited ${code} on SIGTERM: ${err.slice(-2000)}`);
    return data.length;
  } finally {
    await client?.endAsync(true);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
}
