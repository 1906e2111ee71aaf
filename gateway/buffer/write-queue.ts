// The batches pushed and not written to disk yet, oldest first. Most of them
// are acknowledged before they would ever be written (a healthy broker with
// on_outage): those leave from the head without being copied around.

export class WriteQueue<T extends { readonly bytes: number }> {
  #items: T[] = [];
  #head = 0;

  /** `settled`: acknowledged or dropped, never to be written */
  constructor(private readonly settled: (item: T) => boolean) {}

  push(item: T): void {
    this.#items.push(item);
  }

  /** the oldest unsettled items, about maxBytes of them (at least one) */
  take(maxBytes: number): T[] {
    const group: T[] = [];
    let bytes = 0;
    for (; this.#head < this.#items.length && bytes < maxBytes; this.#head++) {
      const item = this.#items[this.#head]!;
      if (this.settled(item)) continue;
      group.push(item);
      bytes += item.bytes;
    }
    this.trim();
    return group;
  }

  /** a write failed: its items go back to the head, in order */
  putBack(group: readonly T[]): void {
    this.#items = [...group.filter((i) => !this.settled(i)), ...this.#items.slice(this.#head)];
    this.#head = 0;
  }

  /** items still to be written */
  pending(): T[] {
    return this.#items.slice(this.#head).filter((i) => !this.settled(i));
  }

  /** settled items at the head leave */
  trim(): void {
    const items = this.#items;
    while (this.#head < items.length && this.settled(items[this.#head]!)) this.#head++;
    if (this.#head === items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > items.length) {
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
  }
}
