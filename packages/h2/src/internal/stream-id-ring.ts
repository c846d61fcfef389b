/**
 * The last `capacity` stream ids added, oldest overwritten first: a bounded memory of closed
 * streams, so that a frame on a closed stream can be judged by how the stream closed (RFC 9113
 * §5.1) without keeping every id a connection ever used. The slots are allocated on the first
 * `add` (connections that never close a stream this way pay nothing); `has` scans them all,
 * which is only done for frames on streams that are no longer open (never per DATA frame of an
 * open stream).
 */
export class StreamIdRing {
  readonly capacity: number;
  #ids: Int32Array | null = null;
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
    if (ids === null) {
      ids = new Int32Array(this.capacity);
      this.#ids = ids;
    }
    ids[this.#next] = id;
    this.#next = (this.#next + 1) & (this.capacity - 1);
  }

  /** True when `id` (non-zero, sign included) is among the last `capacity` ids added. */
  has(id: number): boolean {
    const ids = this.#ids;
    if (ids === null) return false;
    // Slot value 0 means empty; ids added are never 0.
    for (let i = 0; i < ids.length; i++) if (ids[i] === id) return true;
    return false;
  }
}
