// OPC UA benchmark rows: the simulated server as its own process with N
// counters changing every 100 ms → the gateway CLI (or the naive baseline) →
// a fresh Mosquitto → a counting subscriber. Per row: changes delivered of
// those the server made in a window of ticks, latency from the source
// timestamp to the subscriber, CPU and RSS of the process under test, its
// event-loop delay p99, and the server's CPU (the usual bottleneck).
// Everything a phase starts is stopped in its finally block.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, writeConfig } from '../test/helpers/gateway.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { ProcSampler } from './procfs.js';
import { messagesRatio, perCpuRatio, type Ratio, type Row } from './report.js';
import { TickCounter } from './opcua-subscriber.js';
import { stopChild } from './child.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SIM = join(HERE, '..', 'drivers', 'opcua', 'sim-server.js');
const INTERVAL_MS = 100;
// a change waits up to one publishing interval at the server before it is sent: part of the latency
const PUBLISHING_MS = 50;
const BATCH = { max_readings: 500, max_wait: '100ms' };
const MAX_WAIT_MS = 100;

export interface OpcuaPhase {
  name: string;
  target: 'gateway' | 'naive';
  variables: number;
  seconds: number;
  /** node's young generation for the gateway, MiB (default 1, as deployed) */
  semiSpaceMb?: number;
  /** how often the server changes every variable (default 100 ms) */
  intervalMs?: number;
  /** a heap snapshot of the gateway at the end of the window, written to this file */
  heapSnapshot?: string;
  /** the gateway runs with --trace-gc-nvp: bytes allocated and promoted per reading in the window */
  traceGc?: boolean;
  /** more node flags for the gateway (a profiler's preload, other V8 flags) */
  extraFlags?: string[];
}

/** the young-generation collections and full collections in a window, from --trace-gc-nvp lines */
class GcTrace {
  private readonly events: Array<{ t: number; allocated: number; promoted: number; full: boolean }> = [];
  private rest = '';

  feed(chunk: string): void {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    const t = Date.now();
    for (const l of lines) {
      const gc = / gc=(\w+)/.exec(l);
      if (!gc) continue;
      const allocated = Number(/ allocated=(\d+)/.exec(l)?.[1] ?? 0);
      const promoted = Number(/ promoted=(\d+)/.exec(l)?.[1] ?? 0);
      this.events.push({ t, allocated, promoted, full: gc[1] !== 's' });
    }
  }

  window(from: number, to: number): { allocated: number; promoted: number; scavenges: number; full: number } {
    const w = this.events.filter((e) => e.t >= from && e.t <= to);
    return {
      allocated: w.reduce((s, e) => s + e.allocated, 0), promoted: w.reduce((s, e) => s + e.promoted, 0),
      scavenges: w.filter((e) => !e.full).length, full: w.filter((e) => e.full).length,
    };
  }
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function node(script: string, args: string[], flags: string[] = []): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [...flags, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '', err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
  return { child, out: () => out, err: () => err };
}

async function until(cond: () => boolean, ms: number, what: () => string, dead: () => string | undefined = () => undefined): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    const d = dead();
    if (d) throw new Error(d);
    if (Date.now() > end) throw new Error(what());
    await sleep(50);
  }
}

/** has the gateway write a heap snapshot (--heapsnapshot-signal) and moves it to `file` once complete */
async function snapshot(child: ChildProcess, dir: string, file: string): Promise<void> {
  const find = () => readdirSync(dir).find((f) => f.endsWith('.heapsnapshot'));
  child.kill('SIGUSR2');
  let size = -1;
  // the process writes it synchronously: done when the file exists and the process answers again
  await until(() => {
    const f = find();
    if (!f) return false;
    const now = statSync(join(dir, f)).size;
    const stable = now === size && now > 0;
    size = now;
    return stable;
  }, 120_000, () => 'no heap snapshot within 120 s');
  const made = join(dir, find() as string);
  copyFileSync(made, file);
  rmSync(made);
}

