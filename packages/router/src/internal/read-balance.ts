/** Weight of the newest answer in a node's latency mean (about the last 10 answers). */
const LATENCY_WEIGHT = 0.2;
/** Floor of a first latency sample, ms: a 0 ms answer must not read as "no sample yet". */
const MIN_LATENCY_MS = 0.001;

/**
 * Latency-aware reads (the Cassandra driver's idea, with Finagle's exploration): a read leaves
 * its lead for the other choice when the lead's latency mean is more than `LATENCY_FACTOR`
 * times the other's and at least `LATENCY_FLOOR_MS` above it, so 0.3 ms against 1 ms on
 * loopback never moves anything. One read in `LATENCY_EXPLORE` keeps the slow lead anyway, so
 * its mean keeps being measured and it gets its reads back once it is fast again.
 */
export const LATENCY_FACTOR = 3;
export const LATENCY_FLOOR_MS = 5;
export const LATENCY_EXPLORE = 64;

/** How a read picks the first of a space's live replicas (option `readBalancing`). */
export const ReadBalancing = Object.freeze({
  /** Placement order (the primary while it is up). */
  Placement: 'placement',
  /**
   * Envoy's `least_request` with two choices, one of them the placement's: a read leaves the
   * placement's first live replica for another one (picked at random) only when the first has
   * more than `readBalancingThreshold` attempts more in flight from this router, or when its
   * answers are much slower than the other's (`LATENCY_FACTOR`, `LATENCY_FLOOR_MS`).
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
  /** Exponentially weighted mean of answered attempts' durations per slot, ms (0: none yet). */
  readonly #latency: Float64Array;

  constructor(slots: number) {
    this.#counts = new Int32Array(slots);
    this.#latency = new Float64Array(slots);
  }

  /** An attempt on `slot` was answered after `ms`: the slot's latency mean moves toward it. */
  answered(slot: number, ms: number): void {
    const latency = this.#latency;
    if (slot < 0 || slot >= latency.length || !(ms >= 0)) return;
    const mean = latency[slot]!;
    latency[slot] = mean === 0 ? Math.max(ms, MIN_LATENCY_MS) : mean + LATENCY_WEIGHT * (ms - mean);
  }

  /** The slot's latency mean, ms (0 before its first answer, or for an uncounted slot). */
  latencyOf(slot: number): number {
    return slot >= 0 && slot < this.#latency.length ? this.#latency[slot]! : 0;
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
