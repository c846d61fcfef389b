import { InvalidArgumentError } from '@engram/common';

/**
 * A rule that decides when a closed breaker opens. Rules keep their counters in Int32 words
 * that the table gives them (`words` per breaker), in shared memory when the table is shared,
 * so they must update them with `Atomics` and must not allocate.
 */
export interface TripRule {
  /** Reported as the transition reason when this rule opens the breaker. */
  readonly name: string;
  /** Identifies the rule and its configuration; every thread sharing a table must agree. */
  readonly key: string;
  /** Int32 words this rule needs per breaker. */
  readonly words: number;
  /** Puts the rule's words back to their initial state (called when the breaker closes). */
  reset(mem: Int32Array, base: number): void;
  /** Records a successful call made while closed. */
  onSuccess(mem: Int32Array, base: number): void;
  /** Records a failed call made while closed; returns true when the breaker must open. */
  onFailure(mem: Int32Array, base: number): boolean;
}

/** Default number of consecutive failures that opens a breaker (the seed's threshold). */
export const DEFAULT_CONSECUTIVE_FAILURES = 5;

/** Opens after `threshold` failures in a row (any success resets the count). */
export class ConsecutiveFailures implements TripRule {
  readonly name = 'consecutive-failures';
  readonly key: string;
  readonly words = 1;
  readonly threshold: number;

  constructor(threshold: number = DEFAULT_CONSECUTIVE_FAILURES) {
    if (!Number.isInteger(threshold) || threshold < 1 || threshold > 1_000_000) {
      throw new InvalidArgumentError('threshold', threshold, 'an integer in [1, 1000000]');
    }
    this.threshold = threshold;
    this.key = `consecutive-failures(${threshold})`;
  }

  reset(mem: Int32Array, base: number): void {
    Atomics.store(mem, base, 0);
  }

  onSuccess(mem: Int32Array, base: number): void {
    // Load first: under load most calls succeed and the word is already 0, so skipping the
    // store keeps the cache line shared between threads instead of bouncing it.
    if (Atomics.load(mem, base) !== 0) Atomics.store(mem, base, 0);
  }

  onFailure(mem: Int32Array, base: number): boolean {
    return Atomics.add(mem, base, 1) + 1 >= this.threshold;
  }
}

export interface FailureRateOptions {
  /** Failure share in (0, 1] at or above which the breaker opens. Default 0.5. */
  readonly threshold?: number | undefined;
  /** Number of most recent calls considered. Default 20 calls, at most 1024. */
  readonly windowSize?: number | undefined;
  /** Calls that must be in the window before the rule may trip. Default 10 calls. */
  readonly minimumCalls?: number | undefined;
}

export const FAILURE_RATE_DEFAULTS = Object.freeze({
  threshold: 0.5,
  windowSize: 20, // calls
  minimumCalls: 10, // calls
});
export const MAX_FAILURE_RATE_WINDOW = 1024; // calls

const FR_INDEX = 0;
const FR_CALLS = 1;
const FR_FAILURES = 2;
const FR_RING = 3;
const OUTCOME_EMPTY = 0;
const OUTCOME_SUCCESS = 1;
const OUTCOME_FAILURE = 2;

/**
 * Opens when at least `threshold` of the last `windowSize` calls failed, once the window holds
 * at least `minimumCalls` calls (so three failures out of four calls do not trip it).
 */
export class FailureRate implements TripRule {
  readonly name = 'failure-rate';
  readonly key: string;
  readonly words: number;
  readonly threshold: number;
  readonly windowSize: number;
  readonly minimumCalls: number;
  readonly #thresholdPermille: number;

  constructor(options: FailureRateOptions = {}) {
    const threshold = options.threshold ?? FAILURE_RATE_DEFAULTS.threshold;
    const windowSize = options.windowSize ?? FAILURE_RATE_DEFAULTS.windowSize;
    const minimumCalls =
      options.minimumCalls ?? Math.min(FAILURE_RATE_DEFAULTS.minimumCalls, windowSize);
    if (!(threshold > 0 && threshold <= 1)) {
      throw new InvalidArgumentError('threshold', threshold, 'in (0, 1]');
    }
    if (!Number.isInteger(windowSize) || windowSize < 1 || windowSize > MAX_FAILURE_RATE_WINDOW) {
      throw new InvalidArgumentError(
        'windowSize',
        windowSize,
        `an integer in [1, ${MAX_FAILURE_RATE_WINDOW}]`,
      );
    }
    if (!Number.isInteger(minimumCalls) || minimumCalls < 1 || minimumCalls > windowSize) {
      throw new InvalidArgumentError(
        'minimumCalls',
        minimumCalls,
        `an integer in [1, windowSize=${windowSize}]`,
      );
    }
    this.threshold = threshold;
    this.windowSize = windowSize;
    this.minimumCalls = minimumCalls;
    this.#thresholdPermille = Math.round(threshold * 1000);
    this.words = FR_RING + windowSize;
    this.key = `failure-rate(${threshold},${windowSize},${minimumCalls})`;
  }

  reset(mem: Int32Array, base: number): void {
    for (let i = 0; i < this.words; i++) Atomics.store(mem, base + i, 0);
  }

  onSuccess(mem: Int32Array, base: number): void {
    this.#record(mem, base, OUTCOME_SUCCESS);
  }

  onFailure(mem: Int32Array, base: number): boolean {
    this.#record(mem, base, OUTCOME_FAILURE);
    const calls = Atomics.load(mem, base + FR_CALLS);
    if (calls < this.minimumCalls) return false;
    return Atomics.load(mem, base + FR_FAILURES) * 1000 >= this.#thresholdPermille * calls;
  }

  #record(mem: Int32Array, base: number, outcome: number): void {
    const i = (Atomics.add(mem, base + FR_INDEX, 1) >>> 0) % this.windowSize;
    const old = Atomics.exchange(mem, base + FR_RING + i, outcome);
    if (old === OUTCOME_EMPTY) Atomics.add(mem, base + FR_CALLS, 1);
    if (outcome === OUTCOME_FAILURE) {
      if (old !== OUTCOME_FAILURE) Atomics.add(mem, base + FR_FAILURES, 1);
    } else if (old === OUTCOME_FAILURE) {
      Atomics.sub(mem, base + FR_FAILURES, 1);
    }
  }
}
