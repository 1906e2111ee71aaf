// Memory rows: the RSS of the gateway CLI, started as deployed, on the jobs a
// small Pi (a Zero 2 W has 512 MB for everything) is given: one serial
// device with nothing arriving, three Modbus RTU slaves polled every second,
// and (in opcua.ts) 1,000 OPC UA tags changing once a second. The serial
// device at 115200 baud is the serial row of run.ts. Each row reports the
// largest VmRSS over a window that starts once every device is connected;
// everything a row starts is stopped in its finally block.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { connect } from 'mqtt';
import { CLI, writeConfig } from '../test/helpers/gateway.js';
import { startMosquitto, type TestBroker } from '../test/helpers/mosquitto.js';
import { sleep, tempDir } from '../test/helpers/peers.js';
import { ptyPair, type PtyPair } from '../test/helpers/socat.js';
import { startModbusPeer, type ModbusPeer } from '../test/peers/modbus.js';
import { ProcSampler } from './procfs.js';
import type { Row } from './report.js';
import { stopChild } from './child.js';

/**
 * The node flags the gateway runs with: the bin's shebang, `npm start` and
 * the systemd wrapper (systemd/install.sh) carry the same. A 2 MiB young
 * generation keeps the heap small without promoting what a busy OPC UA
 * device keeps for a few hundred ms; one V8 helper thread instead of four
 * saves the malloc arenas the others fill (about 6 MB of RSS).
 */
export const DEPLOYED_FLAGS = ['--max-semi-space-size=2', '--v8-pool-size=1'];

export const MEMORY_ROWS = {
  serialIdle: 'rss serial idle (gateway)',
  modbus3: 'rss modbus 3 slaves 1 Hz (gateway)',
};

const round1 = (x: number) => Math.round(x * 10) / 10;

interface Job {
  name: string;
  seconds: number;
  /** starts the peers, returns the devices of the config and how to stop the peers */
  setup(dir: string): Promise<{ devices: object[]; stop(): Promise<void> }>;
}

/** the gateway on a job: RSS (max over the window), CPU, readings delivered */
async function runJob(job: Job): Promise<Row> {
  const tmp = tempDir('edgegate-bench-mem-');
  let broker: TestBroker | undefined;
  let peers: { stop(): Promise<void> } | undefined;
  let gw: ChildProcess | undefined;
  let sampler: ProcSampler | undefined;
  let sub: ReturnType<typeof connect> | undefined;
  try {
    broker = await startMosquitto();
    if (broker.kind !== 'mosquitto') throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const setup = await job.setup(tmp.dir);
    peers = setup;
    const ids = setup.devices.map((d) => (d as { id: string }).id);
    // the retained stats say when every device is connected; data messages count the readings
    const states = new Map<string, string>();
    let readings = 0;
    sub = connect(broker.url, { reconnectPeriod: 0, connectTimeout: 5000 });
    const s = sub;
    s.on('error', () => undefined);
    s.on('message', (topic, payload) => {
      const body = JSON.parse(payload.toString('utf8')) as { devices?: Record<string, { state: string }>; readings?: unknown[] };
      if (topic.endsWith('/stats')) for (const [id, d] of Object.entries(body.devices ?? {})) states.set(id, d.state);
      else readings += body.readings?.length ?? 0;
    });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => s.subscribe(['edgegate/bench/stats', 'edgegate/bench/devices/+/data'], { qos: 0 }, (err) => (err ? reject(err) : resolve())));
      s.once('error', reject);
    });
    const file = writeConfig(tmp.dir, {
      gateway: { id: 'bench' }, mqtt: { url: broker.url, qos: 1 }, buffer: { dir: join(tmp.dir, 'buffer') },
      batch: { max_readings: 500, max_wait: '100ms' }, stats_interval: '1s', devices: setup.devices,
    });
    const g = spawn(process.execPath, [...DEPLOYED_FLAGS, CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    gw = g;
    let err = '';
    g.stdout?.resume();
    g.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-2000); });
    const end = Date.now() + 30_000;
    while (!ids.every((id) => states.get(id) === 'connected')) {
      if (g.exitCode !== null || g.signalCode !== null) throw new Error(`the gateway exited (${g.exitCode ?? g.signalCode}): ${err}`);
      if (Date.now() > end) throw new Error(`not every device connected within 30 s: ${JSON.stringify(Object.fromEntries(states))}`);
      await sleep(50);
    }
    sampler = new ProcSampler(g.pid as number);
    sampler.start();
    const r0 = readings;
    const t0 = Date.now();
    await sleep(job.seconds * 1000);
    const t1 = Date.now();
    sampler.sample();
    const w = sampler.window(t0, t1);
    const got = readings - r0;
    return {
      name: job.name,
      readings_per_s: w.seconds > 0 ? round1(got / w.seconds) : null,
      lost: null,
      cpu_pct: w.seconds > 0 ? round1((w.cpu_s / w.seconds) * 100) : null,
      rss_mb: round1(w.max_rss / 2 ** 20),
      loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
      note: `${ids.length} device${ids.length === 1 ? '' : 's'} connected, ${got} readings in ${round1(w.seconds)} s; node ${DEPLOYED_FLAGS.join(' ')}`,
      detail: { window_s: round1(w.seconds), rss_anon_mb: round1(w.max_rss_anon / 2 ** 20), rss_mb_per_s: sampler.rssSeries(t0, t1), flags: DEPLOYED_FLAGS },
    };
  } finally {
    sampler?.stop();
    await stopChild(gw, 10_000);
    sub?.end(true);
    await peers?.stop();
    await broker?.stop();
    tmp.remove();
  }
}

