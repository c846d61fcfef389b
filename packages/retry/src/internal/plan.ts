import type { Random } from '@engram/common';
import { type BackoffOptions, type BackoffState, backoffDelay } from './backoff.js';
import type { RetryBudgetLike } from './budget.js';

/** Why no retry follows a retryable failure. */
export const NoRetryReason = Object.freeze({
  /** Every allowed retry was made. */
  Exhausted: 'exhausted',
  /** The server said not to retry (a negative or malformed `grpc-retry-pushback-ms`). */
  Refused: 'refused',
  /** The delay would reach the deadline: no useful attempt can follow. */
  Deadline: 'deadline',
  /** The retry budget had no token. */
  Budget: 'budget',
} as const);
export type NoRetryReason = (typeof NoRetryReason)[keyof typeof NoRetryReason];

export type RetryPlan =
  | { readonly retry: true; readonly delayMs: number; readonly next: BackoffState }
  | { readonly retry: false; readonly reason: NoRetryReason };

export interface RetryPlanOptions {
  /** Retries allowed after the first attempt. */
  readonly maxRetries: number;
  readonly backoff: BackoffOptions;
}

/**
 * The next attempt after a retryable failure, as one pure step shared by `retry()` and the
 * Router's executions, so both follow one policy:
 *
 * 1. no retries left (`state.attempt` counts the retries made) → no retry, `exhausted`;
 * 2. `pushbackMs` < 0: the server asked not to be retried → no retry, `refused`;
 * 3. the delay is the server's pushback when it gave one (gRFC A6: the pushback replaces the
 *    client's backoff), else the backoff step (jitter per `backoff.jitter`);
 * 4. a delay that reaches the deadline cannot lead to a useful attempt → `deadline`;
 * 5. last, one token from `budget` (when given) → `budget` when it has none. The token is
 *    taken only when everything else allows the retry.
 *
 * `pushbackMs` is undefined when there is no pushback to honour. Pure but for the budget token.
 */
export function planRetry(
  state: BackoffState,
  options: RetryPlanOptions,
  pushbackMs: number | undefined,
  remainingMs: number,
  random: Random,
  budget?: RetryBudgetLike,
): RetryPlan {
  if (state.attempt >= options.maxRetries) return NO_RETRY.exhausted;
  if (pushbackMs !== undefined && pushbackMs < 0) return NO_RETRY.refused;
  const delayMs =
    pushbackMs ?? backoffDelay(state.attempt, state.prevDelayMs, options.backoff, random);
  if (delayMs >= remainingMs) return NO_RETRY.deadline;
  if (budget !== undefined && !budget.tryRetry()) return NO_RETRY.budget;
  return { retry: true, delayMs, next: { attempt: state.attempt + 1, prevDelayMs: delayMs } };
}

const NO_RETRY = Object.freeze({
  exhausted: Object.freeze({ retry: false, reason: NoRetryReason.Exhausted } as const),
  refused: Object.freeze({ retry: false, reason: NoRetryReason.Refused } as const),
  deadline: Object.freeze({ retry: false, reason: NoRetryReason.Deadline } as const),
  budget: Object.freeze({ retry: false, reason: NoRetryReason.Budget } as const),
});
