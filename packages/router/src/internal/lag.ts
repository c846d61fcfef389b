import { InvalidArgumentError, LayoutMismatchError } from '@engram/common';
import { hashKey } from '@engram/ring';

/** Buckets of spaces per node: a space's bucket is the top 8 bits of its ring token. */
export const LAG_BUCKETS = 256;
const BUCKET_SHIFT = 24;
/** Words before the counters. */
const HEADER_WORDS = 4;
const W_MAGIC = 0;
const W_SLOTS = 1;
/** Sum of every counter: zero means no node lags anywhere (the read path's one check). */
const W_TOTAL = 2;
const LAG_MAGIC = 0x4c_41_47_31; // "LAG1"

/**
 * Which nodes are missing acknowledged writes, by space bucket, so reads prefer replicas that
 * hold them (read-your-writes with one replica read, W = quorum).
 *
 * A counter per (node slot, bucket of spaces) counts writes the node is known to lack: a write
 * acknowledged to its client while this replica's copy was still in flight (until it lands),
 * and a hint kept for the node (until replayed or dropped). Buckets make it per space without a
 * map: spaces sharing a bucket only make a read more careful, never less.
 *
 * Memory: one Int32 per (slot, bucket), `Atomics.add` from any thread, `Atomics.load` to
 * read; over a SharedArrayBuffer every data-plane thread and the control plane share it.
 * Ordering: a counter is raised before the client is acknowledged (the write's thread), so a
 * read that starts after the acknowledgement, in any thread, sees it (sequentially consistent
 * atomics).
 */
export class LagTable {
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  readonly slots: number;
  readonly #words: Int32Array;

  /** A new table for `slots` node slots (shared when `shared`), or a view over `buffer`. */
  constructor(init: { slots: number; shared?: boolean } | { buffer: SharedArrayBuffer }) {
    if ('buffer' in init) {
      const words = new Int32Array(init.buffer);
      if (words.length < HEADER_WORDS || Atomics.load(words, W_MAGIC) !== LAG_MAGIC) {
        throw new LayoutMismatchError('lag table', 'its magic word does not match');
      }
      const slots = Atomics.load(words, W_SLOTS);
      if (words.length !== HEADER_WORDS + slots * LAG_BUCKETS) {
        throw new LayoutMismatchError('lag table', `its size does not hold ${slots} slots`);
      }
      this.buffer = init.buffer;
      this.slots = slots;
      this.#words = words;
      return;
    }
    const slots = init.slots;
    if (!Number.isInteger(slots) || slots < 1 || slots > 65_536) {
      throw new InvalidArgumentError('slots', slots, 'an integer in [1, 65536]');
    }
    const bytes = (HEADER_WORDS + slots * LAG_BUCKETS) * 4;
    this.buffer = init.shared === true ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    this.slots = slots;
    this.#words = new Int32Array(this.buffer);
    Atomics.store(this.#words, W_SLOTS, slots);
    Atomics.store(this.#words, W_MAGIC, LAG_MAGIC);
  }

  /** The bucket of a space (hashes its id: callers on a hot path compute it once). */
  static bucketOf(spaceId: string): number {
    return hashKey(spaceId) >>> BUCKET_SHIFT;
  }

  /** True when some node lags somewhere: reads skip every other check while it is false. */
  get any(): boolean {
    return Atomics.load(this.#words, W_TOTAL) !== 0;
  }

  /** Counts one more (delta +1) or one fewer (-1) write that `slot` lacks in `bucket`. */
  add(slot: number, bucket: number, delta: number): void {
    if (slot < 0 || slot >= this.slots) return;
    const words = this.#words;
    const at = HEADER_WORDS + slot * LAG_BUCKETS + bucket;
    // Never below zero: a decrement without its increment (a hint kept before a restart,
    // counted again at load) must not hide a later lag.
    for (;;) {
      const old = Atomics.load(words, at);
      const next = Math.max(old + delta, 0);
      if (Atomics.compareExchange(words, at, old, next) === old) {
        Atomics.add(words, W_TOTAL, next - old);
        return;
      }
    }
  }

  /** True when `slot` lacks some acknowledged write in `bucket`. */
  isBehind(slot: number, bucket: number): boolean {
    if (slot < 0 || slot >= this.slots) return false;
    return Atomics.load(this.#words, HEADER_WORDS + slot * LAG_BUCKETS + bucket) > 0;
  }

  /** Writes `slot` lacks over all buckets (metrics). */
  behind(slot: number): number {
    if (slot < 0 || slot >= this.slots) return 0;
    let n = 0;
    const base = HEADER_WORDS + slot * LAG_BUCKETS;
    for (let b = 0; b < LAG_BUCKETS; b++) n += Atomics.load(this.#words, base + b);
    return n;
  }

  /** Forgets every lag of `slot` (its node left, or was repaired as a whole). */
  clear(slot: number): void {
    if (slot < 0 || slot >= this.slots) return;
    const base = HEADER_WORDS + slot * LAG_BUCKETS;
    for (let b = 0; b < LAG_BUCKETS; b++) {
      const old = Atomics.exchange(this.#words, base + b, 0);
      if (old !== 0) Atomics.sub(this.#words, W_TOTAL, old);
    }
  }
}
