// Pipeline throughput without I/O: raw values through tag processing, the
// batcher and JSON encoding on one core, batches consumed by counting bytes.
import { pathToFileURL } from 'node:url';
import type { TagConfig } from '../config/schema.js';
import { Batcher } from '../gateway/batcher.js';
import { systemClock } from '../gateway/clock.js';
import { TagPipeline } from '../gateway/tags.js';
import { newCounters, type RawValue } from '../gateway/types.js';

export interface PipelineBenchResult {
  name: string;
  readings_per_s: number;
  batches: number;
  ms: number;
}

// Ten tags as a real device map mixes them: with and without deadband,
// scaled, range-checked, typed from strings the way a serial line delivers them.
const TAGS: Record<string, TagConfig> = {
  T: { name: 'temperature', deadband: 0.2, max_interval: 60_000 },
  H: { name: 'humidity', deadband: 1 },
  P: { name: 'pressure', scale: 0.01, offset: 0, min: 0, max: 2000 },
  V: { name: 'voltage', deadband: 0.5 },
  I: { name: 'current' },
  F: { name: 'flow', type: 'number', min: 0 },
  S: { name: 'speed', deadband: 0 },
  R: { name: 'relay', type: 'boolean', deadband: 0 },
  C: { name: 'count', type: 'integer' },
  U: { name: 'état', type: 'string' },
};
const KEYS = Object.keys(TAGS);
const SAMPLES = 4096;

/** a few thousand prepared raw values per tag, so the loop measures the pipeline and not value generation */
function samples(): RawValue[][] {
  return KEYS.map((key, k) => {
    const out: RawValue[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const wave = Math.sin((i + k * 97) / 50);
      switch (key) {
        case 'T': out.push(Math.round((21 + 3 * wave) * 100) / 100); break;
        case 'H': out.push(Math.round(40 + 10 * wave)); break;
        case 'P': out.push(101_325 + i % 50); break;
        case 'V': out.push(230 + 2 * wave); break;
        case 'I': out.push(5 + wave); break;
        case 'F': out.push(String(Math.round((12 + 4 * wave) * 10) / 10)); break;
        case 'S': out.push(i % 10 === 0 ? 1500 : 1500 + (i % 3)); break;
        case 'R': out.push(i % 64 < 32 ? 'on' : 'off'); break;
        case 'C': out.push(i); break;
        default: out.push(i % 100 === 0 ? 'régime' : 'normal');
      }
    }
    return out;
  });
}

function run(n: number, values: RawValue[][]): { bytes: number; batches: number; ms: number } {
  let bytes = 0;
  let batches = 0;
  let seq = 0;
  const batcher = new Batcher({
    gatewayId: 'bench',
    deviceId: 'device1',
    topic: 'edgegate/bench/devices/device1/data',
    settings: { max_readings: 500, max_bytes: 256 * 1024, max_wait: 1000 },
    clock: systemClock,
    nextSeq: () => ++seq,
    // byteLength flattens the payload as publishing would, so that cost is counted too
    onBatch: (b) => { bytes += Buffer.byteLength(b.payload); batches++; },
  });
  const pipeline = new TagPipeline({ tags: TAGS, clock: systemClock, counters: newCounters(), out: (r) => batcher.add(r) });
  const keys = KEYS;
  const nk = keys.length;
  const ts0 = Date.now();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const k = i % nk;
    pipeline.input(keys[k]!, values[k]![(i / nk | 0) & (SAMPLES - 1)]!, ts0 + i, 'good');
  }
  pipeline.stop();
  batcher.stop();
  return { bytes, batches, ms: performance.now() - start };
}

export function benchPipeline(opts: { readings?: number } = {}): PipelineBenchResult {
  const n = opts.readings ?? 3_000_000;
  const values = samples();
  run(Math.min(n, 500_000), values); // warm-up: let the optimising compiler settle
  const { batches, ms } = run(n, values);
  return { name: 'pipeline', readings_per_s: Math.round(n / (ms / 1000)), batches, ms: Math.round(ms * 10) / 10 };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(benchPipeline()));
}
