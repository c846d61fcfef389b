/** Base class of every error thrown by @engram/retry; `code` is stable, messages are not. */
export class RetryError extends Error {
  readonly code: string;
  /** Attempts of `fn` that were started (0 when none was). */
  readonly attempts: number;

  constructor(code: string, message: string, attempts: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RetryError';
    this.code = code;
    this.attempts = attempts;
  }
}

/** The operation's deadline passed (before an attempt, during one, or during a backoff). */
export class DeadlineExceededError extends RetryError {
  override readonly code = 'DeadlineExceeded' as const;
  constructor(attempts = 0, cause?: unknown) {
    super('DeadlineExceeded', 'deadline exceeded', attempts, cause);
    this.name = 'DeadlineExceededError';
  }
}

/** A retry was due but the retry budget had no token left; `cause` is the last failure. */
export class RetryBudgetExhaustedError extends RetryError {
  override readonly code = 'RetryBudgetExhausted' as const;
  constructor(attempts = 0, cause?: unknown) {
    super('RetryBudgetExhausted', 'retry budget exhausted', attempts, cause);
    this.name = 'RetryBudgetExhaustedError';
  }
}

/** The caller's AbortSignal fired; `cause` is the last failure, or the signal's reason. */
export class AbortedError extends RetryError {
  override readonly code = 'Aborted' as const;
  constructor(attempts = 0, cause?: unknown) {
    super('Aborted', 'operation aborted', attempts, cause);
    this.name = 'AbortedError';
  }
}

export function isRetryError(error: unknown): error is RetryError {
  return error instanceof RetryError;
}
