// Is a disk that failed usable again? Asked on a timer while the disk buffer
// keeps its batches in memory, not by its next write: with a healthy broker
// (on_outage) there may be none, and the mode and the error would stay.
// Cheap while the disk is full: free space first, and only then a small
// write and sync through the same open as the segments.
import { statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../types.js';
import { writeAll, type OpenForAppend } from './segments.js';

const PROBE = Buffer.alloc(4096, 0x2e);

export interface DiskProbeOptions {
  dir: string;
  open: OpenForAppend;
  /** less free space than this is still a full disk: writing again would only fail again */
  freeBytes: number;
  intervalMs: number;
  log: Logger;
  /** the probe succeeded; probing has stopped */
  onUsable: () => void;
}

export class DiskProbe {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<boolean> | undefined;

  constructor(private readonly o: DiskProbeOptions) {}

  /** probes every intervalMs until the disk is usable or stop() */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.now(), this.o.intervalMs);
    this.#timer.unref();
  }

  /** stops the timer and waits for a probe on its way */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** one probe now (one at a time); true when the disk is usable */
  now(): Promise<boolean> {
    return (this.#running ??= this.#probe().finally(() => { this.#running = undefined; }));
  }

  async #probe(): Promise<boolean> {
    const path = join(this.o.dir, 'probe.tmp');
    try {
      const fs = await statfs(this.o.dir);
      if (fs.bavail * fs.bsize < this.o.freeBytes) return false;
      await unlink(path).catch(() => undefined);
      const f = await this.o.open(path);
      try {
        const { error } = await writeAll(f, PROBE, 0);
        if (error !== undefined) throw error;
        await f.datasync();
      } finally {
        await f.close().catch(() => undefined);
        await unlink(path).catch(() => undefined);
      }
    } catch (err) {
      this.o.log.debug({ dir: this.o.dir, err: err instanceof Error ? err.message : String(err) }, 'disk buffer: still unusable');
      return false;
    }
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.o.onUsable();
    return true;
  }
}
