// One serial benchmark: a fresh Mosquitto, a socat pty pair, the process under
// test (the gateway CLI or the naive baseline) reading the device end, the
// instrument process writing the other end for a fixed time, and a counting
// subscriber. Everything it starts is stopped in its finally block.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { ptyPair, type PtyPair } from '../test/helpers/socat.js';
import { writeConfig } from '../test/helpers/gateway.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { childrenOf, CpuShares, ProcSampler } from './procfs.js';
import type { Row } from './report.js';
import { CountingSubscriber } from './subscriber.js';
import { stopChild } from './child.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** a process under test that grows past this is stopped: the phase must end */
const RSS_LIMIT = 1024 * 1024 * 1024;
const BATCH = { max_readings: 500, max_wait: '100ms' };

export interface SerialOptions {
  name: string;
  target: 'gateway' | 'naive';
  /** the instrument's baud rate, or unpaced: as fast as the pty takes it */
  baud: number | 'unpaced';
  seconds: number;
  /** how long to wait for readings still on their way once the instrument stopped */
  drainMs: number;
}

/** children besides the ones the test helpers track, and temp dirs: gone whatever happens */
const children = new Set<ChildProcess>();
const dirs = new Set<() => void>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const remove of dirs) remove();
});

function node(script: string, args: string[], flags: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...flags, join(HERE, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function output(child: ChildProcess): { out: () => string; err: () => string } {
  let out = '', err = '';
  // only the tail: enough for "ready", the last JSON line and an error message
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out = (out + d).slice(-8000); });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
  return { out: () => out, err: () => err };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function until(cond: () => boolean, ms: number, what: () => string, alive: () => string | undefined): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    const dead = alive();
    if (dead) throw new Error(dead);
    if (Date.now() > end) throw new Error(what());
    await sleep(20);
  }
}

interface Instrumented { lines: number; bytes: number; start: number; end: number; cpu_s: number }

