/**
 * A max-heap of node indexes by load, with updates in place: the allocator's way to the
 * most loaded nodes while loads change a few at a time. Ties go to the smaller node index,
 * so the order is deterministic.
 */
export class LoadHeap {
  readonly #loads: () => Float64Array;
  #heap: number[] = [];
  /** Position of each node in `#heap`, or -1. */
  #at: number[] = [];

  constructor(loads: () => Float64Array) {
    this.#loads = loads;
  }

  get size(): number {
    return this.#heap.length;
  }

  push(node: number): void {
    while (this.#at.length <= node) this.#at.push(-1);
    this.#heap.push(node);
    this.#at[node] = this.#heap.length - 1;
    this.#up(this.#heap.length - 1);
  }

  pop(): number {
    const top = this.#heap[0]!;
    const last = this.#heap.pop()!;
    this.#at[top] = -1;
    if (this.#heap.length > 0) {
      this.#heap[0] = last;
      this.#at[last] = 0;
      this.#down(0);
    }
    return top;
  }

  /** Restores the order after `node`'s load changed (no-op for a node not in the heap). */
  update(node: number): void {
    const i = this.#at[node] ?? -1;
    if (i < 0) return;
    this.#up(i);
    this.#down(this.#at[node]!);
  }

  clear(): void {
    for (const node of this.#heap) this.#at[node] = -1;
    this.#heap = [];
  }

  #above(a: number, b: number): boolean {
    const loads = this.#loads();
    return loads[a]! > loads[b]! || (loads[a] === loads[b] && a < b);
  }

  #up(start: number): void {
    const heap = this.#heap;
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#above(heap[i]!, heap[parent]!)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(start: number): void {
    const heap = this.#heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) return;
      const right = left + 1;
      const child = right < heap.length && this.#above(heap[right]!, heap[left]!) ? right : left;
      if (!this.#above(heap[child]!, heap[i]!)) return;
      this.#swap(i, child);
      i = child;
    }
  }

  #swap(i: number, j: number): void {
    const heap = this.#heap;
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    this.#at[b] = i;
    this.#at[a] = j;
  }
}
