import { type Clock, InvalidArgumentError, systemClock } from '@engram/common';
import { ConsecutiveFailures, type TripRule } from './rules.js';

export type BreakerStateName = 'closed' | 'open' | 'half-open';

/**
 * Why a breaker changed state: a trip rule's `name` (`'consecutive-failures'`,
 * `'failure-rate'`) for closed → open, otherwise one of these.
 */
export type TransitionReason =
  | 'open-timeout-elapsed'
  | 'probes-succeeded'
  | 'probe-failed'
  | 'reset'
  | 'recovered'
  | (string & {});

/**
 * Called synchronously, in the thread that made the transition, once per transition
 * process-wide. Local breakers report slot 0. Listeners run in registration order; one that
 * throws does not stop the others, and its exception is rethrown asynchronously.
 */
export type StateChangeListener = (
  slot: number,
  from: BreakerStateName,
  to: BreakerStateName,
  reason: TransitionReason,
) => void;

export interface BreakerOptions {
  /** How long a breaker stays open before admitting probes. Default 30_000 ms (the seed's). */
  readonly openTimeoutMs?: number | undefined;
  /** Cap of the open timeout as it grows on failed probes. Default = openTimeoutMs (no growth). */
  readonly maxOpenTimeoutMs?: number | undefined;
  /** Factor applied to the open timeout per consecutive failed probe. Default 2. */
  readonly openTimeoutMultiplier?: number | undefined;
  /** Calls admitted in half-open; all must succeed to close. Default 1, at most 16. */
  readonly halfOpenProbes?: number | undefined;
  /** A probe neither settled nor released within this gives its permit back. Default 10_000 ms. */
  readonly probeTimeoutMs?: number | undefined;
  /** What opens a closed breaker (any rule). Default `new ConsecutiveFailures(5)`. */
  readonly trip?: TripRule | readonly TripRule[] | undefined;
  /** Time source. Default `systemClock` (monotonic); in shared mode every thread must use the same timeline. */
  readonly clock?: Clock | undefined;
  /**
   * Transition listener (see StateChangeListener), registered first; `addListener` adds more.
   * Default none.
   */
  readonly onStateChange?: StateChangeListener | undefined;
}

export const BREAKER_DEFAULTS = Object.freeze({
  openTimeoutMs: 30 * 1000, // 30 s
  openTimeoutMultiplier: 2,
  halfOpenProbes: 1,
  probeTimeoutMs: 10 * 1000, // 10 s
});

/** Largest open or probe timeout: times are stored modulo 2^30 ms and compared within 2^29. */
export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000; // 24 h
export const MAX_HALF_OPEN_PROBES = 16;
export const MAX_CAPACITY = 1 << 20; // slots

export interface ResolvedBreakerOptions {
  readonly openTimeoutMs: number;
  readonly maxOpenTimeoutMs: number;
  readonly openTimeoutMultiplier: number;
  readonly halfOpenProbes: number;
  readonly probeTimeoutMs: number;
  readonly rules: readonly TripRule[];
  readonly clock: Clock;
}

function checkMs(field: string, value: number): void {
  if (!Number.isFinite(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    throw new InvalidArgumentError(field, value, `a number of ms in [1, ${MAX_TIMEOUT_MS}]`);
  }
}

export function resolveOptions(options: BreakerOptions): ResolvedBreakerOptions {
  const openTimeoutMs = options.openTimeoutMs ?? BREAKER_DEFAULTS.openTimeoutMs;
  checkMs('openTimeoutMs', openTimeoutMs);
  const maxOpenTimeoutMs = options.maxOpenTimeoutMs ?? openTimeoutMs;
  checkMs('maxOpenTimeoutMs', maxOpenTimeoutMs);
  if (maxOpenTimeoutMs < openTimeoutMs) {
    throw new InvalidArgumentError(
      'maxOpenTimeoutMs',
      maxOpenTimeoutMs,
      `>= openTimeoutMs (${openTimeoutMs})`,
    );
  }
  const openTimeoutMultiplier =
    options.openTimeoutMultiplier ?? BREAKER_DEFAULTS.openTimeoutMultiplier;
  if (!(openTimeoutMultiplier >= 1 && openTimeoutMultiplier <= 100)) {
    throw new InvalidArgumentError('openTimeoutMultiplier', openTimeoutMultiplier, 'in [1, 100]');
  }
  const halfOpenProbes = options.halfOpenProbes ?? BREAKER_DEFAULTS.halfOpenProbes;
  if (
    !Number.isInteger(halfOpenProbes) ||
    halfOpenProbes < 1 ||
    halfOpenProbes > MAX_HALF_OPEN_PROBES
  ) {
    throw new InvalidArgumentError(
      'halfOpenProbes',
      halfOpenProbes,
      `an integer in [1, ${MAX_HALF_OPEN_PROBES}]`,
    );
  }
  const probeTimeoutMs = options.probeTimeoutMs ?? BREAKER_DEFAULTS.probeTimeoutMs;
  checkMs('probeTimeoutMs', probeTimeoutMs);
  const trip = options.trip ?? new ConsecutiveFailures();
  const rules: readonly TripRule[] = Array.isArray(trip)
    ? [...(trip as readonly TripRule[])]
    : [trip as TripRule];
  if (rules.length === 0) {
    throw new InvalidArgumentError('trip', trip, 'a rule or a non-empty array of rules');
  }
  for (let i = 0; i < rules.length; i++) {
    const words = rules[i]!.words;
    if (!Number.isInteger(words) || words < 0) {
      const field = Array.isArray(trip) ? `trip[${i}].words` : 'trip.words';
      throw new InvalidArgumentError(field, words, 'a non-negative integer');
    }
  }
  return Object.freeze({
    openTimeoutMs,
    maxOpenTimeoutMs,
    openTimeoutMultiplier,
    halfOpenProbes,
    probeTimeoutMs,
    rules: Object.freeze(rules),
    clock: options.clock ?? systemClock,
  });
}
