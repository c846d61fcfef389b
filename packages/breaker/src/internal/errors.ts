import {
  EngramError,
  type InvalidArgumentError,
  isEngramError,
  type LayoutMismatchError,
} from '@engram/common';

/** Stable codes of every error @engram/breaker throws. */
export const BREAKER_ERROR_CODES = Object.freeze({
  CircuitBreakerOpen: 'CircuitBreakerOpen',
  InvalidArgument: 'InvalidArgument',
  LayoutMismatch: 'LayoutMismatch',
} as const);

export type BreakerErrorCode = (typeof BREAKER_ERROR_CODES)[keyof typeof BREAKER_ERROR_CODES];

/**
 * Base class of @engram/breaker's own errors; `code` is stable, messages are not. Bad options
 * throw the common `InvalidArgumentError`, attaching to an incompatible table the common
 * `LayoutMismatchError`; `isBreakerError` recognises all of them.
 */
export class BreakerError extends EngramError {
  declare readonly code: BreakerErrorCode;
  constructor(code: BreakerErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'BreakerError';
  }
}

/**
 * A call was refused because the breaker is open (or half-open with no probe permit left).
 * The only class of its kind: @engram/router throws and re-exports it, naming the node.
 */
export class CircuitBreakerOpenError extends BreakerError {
  declare readonly code: 'CircuitBreakerOpen';
  /** The node whose breaker refused, when the breaker guards one (the router's do). */
  readonly nodeId: string | undefined;
  constructor(nodeId?: string) {
    super(
      BREAKER_ERROR_CODES.CircuitBreakerOpen,
      nodeId === undefined
        ? 'circuit breaker is open'
        : `circuit breaker of node ${nodeId} is open`,
    );
    this.name = 'CircuitBreakerOpenError';
    this.nodeId = nodeId;
  }
}

/**
 * True for every error @engram/breaker throws, by brand and code (so also for errors of
 * another copy of the package, which `instanceof` would miss).
 */
export function isBreakerError(
  error: unknown,
): error is BreakerError | InvalidArgumentError | LayoutMismatchError {
  return isEngramError(error) && Object.hasOwn(BREAKER_ERROR_CODES, error.code);
}

/** True when `error` is a CircuitBreakerOpenError, of this or another copy of the package. */
export function isCircuitBreakerOpenError(error: unknown): error is CircuitBreakerOpenError {
  return isEngramError(error, BREAKER_ERROR_CODES.CircuitBreakerOpen);
}