const exitedWith = (c: ChildProcess, what: string, err: () => string) =>
  () => (c.exitCode !== null || c.signalCode !== null ? `${what} exited (${c.exitCode ?? c.signalCode}): ${err().slice(-1500)}` : undefined);
const round1 = (x: number) => Math.round(x * 10) / 10;

export async function runOpcuaPhase(p: OpcuaPhase): Promise<Row> {
  const tmp = tempDir('edgegate-bench-opcua-');
  let broker: TestBroker | undefined;
  let counter: TickCounter | undefined;
  let sim: ReturnType<typeof node> | undefined;
  let gw: ReturnType<typeof node> | undefined;
  let naive: ReturnType<typeof node> | undefined;
  const samplers: ProcSampler[] = [];
  const gc = new GcTrace();
  try {
    const s = node(SIM, ['--variables', String(p.variables), '--interval-ms', String(p.intervalMs ?? INTERVAL_MS)]);
    sim = s;
    await until(() => s.out().includes('"ready"'), 90_000, () => `the OPC UA server was not ready within 90 s: ${s.err()}`, exitedWith(s.child, 'the OPC UA server', s.err));
    const endpoint = (JSON.parse(s.out().split('\n')[0] ?? '{}') as { endpoint: string }).endpoint;
    broker = await startMosquitto();
    if (broker.kind !== 'mosquitto') throw new Error('mosquitto is not installed (apt-get install mosquitto)');

    let pid: number;
    let dead: () => string | undefined;
    const started = Date.now();
    if (p.target === 'gateway') {
      counter = await TickCounter.connect(broker.url, { kind: 'gateway', prefix: 'edgegate/bench', device: 'plc' }, p.variables);
      const tags = Object.fromEntries(Array.from({ length: p.variables }, (_, i) => [`v${i}`, { node: `ns=1;s=v${i}`, type: 'integer' }]));
      const file = writeConfig(tmp.dir, {
        gateway: { id: 'bench' }, mqtt: { url: broker.url, qos: 1 }, buffer: { dir: join(tmp.dir, 'buffer') }, batch: BATCH, stats_interval: '1s',
        devices: [{ id: 'plc', driver: 'opcua', endpoint, sampling_interval: 0, publishing_interval: PUBLISHING_MS, queue_size: 10, tags }],
      });
      // as deployed (the bin's shebang and the systemd wrapper), with the young generation of the phase
      const flags = p.semiSpaceMb === undefined ? [...DEPLOYED_FLAGS] : [...DEPLOYED_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')), `--max-semi-space-size=${p.semiSpaceMb}`];
      if (p.heapSnapshot) flags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${tmp.dir}`);
      if (p.traceGc) flags.push('--trace-gc-nvp');
      flags.push(...p.extraFlags ?? []);
      const g = node(CLI, ['run', '--config', file], flags);
      gw = g;
      if (p.traceGc) g.child.stdout?.on('data', (d: string) => gc.feed(d));
      pid = g.child.pid as number;
      dead = exitedWith(g.child, 'the gateway', () => g.out().slice(-1500) + g.err());
    } else {
      counter = await TickCounter.connect(broker.url, { kind: 'naive', prefix: 'bench/naive' }, p.variables);
      const n = node(join(HERE, 'opcua-naive.js'), [endpoint, broker.url, 'bench/naive', String(p.variables), String(PUBLISHING_MS)]);
      naive = n;
      pid = n.child.pid as number;
      dead = exitedWith(n.child, 'the naive baseline', n.err);
    }
    const c = counter;
    await until(() => c.reporting() === p.variables, 90_000, () => `only ${c.reporting()} of ${p.variables} variables reported within 90 s`, dead);
    const startup_ms = Date.now() - started;
    const sampler = new ProcSampler(pid);
    const simSampler = new ProcSampler(s.child.pid as number);
    samplers.push(sampler, simSampler);
    sampler.start();
    simSampler.start();
    await sleep(1000);

    // the window: the ticks the server starts during the measurement, as the server reports them
    const serverTick = () => {
      const lines = s.out().trimEnd().split('\n');
      for (let i = lines.length - 1; i >= 0; i--) if (lines[i]!.startsWith('{"tick"')) return (JSON.parse(lines[i]!) as { tick: number }).tick;
      return 0;
    };
    const k0 = serverTick() + 2;
    c.window(k0, Infinity);
    const t0 = Date.now();
    const m0 = c.dataMessages;
    await until(() => Date.now() - t0 >= p.seconds * 1000, p.seconds * 1000 + 1000, () => 'never', dead).catch(() => undefined);
    const t1 = Date.now();
    const m1 = c.dataMessages;
    // a reading of a tick the server has begun but not yet reported may already be in
    const k1 = Math.max(serverTick(), c.maxTick);
    c.window(k0, k1);
    const offered = p.variables * (k1 - k0 + 1);
    sampler.sample();
    simSampler.sample();
    const w = sampler.window(t0, t1);
    const sw = simSampler.window(t0, t1);
    const gcWindow = p.traceGc ? gc.window(t0, t1) : undefined;
    if (p.heapSnapshot && gw) await snapshot(gw.child, tmp.dir, p.heapSnapshot);
    // the server gets a moment to send what it made in the window, then stops: from then on
    // nothing new reaches the process under test, and what it received from the server can be
    // set against what it delivered
    await sleep(1500);
    await stopChild(s.child, 5000);
    let before = -1;
    const drainEnd = Date.now() + 10_000;
    while (Date.now() < drainEnd) {
      await sleep(1000);
      if (c.readings === before && Date.now() - c.lastAt > 2000) break;
      before = c.readings;
    }
    let received: number | null = null;
    let naiveReport: Record<string, number> = {};
    if (naive) {
      await stopChild(naive.child, 3000);
      try { naiveReport = JSON.parse(naive.out().trim().split('\n').pop() ?? '') as Record<string, number>; } catch { /* killed */ }
      received = naiveReport.changes ?? null;
    } else {
      const settled = Date.now();
      await until(() => c.stats.some((x) => x.at > settled), 5000, () => 'no stats from the gateway').catch(() => undefined);
      received = c.stats[c.stats.length - 1]?.readings_in ?? null;
    }
    const seconds = (t1 - t0) / 1000;
    const ticks = k1 - k0 + 1;
    const delivered = c.delivered();
    const lat = c.latency();
    const inWindow = c.stats.filter((x) => x.at >= t0 && x.at <= t1 + 1000);
    // of all the changes the process under test received from the server, the share the subscriber got
    const forwarded = received ? (100 * c.readings) / received : null;
    const loop = p.target === 'gateway' ? (inWindow.length > 0 ? Math.max(...inWindow.map((x) => x.loop_p99_ms)) : null) : naiveReport.loop_p99_ms ?? null;
    const serverCpu = sw.seconds > 0 ? round1((sw.cpu_s / sw.seconds) * 100) : null;
    const pct = offered > 0 ? (delivered / offered) * 100 : 0;
    const missing = c.missing();
    // the ticks counted span less time than the window (it starts two ticks late): rates are per tick span
    const tickSpanS = (ticks * (p.intervalMs ?? INTERVAL_MS)) / 1000;
    const perS = delivered / tickSpanS;
    const usPerReading = perS > 0 && w.seconds > 0 ? round1(((w.cpu_s / w.seconds) * 1e6) / perS) : null;
    return {
      name: p.name,
      readings_per_s: Math.round(perS),
      found: delivered,
      lost: missing.count,
      duplicates: c.duplicates,
      cpu_pct: w.seconds > 0 ? round1((w.cpu_s / w.seconds) * 100) : null,
      rss_mb: round1(w.max_rss / 2 ** 20),
      loop_p99_ms: loop,
      p50_ms: lat ? round1(lat.p50) : null,
      p99_ms: lat ? round1(lat.p99) : null,
      msgs_per_s: seconds > 0 ? Math.round((m1 - m0) / seconds) : null,
      note: `${p.variables} vars × ${ticks} ticks = ${offered} changes made; ${pct.toFixed(pct >= 99 ? 3 : 1)} % found` +
        `${missing.count > 0 ? ` (missing ${missing.first.join(', ')}${missing.count > missing.first.length ? ', …' : ''})` : ''}` +
        `${forwarded === null ? '' : `, ${forwarded.toFixed(forwarded >= 99 ? 3 : 1)} % of those the server sent`}; ${usPerReading ?? '?'} µs cpu/reading; server cpu ${serverCpu ?? '?'} %`,
      detail: {
        target: p.target, variables: p.variables, window_s: seconds, ticks, offered, delivered, startup_ms,
        missing_first: missing.first, duplicates: c.duplicates, cpu_us_per_reading: usPerReading, interval_ms: p.intervalMs ?? INTERVAL_MS,
        received_from_server: received, readings_at_subscriber: c.readings, forwarded_pct: forwarded, server_cpu_pct: serverCpu,
        rss_anon_mb: round1(w.max_rss_anon / 2 ** 20), batch: BATCH, publishing_interval_ms: PUBLISHING_MS,
        ...(gcWindow ? {
          gc: { ...gcWindow, allocated_per_reading: delivered > 0 ? Math.round(gcWindow.allocated / delivered) : null, promoted_per_reading: delivered > 0 ? Math.round(gcWindow.promoted / delivered) : null },
        } : {}),
        ...(p.target === 'naive' ? { naive: naiveReport } : {}),
      },
    };
  } finally {
    for (const s of samplers) s.stop();
    await stopChild(gw?.child, 8000);
    await stopChild(naive?.child, 2000);
    await stopChild(sim?.child, 5000);
    await counter?.close();
    await broker?.stop();
    tmp.remove();
  }
}

const ROW = {
  // the memory row: a small Pi's OPC UA job
  g1k1Hz: 'rss opcua 1,000 vars 1 Hz (gateway)',
  g1k: 'opcua 1,000 vars 10 Hz → mosquitto (gateway)',
  g5k: 'opcua 5,000 vars 10 Hz → mosquitto (gateway)',
  g10k: 'opcua 10,000 vars 1 Hz → mosquitto (gateway)',
  g5kYoung: 'opcua 5,000 vars 10 Hz, 16 MiB young gen (gateway)',
  n1k: 'opcua 1,000 vars 10 Hz → mosquitto (naive)',
  n5k: 'opcua 5,000 vars 10 Hz → mosquitto (naive)',
};

export const OPCUA_MEMORY_ROW = ROW.g1k1Hz;
/** RSS targets (MB, max over the window) */
const RSS_TARGET: Record<string, number> = { [ROW.g1k]: 130, [ROW.g5k]: 200, [ROW.g10k]: 160 };
const US_PER_READING_5K = 4;

/** the rows of the OPC UA benchmark; each phase bounded in time, a failed one reported in its row */
export async function benchOpcua(opts: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  const seconds = opts.quick ? 4 : 8;
  const phases: OpcuaPhase[] = [
    { name: ROW.g1k1Hz, target: 'gateway', variables: 1000, seconds: seconds + 2, intervalMs: 1000 },
    { name: ROW.g1k, target: 'gateway', variables: 1000, seconds },
    { name: ROW.g5k, target: 'gateway', variables: 5000, seconds },
    { name: ROW.g10k, target: 'gateway', variables: 10_000, seconds: seconds + 4, intervalMs: 1000 },
    // the deployed young generation is 2 MiB; this row shows what a larger one gives at 50,000 changes/s
    { name: ROW.g5kYoung, target: 'gateway', variables: 5000, seconds, semiSpaceMb: 16 },
    { name: ROW.n1k, target: 'naive', variables: 1000, seconds },
    { name: ROW.n5k, target: 'naive', variables: 5000, seconds },
  ];
  const rows: Row[] = [];
  const chosen = opts.quick ? phases.filter((x) => x.variables !== 10_000 && x.semiSpaceMb === undefined) : phases;
  for (const phase of chosen.filter((x) => !opts.only || opts.only(x.name))) {
    process.stderr.write(`bench: ${phase.name} (${phase.seconds} s) …\n`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const bound = (phase.seconds + 150) * 1000;
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`phase took over ${bound / 1000} s`)), bound); });
      rows.push(await Promise.race([runOpcuaPhase(phase), timeout]));
    } catch (err) {
      const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
      process.stderr.write(`bench: ${phase.name} failed: ${msg}\n`);
      rows.push({ name: phase.name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` });
    } finally {
      clearTimeout(timer);
    }
  }
  return rows;
}

