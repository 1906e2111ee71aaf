// The publisher's memory queue: a FIFO bounded by payload bytes. When full the
// oldest items go (the newest is the one most worth sending), and the caller
// counts and reports them.

export interface Sized { readonly bytes: number }

export class ByteBoundedQueue<T extends Sized> {
  /** the bound; a buffer may change it (the disk buffer falls back to memory) */
  maxBytes: number;
  // an array with a moving head: no O(n) shift per item
  #items: T[] = [];
  #head = 0;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get length(): number { return this.#items.length - this.#head; }
  get bytes(): number { return this.#bytes; }

  /**
   * appends, then drops the oldest (handing each to onDrop) while over the
   * bound; the newest always stays, so one oversized item cannot starve the queue
   */
  push(item: T, onDrop: (dropped: T) => void): void {
    this.#items.push(item);
    this.#bytes += item.bytes;
    while (this.#bytes > this.maxBytes && this.length > 1) onDrop(this.shift() as T);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head] as T;
    this.#items[this.#head++] = undefined as unknown as T; // let it be collected
    this.#bytes -= item.bytes;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** puts items back at the head, in their order; the bound applies again at the next push */
  unshift(items: readonly T[]): void {
    for (const item of items) this.#bytes += item.bytes;
    if (this.#head >= items.length) {
      this.#head -= items.length;
      items.forEach((item, k) => { this.#items[this.#head + k] = item; });
    } else {
      this.#items.splice(this.#head, 0, ...items);
    }
  }

  /** the oldest item, left in place */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  toArray(): T[] {
    return this.#items.slice(this.#head);
  }
}
