import { type Clock, InvalidArgumentError, type Random, systemClock } from '@engram/common';
import {
  BACKOFF_DEFAULTS,
  type BackoffOptions,
  type BackoffState,
  INITIAL_BACKOFF_STATE,
  validateBackoff,
} from './backoff.js';
import type { RetryBudgetLike } from './budget.js';
import { DEFAULT_DEADLINE_MS, Deadline } from './deadline.js';
import { AbortedError, DeadlineExceededError, RetryBudgetExhaustedError } from './errors.js';
import { isRetryableError, retryPushbackMs } from './grpc.js';
import { planRetry } from './plan.js';

export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt. Default 3 (so at most 4 attempts). */
  readonly retries?: number | undefined;
  /** A Deadline shared with the caller, or a timeout in ms from now. Default 10_000 ms. */
  readonly deadline?: Deadline | number | undefined;
  /** Aborting it stops the attempt in flight (via its signal) and any pending backoff. */
  readonly signal?: AbortSignal | undefined;
  /** Debited once per retry; `retry` records the original request on it. Default none. */
  readonly budget?: RetryBudgetLike | undefined;
  /** Decides whether a failure may be retried. Default `isRetryableError`. */
  readonly shouldRetry?: ((error: unknown, attempt: number) => boolean) | undefined;
  /** Honour `grpc-retry-pushback-ms` (as the delay, or as "do not retry"). Default true. */
  readonly respectPushback?: boolean | undefined;
  /** Default Math.random. */
  readonly random?: Random | undefined;
  /** Used when `deadline` is a number. Default `systemClock` (monotonic). */
  readonly clock?: Clock | undefined;
  /** Called before each backoff sleep. */
  readonly onRetry?: ((info: RetryInfo) => void) | undefined;
}

export interface RetryInfo {
  /** The attempt that failed (0 = first). */
  readonly attempt: number;
  readonly error: unknown;
  readonly delayMs: number;
}

export const RETRY_DEFAULTS = Object.freeze({
  retries: 3,
  deadlineMs: DEFAULT_DEADLINE_MS, // 10 s
  baseMs: BACKOFF_DEFAULTS.baseMs, // 100 ms
  maxMs: BACKOFF_DEFAULTS.maxMs, // 5 s
  jitter: BACKOFF_DEFAULTS.jitter, // 'full'
});
const MAX_RETRIES = 100;

/** Resolves when the signal aborts; `dispose` removes the listener. */
function abortPromise(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  // Rejections of this promise are handled by the race; this stops an unhandled-rejection
  // report when the race already settled.
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort!) };
}

/**
 * Runs `fn(attempt, signal)` until it succeeds, fails with an error `shouldRetry` rejects
 * (rethrown as is), or runs out of retries (the last error rethrown as is). Throws
 * DeadlineExceededError, AbortedError or RetryBudgetExhaustedError (with `attempts` and the
 * last failure as `cause`) when those stop it. `signal` passed to `fn` aborts at the deadline
 * or when the caller's signal does; an attempt that ignores it is abandoned, not awaited.
 * Leaves no timer or listener behind.
 */
export async function retry<T>(
  fn: (attempt: number, signal: AbortSignal) => T | PromiseLike<T>,
  options: RetryOptions = {},
): Promise<T> {
  validateBackoff(options);
  const retries = options.retries ?? RETRY_DEFAULTS.retries;
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    throw new InvalidArgumentError('retries', retries, `an integer in [0, ${MAX_RETRIES}]`);
  }
  const clock = options.clock ?? systemClock;
  const deadline =
    options.deadline instanceof Deadline
      ? options.deadline
      : Deadline.after(options.deadline ?? RETRY_DEFAULTS.deadlineMs, clock);
  const shouldRetry = options.shouldRetry ?? isRetryableError;
  const random = options.random ?? Math.random;
  const respectPushback = options.respectPushback ?? true;
  const outer = options.signal;
  const budget = options.budget;

  if (outer?.aborted) throw new AbortedError(0, outer.reason);
  if (deadline.expired()) throw new DeadlineExceededError(0);
  budget?.recordRequest();

  let attempts = 0;
  let lastError: unknown;
  const controller = new AbortController();
  const onOuterAbort = (): void => controller.abort(new AbortedError(attempts, outer?.reason));
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const remaining = deadline.remaining();
  const deadlineTimer =
    remaining === Number.POSITIVE_INFINITY
      ? undefined
      : setTimeout(
          () => controller.abort(new DeadlineExceededError(attempts, lastError)),
          Math.min(remaining, 2 ** 31 - 1),
        );
  const aborted = abortPromise(controller.signal);
  const stopped = (): Error => {
    // The controller's reason is our own typed error; refresh it with the latest count.
    const reason = controller.signal.reason;
    if (reason instanceof AbortedError)
      return new AbortedError(attempts, lastError ?? outer?.reason);
    return new DeadlineExceededError(attempts, lastError);
  };
  try {
    const policy = { maxRetries: retries, backoff: options };
    let backoff: BackoffState = INITIAL_BACKOFF_STATE;
    for (let attempt = 0; ; attempt++) {
      if (controller.signal.aborted) throw stopped();
      attempts = attempt + 1;
      try {
        return await Promise.race([fn(attempt, controller.signal), aborted.promise]);
      } catch (error) {
        if (controller.signal.aborted) {
          if (error !== controller.signal.reason) lastError = error;
          throw stopped();
        }
        lastError = error;
      }
      if (!shouldRetry(lastError, attempt)) throw lastError;
      const plan = planRetry(
        backoff,
        policy,
        respectPushback ? retryPushbackMs(lastError) : undefined,
        deadline.remaining(),
        random,
        budget,
      );
      if (!plan.retry) {
        if (plan.reason === 'deadline') throw new DeadlineExceededError(attempts, lastError);
        if (plan.reason === 'budget') throw new RetryBudgetExhaustedError(attempts, lastError);
        throw lastError; // retries exhausted, or the server said not to retry
      }
      backoff = plan.next;
      const delayMs = plan.delayMs;
      options.onRetry?.({ attempt, error: lastError, delayMs });
      try {
        await deadline.sleep(delayMs, controller.signal);
      } catch {
        throw stopped();
      }
    }
  } finally {
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
    outer?.removeEventListener('abort', onOuterAbort);
    aborted.dispose();
  }
}
