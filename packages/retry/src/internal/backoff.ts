import { InvalidArgumentError, type Random } from '@engram/common';

/** Jitter modes, named as in AWS's "Exponential Backoff and Jitter". */
export const Jitter = Object.freeze({
  /** `random(0, d)`: AWS's "full jitter"; the default (least contention on recovery). */
  Full: 'full',
  /** `d/2 + random(0, d/2)`: the seed's `0.5 + rand*0.5` formula. */
  Equal: 'equal',
  /** `min(max, random(base, prev * 3))`: AWS's "decorrelated jitter". */
  Decorrelated: 'decorrelated',
  /** `d`: plain capped exponential, no randomness. */
  None: 'none',
} as const);
export type JitterMode = (typeof Jitter)[keyof typeof Jitter];

export interface BackoffOptions {
  /** First delay before jitter (`d = base * 2^attempt`). Default 100 ms. */
  readonly baseMs?: number | undefined;
  /** Cap of every delay. Default 5_000 ms. */
  readonly maxMs?: number | undefined;
  /** Default 'full'. */
  readonly jitter?: JitterMode | undefined;
}

export const BACKOFF_DEFAULTS = Object.freeze({
  baseMs: 100, // 100 ms
  maxMs: 5 * 1000, // 5 s
  jitter: 'full' as JitterMode,
});

/** Where a backoff sequence stands: retries already scheduled and the previous delay. */
export interface BackoffState {
  readonly attempt: number;
  readonly prevDelayMs: number;
}

export const INITIAL_BACKOFF_STATE: BackoffState = Object.freeze({ attempt: 0, prevDelayMs: 0 });

const MAX_BACKOFF_MS = 24 * 60 * 60 * 1000; // 24 h

export function validateBackoff(options: BackoffOptions): void {
  const baseMs = options.baseMs ?? BACKOFF_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const jitter = options.jitter ?? BACKOFF_DEFAULTS.jitter;
  if (!(baseMs >= 0 && baseMs <= MAX_BACKOFF_MS)) {
    throw new InvalidArgumentError('baseMs', baseMs, `a number of ms in [0, ${MAX_BACKOFF_MS}]`);
  }
  if (!(maxMs >= baseMs && maxMs <= MAX_BACKOFF_MS)) {
    throw new InvalidArgumentError(
      'maxMs',
      maxMs,
      `a number of ms in [baseMs=${baseMs}, ${MAX_BACKOFF_MS}]`,
    );
  }
  if (jitter !== 'full' && jitter !== 'equal' && jitter !== 'decorrelated' && jitter !== 'none') {
    throw new InvalidArgumentError('jitter', jitter, "'full', 'equal', 'decorrelated' or 'none'");
  }
}

/**
 * Delay in ms before retry number `attempt + 1` (attempt 0 is the first retry), given the
 * previous delay (used by 'decorrelated'; pass 0 at the start). Pure and allocation-free;
 * options are not validated here (see `validateBackoff`).
 */
export function backoffDelay(
  attempt: number,
  prevDelayMs: number,
  options: BackoffOptions,
  random: Random,
): number {
  const baseMs = options.baseMs ?? BACKOFF_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const jitter = options.jitter ?? BACKOFF_DEFAULTS.jitter;
  if (jitter === 'decorrelated') {
    const prev = Math.max(prevDelayMs, baseMs);
    return Math.min(maxMs, baseMs + random() * (prev * 3 - baseMs));
  }
  // 2^attempt overflows to Infinity for huge attempts; min() caps it all the same.
  const d = Math.min(maxMs, baseMs * 2 ** attempt);
  switch (jitter) {
    case 'full':
      return random() * d;
    case 'equal':
      return d / 2 + random() * (d / 2);
    default:
      return d;
  }
}

/**
 * The pure backoff step, cockatiel-style: `(state, options, random) => [delayMs, nextState]`.
 * Validates the options (throws InvalidArgumentError, a RangeError, naming the field).
 */
export function backoffStep(
  state: BackoffState,
  options: BackoffOptions,
  random: Random,
): readonly [delayMs: number, next: BackoffState] {
  validateBackoff(options);
  const delayMs = backoffDelay(state.attempt, state.prevDelayMs, options, random);
  return [delayMs, { attempt: state.attempt + 1, prevDelayMs: delayMs }];
}
