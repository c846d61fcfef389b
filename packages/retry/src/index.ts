// One Clock and Random for every package: these are @engram/common's, re-exported.
export {
  type Clock,
  EngramError,
  InvalidArgumentError,
  LayoutMismatchError,
  type Random,
  seededRandom,
  systemClock,
} from '@engram/common';
export {
  BACKOFF_DEFAULTS,
  type BackoffOptions,
  type BackoffState,
  backoffDelay,
  backoffStep,
  INITIAL_BACKOFF_STATE,
  Jitter,
  type JitterMode,
  validateBackoff,
} from './internal/backoff.js';
export {
  RETRY_BUDGET_DEFAULTS,
  RetryBudget,
  type RetryBudgetLike,
  type RetryBudgetOptions,
  SharedRetryBudget,
  type SharedRetryBudgetOptions,
} from './internal/budget.js';
export { DEFAULT_DEADLINE_MS, Deadline } from './internal/deadline.js';
export {
  AbortedError,
  DeadlineExceededError,
  isAbortedError,
  isDeadlineExceededError,
  isRetryBudgetExhaustedError,
  isRetryError,
  RETRY_ERROR_CODES,
  RetryBudgetExhaustedError,
  RetryError,
  type RetryErrorCode,
  type TargetError,
} from './internal/errors.js';
export {
  type GrpcLikeError,
  GrpcStatus,
  type GrpcStatusCode,
  isRetryableError,
  RETRY_PUSHBACK_KEY,
  RETRYABLE_CONNECTION_CODES,
  retryPushbackMs,
} from './internal/grpc.js';
export {
  NoRetryReason,
  planRetry,
  type RetryPlan,
  type RetryPlanOptions,
} from './internal/plan.js';
export { RETRY_DEFAULTS, type RetryInfo, type RetryOptions, retry } from './internal/retry.js';
