/** How a read picks the first of a space's live replicas (option `readBalancing`). */
export const ReadBalancing = Object.freeze({
  /** Placement order (the primary while it is up). */
  Placement: 'placement',
  /**
   * Envoy's `least_request` with two choices, one of them the placement's: a read leaves the
   * placement's first live replica for another one (picked at random) only when the first has
   * more than `readBalancingThreshold` attempts more in flight from this router.
   */
  LeastRequest: 'least-request',
} as const);
export type ReadBalancing = (typeof ReadBalancing)[keyof typeof ReadBalancing];

/**
 * Attempts in flight from one router, per node slot: the load a read's choice compares.
 * Raised when an attempt starts, lowered once when it ends (settled, timed out or abandoned).
 *
 * Per router, so per thread in router-node: plain `Int32Array` increments, no atomics and no
 * cache line shared between threads on the hot path. Envoy's `least_request` counts per worker
 * too; with calls spread over threads by the kernel, each thread's counts are a sample of the
 * whole that is good enough to compare two replicas of one space.
 */
export class OutstandingAttempts {
  readonly #counts: Int32Array;

  constructor(slots: number) {
    this.#counts = new Int32Array(slots);
  }

  /** An attempt on `slot` started (a slot of -1, or past capacity, is not counted). */
  start(slot: number): void {
    if (slot >= 0 && slot < this.#counts.length) this.#counts[slot]!++;
  }

  /** An attempt on `slot` ended. */
  end(slot: number): void {
    const counts = this.#counts;
    if (slot >= 0 && slot < counts.length && counts[slot]! > 0) counts[slot]!--;
  }

  /** Attempts in flight on `slot` (0 for an uncounted slot). */
  of(slot: number): number {
    return slot >= 0 && slot < this.#counts.length ? this.#counts[slot]! : 0;
  }
}

/**
 * Envoy's slow start, linear: the share of its reads a node that came back `elapsedMs` ago may
 * take, over a window of `windowMs` (0 = no slow start). In [0, 1]; 1 once the window is over,
 * and for a negative elapsed time (a wall clock stepped back: no node is held out for it).
 */
export function slowStartShare(elapsedMs: number, windowMs: number): number {
  if (!(windowMs > 0) || !(elapsedMs >= 0) || elapsedMs >= windowMs) return 1;
  return elapsedMs / windowMs;
}
