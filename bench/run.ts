// npm run bench: the pipeline without I/O, then a real serial stream through
// the gateway into a real Mosquitto, paced to 115200 baud and unpaced, then
// the same streams through the naive baseline. Prints a table and writes it
// as JSON (--out FILE, default bench-results/latest.json).
//
//   node dist/bench/run.js [--out FILE] [--quick] [--strict] [--only NAMES]
//
// --quick shortens every phase (for a smoke run); --strict exits 1 when a
// target is missed; --only runs the rows whose names contain one of the
// comma-separated NAMES (case-insensitive; "rss" gives the memory rows,
// "buffer" the buffer rows). A phase that fails is reported in its row and makes the
// run exit 1; a missing peer (mosquitto, socat) stops it before anything runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, type as osType } from 'node:os';
import { dirname, resolve } from 'node:path';
import { which } from '../test/helpers/peers.js';
import { benchBuffer } from './buffer.js';
import { benchFlood, floodChecks } from './flood.js';
import { benchHttp } from './http.js';
import { benchMemory, MEMORY_ROWS } from './memory.js';
import { benchModbus, modbusTargets } from './modbus.js';
import { benchOpcua, OPCUA_MEMORY_ROW, opcuaChecks, opcuaRatios } from './opcua.js';
import { benchPipeline } from './pipeline.js';
import { messagesRatio, perCpuRatio, table, type Ratio, type Row } from './report.js';
import { runSerial, type SerialOptions } from './serial.js';
import { benchSparkplug, SPARKPLUG_ROW } from './sparkplug.js';

const HARD_LIMIT_MS = 10 * 60_000;
const FOOTNOTES = [
  'loop p99: the largest per-second p99 of the window, as the process reports it: node\'s monitorEventLoopDelay at a',
  '  10 ms resolution, less those 10 ms (each sample is the time between two ticks of a 10 ms timer).',
  'cpu %: of one core over the window (first byte written to last reading received); rss: max VmRSS in the window (MB = MiB);',
  '  msgs/s: data messages the subscriber received (the gateway\'s retained stats and status not counted).',
];

interface Args { out: string; quick: boolean; strict: boolean; only: string[] }
const USAGE = 'usage: run.js [--out FILE] [--quick] [--strict] [--only NAME[,NAME…]]';
/** the RSS target of a small Pi's serial gateway, MB (MiB) */
const SERIAL_RSS_MB = 70;
const SERIAL_115200 = 'serial 115200 → mosquitto (gateway)';
/** the memory rows, each with the RSS it must stay under (MB) when it has a target */
const MEMORY: Array<{ name: string; target?: number }> = [
  { name: MEMORY_ROWS.serialIdle },
  { name: SERIAL_115200, target: SERIAL_RSS_MB },
  { name: MEMORY_ROWS.modbus3 },
  { name: OPCUA_MEMORY_ROW },
];

function parseArgs(argv: string[]): Args {
  const args: Args = { out: 'bench-results/latest.json', quick: false, strict: false, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && argv[i + 1] !== undefined) args.out = argv[++i] as string;
    else if (a?.startsWith('--out=')) args.out = a.slice(6);
    else if (a === '--quick') args.quick = true;
    else if (a === '--strict') args.strict = true;
    else if ((a === '--only' && argv[i + 1] !== undefined) || a?.startsWith('--only=')) {
      const list = a === '--only' ? argv[++i] as string : a.slice(7);
      // a comma before a digit belongs to a name ("opcua 5,000 vars …")
      args.only.push(...list.split(/,(?!\d)/).map((x) => x.trim().toLowerCase()).filter((x) => x.length > 0));
    } else {
      console.error(`unknown argument ${a}\n${USAGE}`);
      process.exit(2);
    }
  }
  return args;
}

/** the row selector of --only: every row when none was given; "rss" also picks the serial row of the memory set */
function selector(only: string[]): (name: string) => boolean {
  if (only.length === 0) return () => true;
  return (name) => {
    const n = name.toLowerCase();
    return only.some((o) => n.includes(o) || (o === 'rss' && MEMORY.some((m) => m.name === name)));
  };
}

function failedRow(name: string, err: unknown): Row {
  const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
  return { name, readings_per_s: null, lost: null, cpu_pct: null, rss_mb: null, loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null, note: `FAILED: ${msg}` };
}

interface Check { what: string; ok: boolean }

