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

/** One failed attempt, in an error that gathers them: where it went (a node id) and its error. */
export interface TargetError {
  readonly nodeId: string;
  readonly error: unknown;
}

/**
 * Base class of the errors that stop an operation (`DeadlineExceeded`, `RetryBudgetExhausted`,
 * `Aborted`); `code` is stable, messages are not. Bad options throw the common
 * `InvalidArgumentError`, a foreign shared budget buffer the common `LayoutMismatchError`.
 * These classes are the only ones of their kind: @engram/router throws and re-exports them.
 */
export class RetryError extends EngramError {
  declare readonly code: RetryErrorCode;
  /**
   * Attempts that were started (0 when none was). Writable because a caller running several
   * attempts of its own (the router: fail-overs, hedges, replicas) sets the operation's total.
   */
  attempts: number;
  /** The failed attempts gathered before this error, by a caller that tracks targets (the router); else empty. */
  readonly errors: readonly TargetError[];

  constructor(
    code: RetryErrorCode,
    message: string,
    attempts: number,
    cause?: unknown,
    errors: readonly TargetError[] = [],
  ) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = 'RetryError';
    this.attempts = attempts;
    this.errors = errors;
  }
}

/** The operation's deadline passed (before an attempt, during one, or during a backoff). */
export class DeadlineExceededError extends RetryError {
  declare readonly code: 'DeadlineExceeded';
  constructor(attempts = 0, cause?: unknown, errors: readonly TargetError[] = []) {
    super(RETRY_ERROR_CODES.DeadlineExceeded, 'deadline exceeded', attempts, cause, errors);
    this.name = 'DeadlineExceededError';
  }
}

/** A retry was due but the retry budget had no token left; `cause` is the last failure. */
export class RetryBudgetExhaustedError extends RetryError {
  declare readonly code: 'RetryBudgetExhausted';
  constructor(attempts = 0, cause?: unknown, errors: readonly TargetError[] = []) {
    super(
      RETRY_ERROR_CODES.RetryBudgetExhausted,
      'retry budget exhausted',
      attempts,
      cause,
      errors,
    );
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

/** True when `error` is a DeadlineExceededError, of this or another copy of the package. */
export function isDeadlineExceededError(error: unknown): error is DeadlineExceededError {
  return isEngramError(error, RETRY_ERROR_CODES.DeadlineExceeded);
}

/** True when `error` is a RetryBudgetExhaustedError, of this or another copy of the package. */
export function isRetryBudgetExhaustedError(error: unknown): error is RetryBudgetExhaustedError {
  return isEngramError(error, RETRY_ERROR_CODES.RetryBudgetExhausted);
}

/** True when `error` is an AbortedError, of this or another copy of the package. */
export function isAbortedError(error: unknown): error is AbortedError {
  return isEngramError(error, RETRY_ERROR_CODES.Aborted);
}
