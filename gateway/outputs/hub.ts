// Fans the core's events out to every output. One broken output never stops
// the core or the others: a hook that throws is logged (rate limited) and the
// next output still gets the event, as zigbee2mqtt catches per extension.
import type { ResolvedConfig } from '../../config/schema.js';
import type { DeviceStatus } from '../device.js';
import { RateLimitedLog } from '../logger.js';
import type { Batch, Logger, Reading } from '../types.js';
import type { GatewayContext, Output, ReloadChanges } from './output.js';

const ERROR_LOG_INTERVAL_MS = 10_000;

export class OutputHub {
  // hooks go to started outputs only: one that failed to start holds no connection to feed
  private readers: Output[] = [];
  private batchers: Output[] = [];
  private watchers: Output[] = [];
  private readonly errors = new Map<string, RateLimitedLog>();
  private started: Output[] = [];

  constructor(private readonly outputs: readonly Output[], private readonly log: Logger, private readonly monotonic: () => number) {}

  /** do any started outputs want every reading (the core then keeps it no longer than the call) */
  get wantsReadings(): boolean {
    return this.readers.length > 0;
  }

  /** started outputs */
  get size(): number {
    return this.started.length;
  }

  /** starts each output; one that fails to start is logged and left out, the others run */
  async start(ctx: GatewayContext): Promise<void> {
    const ok = new Set<Output>();
    await Promise.all(this.outputs.map(async (o) => {
      try {
        await o.start(ctx);
        ok.add(o);
        this.log.info({ output: o.name }, 'output started');
      } catch (err) {
        this.log.error({ output: o.name, err: err instanceof Error ? err.message : String(err) }, 'output could not start; the gateway runs without it');
      }
    }));
    // in config order, whatever order they finished starting in
    this.setStarted(this.outputs.filter((o) => ok.has(o)));
  }

  private setStarted(list: Output[]): void {
    this.started = list;
    this.readers = list.filter((o) => o.reading);
    this.batchers = list.filter((o) => o.batch);
    this.watchers = list.filter((o) => o.status);
  }

  async stop(): Promise<void> {
    const running = this.started;
    this.setStarted([]);
    await Promise.all(running.map(async (o) => {
      try {
        await o.stop();
      } catch (err) {
        this.log.warn({ output: o.name, err: err instanceof Error ? err.message : String(err) }, 'output did not stop cleanly');
      }
    }));
  }

  reading(device: string, r: Reading): void {
    for (const o of this.readers) {
      try {
        o.reading!(device, r);
      } catch (err) {
        this.failed(o, 'reading', err);
      }
    }
  }

  batch(b: Batch): void {
    for (const o of this.batchers) {
      try {
        o.batch!(b);
      } catch (err) {
        this.failed(o, 'batch', err);
      }
    }
  }

  status(device: string, s: DeviceStatus): void {
    for (const o of this.watchers) {
      try {
        o.status!(device, s);
      } catch (err) {
        this.failed(o, 'status', err);
      }
    }
  }

  async reload(changes: ReloadChanges, prev: ResolvedConfig): Promise<void> {
    await Promise.all(this.started.filter((o) => o.reload).map(async (o) => {
      try {
        await o.reload!(changes, prev);
      } catch (err) {
        this.failed(o, 'reload', err);
      }
    }));
  }

  private failed(o: Output, hook: string, err: unknown): void {
    let log = this.errors.get(o.name);
    if (!log) this.errors.set(o.name, (log = new RateLimitedLog(this.log, ERROR_LOG_INTERVAL_MS, this.monotonic)));
    if (log.take()) log.warn({ output: o.name, hook, err: err instanceof Error ? err.message : String(err) }, 'output failed to handle an event');
  }
}
