/** Samples kept for the hedge percentile. */
export const LATENCY_WINDOW_SIZE = 256;
/** Samples needed before the percentile replaces the fixed hedge delay. */
export const LATENCY_MIN_SAMPLES = 32;
/** The percentile is recomputed after this many new samples (sorting 256 numbers each time). */
const RECOMPUTE_EVERY = 32;

/** A ring of recent successful read latencies (ms) and a cached percentile. */
export class LatencyWindow {
  readonly #samples = new Float64Array(LATENCY_WINDOW_SIZE);
  readonly #sorted = new Float64Array(LATENCY_WINDOW_SIZE);
  #count = 0;
  #next = 0;
  #sinceCompute = 0;
  #cachedPercentile = Number.NaN;
  #cached = Number.NaN;

  record(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % LATENCY_WINDOW_SIZE;
    if (this.#count < LATENCY_WINDOW_SIZE) this.#count++;
    this.#sinceCompute++;
  }

  get count(): number {
    return this.#count;
  }

  /** The p-th percentile (0 < p < 1) of the window, or NaN with too few samples. */
  percentile(p: number): number {
    if (this.#count < LATENCY_MIN_SAMPLES) return Number.NaN;
    if (p !== this.#cachedPercentile || this.#sinceCompute >= RECOMPUTE_EVERY) {
      const n = this.#count;
      const sorted = this.#sorted.subarray(0, n);
      sorted.set(this.#samples.subarray(0, n));
      sorted.sort();
      this.#cached = sorted[Math.min(n - 1, Math.floor(p * n))]!;
      this.#cachedPercentile = p;
      this.#sinceCompute = 0;
    }
    return this.#cached;
  }
}
