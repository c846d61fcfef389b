/**
 * The status page's short history: request rate, error rate and latency quantiles, sampled
 * on the main thread once per interval into a fixed ring of points. The data plane pays
 * nothing for it: each sample reads the cumulative request histograms the threads already
 * keep (layout.ts) and stores the difference from the previous sample.
 */
import { histogramQuantile } from './histogram-quantile.js';
import { OPERATIONS, OUTCOMES, REQUEST_BUCKETS_S, requestHistOffset } from './layout.js';
import { sumRegions } from './metrics.js';
import type { Timers } from './timers.js';

/** Points kept: two minutes at one sample a second. */
export const STATUS_HISTORY_POINTS = 120;
/** Time between samples. */
export const STATUS_SAMPLE_INTERVAL_MS = 1000; // 1 s

/** Cumulative request counts since start: per bucket (not cumulative over buckets), +Inf last. */
export interface RequestTotals {
  /** `bounds.length + 1` counts: bucket `i` holds durations <= bounds[i] (and > bounds[i-1]). */
  readonly buckets: ArrayLike<number>;
  /** Calls that did not end `ok` (router errors and non-OK statuses passed through). */
  readonly errors: number;
}

/** The history as columns, oldest first; null where an interval had no calls. */
export interface RequestHistory {
  readonly intervalMs: number;
  /** Most points kept. */
  readonly capacity: number;
  readonly atMs: number[];
  readonly ratePerS: number[];
  readonly errorsPerS: number[];
  readonly p50Ms: (number | null)[];
  readonly p99Ms: (number | null)[];
}

export interface StatusSamplerOptions {
  /** Cumulative totals now. */
  readonly read: () => RequestTotals;
  readonly clock: { now(): number };
  /** Upper bounds of the histogram buckets, seconds; default the request buckets. */
  readonly bounds?: readonly number[];
  /** Default STATUS_HISTORY_POINTS. */
  readonly capacity?: number;
  /** Default STATUS_SAMPLE_INTERVAL_MS. */
  readonly intervalMs?: number;
}

/** Fixed-size history of request rate and latency; `start` samples on a timer. */
export class StatusSampler {
  readonly #read: () => RequestTotals;
  readonly #clock: { now(): number };
  readonly #bounds: readonly number[];
  readonly #capacity: number;
  readonly #intervalMs: number;
  // Columns of a ring buffer: point k (0 = oldest) is at (#head + k) % capacity.
  readonly #at: Float64Array;
  readonly #rate: Float64Array;
  readonly #errors: Float64Array;
  readonly #p50: Float64Array;
  readonly #p99: Float64Array;
  #head = 0;
  #size = 0;
  #last: { at: number; buckets: Float64Array; errors: number } | null = null;
  readonly #delta: Float64Array;
  #timers: Timers | null = null;
  #timer: unknown = null;

  constructor(options: StatusSamplerOptions) {
    this.#read = options.read;
    this.#clock = options.clock;
    this.#bounds = options.bounds ?? REQUEST_BUCKETS_S;
    this.#capacity = options.capacity ?? STATUS_HISTORY_POINTS;
    this.#intervalMs = options.intervalMs ?? STATUS_SAMPLE_INTERVAL_MS;
    if (!Number.isInteger(this.#capacity) || this.#capacity < 1) {
      throw new RangeError(`capacity: expected a positive integer, got ${this.#capacity}`);
    }
    if (!(this.#intervalMs > 0)) {
      throw new RangeError(`intervalMs: expected a positive number, got ${this.#intervalMs}`);
    }
    const c = this.#capacity;
    this.#at = new Float64Array(c);
    this.#rate = new Float64Array(c);
    this.#errors = new Float64Array(c);
    this.#p50 = new Float64Array(c);
    this.#p99 = new Float64Array(c);
    this.#delta = new Float64Array(this.#bounds.length + 1);
  }

  /**
   * Reads the totals and records the interval since the previous sample (the first sample
   * only sets the baseline). A count that went down (a counter reset) counts as 0.
   */
  sample(): void {
    const now = this.#clock.now();
    const totals = this.#read();
    const buckets = Float64Array.from(totals.buckets);
    const last = this.#last;
    this.#last = { at: now, buckets, errors: totals.errors };
    if (last === null || now <= last.at) return;
    let calls = 0;
    for (let i = 0; i < this.#delta.length; i++) {
      const d = Math.max(0, (buckets[i] ?? 0) - (last.buckets[i] ?? 0));
      this.#delta[i] = d;
      calls += d;
    }
    const seconds = (now - last.at) / 1000;
    const slot = (this.#head + this.#size) % this.#capacity;
    this.#at[slot] = now;
    this.#rate[slot] = calls / seconds;
    this.#errors[slot] = Math.max(0, totals.errors - last.errors) / seconds;
    this.#p50[slot] = histogramQuantile(this.#bounds, this.#delta, 0.5) * 1000;
    this.#p99[slot] = histogramQuantile(this.#bounds, this.#delta, 0.99) * 1000;
    if (this.#size < this.#capacity) this.#size++;
    else this.#head = (this.#head + 1) % this.#capacity;
  }

  /** The points kept, oldest first. */
  history(): RequestHistory {
    const col = (a: Float64Array) => {
      const out: number[] = [];
      for (let k = 0; k < this.#size; k++) out.push(a[(this.#head + k) % this.#capacity]!);
      return out;
    };
    const orNull = (a: Float64Array) => col(a).map((v) => (Number.isNaN(v) ? null : v));
    return {
      intervalMs: this.#intervalMs,
      capacity: this.#capacity,
      atMs: col(this.#at),
      ratePerS: col(this.#rate),
      errorsPerS: col(this.#errors),
      p50Ms: orNull(this.#p50),
      p99Ms: orNull(this.#p99),
    };
  }

  /** Samples now (the baseline) and then every interval, until `stop`. */
  start(timers: Timers): void {
    if (this.#timer !== null) return;
    this.sample();
    this.#timers = timers;
    this.#timer = timers.setInterval(() => this.sample(), this.#intervalMs);
  }

  stop(): void {
    if (this.#timer === null) return;
    this.#timers?.clearInterval(this.#timer);
    this.#timer = null;
  }
}

const OK = OUTCOMES.indexOf('ok');

/** The request histograms of every data-plane thread, summed over operations and outcomes. */
export function readRequestTotals(state: SharedArrayBuffer): RequestTotals {
  const m = sumRegions(state);
  const words = REQUEST_BUCKETS_S.length + 1;
  const buckets = new Float64Array(words);
  let errors = 0;
  for (let op = 0; op < OPERATIONS.length; op++) {
    for (let oc = 0; oc < OUTCOMES.length; oc++) {
      const base = requestHistOffset(op, oc);
      for (let i = 0; i < words; i++) buckets[i]! += m[base + i]!;
      if (oc !== OK) errors += m[base + REQUEST_BUCKETS_S.length + 2]!;
    }
  }
  return { buckets, errors };
}
