// Loaded into the benchmark's gateway with `--import` (never by the product):
// where one device's batches spend their time inside the gateway. For each
// batch of EDGEGATE_TRACE_DEVICE it records when the batcher closed it (the
// publisher takes it), how many batches waited ahead of it then, when the pump
// handed it to MQTT.js (and the bytes the socket still held), and its PUBACK;
// for the process, every GC pause (perf_hooks) and the batches per second of
// each device. All is written as JSON to EDGEGATE_TRACE_FILE at exit.
import { readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { MqttClient } from 'mqtt';
import { MqttPublisher } from '../gateway/publisher.js';
import type { Batch } from '../gateway/types.js';

const file = process.env.EDGEGATE_TRACE_FILE;
const device = process.env.EDGEGATE_TRACE_DEVICE ?? 'b';

export interface TraceBatch { seq: number; closed: number; queuedAhead: number; inflight: number; handed?: number; socketBytes?: number; acked?: number }
export interface TraceGc { at: number; ms: number; major: boolean }
export interface Trace { batches: TraceBatch[]; gc: TraceGc[]; batchesPerDevice: Record<string, number>; closedTotal: number; readable: number[] }

if (file !== undefined) {
  const trace: Trace = { batches: [], gc: [], batchesPerDevice: {}, closedTotal: 0, readable: [] };
  // when the poller of the traced port (EDGEGATE_TRACE_PORT) reports it readable:
  // splits the wire→read part into the wake-up (OS, pty, loop) and the read itself
  const port = process.env.EDGEGATE_TRACE_PORT;
  if (port !== undefined) {
    const target = realpathSync(port);
    const require = createRequire(import.meta.url);
    const poller = require('@serialport/bindings-cpp/dist/poller') as { Poller: new (fd: number) => { emit: (e: string, ...a: unknown[]) => boolean } };
    const Base = poller.Poller;
    poller.Poller = class extends Base {
      constructor(fd: number) {
        super(fd);
        let mine = false;
        try { mine = readlinkSync(`/proc/self/fd/${fd}`) === target; } catch { /* not traced */ }
        if (mine) {
          const emit = this.emit.bind(this);
          this.emit = (e: string, ...a: unknown[]) => { if (e === 'readable' && a[0] == null) trace.readable.push(Date.now()); return emit(e, ...a); };
        }
      }
    };
  }
  const bySeq = new Map<number, TraceBatch>();
  const topicEnd = `/devices/${device}/data`;

  const publishBatch = MqttPublisher.prototype.publishBatch;
  MqttPublisher.prototype.publishBatch = function (this: MqttPublisher, b: Batch): void {
    trace.closedTotal++;
    trace.batchesPerDevice[b.device] = (trace.batchesPerDevice[b.device] ?? 0) + 1;
    if (b.device === device) {
      const t: TraceBatch = { seq: b.seq, closed: Date.now(), queuedAhead: this.queuedBatches, inflight: this.inflight };
      trace.batches.push(t);
      bySeq.set(b.seq, t);
    }
    publishBatch.call(this, b);
  };

  const publish = MqttClient.prototype.publish as (...args: unknown[]) => MqttClient;
  (MqttClient.prototype as unknown as { publish: (...args: unknown[]) => MqttClient }).publish = function (this: MqttClient, ...args: unknown[]): MqttClient {
    const [topic, payload] = args as [string, string | Buffer];
    if (typeof topic === 'string' && topic.endsWith(topicEnd)) {
      const m = /"seq":(\d+)/.exec(String(payload).slice(0, 200));
      const t = m ? bySeq.get(Number(m[1])) : undefined;
      if (t) {
        t.handed = Date.now();
        t.socketBytes = (this.stream as { writableLength?: number } | undefined)?.writableLength ?? 0;
        const cb = args[args.length - 1];
        if (typeof cb === 'function') {
          args[args.length - 1] = (...r: unknown[]) => { t.acked = Date.now(); return (cb as (...x: unknown[]) => unknown)(...r); };
        }
      }
    }
    return publish.apply(this, args);
  };

  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      trace.gc.push({ at: Math.round(performance.timeOrigin + e.startTime), ms: e.duration, major: kind === constants.NODE_PERFORMANCE_GC_MAJOR });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  process.on('exit', () => writeFileSync(file, JSON.stringify(trace)));
}
