// A fixed window of each tag's recent values, for the page's charts. Every
// tag gets one slot in preallocated typed arrays (chunks of CHUNK_TAGS tags,
// never copied), up to maxTags: the hot path writes two numbers and
// allocates nothing, a tag past maxTags has no chart, and memory stays
// bounded whatever the devices send. Values are kept at one point per step
// (the last reading of a step wins): all that a chart of a few minutes on a
// phone can show.
import type { RawValue } from '../../types.js';

export interface HistoryOptions {
  /** points per tag (default 150) */
  points?: number;
  /** ms per point (default 2000: 5 minutes of history) */
  stepMs?: number;
  /** tags that get a chart (default 20,000) */
  maxTags?: number;
}

const CHUNK_TAGS = 256;

export class TagHistory {
  readonly points: number;
  readonly stepMs: number;
  readonly maxTags: number;
  /** device → tag → slot */
  private readonly slots = new Map<string, Map<string, number>>();
  /** slots of forgotten devices, taken before new ones */
  private readonly free: number[] = [];
  private used = 0;
  /** per chunk: [slot % CHUNK_TAGS * points + step % points] the value, NaN for none */
  private readonly values: Float32Array[] = [];
  /** the step (ts / stepMs - base) each value belongs to; 0 for none */
  private readonly steps: Uint32Array[] = [];
  /** steps are kept relative to the first reading's, so that small steps fit 32 bits */
  private base = -1;

  constructor(opts: HistoryOptions = {}) {
    this.points = opts.points ?? 150;
    this.stepMs = opts.stepMs ?? 2000;
    this.maxTags = opts.maxTags ?? 20_000;
  }

  /** the hot path: two map lookups and two array writes */
  record(device: string, tag: string, value: RawValue, ts: number): void {
    let tags = this.slots.get(device);
    if (!tags) this.slots.set(device, (tags = new Map()));
    let slot = tags.get(tag);
    if (slot === undefined) {
      slot = this.take();
      if (slot === undefined) return;
      tags.set(tag, slot);
    }
    const abs = Math.floor(ts / this.stepMs);
    if (this.base < 0) this.base = abs - this.points;
    const step = abs - this.base;
    if (step < 1 || step > 0xffffffff) return;
    const i = (slot % CHUNK_TAGS) * this.points + (step % this.points);
    const chunk = (slot / CHUNK_TAGS) | 0;
    this.values[chunk]![i] = typeof value === 'number' ? value : typeof value === 'boolean' ? (value ? 1 : 0) : NaN;
    this.steps[chunk]![i] = step;
  }

  /**
   * a device's tags within the window that ends at now: each as the time of
   * its first point and one value per step from there (null: no reading, or
   * not a number); one array per tag, so a request for 1,000 tags builds
   * 1,000 small arrays, not 150,000 pairs
   */
  series(device: string, now: number): Record<string, { t: number; v: Array<number | null> }> {
    const out: Record<string, { t: number; v: Array<number | null> }> = {};
    const tags = this.slots.get(device);
    if (!tags || this.base < 0) return out;
    const last = Math.floor(now / this.stepMs) - this.base;
    const first = Math.max(last - this.points + 1, 1);
    for (const [tag, slot] of tags) {
      const values = this.values[(slot / CHUNK_TAGS) | 0]!, steps = this.steps[(slot / CHUNK_TAGS) | 0]!;
      const row = (slot % CHUNK_TAGS) * this.points;
      let s = first;
      while (s <= last && steps[row + (s % this.points)] !== s) s++;
      let end = last;
      while (end >= s && steps[row + (end % this.points)] !== end) end--;
      const v: Array<number | null> = [];
      for (let k = s; k <= end; k++) {
        const i = row + (k % this.points);
        v.push(steps[i] === k && !Number.isNaN(values[i]!) ? values[i]! : null);
      }
      out[tag] = { t: (s + this.base) * this.stepMs, v };
    }
    return out;
  }

  /** a removed device: its slots go to the next new tags */
  forget(device: string): void {
    const tags = this.slots.get(device);
    if (!tags) return;
    this.slots.delete(device);
    for (const slot of tags.values()) {
      const row = (slot % CHUNK_TAGS) * this.points;
      this.steps[(slot / CHUNK_TAGS) | 0]!.fill(0, row, row + this.points);
      this.free.push(slot);
    }
  }

  get trackedTags(): number {
    return this.used - this.free.length;
  }

  /** the bytes of the arrays: at most maxTags (rounded up to a chunk) × points × 8 */
  get bytes(): number {
    let n = 0;
    for (const a of this.values) n += a.byteLength;
    for (const a of this.steps) n += a.byteLength;
    return n;
  }

  private take(): number | undefined {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used >= this.maxTags) return undefined;
    const slot = this.used++;
    if (slot % CHUNK_TAGS === 0) {
      this.values.push(new Float32Array(CHUNK_TAGS * this.points).fill(NaN));
      this.steps.push(new Uint32Array(CHUNK_TAGS * this.points));
    }
    return slot;
  }
}
