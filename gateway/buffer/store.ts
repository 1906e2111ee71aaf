// What the gateway keeps in buffer.dir: the disk buffer and the seq store.
// A dir that cannot be used does not stop the gateway: batches wait in the
// bounded memory queue instead, seq counts in memory, and problem() says why
// (in P/status and P/stats).
import type { ResolvedConfig } from '../../config/schema.js';
import type { Logger } from '../types.js';
import { DiskBuffer } from './disk-buffer.js';
import { MemoryBuffer } from './memory-buffer.js';
import { SeqStore } from './seq-store.js';
import type { BatchBuffer } from './types.js';

export interface StoreOptions {
  log: Logger;
  /** the memory bound when the disk cannot be used */
  fallbackBytes: number;
  /** problem() changed */
  onProblem?: () => void;
}

export class GatewayStore {
  private constructor(readonly buffer: BatchBuffer, readonly seq: SeqStore) {}

  static async open(cfg: ResolvedConfig['buffer'], opts: StoreOptions): Promise<GatewayStore> {
    const { log, fallbackBytes } = opts;
    const seq = SeqStore.open({ dir: cfg.dir, log });
    let buffer: BatchBuffer;
    try {
      buffer = await DiskBuffer.open({
        dir: cfg.dir, maxBytes: cfg.max_size, durability: cfg.durability, fallbackBytes, log, onModeChange: () => opts.onProblem?.(),
      });
    } catch (err) {
      const error = `${cfg.dir}: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ dir: cfg.dir, err: error, max_memory_bytes: fallbackBytes },
        'buffer dir unusable: batches wait in memory only (bounded), and are lost at stop');
      buffer = new MemoryBuffer({ maxBytes: fallbackBytes, log, error });
    }
    return new GatewayStore(buffer, seq);
  }

  /** why batches or seq are not kept on disk right now, if they are not */
  problem(): string | undefined {
    const b = this.buffer.stats().error;
    const s = this.seq.error;
    if (b !== undefined) return `buffer: ${b}`;
    return s === undefined ? undefined : `seq: ${s}`;
  }

  /** keeps what is not acknowledged and the exact seq positions */
  async close(): Promise<void> {
    await this.buffer.close();
    await this.seq.close();
  }
}
