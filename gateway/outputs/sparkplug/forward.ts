// Store and forward: the core's batches that could not go out as DDATA
// (broker away, primary host offline, or behind others still waiting) wait
// in a disk buffer of their own in buffer.dir/sparkplug — the same DiskBuffer
// class as the JSON topics', bounded by buffer.max_size, oldest dropped and
// counted when full, kept across restarts; memory only (bounded) when the
// dir is unusable. They are replayed oldest first, one message at a time.
//
// Which of them are historical: every batch already waiting when the session
// became ready; batches that queued up behind them during the replay are
// live (sent late by milliseconds, and their values are current).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedConfig } from '../../../config/schema.js';
import { DiskBuffer } from '../../buffer/disk-buffer.js';
import { MemoryBuffer } from '../../buffer/memory-buffer.js';
import type { BatchBuffer, BufferedBatch } from '../../buffer/types.js';
import type { Batch, Logger, Reading } from '../../types.js';

const MEMORY_MAX_BYTES = 32 * 1024 * 1024;

export async function openForwardBuffer(cfg: ResolvedConfig['buffer'], log: Logger): Promise<BatchBuffer> {
  const dir = join(cfg.dir, 'sparkplug');
  const fallbackBytes = Math.min(cfg.max_size, MEMORY_MAX_BYTES);
  try {
    mkdirSync(dir, { recursive: true });
    return await DiskBuffer.open({ dir, maxBytes: cfg.max_size, durability: 'on_outage', fallbackBytes, log });
  } catch (err) {
    const error = `${dir}: ${err instanceof Error ? err.message : String(err)}`;
    log.error({ err: error, max_memory_bytes: fallbackBytes }, 'sparkplug buffer dir unusable: readings held for later wait in memory only (bounded)');
    return new MemoryBuffer({ maxBytes: fallbackBytes, log, error });
  }
}

export interface Replayer {
  /**
   * what a device's batch becomes: sent (done called once it is written),
   * 'wait' (device not born yet: held, see holdMs), 'later' (the connection
   * is not up: tried again, no hold counted), or 'drop'
   */
  send(device: string, readings: Reading[], historical: boolean, done: (ok: boolean) => void): 'sent' | 'wait' | 'later' | 'drop';
  /** batches given up (device gone), with their readings */
  dropped(b: Batch): void;
}

export interface ForwarderOptions {
  /**
   * how long the head of the queue waits for its device's DBIRTH before it is
   * given up (default 30 s); once a device's hold ran out, its other waiting
   * batches are given up at once until it is born (one hold per device, not
   * one per batch: the others are not held N times as long)
   */
  holdMs?: number;
  /** how often a held head is tried again meanwhile (default 1 s) */
  retryMs?: number;
}

export class Forwarder {
  #historicalAhead = 0;
  #sending = false;
  #ready = false;
  #holdSince: number | undefined;
  /** devices whose hold ran out and that have not been born since */
  readonly #expired = new Set<string>();
  #retry: NodeJS.Timeout | undefined;

  readonly #holdMs: number;
  readonly #retryMs: number;

  /** now: a monotonic clock in ms */
  constructor(readonly buffer: BatchBuffer, private readonly replayer: Replayer, private readonly now: () => number, opts: ForwarderOptions = {}) {
    this.#holdMs = opts.holdMs ?? 30_000;
    this.#retryMs = opts.retryMs ?? 1000;
    buffer.onReadable = () => this.drain();
  }

  /** live batches go through here while anything waits, so order holds */
  get busy(): boolean { return this.buffer.size > 0; }

  push(b: Batch): void { this.buffer.push(b); }

  /** a device got its DBIRTH: it may be waited for again */
  born(device: string): void { this.#expired.delete(device); }

  /** the session can (not) take data: what waits now is historical */
  setReady(ready: boolean): void {
    if (ready && !this.#ready) {
      this.#historicalAhead = this.buffer.size;
      // a new session: every device gets its hold again
      this.#expired.clear();
    }
    this.#ready = ready;
    this.buffer.setOnline(ready);
    if (ready) this.drain();
  }

  drain(): void {
    while (this.#ready && !this.#sending) {
      const item = this.buffer.next();
      if (!item) return;
      const historical = this.#historicalAhead > 0;
      let readings: Reading[];
      try {
        readings = (JSON.parse(item.batch.payload) as { readings: Reading[] }).readings;
      } catch {
        this.#done(item, historical);
        this.replayer.dropped(item.batch);
        continue;
      }
      this.#sending = true;
      const outcome = this.replayer.send(item.batch.device, readings, historical, (ok) => {
        this.#sending = false;
        if (ok) this.#done(item, historical);
        else this.buffer.requeue([item]);
        // a callback from inside publish() must not recurse into the loop
        if (ok) setImmediate(() => this.drain());
      });
      if (outcome === 'sent') { this.#holdSince = undefined; return; }
      this.#sending = false;
      if (outcome === 'later') {
        this.buffer.requeue([item]);
        this.#retry ??= setTimeout(() => { this.#retry = undefined; this.drain(); }, this.#retryMs);
        return;
      }
      if (outcome === 'wait' && !this.#expired.has(item.batch.device)) {
        if ((this.#holdSince ??= this.now()) + this.#holdMs > this.now()) {
          this.buffer.requeue([item]);
          this.#retry ??= setTimeout(() => { this.#retry = undefined; this.drain(); }, this.#retryMs);
          return;
        }
        this.#expired.add(item.batch.device);
      }
      this.#holdSince = undefined;
      this.#done(item, historical);
      this.replayer.dropped(item.batch);
    }
  }

  #done(item: BufferedBatch, historical: boolean): void {
    this.buffer.ack(item);
    if (historical) this.#historicalAhead--;
  }

  async close(): Promise<void> {
    this.#ready = false;
    if (this.#retry) clearTimeout(this.#retry);
    await this.buffer.close();
  }
}
