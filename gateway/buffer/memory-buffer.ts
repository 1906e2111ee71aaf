// The bounded memory queue: what the publisher uses when there is no usable
// disk. Bounded by payload bytes; when full the oldest batches go.
import { ByteBoundedQueue } from '../publish-queue.js';
import type { Batch, Logger } from '../types.js';
import { OverflowLog } from './overflow.js';
import type { BatchBuffer, BufferedBatch, BufferStats } from './types.js';

interface Item extends BufferedBatch { readonly bytes: number }

export interface MemoryBufferOptions {
  maxBytes: number;
  log: Logger;
  /** reported in stats: why there is no disk buffer */
  error?: string;
}

export class MemoryBuffer implements BatchBuffer {
  onReadable: (() => void) | undefined;
  readonly #queue: ByteBoundedQueue<Item>;
  readonly #out = new Set<Item>();
  readonly #overflow: OverflowLog;
  readonly #error: string | undefined;
  #outBytes = 0;
  #closed = false;

  constructor(opts: MemoryBufferOptions) {
    this.#queue = new ByteBoundedQueue(opts.maxBytes);
    this.#overflow = new OverflowLog(opts.log, 'publish queue');
    this.#error = opts.error;
  }

  get size(): number { return this.#queue.length + this.#out.size; }
  get queued(): number { return this.#queue.length; }

  push(batch: Batch): void {
    if (this.#closed) return;
    this.#queue.push({ batch, bytes: Buffer.byteLength(batch.payload) }, (old) => {
      this.#overflow.dropped(1, { max_queued_bytes: this.#queue.maxBytes, device: old.batch.device, seq: old.batch.seq });
    });
  }

  next(): BufferedBatch | undefined {
    const item = this.#queue.shift();
    if (item) {
      this.#out.add(item);
      this.#outBytes += item.bytes;
    }
    return item;
  }

  ack(item: BufferedBatch): void {
    if (!this.#out.delete(item as Item)) return;
    this.#outBytes -= item.bytes;
    this.#overflow.level(this.#queue.bytes, this.#queue.maxBytes);
  }

  requeue(items: readonly BufferedBatch[]): void {
    const back = (items as readonly Item[]).filter((i) => this.#out.delete(i));
    for (const i of back) this.#outBytes -= i.bytes;
    this.#queue.unshift(back);
  }

  setOnline(): void { /* memory is all it has */ }

  inMemory(): Batch[] {
    return this.#queue.toArray().map((i) => i.batch);
  }

  stats(): BufferStats {
    let oldest: number | null = null;
    for (const i of this.#out) oldest = Math.min(oldest ?? Infinity, i.batch.firstTs);
    const head = this.#queue.peek();
    if (head) oldest = Math.min(oldest ?? Infinity, head.batch.firstTs);
    return {
      bytes: this.#queue.bytes + this.#outBytes, batches: this.size, dropped_batches: this.#overflow.total, oldest_ts: oldest,
      damaged_records: 0, mode: 'memory', ...(this.#error !== undefined ? { error: this.#error } : {}),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
