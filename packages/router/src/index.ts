export { whenCancelled } from './internal/attempt-context.js';
export {
  AbortedError,
  AllReplicasFailedError,
  CircuitBreakerOpenError,
  ConnectionFailedError,
  DeadlineExceededError,
  type GrpcStatusInfo,
  InvalidArgumentError,
  InvalidEndpointError,
  isRouterError,
  NoAssignmentError,
  NoLocalDataError,
  RetryBudgetExhaustedError,
  ROUTER_ERROR_CODES,
  RouterClosedError,
  RouterError,
  type RouterErrorCode,
  type TargetError,
  toGrpcStatus,
} from './internal/errors.js';
export {
  HEDGE_DEFAULTS,
  type HedgeOptions,
  MAX_HEDGES,
  MAX_RETRIES,
  type ResolvedRouterOptions,
  ROUTER_DEFAULTS,
  type RouterOptions,
} from './internal/options.js';
export {
  defaultIsRetryable,
  isNodeFailure,
  isNodeFailureStatus,
  NODE_FAILURE_STATUSES,
} from './internal/policy.js';
export { Router } from './internal/router.js';
export { type Gathered, gather, type SpaceAnswer } from './internal/scatter-gather.js';
export {
  type AttemptOutcome,
  type CallContext,
  type ExecuteOptions,
  NodeState,
  type NodeStates,
  Operation,
  type PartitionState,
  type Routed,
  type RouterHooks,
  type RouterInit,
  type RoutingDecision,
  type RoutingInfo,
  RoutingStrategy,
} from './internal/types.js';