export async function runSerial(o: SerialOptions): Promise<Row> {
  const tmp = tempDir('edgegate-bench-');
  dirs.add(tmp.remove);
  let broker: TestBroker | undefined;
  let pty: PtyPair | undefined;
  let sub: CountingSubscriber | undefined;
  let gw: ChildProcess | undefined;
  let naive: ChildProcess | undefined;
  let instrument: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  try {
    broker = await startMosquitto();
    if (broker.kind !== 'mosquitto') throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    pty = await ptyPair(tmp.dir);

    // the process under test, connected and reading before the instrument starts
    let pid: number;
    let alive: () => string | undefined;
    let naiveOut: ReturnType<typeof output> | undefined;
    if (o.target === 'gateway') {
      sub = await CountingSubscriber.connect(broker.url, { kind: 'gateway', prefix: 'edgegate/bench', device: 'dev1' });
      const file = writeConfig(tmp.dir, {
        gateway: { id: 'bench' },
        mqtt: { url: broker.url, qos: 1 },
        buffer: { dir: join(tmp.dir, 'buffer') },
        batch: BATCH,
        stats_interval: '1s',
        devices: [{
          id: 'dev1', driver: 'serial', port: pty.device, baud_rate: 115200, format: 'kv',
          tags: { n: { type: 'integer' }, T: { name: 'temperature' }, H: { name: 'humidity' } },
        }],
      });
      // as deployed (the bin's shebang and the systemd wrapper): node DEPLOYED_FLAGS dist/gateway/cli/main.js run --config FILE
      const g = node('../gateway/cli/main.js', ['run', '--config', file], DEPLOYED_FLAGS);
      gw = g;
      const io = output(g);
      pid = g.pid as number;
      alive = () => (g.exitCode !== null || g.signalCode !== null ? `the gateway exited (${g.exitCode ?? g.signalCode}):\n${io.err()}${io.out().slice(-2000)}` : undefined);
      const s = sub;
      await until(() => s.stats.some((x) => x.device.state === 'connected'), 15_000, () => `the gateway did not report dev1 connected within 15 s:\n${io.out().slice(-2000)}`, alive);
    } else {
      sub = await CountingSubscriber.connect(broker.url, { kind: 'naive', prefix: 'bench/naive' });
      const n = node('naive.js', [pty.device, broker.url, 'bench/naive']);
      naive = n;
      const io = output(n);
      naiveOut = io;
      pid = n.pid as number;
      alive = () => (n.exitCode !== null || n.signalCode !== null ? `the naive baseline exited (${n.exitCode ?? n.signalCode}): ${io.err()}` : undefined);
      await until(() => io.out().includes('ready'), 15_000, () => `the naive baseline was not ready within 15 s: ${io.err()}`, alive);
    }
    sampler = new ProcSampler(pid);
    sampler.start();

    // who uses the CPU while the instrument writes: the process under test and its peers
    const roles = new Map<string, number>([[o.target, pid], ['bench', process.pid]]);
    for (const c of childrenOf(process.pid)) if (c.comm === 'socat' || c.comm === 'mosquitto') roles.set(c.comm, c.pid);
    const shares = new CpuShares(roles);
    shares.begin();

    // the instrument, bounded: it ends by itself after o.seconds
    const inst = node('instrument.js', [pty.instrument, String(o.seconds), String(o.baud)]);
    instrument = inst;
    const instIo = output(inst);
    let overLimit = false;
    await until(
      () => inst.exitCode !== null,
      o.seconds * 1000 + 15_000,
      () => `the instrument did not finish within ${o.seconds + 15} s`,
      () => {
        const last = sampler?.samples[sampler.samples.length - 1];
        if (last && last.rss > RSS_LIMIT && !overLimit) {
          overLimit = true;
          inst.kill('SIGKILL');
        }
        return alive();
      },
    );
    const cpuShares = shares.end();
    if (overLimit) throw new Error(`the ${o.target} process grew past ${RSS_LIMIT / 2 ** 20} MiB RSS`);
    await exited(inst);
    const sent = JSON.parse(instIo.out().trim().split('\n').pop() ?? '{}') as Partial<Instrumented>;
    if (inst.exitCode !== 0 || sent.lines === undefined || sent.start === undefined || sent.end === undefined || sent.cpu_s === undefined) {
      throw new Error(`the instrument failed (${inst.exitCode}): ${instIo.err()}`);
    }

    // readings still on their way: wait until all arrived, nothing came for 2 s, or the bound
    const s = sub;
    const drainEnd = sent.end + o.drainMs;
    await until(
      () => s.unique >= (sent.lines ?? 0) || Date.now() > drainEnd || (Date.now() - Math.max(s.lastAt, sent.end ?? 0) > 2000),
      o.drainMs + 5000, () => 'drain', alive,
    );
    const from = sent.start;
    const to = Math.max(s.lastAt, sent.end);
    sampler.sample();
    const w = sampler.window(from, to);
    sampler.stop();

    let naiveReport: Record<string, number> = {};
    if (naive && naiveOut) {
      await stopChild(naive, 3000);
      const last = naiveOut.out().trim().split('\n').pop() ?? '';
      try { naiveReport = JSON.parse(last) as Record<string, number>; } catch { /* killed: no report */ }
    }
    const seconds = (to - from) / 1000;
    const instCpuPct = Math.round((sent.cpu_s / ((sent.end - sent.start) / 1000)) * 1000) / 10;
    const lost = s.missing(sent.lines);
    const lat = s.latency();
    const inWindow = s.stats.filter((x) => x.ts > from && x.ts <= to + 1000);
    const loop = o.target === 'gateway'
      ? (inWindow.length > 0 ? Math.max(...inWindow.map((x) => x.loop_p99_ms)) : null)
      : naiveReport.loop_p99_ms ?? null;
    const lastStats = s.stats[s.stats.length - 1];
    const dropped = lastStats?.dropped_batches ?? 0;
    const notes = [`${sent.lines} lines sent in ${((sent.end - sent.start) / 1000).toFixed(1)} s`];
    if (lost > 0) notes.push(`${lost} not delivered ${((Date.now() - sent.end) / 1000).toFixed(0)} s after the end`);
    if (dropped > 0) notes.push(`${dropped} batches dropped by the gateway's queue`);
    if (s.duplicates > 0) notes.push(`${s.duplicates} duplicates`);
    // CPU taken by work outside this benchmark while it streamed: the figures are skewed when it is large
    const ours = Object.entries(cpuShares).reduce((sum, [k, v]) => (k === 'host' ? sum : sum + v), 0) + instCpuPct;
    const others = Math.max(0, Math.round((cpuShares.host ?? 0) - ours));
    if (others >= 20) notes.push(`other work on the host: ${others}% of a core`);
    return {
      name: o.name,
      readings_per_s: seconds > 0 ? Math.round(s.readings / seconds) : null,
      found: s.unique,
      lost,
      duplicates: s.duplicates,
      cpu_pct: w.seconds > 0 ? Math.round((w.cpu_s / w.seconds) * 1000) / 10 : null,
      rss_mb: Math.round((w.max_rss / 2 ** 20) * 10) / 10,
      loop_p99_ms: loop,
      p50_ms: lat ? Math.round(lat.p50 * 10) / 10 : null,
      p99_ms: lat ? Math.round(lat.p99 * 10) / 10 : null,
      msgs_per_s: seconds > 0 ? Math.round(s.dataMessages / seconds) : null,
      note: notes.join('; '),
      detail: {
        target: o.target, baud: o.baud, lines_sent: sent.lines, bytes_sent: sent.bytes,
        send_s: (sent.end - sent.start) / 1000, window_s: seconds, cpu_s: Math.round(w.cpu_s * 100) / 100,
        rss_anon_mb: Math.round((w.max_rss_anon / 2 ** 20) * 10) / 10,
        rss_mb_per_s: sampler.rssSeries(from, to),
        cpu_pct_while_sending: { ...cpuShares, instrument: instCpuPct, others },
        readings_received: s.readings, counters_received: s.unique, duplicates: s.duplicates, data_messages: s.dataMessages,
        ...(o.target === 'gateway'
          ? { batch: BATCH, stats: lastStats?.device, dropped_batches: dropped, loop_p99_ms_per_stats: inWindow.map((x) => x.loop_p99_ms) }
          : { naive: naiveReport }),
      },
    };
  } finally {
    sampler?.stop();
    if (instrument) await stopChild(instrument, 1000);
    if (gw) await stopChild(gw, 12_000);
    if (naive) await stopChild(naive, 2000);
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    tmp.remove();
    dirs.delete(tmp.remove);
  }
}
