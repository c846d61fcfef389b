/**
 * The last `capacity` stream ids added, oldest overwritten first: a bounded memory of closed
 * streams, so that a frame on a closed stream can be judged by how the stream closed (RFC 9113
 * §5.1) without keeping every id a connection ever used. The slots are allocated on the first
 * `add` (connections that never close a stream this way pay nothing); `has` is a set lookup,
 * done only for frames on streams that are no longer open (never per DATA frame of an open
 * stream).
 */
export class StreamIdRing {
  readonly capacity: number;
  #ids: Int32Array | null = null;
  /**
   * How many slots hold each id, for a lookup that does not scan (frames on closed streams
   * can be flooded); an id added twice stays until its last copy is overwritten.
   */
  #counts: Map<number, number> | null = null;
  #next = 0;

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
    let counts = this.#counts;
    if (ids === null || counts === null) {
      ids = new Int32Array(this.capacity);
      counts = new Map();
      this.#ids = ids;
      this.#counts = counts;
    }
    const old = ids[this.#next]!;
    if (old !== 0) {
      // Slot value 0 means empty; ids added are never 0.
      const n = counts.get(old)!;
      if (n === 1) counts.delete(old);
      else counts.set(old, n - 1);
    }
    ids[this.#next] = id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    this.#next = (this.#next + 1) & (this.capacity - 1);
  }

  /** True when `id` (non-zero, sign included) is among the last `capacity` ids added. */
  has(id: number): boolean {
    return this.#counts?.has(id) === true;
  }
}
