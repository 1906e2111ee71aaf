// OPC UA benchmark rows: the simulated server as its own process with N
// counters changing every 100 ms → the gateway CLI (or the naive baseline) →
// a fresh Mosquitto → a counting subscriber. Per row: changes delivered of
// those the server made in a window of ticks, latency from the source
// timestamp to the subscriber, CPU and RSS of the process under test, its
// event-loop delay p99, and the server's CPU (the usual bottleneck).
// Everything a phase starts is stopped in its finally block.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, writeConfig } from '../test/helpers/gateway.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { ProcSampler } from './procfs.js';
import { messagesRatio, perCpuRatio, type Ratio, type Row } from './report.js';
import { TickCounter } from './opcua-subscriber.js';

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

async function stopChild(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
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
      const flags = p.semiSpaceMb === undefined ? DEPLOYED_FLAGS : [...DEPLOYED_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')), `--max-semi-space-size=${p.semiSpaceMb}`];
      const g = node(CLI, ['run', '--config', file], flags);
      gw = g;
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
    return {
      name: p.name,
      readings_per_s: seconds > 0 ? Math.round(delivered / seconds) : null,
      lost: offered - delivered,
      cpu_pct: w.seconds > 0 ? round1((w.cpu_s / w.seconds) * 100) : null,
      rss_mb: round1(w.max_rss / 2 ** 20),
      loop_p99_ms: loop,
      p50_ms: lat ? round1(lat.p50) : null,
      p99_ms: lat ? round1(lat.p99) : null,
      msgs_per_s: seconds > 0 ? Math.round((m1 - m0) / seconds) : null,
      note: `${p.variables} vars × ${round1(ticks / seconds)} ticks/s = ${Math.round(offered / seconds)} changes/s made; ${pct.toFixed(pct >= 99 ? 3 : 1)} % delivered` +
        `${forwarded === null ? '' : `, ${forwarded.toFixed(forwarded >= 99 ? 3 : 1)} % of those the server sent`}; server cpu ${serverCpu ?? '?'} %`,
      detail: {
        target: p.target, variables: p.variables, window_s: seconds, ticks, offered, delivered, startup_ms,
        received_from_server: received, readings_at_subscriber: c.readings, forwarded_pct: forwarded, server_cpu_pct: serverCpu,
        rss_anon_mb: round1(w.max_rss_anon / 2 ** 20), batch: BATCH, publishing_interval_ms: PUBLISHING_MS,
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
  g1k: 'opcua 1,000 vars → mosquitto (gateway)',
  g5k: 'opcua 5,000 vars → mosquitto (gateway)',
  g10k: 'opcua 10,000 vars → mosquitto (gateway)',
  g5kYoung: 'opcua 5,000 vars, 16 MiB young gen (gateway)',
  g10kYoung: 'opcua 10,000 vars, 16 MiB young gen (gateway)',
  n1k: 'opcua 1,000 vars → mosquitto (naive)',
  n5k: 'opcua 5,000 vars → mosquitto (naive)',
};

export const OPCUA_MEMORY_ROW = ROW.g1k1Hz;

/** the rows of the OPC UA benchmark; each phase bounded in time, a failed one reported in its row */
export async function benchOpcua(opts: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  const seconds = opts.quick ? 4 : 8;
  const phases: OpcuaPhase[] = [
    { name: ROW.g1k1Hz, target: 'gateway', variables: 1000, seconds: seconds + 2, intervalMs: 1000 },
    { name: ROW.g1k, target: 'gateway', variables: 1000, seconds },
    { name: ROW.g5k, target: 'gateway', variables: 5000, seconds },
    { name: ROW.g10k, target: 'gateway', variables: 10_000, seconds },
    // the deployed 1 MiB young generation suits the serial path; at 50,000 changes/s it promotes
    // node-opcua's decoded notifications wholesale: this row shows what a larger one gives
    { name: ROW.g5kYoung, target: 'gateway', variables: 5000, seconds, semiSpaceMb: 16 },
    { name: ROW.g10kYoung, target: 'gateway', variables: 10_000, seconds, semiSpaceMb: 16 },
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
  const r5 = row(ROW.g5k);
  const f5 = (r5?.detail as { forwarded_pct?: number | null } | undefined)?.forwarded_pct;
  if (typeof f5 === 'number') out.push({ what: `opcua 5,000: ≥ 99.9 % of the changes the server sent delivered (${f5.toFixed(3)} %)`, ok: f5 >= 99.9 });
  if (r5?.cpu_pct != null) out.push({ what: `opcua 5,000: gateway ≤ 50 % of one core (${r5.cpu_pct})`, ok: r5.cpu_pct <= 50 });
  for (const r of [ROW.g1k, ROW.g5k, ROW.g10k].map(row)) {
    if (r?.p99_ms != null) out.push({ what: `${r.name}: p99 latency ≤ max_wait + 50 ms = ${MAX_WAIT_MS + 50} (${r.p99_ms})`, ok: r.p99_ms <= MAX_WAIT_MS + 50 });
    if (r?.loop_p99_ms != null) out.push({ what: `${r.name}: event-loop p99 ≤ 20 ms (${r.loop_p99_ms})`, ok: r.loop_p99_ms <= 20 });
  }
  const r10 = row(ROW.g10k);
  if (r10?.rss_mb != null) out.push({ what: `opcua 10,000: RSS ≤ 160 MB (${r10.rss_mb})`, ok: r10.rss_mb <= 160 });
  return out;
}
