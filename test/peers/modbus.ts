// The pymodbus slave (modbus_slave.py) as a child process, driven over its
// stdin/stdout control channel: set and read its data, make a unit dead or
// slow, corrupt answers, and count the requests it received.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DriverContext, Quality, RawValue } from '../../gateway/types.js';
import { IN_CI } from '../helpers/peers.js';
import { recordingContext, type Recorder } from '../helpers/socat.js';

// the .py file stays in the source tree; compiled tests run from dist/test/peers
export const SLAVE_SCRIPT = fileURLToPath(new URL('../../../test/peers/modbus_slave.py', import.meta.url));
export const PYTHON = '/usr/bin/python3';

export type Area = 'coil' | 'discrete' | 'holding' | 'input';

export interface ModbusPeer {
  /** the TCP port (0 for RTU) */
  readonly port: number;
  /** requests received, by "unit:function" */
  counts(): Promise<Record<string, number>>;
  reset(): Promise<void>;
  set(unit: number, area: Area, address: number, values: Array<number | boolean>): Promise<void>;
  get(unit: number, area: Area, address: number, count: number): Promise<number[]>;
  dead(unit: number, on: boolean): Promise<void>;
  delay(unit: number, ms: number): Promise<void>;
  corrupt(count: number): Promise<void>;
  stop(): Promise<void>;
}

export interface PeerOptions {
  rtu?: string;
  tcp?: number;
  units?: number[];
  size?: number;
  paceBaud?: number;
}

const children = new Set<ChildProcess>();
let hooked = false;

/**
 * true when /usr/bin/python3 has pymodbus and serial_asyncio. Missing under
 * CI: throws. Elsewhere: a loud warning, and false (skip).
 */
export function requirePymodbus(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import pymodbus, serial_asyncio'], { encoding: 'utf8' });
  if (r.status === 0) return true;
  const msg = 'pymodbus not importable by /usr/bin/python3: Modbus tests run against a pymodbus slave. Install it (apt-get install python3-pymodbus python3-serial python3-serial-asyncio).';
  if (IN_CI) throw new Error(`required peer missing under CI: ${msg}`);
  console.warn(`\n!!! SKIPPING: ${msg}\n`);
  return false;
}

export async function startModbusPeer(o: PeerOptions): Promise<ModbusPeer> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  const args = [SLAVE_SCRIPT, ...(o.rtu !== undefined ? ['--rtu', o.rtu] : ['--tcp', String(o.tcp ?? 0)])];
  if (o.units) args.push('--units', o.units.join(','));
  if (o.size !== undefined) args.push('--size', String(o.size));
  if (o.paceBaud !== undefined) args.push('--pace-baud', String(o.paceBaud));
  const child = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
  const waiting: Array<{ resolve(v: Record<string, unknown>): void; reject(e: Error): void }> = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    children.delete(child);
    for (const w of waiting.splice(0)) w.reject(new Error(`modbus peer exited: ${stderr.trim()}`));
    resolve();
  }));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w.resolve(JSON.parse(line) as Record<string, unknown>);
  });
  const next = (): Promise<Record<string, unknown>> => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  const send = async (msg: object): Promise<Record<string, unknown>> => {
    const answer = next();
    child.stdin!.write(JSON.stringify(msg) + '\n');
    const a = await answer;
    if (typeof a.error === 'string') throw new Error(`modbus peer: ${a.error}`);
    return a;
  };
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  let ready: Record<string, unknown>;
  try {
    ready = await next();
  } finally {
    clearTimeout(timer);
  }
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin!.end();
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(kill);
  };
  return {
    port: Number(ready.port ?? 0),
    counts: async () => (await send({ cmd: 'counts' })).counts as Record<string, number>,
    reset: async () => void (await send({ cmd: 'reset' })),
    set: async (unit, area, address, values) => void (await send({ cmd: 'set', unit, area, address, values: values.map(Number) })),
    get: async (unit, area, address, count) => (await send({ cmd: 'get', unit, area, address, count })).values as number[],
    dead: async (unit, on) => void (await send({ cmd: 'dead', unit, on })),
    delay: async (unit, ms) => void (await send({ cmd: 'delay', unit, ms })),
    corrupt: async (count) => void (await send({ cmd: 'corrupt', count })),
    stop,
  };
}

/** big-endian 16-bit registers of a buffer */
export function registers(buf: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < buf.length; i += 2) out.push(buf.readUInt16BE(i));
  return out;
}

/** a recording context that also keeps each reading's quality */
export function qualityRecorder(id: string): Recorder & { qualities: Array<{ key: string; value: RawValue; quality: Quality }> } {
  const rec = recordingContext(id);
  const qualities: Array<{ key: string; value: RawValue; quality: Quality }> = [];
  const emit = rec.ctx.emit;
  const ctx: DriverContext = {
    ...rec.ctx,
    emit(key, value, ts, quality = 'good') {
      qualities.push({ key, value, quality });
      emit(key, value, ts, quality);
    },
  };
  return Object.assign(rec, { ctx, qualities });
}
