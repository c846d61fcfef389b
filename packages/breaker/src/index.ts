// One Clock for every package: @engram/common's, re-exported.
export {
  type Clock,
  EngramError,
  InvalidArgumentError,
  LayoutMismatchError,
  systemClock,
} from '@engram/common';
export { CircuitBreaker } from './internal/circuit-breaker.js';
export {
  ADMITTED,
  type BreakerSnapshot,
  type BreakerTransitions,
  isProbe,
  REJECTED,
} from './internal/core.js';
export {
  BREAKER_ERROR_CODES,
  BreakerError,
  type BreakerErrorCode,
  CircuitBreakerOpenError,
  isBreakerError,
  isCircuitBreakerOpenError,
} from './internal/errors.js';
export {
  BREAKER_DEFAULTS,
  type BreakerOptions,
  type BreakerStateName,
  MAX_CAPACITY,
  MAX_HALF_OPEN_PROBES,
  MAX_TIMEOUT_MS,
  type ResolvedBreakerOptions,
  type StateChangeListener,
  type TransitionReason,
} from './internal/options.js';
export {
  ConsecutiveFailures,
  DEFAULT_CONSECUTIVE_FAILURES,
  FAILURE_RATE_DEFAULTS,
  FailureRate,
  type FailureRateOptions,
  MAX_FAILURE_RATE_WINDOW,
  type TripRule,
} from './internal/rules.js';
export { BreakerTable, type BreakerTableOptions } from './internal/table.js';
