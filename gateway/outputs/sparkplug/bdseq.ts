// The birth/death sequence number (Sparkplug 3.0: 0–255, one more on every
// MQTT CONNECT, from 0). It survives restarts in buffer.dir, and the next
// value is on disk before the CONNECT that uses this one is sent, so a crash
// never makes two sessions share a bdSeq.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, writeJsonAtomicSync } from '../../buffer/segments.js';
import type { Logger } from '../../types.js';

export class BdSeqStore {
  readonly #file: string;
  readonly #log: Logger;
  #next = 0;
  #error: string | undefined;

  constructor(dir: string, log: Logger) {
    this.#file = join(dir, 'sparkplug-bdseq.json');
    this.#log = log;
    try {
      mkdirSync(dir, { recursive: true });
      const stored = readJson(this.#file) as { next?: unknown } | undefined;
      const n = stored?.next;
      if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 255) this.#next = n;
    } catch (err) {
      this.#fail(err);
    }
  }

  /** the bdSeq of the CONNECT about to be sent; the one after it is stored first */
  take(): number {
    const bdSeq = this.#next;
    this.#next = (bdSeq + 1) % 256;
    if (this.#error === undefined) {
      try {
        writeJsonAtomicSync(this.#file, { next: this.#next });
      } catch (err) {
        this.#fail(err);
      }
    }
    return bdSeq;
  }

  #fail(err: unknown): void {
    this.#error = `${this.#file}: ${err instanceof Error ? err.message : String(err)}`;
    this.#log.error({ err: this.#error }, 'sparkplug bdSeq cannot be stored: it counts in memory and starts at 0 again after a restart');
  }
}
