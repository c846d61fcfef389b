import {
  EngramError,
  type InvalidArgumentError,
  isEngramError,
  type LayoutMismatchError,
} from '@engram/common';

/** Stable codes of every error @engram/retry throws. */
export const RETRY_ERROR_CODES = Object.freeze({
  DeadlineExceeded: 'DeadlineExceeded',
  RetryBudgetExhausted: 'RetryBudgetExhausted',
  Aborted: 'Aborted',
  InvalidArgument: 'InvalidArgument',
  LayoutMismatch: 'LayoutMismatch',
} as const);

export type RetryErrorCode = (typeof RETRY_ERROR_CODES)[keyof typeof RETRY_ERROR_CODES];

/**
 * Base class of the errors that stop an operation (`DeadlineExceeded`, `RetryBudgetExhausted`,
 * `Aborted`); `code` is stable, messages are not. Bad options throw the common
 * `InvalidArgumentError`, a foreign shared budget buffer the common `LayoutMismatchError`.
 */
export class RetryError extends EngramError {
  declare readonly code: RetryErrorCode;
  /** Attempts of `fn` that were started (0 when none was). */
  readonly attempts: number;

  constructor(code: RetryErrorCode, message: string, attempts: number, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = 'RetryError';
    this.attempts = attempts;
  }
}

/** The operation's deadline passed (before an attempt, during one, or during a backoff). */
export class DeadlineExceededError extends RetryError {
  declare readonly code: 'DeadlineExceeded';
  constructor(attempts = 0, cause?: unknown) {
    super(RETRY_ERROR_CODES.DeadlineExceeded, 'deadline exceeded', attempts, cause);
    this.name = 'DeadlineExceededError';
  }
}

/** A retry was due but the retry budget had no token left; `cause` is the last failure. */
export class RetryBudgetExhaustedError extends RetryError {
  declare readonly code: 'RetryBudgetExhausted';
  constructor(attempts = 0, cause?: unknown) {
    super(RETRY_ERROR_CODES.RetryBudgetExhausted, 'retry budget exhausted', attempts, cause);
    this.name = 'RetryBudgetExhaustedError';
  }
}

/** The caller's AbortSignal fired; `cause` is the last failure, or the signal's reason. */
export class AbortedError extends RetryError {
  declare readonly code: 'Aborted';
  constructor(attempts = 0, cause?: unknown) {
    super(RETRY_ERROR_CODES.Aborted, 'operation aborted', attempts, cause);
    this.name = 'AbortedError';
  }
}

/**
 * True for every error @engram/retry throws, by brand and code (so also for errors of another
 * copy of the package, which `instanceof` would miss).
 */
export function isRetryError(
  error: unknown,
): error is RetryError | InvalidArgumentError | LayoutMismatchError {
  return isEngramError(error) && Object.hasOwn(RETRY_ERROR_CODES, error.code);
}
