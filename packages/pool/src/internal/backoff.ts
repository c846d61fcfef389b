import type { Random } from './options.js';

/**
 * Reconnect delay for the `attempt`-th consecutive failure (0-based): `base * 2^attempt`,
 * capped at `max`, with equal jitter (`capped * (0.5 + r * 0.5)`) so a fleet of broken
 * connections does not reconnect in lock step, yet never retries sooner than half the cap.
 * Pure: same inputs, same delay.
 */
export function reconnectDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: Random,
): number {
  // 2^31 already exceeds any timer; clamp the exponent so the product stays finite.
  const capped = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 31));
  return Math.floor(capped * (0.5 + random() * 0.5));
}
