// Runs the real CLI (`node dist/gateway/cli/main.js …`) as a child process and
// makes sure it is gone when the test file ends, whatever happened.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'dist', 'gateway', 'cli', 'main.js');

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface CliProcess {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** pino lines parsed from stdout */
  logs: () => Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after ms; resolves on exit */
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * launcher: the command that runs Node instead of this very Node (e.g. an
 * emulator and a foreign Node build); cli: another copy of main.js
 */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; launcher?: string[]; cli?: string } = {}): CliProcess {
  const [cmd, ...pre] = opts.launcher ?? [process.execPath];
  const proc = spawn(cmd!, [...pre, '--enable-source-maps', opts.cli ?? CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    // a test run started under systemd would otherwise switch the gateway's logs from JSON to journal lines
    env: { ...process.env, JOURNAL_STREAM: undefined, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '', err = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('close', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    logs: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }),
    exited,
    signal: (sig) => { if (proc.exitCode === null) proc.kill(sig); },
    async stop(ms = 12_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), ms);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

/** writes a config (JSON is valid YAML) and returns its path */
export function writeConfig(dir: string, config: object, name = 'config.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** runs the CLI to completion */
export async function runCliToEnd(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = runCli(args, opts);
  const t = setTimeout(() => p.signal('SIGKILL'), opts.timeoutMs ?? 30_000);
  const r = await p.exited;
  clearTimeout(t);
  return { code: r.code, stdout: p.stdout(), stderr: p.stderr() };
}
