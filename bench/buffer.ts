// The disk buffer's rows: the replay of a 100 MB backlog into Mosquitto while
// live data keeps arriving (readings/s, RSS against the RSS before the replay,
// live batches kept behind the backlog), the same at a set buffer.replay_rate
// (the rate the subscriber measures against the one set), and the bytes
// written to disk per batch in each durability mode, from /proc/<pid>/io of
// the gateway process.
// The backlog is written straight into the buffer dir with the buffer's own
// frame encoder (as a long outage would have left it), so the phase spends its
// time on the replay, not on producing 1.6 million readings through a pty.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type MqttClient } from 'mqtt';
import { encodeFrame } from '../gateway/buffer/frames.js';
import { segmentPath } from '../gateway/buffer/segments.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { runCli, writeConfig, type CliProcess } from '../test/helpers/gateway.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { ptyPair, type PtyPair } from '../test/helpers/socat.js';
import { DEPLOYED_FLAGS } from './memory.js';
import { ProcSampler } from './procfs.js';
import type { Row } from './report.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const PREFIX = 'edgegate/bench';
const READINGS_PER_BATCH = 500;
const SEGMENT_BYTES = 16 * 1024 * 1024;
const MB = 2 ** 20;
/** as deployed: the bin's shebang and the systemd wrapper run node with a 2 MiB young generation */
const DEPLOYED = { NODE_OPTIONS: DEPLOYED_FLAGS.join(' ') };

/** write_bytes (what reaches the block layer) and wchar (every write(), sockets included) of a process */
function procIo(pid: number): { write_bytes: number; wchar: number } {
  const text = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { write_bytes: field('write_bytes'), wchar: field('wchar') };
}

/** counts data batches by seq: the backlog is seq 1..backlog, live data comes after */
class BatchCounter {
  backlogSeen = 0;
  backlogDuplicates = 0;
  firstAt = 0;
  backlogDoneAt = 0;
  live = 0;
  liveBeforeBacklogDone = 0;
  liveOutOfOrder = 0;
  readonly loopP99: Array<{ at: number; ms: number }> = [];
  #seen: Uint8Array;
  #lastLive = 0;

  private constructor(private readonly client: MqttClient, private readonly backlog: number) {
    this.#seen = new Uint8Array(backlog + 1);
  }

