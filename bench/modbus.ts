// Modbus throughput: polls/s and registers/s of the driver on one RTU bus
// (a pty whose other end a pymodbus slave holds itself: no socat relay in
// between, as there is none on a real line) and over TCP, polling as fast as
// the bus allows (poll_interval 0).
//
// A pty has no baud rate, so the RTU bus is measured unpaced (as fast as
// pty, pymodbus and the driver go) and paced: the slave answers no sooner
// than request, 3.5 characters of silence and answer take on a 115200 baud
// 8E1 line (11 bits a character) after the request arrived, and the driver
// keeps the 3.5 characters of silence before its next request. The paced
// rows are compared with the theoretical request rate of that line, in which
// the slave needs no time of its own; pymodbus needs some, and a shared
// machine adds scheduling delays, so the share is a lower bound.
import { loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { modbusRtuDevice, modbusTcpDevice } from '../config/schema.js';
import { openBuses } from '../drivers/modbus/bus.js';
import { ModbusDriver } from '../drivers/modbus/driver.js';
import { systemClock } from '../gateway/clock.js';
import type { DriverContext, Logger } from '../gateway/types.js';
import { sleep } from '../test/helpers/peers.js';
import { startModbusPeer, type ModbusPeer } from '../test/peers/modbus.js';
import type { Row } from './report.js';

const BAUD = 115200;
const BITS_PER_CHAR = 11;
/** the row of the target */
const TARGET_ROW = 'modbus rtu 115200 paced, 10 reg';

/** requests per second a line can carry for reads of n registers: request 8 bytes, answer 5 + 2n, 3.5 characters of silence before each */
export function theoreticalPollsPerSecond(registers: number, baud = BAUD, bitsPerChar = BITS_PER_CHAR): number {
  const chars = 8 + (5 + 2 * registers) + 2 * 3.5;
  return baud / (chars * bitsPerChar);
}

interface Phase {
  name: string;
  transport: 'rtu' | 'tcp';
  paced: boolean;
  registers: number;
  seconds: number;
}

const silent: Logger = new Proxy({} as Logger, { get: (_t, name) => (name === 'child' ? () => silent : () => undefined) });

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function runPhase(p: Phase): Promise<Row> {
  let peer: ModbusPeer | undefined;
  const controller = new AbortController();
  try {
    peer = await startModbusPeer(p.transport === 'rtu' ? { ownPty: true, ...(p.paced ? { paceBaud: BAUD } : {}) } : { tcp: 0 });
    const path = peer.path;
    await peer.set(1, 'holding', 0, Array.from({ length: p.registers }, (_, i) => i));
    const tags = Object.fromEntries(Array.from({ length: p.registers }, (_, i) => [`r${i}`, { area: 'holding', address: i }]));
    const common = { id: 'bench', unit_id: 1, poll_interval: 1, timeout: 1000, tags };
    const parsed = path !== undefined
      ? modbusRtuDevice.parse({ ...common, driver: 'modbus-rtu', port: path, baud_rate: BAUD, parity: 'even' })
      : modbusTcpDevice.parse({ ...common, driver: 'modbus-tcp', host: '127.0.0.1', port: peer.port });
    // as fast as the bus allows: a poll_interval of 0, which a config may not ask for
    const config = { ...parsed, poll_interval: 0 };
    const busKey = path ?? `127.0.0.1:${peer.port}`;
    let readings = 0;
    let measuring = false;
    const periods: number[] = [];
    let lastPoll = 0;
    const ctx: DriverContext = {
      deviceId: 'bench',
      log: silent,
      clock: systemClock,
      signal: controller.signal,
      emit(key) {
        if (!measuring) return;
        readings++;
        if (key === 'r0') {
          const now = performance.now();
          if (lastPoll > 0) periods.push(now - lastPoll);
          lastPoll = now;
        }
      },
      setStatus: () => undefined,
      parseError: () => undefined,
      timeout: () => undefined,
    };
    const run = new ModbusDriver(config).run(ctx);
    let failed: unknown;
    run.catch((e: unknown) => { failed = e; });
    await sleep(500); // warm-up: port open, first polls, JIT
    if (failed) throw failed;
    const bus = openBuses().get(busKey);
    if (!bus) throw new Error('the bus did not open');
    const load = loadavg()[0] ?? 0;
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const req0 = bus.requests;
    const t0 = performance.now();
    measuring = true;
    await sleep(p.seconds * 1000);
    measuring = false;
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const requests = bus.requests - req0;
    loop.disable();
    controller.abort();
    await run.catch(() => undefined);
    if (failed) throw failed;
    const polls = requests / elapsed;
    const sorted = periods.sort((a, b) => a - b);
    const limit = theoreticalPollsPerSecond(p.registers);
    const counts = await peer.counts();
    const of = p.transport === 'rtu' ? `; 115200 8E1 limit ${limit.toFixed(1)} polls/s, ${Math.round(limit * p.registers)} reg/s` : '';
    const p50 = percentile(sorted, 50);
    // the mean suffers every scheduling delay of a busy machine; the median poll shows the steady rate
    const share = p.transport === 'rtu' && p.paced && p50 !== null
      ? ` = ${((polls / limit) * 100).toFixed(1)} % of the limit (median poll ${p50.toFixed(2)} ms: ${((1000 / p50 / limit) * 100).toFixed(1)} %)`
      : '';
    return {
      name: p.name,
      readings_per_s: Math.round(readings / elapsed),
      lost: null,
      cpu_pct: round1(((cpu.user + cpu.system) / 1e6 / elapsed) * 100),
      // the driver runs inside the benchmark process, whose RSS says nothing about the driver: in detail only
      rss_mb: null,
      loop_p99_ms: round1(loop.percentile(99) / 1e6),
      p50_ms: p50 === null ? null : round1(p50),
      p99_ms: percentile(sorted, 99) === null ? null : round1(percentile(sorted, 99)!),
      msgs_per_s: null,
      note: `${polls.toFixed(1)} polls/s${share}, ${Math.round(polls * p.registers)} reg/s${of}; p50/p99 = time per poll; slave counted ${counts['1:3'] ?? 0} reads; load average ${load.toFixed(1)}`,
      detail: {
        polls_per_s: round1(polls), median_poll_ms: p50, load_average: round1(load), bench_process_rss_mb: round1(process.memoryUsage.rss() / 2 ** 20), registers_per_s: Math.round(polls * p.registers), registers_per_poll: p.registers, seconds: round1(elapsed),
        ...(p.transport === 'rtu' ? { theoretical_polls_per_s: round1(limit), theoretical_registers_per_s: Math.round(limit * p.registers), paced: p.paced } : {}),
      },
    };
  } finally {
    controller.abort();
    await peer?.stop();
  }
}

/** the Modbus rows of `npm run bench`; about 30 s (quick: about 12 s) */
export async function benchModbus(options: { quick?: boolean; only?: (name: string) => boolean } = {}): Promise<Row[]> {
  const s = options.quick ? 2 : 5;
  const phases: Phase[] = [
    { name: 'modbus rtu pty unpaced, 10 reg', transport: 'rtu', paced: false, registers: 10, seconds: s },
    { name: TARGET_ROW, transport: 'rtu', paced: true, registers: 10, seconds: s + 1 },
    { name: 'modbus rtu 115200 paced, 125 reg', transport: 'rtu', paced: true, registers: 125, seconds: s },
    { name: 'modbus tcp loopback, 10 reg', transport: 'tcp', paced: false, registers: 10, seconds: s },
  ];
  const rows: Row[] = [];
  for (const phase of phases.filter((x) => !options.only || options.only(x.name))) {
    process.stderr.write(`bench: ${phase.name} (${phase.seconds} s) …\n`);
    try {
      rows.push(await runPhase(phase));
    } catch (err) {
      const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
      rows.push({ name: phase.name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` });
    }
  }
  return rows;
}


/** the target: one RTU bus at 115200 baud reaches at least 80 % of its theoretical request rate for 10-register reads */
export function modbusTargets(rows: Row[]): Array<{ what: string; ok: boolean }> {
  const polls = rows.find((r) => r.name === TARGET_ROW)?.detail?.polls_per_s;
  if (typeof polls !== 'number') return [];
  const share = (polls / theoreticalPollsPerSecond(10)) * 100;
  return [{ what: `${TARGET_ROW}: ≥ 80 % of the 115200 baud limit (${share.toFixed(1)} %)`, ok: share >= 80 }];
}