/** gateway over naive on the same server, at 5,000 variables */
export function opcuaRatios(rows: Row[]): Ratio[] {
  const byName = (n: string) => rows.find((r) => r.name === n);
  return [
    { what: 'opcua 5,000: readings per CPU-second', value: perCpuRatio(byName(ROW.g5k), byName(ROW.n5k)) },
    { what: 'MQTT messages per reading', value: messagesRatio(byName(ROW.g5k), byName(ROW.n5k)) },
  ];
}

/** the targets of the OPC UA rows */
export function opcuaChecks(rows: Row[]): Array<{ what: string; ok: boolean }> {
  const out: Array<{ what: string; ok: boolean }> = [];
  const row = (n: string) => rows.find((r) => r.name === n);
  type Detail = { received_from_server?: number | null; readings_at_subscriber?: number; cpu_us_per_reading?: number | null };
  for (const name of [ROW.g1k, ROW.g5k, ROW.g10k]) {
    const r = row(name);
    if (!r || r.rss_mb === null) continue;
    const target = RSS_TARGET[name] as number;
    out.push({ what: `${name}: RSS ≤ ${target} MB (${r.rss_mb})`, ok: r.rss_mb <= target });
    const d = r.detail as Detail | undefined;
    if (name === ROW.g5k) {
      // the server at 50,000 changes/s may fall behind its schedule: what it sent must all arrive
      const sent = d?.received_from_server;
      if (typeof sent === 'number') out.push({ what: `${name}: every change the server sent delivered (${d?.readings_at_subscriber} of ${sent}, ${r.duplicates ?? 0} duplicates)`, ok: d?.readings_at_subscriber === sent && r.duplicates === 0 });
      const us = d?.cpu_us_per_reading;
      if (typeof us === 'number') out.push({ what: `${name}: ≤ ${US_PER_READING_5K} µs CPU per reading (${us})`, ok: us <= US_PER_READING_5K });
    } else if (name === ROW.g10k) {
      out.push({ what: `${name}: every change delivered (${r.found} found, ${r.lost} missing, ${r.duplicates ?? 0} duplicates)`, ok: r.lost === 0 && r.duplicates === 0 });
    }
  }
  for (const r of [ROW.g1k, ROW.g5k, ROW.g10k].map(row)) {
    if (r?.p99_ms != null) out.push({ what: `${r.name}: p99 latency ≤ max_wait + 50 ms = ${MAX_WAIT_MS + 50} (${r.p99_ms})`, ok: r.p99_ms <= MAX_WAIT_MS + 50 });
    if (r?.loop_p99_ms != null) out.push({ what: `${r.name}: event-loop p99 ≤ 20 ms (${r.loop_p99_ms})`, ok: r.loop_p99_ms <= 20 });
  }
  return out;
}