  static async connect(url: string, backlog: number): Promise<BatchCounter> {
    const client = connect(url, { clean: true, reconnectPeriod: 0, protocolVersion: 5, properties: { receiveMaximum: 65535 } });
    const c = new BatchCounter(client, backlog);
    client.on('message', (topic, payload) => c.#onMessage(topic, payload));
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bench subscriber: no connection within 5 s')), 5000);
      client.once('connect', () => client.subscribe([`${PREFIX}/devices/dev1/data`, `${PREFIX}/stats`], { qos: 1 }, (err) => {
        clearTimeout(timer);
        if (err) reject(err); else resolve();
      }));
    });
    return c;
  }

  #onMessage(topic: string, payload: Buffer): void {
    const now = Date.now();
    if (topic.endsWith('/stats')) {
      const s = JSON.parse(payload.toString()) as { event_loop_delay_p99_ms: number };
      this.loopP99.push({ at: now, ms: s.event_loop_delay_p99_ms });
      return;
    }
    const seq = Number(/"seq":(\d+)/.exec(payload.toString('latin1', 0, 200))?.[1]);
    if (seq <= this.backlog) {
      if (this.#seen[seq]) { this.backlogDuplicates++; return; }
      this.#seen[seq] = 1;
      this.firstAt ||= now;
      if (++this.backlogSeen === this.backlog) this.backlogDoneAt = now;
      return;
    }
    this.live++;
    if (this.backlogSeen < this.backlog) this.liveBeforeBacklogDone++;
    if (seq <= this.#lastLive) this.liveOutOfOrder++;
    this.#lastLive = Math.max(this.#lastLive, seq);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }
}

/** segment files holding `bytes` of batches of dev1, seq 1..n, and the seq store that continues after them */
function writeBacklog(dir: string, bytes: number): { batches: number; readings: number } {
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now() - 3_600_000;
  let seq = 0, total = 0, segment: Buffer[] = [], segBytes = 0, id = 1;
  const flush = () => { writeFileSync(segmentPath(dir, id++), Buffer.concat(segment)); segment = []; segBytes = 0; };
  while (total < bytes) {
    seq++;
    const readings: string[] = [];
    for (let k = 0; k < READINGS_PER_BATCH; k++) {
      const v = (seq - 1) * READINGS_PER_BATCH + k;
      readings.push(`{"tag":"n","value":${v},"ts":${t0 + v},"quality":"good"}`);
    }
    const payload = `{"gateway":"bench","device":"dev1","seq":${seq},"readings":[${readings.join(',')}]}`;
    const frame = encodeFrame(seq - 1, { device: 'dev1', seq, topic: `${PREFIX}/devices/dev1/data`, payload, readings: READINGS_PER_BATCH, firstTs: t0 });
    segment.push(frame);
    segBytes += frame.length;
    total += frame.length;
    if (segBytes >= SEGMENT_BYTES) flush();
  }
  if (segment.length > 0) flush();
  writeFileSync(join(dir, 'seq.json'), JSON.stringify({ devices: { dev1: seq + 1 } }));
  return { batches: seq, readings: seq * READINGS_PER_BATCH };
}

interface Rig { tmp: { dir: string; remove: () => void }; broker?: TestBroker; pty?: PtyPair; gw?: CliProcess; instrument?: ChildProcess; counter?: BatchCounter }

async function teardown(r: Rig): Promise<void> {
  r.instrument?.kill('SIGKILL');
  await r.gw?.stop(12_000);
  await r.counter?.close();
  await r.pty?.stop();
  await r.broker?.stop();
  r.tmp.remove();
}

function gatewayConfig(r: Rig, url: string, durability: 'on_outage' | 'always', replayRate = 0) {
  return writeConfig(r.tmp.dir, {
    gateway: { id: 'bench' }, mqtt: { url, qos: 1 }, buffer: { dir: join(r.tmp.dir, 'buffer'), durability, replay_rate: replayRate },
    batch: { max_readings: READINGS_PER_BATCH, max_wait: '100ms' }, stats_interval: '1s',
    devices: [{ id: 'dev1', driver: 'serial', port: r.pty!.device, baud_rate: 115200, format: 'kv', tags: { n: { type: 'integer' } } }],
  });
}

/** the bench's instrument process writing kv lines at 115200 baud for `seconds` */
function liveInstrument(r: Rig, seconds: number): ChildProcess {
  const child = spawn(process.execPath, [join(HERE, 'instrument.js'), r.pty!.instrument, String(seconds), '115200'], { stdio: 'ignore' });
  r.instrument = child;
  return child;
}

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** the replay of a backlog, unlimited or at replayRate readings/s */
async function replayRow(backlogBytes: number, replayRate = 0): Promise<Row> {
  const r: Rig = { tmp: tempDir('edgegate-bench-buffer-') };
  try {
    const backlog = writeBacklog(join(r.tmp.dir, 'buffer'), backlogBytes);
    r.broker = await startMosquitto();
    await r.broker.stop();
    r.pty = await ptyPair(r.tmp.dir);
    const gw = r.gw = runCli(['run', '--config', gatewayConfig(r, r.broker.url, 'on_outage', replayRate)], { env: DEPLOYED });
    await waitUntil(() => gw.logs().some((l) => l.device === 'dev1' && l.state === 'connected'), 30_000, 'the gateway recovered and reading');
    const pid = gw.proc.pid!;
    const sampler = new ProcSampler(pid, 100);
    sampler.start();
    liveInstrument(r, 600);
    await sleep(3000);
    const idleFrom = Date.now() - 2000;
    const idle = sampler.window(idleFrom, Date.now());
    await r.broker.restart();
    const counter = r.counter = await BatchCounter.connect(r.broker.url, backlog.batches);
    await waitUntil(() => counter.backlogDoneAt > 0, 300_000, `the backlog of ${backlog.batches} batches`);
    await waitUntil(() => counter.live > 0, 10_000, 'live batches after the backlog');
    const w = sampler.window(counter.firstAt, counter.backlogDoneAt);
    sampler.stop();
    const seconds = (counter.backlogDoneAt - counter.firstAt) / 1000;
    const loops = counter.loopP99.filter((x) => x.at >= counter.firstAt && x.at <= counter.backlogDoneAt + 1000).map((x) => x.ms);
    const ratio = idle.max_rss > 0 ? w.max_rss / idle.max_rss : null;
    return {
      name: replayName(backlogBytes, replayRate),
      readings_per_s: Math.round(backlog.readings / seconds), lost: backlog.batches - counter.backlogSeen,
      cpu_pct: w.seconds > 0 ? round1((w.cpu_s / w.seconds) * 100) : null, rss_mb: round1(w.max_rss / MB),
      loop_p99_ms: loops.length > 0 ? Math.max(...loops) : null, p50_ms: null, p99_ms: null,
      msgs_per_s: Math.round(backlog.batches / seconds),
      note: `${backlog.batches} batches in ${seconds.toFixed(1)} s; RSS ${ratio === null ? '?' : ratio.toFixed(2)}× the ${round1(idle.max_rss / MB)} MB before the replay; `
        + `live data behind the backlog: ${counter.liveBeforeBacklogDone === 0 && counter.liveOutOfOrder === 0 ? 'yes' : 'NO'}`,
      detail: {
        backlog_bytes: backlogBytes, backlog_batches: backlog.batches, backlog_readings: backlog.readings, replay_s: seconds,
        rss_idle_mb: round1(idle.max_rss / MB), rss_replay_mb: round1(w.max_rss / MB), rss_ratio: ratio === null ? null : Math.round(ratio * 100) / 100,
        rss_anon_idle_mb: round1(idle.max_rss_anon / MB), rss_anon_replay_mb: round1(w.max_rss_anon / MB),
        duplicates: counter.backlogDuplicates, live_batches: counter.live, live_before_backlog_done: counter.liveBeforeBacklogDone, live_out_of_order: counter.liveOutOfOrder,
        replay_rate: replayRate > 0 ? replayRate : 'unlimited',
      },
    };
  } finally {
    await teardown(r);
  }
}

const replayName = (bytes: number, rate: number) => `buffer replay ${bytes / MB} MB${rate > 0 ? ` at ${rate / 1000}k/s` : ''} → mosquitto`;

/** the replay at a set rate: the rate the subscriber measured (first to last backlog batch) against it */
async function pacedReplayRow(backlogBytes: number, rate: number): Promise<Row> {
  const row = await replayRow(backlogBytes, rate);
  const measured = row.readings_per_s ?? 0;
  const off = (measured / rate - 1) * 100;
  row.note = `set ${rate.toLocaleString('en-US')} readings/s, measured ${measured.toLocaleString('en-US')} (${off >= 0 ? '+' : ''}${off.toFixed(1)} %); ${row.note}`
    + `; target within 5 % of the set rate ${Math.abs(off) <= 5 ? 'ok' : 'MISS'}`;
  Object.assign(row.detail ?? {}, { measured_vs_set_pct: Math.round(off * 10) / 10 });
  return row;
}

/** bytes the gateway writes to disk per batch while a serial stream runs, broker up or away */
async function writeRow(durability: 'on_outage' | 'always', brokerUp: boolean, seconds: number): Promise<Row> {
  const r: Rig = { tmp: tempDir('edgegate-bench-writes-') };
  try {
    r.broker = await startMosquitto();
    if (!brokerUp) await r.broker.stop();
    r.pty = await ptyPair(r.tmp.dir);
    const gw = r.gw = runCli(['run', '--config', gatewayConfig(r, r.broker.url, durability)], { env: DEPLOYED });
    await waitUntil(() => gw.logs().some((l) => l.device === 'dev1' && l.state === 'connected'), 30_000, 'the gateway reading');
    if (brokerUp) await waitUntil(() => gw.logs().some((l) => l.msg === 'mqtt connected'), 15_000, 'the gateway connected');
    await sleep(1500); // startup writes (seq reservations) are behind us
    const pid = gw.proc.pid!;
    const before = procIo(pid);
    const inst = liveInstrument(r, seconds);
    await new Promise<void>((resolve) => inst.once('exit', () => resolve()));
    await sleep(500); // the last batch closed (max_wait 100 ms) and written
    const after = procIo(pid);
    const batches = await batchesSoFar(r);
    const dir = join(r.tmp.dir, 'buffer');
    const segBytes = readdirSync(dir).filter((n) => n.endsWith('.seg')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    const written = after.write_bytes - before.write_bytes;
    const name = `buffer writes, ${durability}, broker ${brokerUp ? 'up' : 'away'}`;
    return {
      name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
      note: `${batches > 0 ? Math.round(written / batches) : '?'} bytes written to disk per batch (write_bytes ${written} for ${batches} batches); `
        + `frames ${batches > 0 ? Math.round(segBytes / batches) : '?'} bytes per batch`,
      detail: { durability, broker_up: brokerUp, seconds, batches, write_bytes: written, wchar: after.wchar - before.wchar, segment_bytes: segBytes },
    };
  } finally {
    await teardown(r);
  }
}

/** batches created by dev1 so far: the seq the gateway would hand out next, less one */
async function batchesSoFar(r: Rig): Promise<number> {
  await r.gw!.stop(12_000);
  const stored = JSON.parse(readFileSync(join(r.tmp.dir, 'buffer', 'seq.json'), 'utf8')) as { devices: Record<string, number> };
  r.gw = undefined;
  return (stored.devices.dev1 ?? 1) - 1;
}

/** a phase that failed: its row says why */
async function row(name: string, phase: () => Promise<Row>): Promise<Row> {
  process.stderr.write(`bench: ${name} …\n`);
  try {
    return await phase();
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    return { name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` };
  }
}

/** readings/s of the paced replay row, and its backlog (about 10 s of it; 3 s with --quick) */
const PACED_RATE = 50_000;

/**
 * the paced replay row; alone: node -e "import('./dist/bench/buffer.js')
 * .then(async (m) => console.log(await m.benchPacedReplay()))"
 */
export function benchPacedReplay(opts: { quick?: boolean } = {}): Promise<Row> {
  const bytes = (opts.quick ? 10 : 30) * MB;
  return row(replayName(bytes, PACED_RATE), () => pacedReplayRow(bytes, PACED_RATE));
}

/**
 * The rows, each note ending with its target (benchmark, not test): replay
 * ≥ 100,000 readings/s with RSS ≤ 1.5× before it; at a set rate, within 5 %
 * of it; no disk write with a healthy broker in on_outage.
 */
export async function benchBuffer(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const seconds = opts.quick ? 3 : 10;
  const backlog = opts.quick ? 20 * MB : 100 * MB;
  const replay = await row(`buffer replay ${backlog / MB} MB → mosquitto`, () => replayRow(backlog));
  const ratio = replay.detail?.rss_ratio as number | null | undefined;
  if (replay.readings_per_s !== null) {
    replay.note += `; target ≥ 100,000 readings/s ${replay.readings_per_s >= 100_000 ? 'ok' : 'MISS'}, RSS ≤ 1.5× ${ratio != null && ratio <= 1.5 ? 'ok' : 'MISS'}`;
  }
  const healthy = await row('buffer writes, on_outage, broker up', () => writeRow('on_outage', true, seconds));
  if (healthy.detail) healthy.note += `; target no disk write ${healthy.detail.write_bytes === 0 ? 'ok' : 'MISS'}`;
  return [
    replay,
    await benchPacedReplay(opts),
    healthy,
    await row('buffer writes, always, broker up', () => writeRow('always', true, seconds)),
    await row('buffer writes, on_outage, broker away', () => writeRow('on_outage', false, seconds)),
  ];
}
