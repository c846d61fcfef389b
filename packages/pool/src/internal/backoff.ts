import type { Random } from '@engram/common';
import { backoffDelay } from '@engram/retry';

/**
 * Reconnect delay for the `attempt`-th consecutive failure (0-based): @engram/retry's
 * `backoffDelay` with equal jitter (`capped * (0.5 + r * 0.5)`, `capped = min(max, base *
 * 2^attempt)`), so a fleet of broken connections does not reconnect in lock step, yet never
 * retries sooner than half the cap. Whole milliseconds. Pure: same inputs, same delay.
 */
export function reconnectDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: Random,
): number {
  // 2^31 already exceeds any timer; clamping the exponent keeps a 0 ms base from making
  // 0 * Infinity (NaN) after 1024 failures.
  const delay = backoffDelay(Math.min(attempt, 31), 0, { baseMs, maxMs, jitter: 'equal' }, random);
  return Math.floor(delay);
}
