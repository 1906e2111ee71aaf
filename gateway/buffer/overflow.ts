// A full buffer drops its oldest batches: counted always, warned about once
// per episode, and the end of the episode (below half full) is logged too.
import type { Logger } from '../types.js';

export class OverflowLog {
  /** dropped since start */
  total = 0;
  #inEpisode = 0;

  constructor(private readonly log: Logger, private readonly what: string) {}

  dropped(n: number, fields: Record<string, unknown>): void {
    if (n <= 0) return;
    this.total += n;
    if (this.#inEpisode === 0) this.log.warn({ ...fields, dropped_batches: n }, `${this.what} full: dropping the oldest batches`);
    this.#inEpisode += n;
  }

  /** call as the buffer shrinks: ends the episode below half full */
  level(bytes: number, maxBytes: number): void {
    if (this.#inEpisode === 0 || bytes > maxBytes / 2) return;
    this.log.info({ dropped_batches: this.#inEpisode }, `${this.what} below half full again`);
    this.#inEpisode = 0;
  }
}
