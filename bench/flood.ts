// A flooding device costs the others nothing: serial device B sends 10
// lines a second, each stamped with the time it was written, and its latency
// from the wire to the subscriber is measured with B alone in the gateway,
// then beside device A flooding its serial line as fast as the pty takes it
// and an OPC UA device at 50,000 changes/s. B's p99 may rise by 5 ms at most;
// the event loop's p99 delay must stay ≤ 20 ms. Every line of B is counted
// (found, missing, duplicates). Everything a row starts is stopped in its
// finally block.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, writeConfig } from '../test/helpers/gateway.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { ptyPair, type PtyPair } from '../test/helpers/socat.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { ProcSampler } from './procfs.js';
import type { Row } from './report.js';
import { CountingSubscriber } from './subscriber.js';
import type { Trace } from './trace-hook.js';
import { stopChild } from './child.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SIM = join(HERE, '..', 'drivers', 'opcua', 'sim-server.js');
const TRACE_HOOK = join(HERE, 'trace-hook.js');
const MAX_WAIT_MS = 100;
const BATCH = { max_readings: 500, max_wait: `${MAX_WAIT_MS}ms` };
const B_RATE = 10;
const OPCUA_VARIABLES = 5000;

export const FLOOD_ROWS = {
  alone: 'isolation: serial B 10/s alone (gateway)',
  flooded: 'isolation: serial B 10/s beside floods (gateway)',
};

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(script: string, args: string[], flags: string[] = [], env?: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [...flags, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env && { env: { ...process.env, ...env } }) });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '', err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out = (out + d).slice(-8000); });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
  return { child, out: () => out, err: () => err };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(what);
    await sleep(50);
  }
}

