/** Base class of every error thrown by @engram/breaker; `code` is stable, messages are not. */
export class BreakerError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BreakerError';
    this.code = code;
  }
}

/** A call was refused because the breaker is open (or half-open with no probe permit left). */
export class CircuitBreakerOpenError extends BreakerError {
  override readonly code = 'CircuitBreakerOpen' as const;
  constructor(message = 'circuit breaker is open') {
    super('CircuitBreakerOpen', message);
    this.name = 'CircuitBreakerOpenError';
  }
}

/** A shared buffer does not match the options a thread tried to attach with. */
export class BreakerLayoutMismatchError extends BreakerError {
  override readonly code = 'BreakerLayoutMismatch' as const;
  constructor(message: string) {
    super('BreakerLayoutMismatch', message);
    this.name = 'BreakerLayoutMismatchError';
  }
}

export function isCircuitBreakerOpenError(error: unknown): error is CircuitBreakerOpenError {
  return error instanceof BreakerError && error.code === 'CircuitBreakerOpen';
}
