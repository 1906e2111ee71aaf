// Sparkplug B DDATA against the JSON batch for the OPC UA workload of
// bench/opcua.ts (5,000 integer variables, every one changing per round,
// batches of 500): bytes per reading on the wire (MQTT payload) and CPU per
// reading. In process, no broker: the JSON side is the core's own Batcher,
// the Sparkplug side the edge node's own DDATA code (alias metrics without
// datatype, through the protobufjs Payload type of Tahu's encoder). The core always builds the JSON batch; a Sparkplug reading costs
// its CPU on top of that.
import type { Batch, Reading } from '../gateway/types.js';
import { Batcher } from '../gateway/batcher.js';
import { systemClock } from '../gateway/clock.js';
import { Aliases, dataMetric, defineDevice } from '../gateway/outputs/sparkplug/births.js';
import { encodeData, type UMetric } from '../gateway/outputs/sparkplug/payload.js';
import { opcuaDevice } from '../config/schema.js';
import type { Row } from './report.js';

export const SPARKPLUG_ROW = 'sparkplug DDATA vs JSON batch, opcua 5,000 vars';

const cpuUs = () => { const u = process.cpuUsage(); return u.user + u.system; };

export function benchSparkplug(opts: { quick?: boolean } = {}): Row[] {
  const variables = 5000;
  const rounds = opts.quick ? 20 : 100;
  const tags = Object.fromEntries(Array.from({ length: variables }, (_, i) => [`v${i}`, { node: `ns=1;s=v${i}`, type: 'integer' }]));
  const config = opcuaDevice.parse({ id: 'plc1', driver: 'opcua', endpoint: 'opc.tcp://127.0.0.1:4840', tags });
  const def = defineDevice(config, undefined, new Aliases());
  const readings: Reading[] = [];
  const t0 = Date.now();
  for (let r = 0; r < rounds; r++) for (let i = 0; i < variables; i++) readings.push({ tag: `v${i}`, value: r * 7 + i, ts: t0 + r * 100 + (i % 100), quality: 'good' });

  // JSON: the core's batcher, as the JSON publisher gets it
  const batches: Batch[] = [];
  let seq = 1;
  const batcher = new Batcher({
    gatewayId: 'bench', deviceId: 'plc1', topic: 'edgegate/bench/devices/plc1/data',
    settings: { max_readings: 500, max_bytes: 256 * 1024, max_wait: 60_000 }, clock: systemClock,
    nextSeq: () => seq++, onBatch: (b) => batches.push(b), knownTags: variables,
  });
  let c = cpuUs();
  for (const r of readings) batcher.add(r);
  batcher.stop();
  const jsonCpu = cpuUs() - c;
  let jsonBytes = 0;
  for (const b of batches) jsonBytes += Buffer.byteLength(b.payload);

  // Sparkplug: one DDATA per batch of 500, metrics by alias with their own timestamps
  c = cpuUs();
  let spBytes = 0;
  let spSeq = 0;
  for (let i = 0; i < readings.length; i += 500) {
    const metrics: UMetric[] = [];
    for (const r of readings.slice(i, i + 500)) metrics.push(dataMetric(def.byName.get(r.tag)!, r, false));
    spBytes += encodeData({ timestamp: Date.now(), seq: spSeq, metrics }).length;
    spSeq = (spSeq + 1) % 256;
  }
  const spCpu = cpuUs() - c;
  const n = readings.length;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return [{
    name: SPARKPLUG_ROW, readings_per_s: Math.round(n / (spCpu / 1e6)), lost: null, cpu_pct: 100, rss_mb: null,
    loop_p99_ms: null, p50_ms: null, p99_ms: null, msgs_per_s: null,
    note: `DDATA ${r1(spBytes / n)} B/reading vs JSON ${r1(jsonBytes / n)} B/reading; CPU ${r2(spCpu / n)} µs/reading on top of JSON's ${r2(jsonCpu / n)} µs (shared machine: CPU noisy)`,
    detail: { readings: n, variables, batch: 500, ddata_bytes: spBytes, json_bytes: jsonBytes, ddata_bytes_per_reading: r2(spBytes / n), json_bytes_per_reading: r2(jsonBytes / n), sparkplug_cpu_us_per_reading: r2(spCpu / n), json_cpu_us_per_reading: r2(jsonCpu / n) },
  }];
}
