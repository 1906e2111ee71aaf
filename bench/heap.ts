// Where the OPC UA gateway's memory goes: one bench phase (the simulated
// server, the gateway CLI as deployed, Mosquitto, the counting subscriber)
// with the gateway under --trace-gc-nvp, a heap snapshot at the end of the
// window, and its summary: self size by constructor, retained size of the
// driver's and the core's parts, bytes allocated and promoted per reading.
//
//   node dist/bench/heap.js VARIABLES [--interval-ms N] [--seconds N] [--semi-space MB] [--out FILE]
import { pathToFileURL } from 'node:url';
import { formatSummary, summarise } from './heap-summary.js';
import { runOpcuaPhase } from './opcua.js';

/** the parts whose retained size is reported: node-opcua's client side, the driver, the core's per-device state */
export const RETAINED = [
  'ClientSubscriptionImpl', 'ClientMonitoredItemGroupImpl', 'ClientMonitoredItemImpl', 'ClientSessionImpl', 'OPCUAClientImpl',
  'MonitoredTags', 'OpcuaConnection', 'TagPipeline', 'Batcher', 'DeviceTask', 'Gateway',
];

async function main(argv: string[]): Promise<void> {
  const variables = Number(argv[0]);
  if (!(variables > 0)) throw new Error('usage: heap.js VARIABLES [--interval-ms N] [--seconds N] [--semi-space MB] [--out FILE]');
  const opt = (name: string) => { const i = argv.indexOf(name); return i === -1 ? undefined : argv[i + 1]; };
  const intervalMs = Number(opt('--interval-ms') ?? 100);
  const out = opt('--out') ?? `bench-results/heap-${variables}-${intervalMs}ms.heapsnapshot`;
  const semi = opt('--semi-space');
  const row = await runOpcuaPhase({
    name: `heap ${variables} vars every ${intervalMs} ms`, target: 'gateway', variables, intervalMs,
    seconds: Number(opt('--seconds') ?? 10), heapSnapshot: out, traceGc: true,
    ...(semi ? { semiSpaceMb: Number(semi) } : {}),
    ...(opt('--node-flags') ? { extraFlags: (opt('--node-flags') as string).split(' ') } : {}),
  });
  console.log(JSON.stringify({ rss_mb: row.rss_mb, cpu_pct: row.cpu_pct, readings_per_s: row.readings_per_s, note: row.note, gc: row.detail?.gc }));
  console.log(formatSummary(summarise(out, RETAINED, 30), { n: variables, what: 'tag' }));
  console.log(`snapshot: ${out}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(() => process.exit(0), (err: unknown) => {
    console.error(`heap: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