function checks(rows: Row[]): Check[] {
  const out: Check[] = [];
  const pipe = rows.find((r) => r.name === 'pipeline core');
  if (pipe?.readings_per_s != null) out.push({ what: `pipeline ≥ 2,000,000 readings/s (${pipe.readings_per_s.toLocaleString('en-US')})`, ok: pipe.readings_per_s >= 2_000_000 });
  for (const r of rows.filter((x) => x.name.startsWith('serial') && x.name.includes('(gateway)'))) {
    if (r.lost !== null) out.push({ what: `${r.name}: 0 lines lost (${r.lost})`, ok: r.lost === 0 });
    if (r.name.includes('115200')) {
      if (r.loop_p99_ms !== null) {
        out.push({ what: `${r.name}: event-loop p99 ≤ 10 ms (${r.loop_p99_ms})`, ok: r.loop_p99_ms <= 10 });
      }
    }
  }
  for (const m of MEMORY) {
    const r = rows.find((x) => x.name === m.name);
    if (m.target !== undefined && r?.rss_mb != null) out.push({ what: `${r.name}: RSS ≤ ${m.target} MB (${r.rss_mb})`, ok: r.rss_mb <= m.target });
  }
  return out;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const missing = ['mosquitto', 'socat'].filter((p) => which(p) === undefined);
  if (missing.length > 0) {
    console.error(`bench: cannot start its peers: ${missing.join(' and ')} not found (apt-get install -y ${missing.join(' ')})`);
    return 1;
  }
  const paced = args.quick ? 4 : 15;
  const unpaced = args.quick ? 3 : 10;
  const only = selector(args.only);
  const phases: SerialOptions[] = [
    { name: SERIAL_115200, target: 'gateway', baud: 115200, seconds: paced, drainMs: 5000 },
    { name: 'serial unpaced → mosquitto (gateway)', target: 'gateway', baud: 'unpaced', seconds: unpaced, drainMs: 10_000 },
    { name: 'serial 115200 → mosquitto (naive)', target: 'naive', baud: 115200, seconds: paced, drainMs: 5000 },
    { name: 'serial unpaced → mosquitto (naive)', target: 'naive', baud: 'unpaced', seconds: unpaced, drainMs: 10_000 },
  ];
  const started = new Date();
  // other work on the machine skews every figure: recorded so a noisy run can be told apart
  const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  if ((loadAtStart[0] ?? 0) > cpus().length * 0.75) {
    process.stderr.write(`bench: warning: the machine is busy (load ${loadAtStart[0]} on ${cpus().length} cores): every figure will be skewed\n`);
  }
  const rows: Row[] = [];
  let failed = false;

  if (only('pipeline core')) {
    try {
      process.stderr.write('bench: pipeline core …\n');
      const p = benchPipeline(args.quick ? { readings: 1_000_000 } : {});
      rows.push({
        name: 'pipeline core', readings_per_s: p.readings_per_s, lost: null, cpu_pct: 100, rss_mb: null,
        loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
        note: `no I/O, one core; ${p.batches} batches in ${p.ms} ms`, detail: { ...p },
      });
    } catch (err) {
      failed = true;
      rows.push(failedRow('pipeline core', err));
    }
  }

  for (const phase of phases.filter((p) => only(p.name))) {
    process.stderr.write(`bench: ${phase.name} (${phase.seconds} s) …\n`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const bound = (phase.seconds + 60) * 1000;
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`phase took over ${bound / 1000} s`)), bound); });
      rows.push(await Promise.race([runSerial(phase), timeout]));
    } catch (err) {
      failed = true;
      console.error(`bench: ${phase.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      rows.push(failedRow(phase.name, err));
    } finally {
      clearTimeout(timer);
    }
  }

  const memoryRows = await benchMemory({ quick: args.quick, only });
  if (memoryRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
  rows.push(...memoryRows);

  const httpRows = await benchHttp({ quick: args.quick, only });
  if (httpRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
  rows.push(...httpRows);

  const modbusRows = await benchModbus({ quick: args.quick, only });
  if (modbusRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
  rows.push(...modbusRows);

  const opcuaRows = await benchOpcua({ quick: args.quick, only });
  if (opcuaRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
  rows.push(...opcuaRows);

  if (only(SPARKPLUG_ROW)) {
    try {
      process.stderr.write('bench: sparkplug …\n');
      rows.push(...benchSparkplug({ quick: args.quick }));
    } catch (err) {
      failed = true;
      rows.push(failedRow(SPARKPLUG_ROW, err));
    }
  }

  const floodRows = await benchFlood({ quick: args.quick, only });
  if (floodRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
  rows.push(...floodRows);

  // the buffer rows run as one set: --only buffer
  if (only('buffer replay, buffer writes')) {
    const bufferRows = await benchBuffer({ quick: args.quick });
    if (bufferRows.some((r) => r.note.startsWith('FAILED'))) failed = true;
    rows.push(...bufferRows);
  }

  const byName = (s: string) => rows.find((r) => r.name === s);
  const ratios: Ratio[] = [
    { what: 'readings per CPU-second at 115200', value: perCpuRatio(byName(phases[0]!.name), byName(phases[2]!.name)) },
    { what: 'unpaced', value: perCpuRatio(byName(phases[1]!.name), byName(phases[3]!.name)) },
    { what: 'MQTT messages per reading at 115200', value: messagesRatio(byName(phases[0]!.name), byName(phases[2]!.name)) },
    { what: 'unpaced', value: messagesRatio(byName(phases[1]!.name), byName(phases[3]!.name)) },
    ...opcuaRatios(rows),
  ];
  const machine = { os: `${osType()} ${release()}`, cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg_at_start: loadAtStart };
  const results = [...checks(rows), ...modbusTargets(rows), ...opcuaChecks(rows), ...floodChecks(rows)];
  console.log(`\nedgegate bench — ${started.toISOString()} — ${machine.os}, ${machine.cpus} × ${machine.cpu_model}, node ${machine.node}, load ${loadAtStart.join(' ')}\n`);
  console.log(table(rows, ratios, FOOTNOTES));
  console.log('');
  for (const c of results) console.log(`${c.ok ? 'ok  ' : 'MISS'}  ${c.what}`);

  const out = resolve(args.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({
    timestamp: started.toISOString(), duration_s: Math.round((Date.now() - started.getTime()) / 1000),
    machine, rows, ratios, targets: results,
  }, null, 2) + '\n');
  console.log(`\nwritten to ${args.out}`);
  if (failed) return 1;
  return args.strict && results.some((c) => !c.ok) ? 1 : 0;
}

// the exit handlers of the helpers and of serial.ts kill every child; signals must reach them
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));
const hard = setTimeout(() => {
  console.error(`bench: gave up after ${HARD_LIMIT_MS / 1000} s`);
  process.exit(1);
}, HARD_LIMIT_MS);
hard.unref();

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