/** the time the process's main thread waited for a CPU while ready to run (the kernel's schedstat) */
function runQueueMs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return NaN;
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function runRow(name: string, flooded: boolean, seconds: number): Promise<Row> {
  const tmp = tempDir('edgegate-bench-flood-');
  let broker: TestBroker | undefined;
  const ptys: PtyPair[] = [];
  const procs: ChildProcess[] = [];
  let sub: CountingSubscriber | undefined;
  let sampler: ProcSampler | undefined;
  try {
    broker = await startMosquitto();
    if (broker.kind !== 'mosquitto') throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const b = await ptyPair(tmp.dir);
    ptys.push(b);
    const devices: object[] = [{ id: 'b', driver: 'serial', port: b.device, baud_rate: 115200, format: 'kv', tags: { n: { type: 'integer' }, t: { type: 'number' } } }];
    let a: PtyPair | undefined;
    let endpoint: string | undefined;
    if (flooded) {
      const aDir = join(tmp.dir, 'a');
      mkdirSync(aDir);
      a = await ptyPair(aDir);
      ptys.push(a);
      devices.push({ id: 'a', driver: 'serial', port: a.device, baud_rate: 115200, format: 'kv', tags: { n: { type: 'integer' }, T: { name: 'temperature' }, H: { name: 'humidity' } } });
      const s = start(SIM, ['--variables', String(OPCUA_VARIABLES), '--interval-ms', '100']);
      procs.push(s.child);
      await until(() => s.out().includes('"ready"'), 90_000, `the OPC UA server was not ready within 90 s: ${s.err()}`);
      endpoint = (JSON.parse(s.out().split('\n')[0] ?? '{}') as { endpoint: string }).endpoint;
      const tags = Object.fromEntries(Array.from({ length: OPCUA_VARIABLES }, (_, i) => [`v${i}`, { node: `ns=1;s=v${i}`, type: 'integer' }]));
      devices.push({ id: 'plc', driver: 'opcua', endpoint, sampling_interval: 0, publishing_interval: 50, queue_size: 10, tags });
    }
    const s = await CountingSubscriber.connect(broker.url, { kind: 'gateway', prefix: 'edgegate/bench', device: 'b', sentTag: 't' });
    sub = s;
    const file = writeConfig(tmp.dir, { gateway: { id: 'bench' }, mqtt: { url: broker.url, qos: 1 }, buffer: { dir: join(tmp.dir, 'buffer') }, batch: BATCH, stats_interval: '1s', devices });
    const traceFile = join(tmp.dir, 'trace.json');
    const gw = start(CLI, ['run', '--config', file], [...DEPLOYED_FLAGS, ...(process.env.EDGEGATE_BENCH_GW_FLAGS ?? '').split(' ').filter(Boolean), '--import', TRACE_HOOK],
      { EDGEGATE_TRACE_FILE: traceFile, EDGEGATE_TRACE_DEVICE: 'b', EDGEGATE_TRACE_PORT: b.device });
    procs.push(gw.child);
    const ids = flooded ? ['a', 'b', 'plc'] : ['b'];
    await until(() => s.stats.some((x) => ids.every((id) => x.devices[id]?.state === 'connected')), 90_000, `not every device connected within 90 s: ${gw.err()}`);
    sampler = new ProcSampler(gw.child.pid as number);
    sampler.start();
    // the floods first, then B: every line of B meets them
    let flood: ReturnType<typeof start> | undefined;
    if (a) {
      flood = start(join(HERE, 'instrument.js'), [a.instrument, String(seconds + 2), 'unpaced']);
      procs.push(flood.child);
      await sleep(2000);
    }
    const t0 = Date.now();
    const waited0 = runQueueMs(gw.child.pid as number);
    const inst = start(join(HERE, 'instrument.js'), [b.instrument, String(seconds), `lines:${B_RATE}`]);
    procs.push(inst.child);
    await until(() => inst.child.exitCode !== null, seconds * 1000 + 15_000, 'the instrument of B did not finish');
    const sent = JSON.parse(inst.out().trim().split('\n').pop() ?? '{}') as { lines?: number };
    if (inst.child.exitCode !== 0 || sent.lines === undefined) throw new Error(`the instrument of B failed: ${inst.err()}`);
    const t1 = Date.now();
    const waited = runQueueMs(gw.child.pid as number) - waited0;
    await until(() => s.unique >= (sent.lines ?? 0) || Date.now() - t1 > 10_000, 15_000, 'drain');
    sampler.sample();
    const w = sampler.window(t0, t1);
    await stopChild(gw.child, 8000);
    const trace = existsSync(traceFile) ? JSON.parse(readFileSync(traceFile, 'utf8')) as Trace : undefined;
    const parts = trace ? breakdown(trace, s.batches, t0, t1) : undefined;
    const inWindow = s.stats.filter((x) => x.at >= t0 && x.at <= t1 + 1000);
    const loop = inWindow.length > 0 ? Math.max(...inWindow.map((x) => x.loop_p99_ms)) : null;
    const lat = s.latency();
    const first = inWindow[0]?.devices, last = inWindow[inWindow.length - 1]?.devices;
    const rate = (id: string) => {
      const r0 = Number(first?.[id]?.readings_in ?? 0), r1 = Number(last?.[id]?.readings_in ?? 0);
      const dt = ((inWindow[inWindow.length - 1]?.at ?? 0) - (inWindow[0]?.at ?? 0)) / 1000;
      return dt > 0 ? Math.round((r1 - r0) / dt) : 0;
    };
    const missing = s.missing(sent.lines);
    const queued = `; gateway's main thread ready but not running ${Math.round(waited / ((t1 - t0) / 1000))} ms/s`;
    const beside = flooded ? `; beside: A ${rate('a').toLocaleString('en-US')} readings/s, OPC UA ${rate('plc').toLocaleString('en-US')} readings/s` : '';
    return {
      name,
      readings_per_s: round1(s.unique / ((t1 - t0) / 1000)),
      found: s.unique, lost: missing, duplicates: s.duplicates,
      cpu_pct: w.seconds > 0 ? round1((w.cpu_s / w.seconds) * 100) : null,
      rss_mb: round1(w.max_rss / 2 ** 20),
      loop_p99_ms: loop,
      p50_ms: lat ? round1(lat.p50) : null,
      p99_ms: lat ? round1(lat.p99) : null,
      msgs_per_s: null,
      note: `B: ${sent.lines} lines, latency from the write to the subscriber (max_wait ${MAX_WAIT_MS} ms)${beside}${queued}${parts ? `; ${parts.text}` : ''}`,
      detail: { breakdown: parts?.detail ?? null, b_lines: sent.lines, max_wait_ms: MAX_WAIT_MS, a_readings_per_s: flooded ? rate('a') : null, opcua_readings_per_s: flooded ? rate('plc') : null, loop_p99_ms_per_stats: inWindow.map((x) => x.loop_p99_ms) },
    };
  } finally {
    sampler?.stop();
    for (const p of procs.reverse()) await stopChild(p, 8000);
    await sub?.close();
    for (const p of ptys) await p.stop();
    await broker?.stop();
    tmp.remove();
  }
}

const pct = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

/**
 * B's latency in four parts per line: the wire to the read (pty, serial
 * slices), the read to the batch's close (max_wait and the timer's lateness),
 * the close to the hand-over to MQTT.js (the publisher's FIFO and in-flight
 * window, shared by every device), and the hand-over to the subscriber (the
 * socket, the broker, the subscriber's own loop); plus, for the slowest 1 %
 * of lines, the mean of each part: which one makes the tail.
 */
