/**
 * The last `capacity` stream ids added, oldest overwritten first: a bounded memory of closed
 * streams, so that a frame on a closed stream can be judged by how the stream closed (RFC 9113
 * §5.1) without keeping every id a connection ever used. The slots are allocated on the first
 * `add` (connections that never close a stream this way pay nothing); `has` is a hash lookup,
 * done only for frames on streams that are no longer open (never per DATA frame of an open
 * stream), so a flood of frames on closed streams costs no scan.
 *
 * The lookup side is an open-addressing hash set of its own (linear probing, deletion by
 * backward shift, no tombstones) over typed arrays, brought up to date by `has` rather than by
 * `add`: `add` runs once per stream closed, twice per routed call, and `has` almost never, so
 * `add` only writes the ring. `has` first indexes the ring positions written since the last
 * one (each at most once however often it was overwritten: what the set held there is kept
 * beside the ring), so its cost stays bounded by the capacity and, spread over the `add`s it
 * follows, is what indexing each `add` at once cost.
 */
export class StreamIdRing {
  readonly capacity: number;
  /** The ring: the ids in the order added; 0 = empty (ids added are never 0). */
  #ids: Int32Array | null = null;
  /** What the hash set holds for each ring position (the ring as of the last indexing). */
  #indexed: Int32Array | null = null;
  #next = 0;
  /** Ring positions written since the last indexing, counted up to `capacity` (all of them). */
  #unindexed = 0;
  /** Hash set of the indexed ids: keys (0 = free) and how many ring positions hold each. */
  #keys: Int32Array | null = null;
  #counts: Int32Array | null = null;
  /** Table size - 1 (a power of two, twice the capacity: at most half full). */
  #mask = 0;

  /** `capacity`: a power of two (the write index wraps with a mask). */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`capacity must be a power of two, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  /**
   * Remembers `id` (non-zero; a caller may tag ids by their sign), forgetting the oldest once
   * `capacity` are held.
   */
  add(id: number): void {
    let ids = this.#ids;
    if (ids === null) {
      ids = new Int32Array(this.capacity);
      this.#ids = ids;
      this.#indexed = new Int32Array(this.capacity);
      this.#keys = new Int32Array(this.capacity * 2);
      this.#counts = new Int32Array(this.capacity * 2);
      this.#mask = this.capacity * 2 - 1;
    }
    ids[this.#next] = id;
    this.#next = (this.#next + 1) & (this.capacity - 1);
    if (this.#unindexed < this.capacity) this.#unindexed++;
  }

  /** True when `id` (non-zero, sign included) is among the last `capacity` ids added. */
  has(id: number): boolean {
    const keys = this.#keys;
    if (keys === null || id === 0) return false;
    if (this.#unindexed > 0) this.#index();
    const mask = this.#mask;
    for (let i = this.#home(id); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === id) return true;
      if (k === 0) return false;
    }
  }

  /** Brings the hash set up to the ring: each position written since the last call, once. */
  #index(): void {
    const ids = this.#ids!;
    const indexed = this.#indexed!;
    const last = this.capacity - 1;
    // The positions written since: the `unindexed` ones just before `next` (all, once it wrapped).
    for (let n = this.#unindexed, p = (this.#next - n) & last; n > 0; n--, p = (p + 1) & last) {
      const now = ids[p]!;
      const before = indexed[p]!;
      if (now === before) continue;
      if (before !== 0) this.#release(before);
      this.#retain(now);
      indexed[p] = now;
    }
    this.#unindexed = 0;
  }

  #home(id: number): number {
    return (Math.imul(id, 0x9e3779b1) >>> 16) & this.#mask;
  }

  #retain(id: number): void {
    const keys = this.#keys!;
    const mask = this.#mask;
    let i = this.#home(id);
    for (;;) {
      const k = keys[i]!;
      if (k === id) break;
      if (k === 0) {
        keys[i] = id;
        break;
      }
      i = (i + 1) & mask;
    }
    this.#counts![i]!++;
  }

  #release(id: number): void {
    const keys = this.#keys!;
    const counts = this.#counts!;
    const mask = this.#mask;
    let i = this.#home(id);
    while (keys[i] !== id) i = (i + 1) & mask; // present: the ring holds it
    if (--counts[i]! > 0) return;
    // Backward-shift deletion: pull later entries of the probe run into the hole so that every
    // key stays reachable from its home slot without tombstones.
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.#home(keys[j]!);
      // j's entry may move to the hole when its home is not in (hole, j] (cyclically).
      const movable = hole <= j ? home <= hole || home > j : home <= hole && home > j;
      if (movable) {
        keys[hole] = keys[j]!;
        counts[hole] = counts[j]!;
        hole = j;
      }
    }
    keys[hole] = 0;
    counts[hole] = 0;
  }
}
