/**
 * A connection's open streams by id: the part of `Map` a connection uses (`get`, `set`,
 * `delete`, `size`, `values`), as an open-addressing table with linear probing.
 *
 * Why not a `Map`: every frame looks its stream up, and every call adds one and deletes one.
 * V8's ordered hash map leaves a hole per delete and rehashes to compact or to shrink as the
 * count swings between a burst and none: lookups, inserts, deletes and rehashes were 2.7 % of
 * router-node's data thread at 64 calls in flight (perf). Here a lookup is a few array reads,
 * a delete shifts the entries of its probe run back (no holes, no rehash), and the table only
 * grows, to twice the most streams ever open at once (a connection caps them with
 * MAX_CONCURRENT_STREAMS).
 *
 * Stream ids of one side are odd or even and increase, so `id >>> 1` spreads them over
 * consecutive slots. A peer may choose ids that collide (any increasing ids are legal); a
 * probe run is then at most the streams open at once, which the connection caps.
 */

/** Slots of a new table (power of two). An idle connection holds this much. */
const INITIAL_SLOTS = 8;

export class StreamTable<V extends { readonly id: number }> {
  /** Stream id per slot; 0 = empty (stream 0 is the connection, never a key). */
  #ids: number[];
  #values: (V | undefined)[];
  #mask: number;
  #size = 0;

  constructor() {
    this.#ids = new Array<number>(INITIAL_SLOTS).fill(0);
    this.#values = new Array<V | undefined>(INITIAL_SLOTS).fill(undefined);
    this.#mask = INITIAL_SLOTS - 1;
  }

  /** Streams held. */
  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    const ids = this.#ids;
    const mask = this.#mask;
    let i = (id >>> 1) & mask;
    for (;;) {
      const k = ids[i]!;
      if (k === id) return this.#values[i];
      if (k === 0) return undefined;
      i = (i + 1) & mask;
    }
  }

  /** Adds or replaces the stream of `id` (a positive stream id). */
  set(id: number, value: V): void {
    if (id <= 0) throw new RangeError(`stream id must be positive, not ${id}`);
    // At most half full: probe runs stay short.
    if ((this.#size + 1) * 2 > this.#ids.length) this.#grow();
    const ids = this.#ids;
    const mask = this.#mask;
    let i = (id >>> 1) & mask;
    for (;;) {
      const k = ids[i]!;
      if (k === id) {
        this.#values[i] = value;
        return;
      }
      if (k === 0) break;
      i = (i + 1) & mask;
    }
    ids[i] = id;
    this.#values[i] = value;
    this.#size++;
  }

  /** Removes the stream of `id`; whether it was there. */
  delete(id: number): boolean {
    const ids = this.#ids;
    const values = this.#values;
    const mask = this.#mask;
    let i = (id >>> 1) & mask;
    for (;;) {
      const k = ids[i]!;
      if (k === 0) return false;
      if (k === id) break;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion: every later entry of the run that may move into the hole does,
    // so a lookup never stops early at an emptied slot.
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = ids[j]!;
      if (k === 0) break;
      const home = (k >>> 1) & mask;
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      ids[hole] = k;
      values[hole] = values[j];
      hole = j;
    }
    ids[hole] = 0;
    values[hole] = undefined;
    this.#size--;
    return true;
  }

  /** The streams, by id (a copy: the table may change while the caller walks it). */
  values(): V[] {
    const out: V[] = [];
    const ids = this.#ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== 0) out.push(this.#values[i]!);
    return out.sort((a, b) => a.id - b.id);
  }

  #grow(): void {
    const oldIds = this.#ids;
    const oldValues = this.#values;
    const slots = oldIds.length * 2;
    this.#ids = new Array<number>(slots).fill(0);
    this.#values = new Array<V | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
    this.#size = 0;
    for (let i = 0; i < oldIds.length; i++) {
      const id = oldIds[i]!;
      if (id !== 0) this.set(id, oldValues[i]!);
    }
  }
}