function breakdown(trace: Trace, arrivals: CountingSubscriber['batches'], t0: number, t1: number): { text: string; detail: object } {
  const bySeq = new Map(trace.batches.map((b) => [b.seq, b]));
  const rows: number[][] = [];
  const ahead: number[] = [];
  for (const a of arrivals) {
    const t = bySeq.get(a.seq);
    if (!t || t.handed === undefined) continue;
    ahead.push(t.queuedAhead);
    a.sent.forEach((sent, i) => {
      const read = a.read[i] as number;
      // the first time B's port was reported readable after the write (none: the read was already pending)
      const woke = trace.readable.find((r) => r >= sent && r <= read) ?? read;
      rows.push([read - sent, t.closed - read, (t.handed as number) - t.closed, a.at - (t.handed as number), a.at - sent, woke - sent, read - woke]);
    });
  }
  const names = ['wire→read', 'read→closed', 'closed→handed', 'handed→subscriber'];
  const col = (k: number) => rows.map((r) => r[k] as number);
  const total = col(4);
  const cut = pct(total, 0.99);
  const tail = rows.filter((r) => (r[4] as number) >= cut);
  const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / Math.max(1, xs.length);
  const parts = [...names, 'wire→readable', 'readable→read'].map((n, j) => {
    const k = j < 4 ? j : j + 1;
    return { part: n, p50: pct(col(k), 0.5), p99: pct(col(k), 0.99), tail_mean: round1(mean(tail.map((r) => r[k] as number))) };
  });
  const gc = trace.gc.filter((g) => g.at >= t0 && g.at <= t1);
  const major = gc.filter((g) => g.major).map((g) => g.ms);
  const minor = gc.filter((g) => !g.major).map((g) => g.ms);
  const secs = (t1 - t0) / 1000;
  const gcDetail = {
    major_count: major.length, major_max_ms: round1(Math.max(0, ...major)), major_p50_ms: round1(pct(major, 0.5) || 0),
    minor_per_s: round1(minor.length / secs), minor_max_ms: round1(Math.max(0, ...minor)), minor_p99_ms: round1(pct(minor, 0.99) || 0),
    gc_ms_per_s: round1((major.reduce((x, y) => x + y, 0) + minor.reduce((x, y) => x + y, 0)) / secs),
  };
  const text = parts.map((p) => `${p.part} p50 ${p.p50} / p99 ${p.p99} / tail ${p.tail_mean} ms`).join(', ')
    + `; batches ahead of B's at its close p50 ${pct(ahead, 0.5)} / p99 ${pct(ahead, 0.99)}`
    + `; GC: ${major.length} mark-compact (max ${gcDetail.major_max_ms} ms), ${gcDetail.minor_per_s} scavenges/s (p99 ${gcDetail.minor_p99_ms} ms), ${gcDetail.gc_ms_per_s} ms/s`;
  return { text, detail: { parts, ahead_p50: pct(ahead, 0.5), ahead_p99: pct(ahead, 0.99), gc: gcDetail, batches_per_device: trace.batchesPerDevice } };
}

export async function benchFlood(opts: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  const seconds = opts.quick ? 5 : 15;
  const rows: Row[] = [];
  for (const [name, flooded] of [[FLOOD_ROWS.alone, false], [FLOOD_ROWS.flooded, true]] as const) {
    if (opts.only && !opts.only(name)) continue;
    process.stderr.write(`bench: ${name} (${seconds} s) …\n`);
    try {
      rows.push(await runRow(name, flooded, seconds));
    } catch (err) {
      const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
      process.stderr.write(`bench: ${name} failed: ${msg}\n`);
      rows.push({ name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` });
    }
  }
  return rows;
}

/** B's p99 rises by ≤ 5 ms beside the floods; the event loop's p99 stays ≤ 20 ms */
export function floodChecks(rows: Row[]): Array<{ what: string; ok: boolean }> {
  const alone = rows.find((r) => r.name === FLOOD_ROWS.alone);
  const flooded = rows.find((r) => r.name === FLOOD_ROWS.flooded);
  const out: Array<{ what: string; ok: boolean }> = [];
  if (alone?.p99_ms != null && flooded?.p99_ms != null) {
    const rise = round1(flooded.p99_ms - alone.p99_ms);
    out.push({ what: `isolation: B's p99 latency rises ≤ 5 ms beside the floods (${alone.p99_ms} → ${flooded.p99_ms} ms, max_wait ${MAX_WAIT_MS})`, ok: rise <= 5 });
  }
  if (flooded?.loop_p99_ms != null) out.push({ what: `isolation: event-loop p99 ≤ 20 ms beside the floods (${flooded.loop_p99_ms})`, ok: flooded.loop_p99_ms <= 20 });
  if (flooded?.lost != null) out.push({ what: `isolation: every line of B delivered beside the floods (${flooded.found} found, ${flooded.lost} missing, ${flooded.duplicates ?? 0} duplicates)`, ok: flooded.lost === 0 && flooded.duplicates === 0 });
  return out;
}
