// The seam between the publisher and whatever holds the batches it has not
// delivered yet: the bounded memory queue or the disk buffer. Both pass one
// shared contract test suite (test/buffer-contract.test.ts).
import type { Batch } from '../types.js';

/** a batch as the buffer hands it out; the publisher gives the same object back to ack() or requeue() */
export interface BufferedBatch {
  readonly batch: Batch;
  /** UTF-8 bytes of the payload */
  readonly bytes: number;
}

export interface BufferStats {
  /** bytes held: disk segments plus batches held only in memory */
  bytes: number;
  /** batches not acknowledged yet, in flight included */
  batches: number;
  dropped_batches: number;
  /** firstTs of the oldest batch not acknowledged, or null */
  oldest_ts: number | null;
  /** damaged records skipped (torn or corrupt) since start */
  damaged_records: number;
  /** where batches are kept: `disk`, or `memory` when the disk is unusable */
  mode: 'disk' | 'memory';
  /** why the disk is not used, when mode is memory */
  error?: string;
}

export interface BatchBuffer {
  /** the hot path: synchronous, never awaits */
  push(batch: Batch): void;
  /**
   * the oldest batch not yet handed out and ready now, or undefined (empty,
   * or waiting for a disk read or sync: onReadable is called when that ends)
   */
  next(): BufferedBatch | undefined;
  /** a handed-out batch was delivered (PUBACK, or written to the socket at QoS 0): it leaves the buffer */
  ack(item: BufferedBatch): void;
  /** handed-out batches that were not delivered go back to the head, in order */
  requeue(items: readonly BufferedBatch[]): void;
  /** the publisher's connection state: on_outage decides from it when to write */
  setOnline(online: boolean): void;
  /** set by the publisher: next() may return something again */
  onReadable: (() => void) | undefined;
  /** batches not acknowledged, in flight included */
  readonly size: number;
  /** batches ready or waiting to be handed out (not in flight) */
  readonly queued: number;
  /** the batches held in memory and not handed out, oldest first (for logs and tests) */
  inMemory(): Batch[];
  stats(): BufferStats;
  /** keeps every batch not acknowledged (on disk, where there is one); accepts nothing after */
  close(): Promise<void>;
}
