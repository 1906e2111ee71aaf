// The pymodbus slave (modbus_slave.py) as a child process, driven over its
// stdin/stdout control channel: set and read its data, make a unit dead or
// slow, corrupt answers, and count the requests it received.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DriverContext, Quality, RawValue } from '../../gateway/types.js';
import { IN_CI, runInBackground } from '../helpers/peers.js';
import { recordingContext, type Recorder } from '../helpers/socat.js';

// the .py file stays in the source tree; compiled tests run from dist/test/peers
export const SLAVE_SCRIPT = fileURLToPath(new URL('../../../test/peers/modbus_slave.py', import.meta.url));
export const PYTHON = '/usr/bin/python3';

export type Area = 'coil' | 'discrete' | 'holding' | 'input';

export interface ModbusPeer {
  /** the TCP port (0 for RTU) */
  readonly port: number;
  /** the serial port the master opens (RTU) */
  readonly path: string | undefined;
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
  /** RTU on a pty of the slave's own instead of the far end of a socat pair: one process fewer in every exchange */
  ownPty?: boolean;
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
  const args = [SLAVE_SCRIPT, ...(o.ownPty ? ['--pty'] : o.rtu !== undefined ? ['--rtu', o.rtu] : ['--tcp', String(o.tcp ?? 0)])];
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
    path: typeof ready.path === 'string' ? ready.path : undefined,
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

export type Rec = Recorder & { qualities: Array<{ key: string; value: RawValue; quality: Quality }> };

/** a recording context that also keeps each reading's quality */
export function qualityRecorder(id: string): Rec {
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

export type Layout = Array<[key: string, type: string, word_order: 'big' | 'little', byte_swap: boolean, value: number | string, words: number[]]>;

// every type and word order, back to back from address 0, as one device would lay them out
export const LAYOUT: Layout = [
  ['u16', 'uint16', 'big', false, 0x1234, [0x1234]],
  ['u16_swap', 'uint16', 'big', true, 0x1234, [0x3412]],
  ['i16', 'int16', 'big', false, -2, [0xfffe]],
  ['u32_big', 'uint32', 'big', false, 0x12345678, [0x1234, 0x5678]],
  ['u32_little', 'uint32', 'little', false, 0x12345678, [0x5678, 0x1234]],
  ['u32_little_swap', 'uint32', 'little', true, 0x12345678, [0x7856, 0x3412]],
  ['i32_big', 'int32', 'big', false, -70000, [0xfffe, 0xee90]],
  ['i32_little', 'int32', 'little', false, -70000, [0xee90, 0xfffe]],
  ['f32_big', 'float32', 'big', false, 12.5, [0x4148, 0x0000]],
  ['f32_little', 'float32', 'little', false, 12.5, [0x0000, 0x4148]],
  ['f32_big_swap', 'float32', 'big', true, 12.5, [0x4841, 0x0000]],
  ['f32_little_swap', 'float32', 'little', true, -0.25, [0x0000, 0x80be]],
  ['f64_big', 'float64', 'big', false, 1.5, [0x3ff8, 0, 0, 0]],
  ['f64_little', 'float64', 'little', false, 1.5, [0, 0, 0, 0x3ff8]],
  ['f64_little_swap', 'float64', 'little', true, 1e300, [0x9c75, 0x0088, 0x3ce4, 0x377e]],
  ['text', 'string', 'big', false, 'AB CD', [0x4142, 0x2043, 0x4400]],
  ['text_swap', 'string', 'big', true, 'AB CD', [0x4241, 0x4320, 0x0044]],
];

export function layoutTags(writable = false): { tags: Record<string, object>; words: number[] } {
  const tags: Record<string, object> = {};
  const words: number[] = [];
  for (const [key, type, word_order, byte_swap, , w] of LAYOUT) {
    tags[key] = { area: 'holding', address: words.length, type, word_order, byte_swap, ...(type === 'string' ? { length: w.length } : {}), ...(writable ? { writable: true } : {}) };
    words.push(...w);
  }
  return { tags, words };
}

/** run() with its outcome observable while it is still pending: 'running', 'resolved' or the error */
export function start(driver: { run(ctx: DriverContext): Promise<void> }, rec: Rec): { done: Promise<void>; outcome(): unknown } {
  return runInBackground(driver, rec.ctx);
}