const serialIdle = (seconds: number): Job => ({
  name: MEMORY_ROWS.serialIdle,
  seconds,
  async setup(dir) {
    const pty: PtyPair = await ptyPair(dir);
    return {
      devices: [{ id: 'dev1', driver: 'serial', port: pty.device, baud_rate: 115200, format: 'kv', tags: { n: { type: 'integer' }, T: { name: 'temperature' }, H: { name: 'humidity' } } }],
      stop: () => pty.stop(),
    };
  },
});

const modbusThree = (seconds: number): Job => ({
  name: MEMORY_ROWS.modbus3,
  seconds,
  async setup() {
    const peers: ModbusPeer[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const p = await startModbusPeer({ ownPty: true });
        peers.push(p);
        await p.set(1, 'holding', 0, Array.from({ length: 10 }, (_, k) => 100 * i + k));
      }
    } catch (e) {
      await Promise.all(peers.map((p) => p.stop()));
      throw e;
    }
    const tags = Object.fromEntries(Array.from({ length: 10 }, (_, k) => [`r${k}`, { area: 'holding', address: k }]));
    return {
      // every change reported: a poll a second is 10 readings a second per slave
      devices: peers.map((p, i) => ({ id: `plc${i + 1}`, driver: 'modbus-rtu', port: p.path, baud_rate: 115200, unit_id: 1, poll_interval: '1s', tags })),
      stop: async () => { await Promise.all(peers.map((p) => p.stop())); },
    };
  },
});

/** the memory rows of this file; a failed one is reported in its row */
export async function benchMemory(opts: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  const seconds = opts.quick ? 4 : 10;
  const rows: Row[] = [];
  for (const job of [serialIdle(seconds), modbusThree(seconds)]) {
    if (opts.only && !opts.only(job.name)) continue;
    process.stderr.write(`bench: ${job.name} (${job.seconds} s) …\n`);
    try {
      rows.push(await runJob(job));
    } catch (err) {
      const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
      process.stderr.write(`bench: ${job.name} failed: ${msg}\n`);
      rows.push({ name: job.name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` });
    }
  }
  return rows;
}
