// The other packages' types this package's signatures use, re-exported so a user needs no
// second import to name them (the classes as types: construct them from their own package).
export type { BreakerTable } from '@engram/breaker';
// The bases of the error classes the router shares with lower packages (same bindings).
export { BreakerError } from '@engram/breaker';
export { EngramError } from '@engram/common';
export type { ConnectionPool } from '@engram/pool';
export type {
  ConsolidateRequest,
  ConsolidateResponse,
  Cue,
  Init,
  Memory,
  MergedGroup,
  QueryRequest,
  QueryResponse,
  RecallRequest,
  RecallResponse,
  ScoredMemory,
  SpaceDigest,
  SpaceError,
  SpaceResult,
  StoreRequest,
  StoreResponse,
  Tombstone,
} from '@engram/proto';
// Deadline as a value: `ExecuteOptions.deadline` takes one, built with `Deadline.after(ms)`.
export {
  type Clock,
  Deadline,
  type JitterMode,
  type Random,
  type RetryBudgetLike,
  RetryError,
} from '@engram/retry';
export type { NodeInfo, NodeRole, PlacementTable } from '@engram/ring';
export type { Logger } from 'pino';
export {
  addCancelListener,
  attemptDeadlineAt,
  type CancelListener,
  removeCancelListener,
  whenCancelled,
} from './internal/attempt-context.js';
export {
  ReadConsistency,
  requiredReplicas,
  WriteConsistency,
} from './internal/consistency.js';
export { singleNodeDecision } from './internal/decider.js';
export {
  AbortedError,
  AllReplicasFailedError,
  CircuitBreakerOpenError,
  ConnectionFailedError,
  DeadlineExceededError,
  type GrpcStatusInfo,
  InsufficientReplicasError,
  InvalidArgumentError,
  InvalidEndpointError,
  isRouterError,
  NoAssignmentError,
  NoLocalDataError,
  ReplicaServiceMissingError,
  RetryBudgetExhaustedError,
  ROUTER_ERROR_CODES,
  RouterClosedError,
  RouterError,
  type RouterErrorCode,
  type TargetError,
  toGrpcStatus,
} from './internal/errors.js';
export {
  DEFAULT_ETCD_PREFIX,
  ETCD_KEYS,
  etcdKey,
  etcdKeyId,
  etcdObject,
  isPlacementKey,
  ringOptionsFromKeys,
} from './internal/etcd-layout.js';
export { copyExecuteOptions, type ExecuteOptionsCopy } from './internal/execute-options.js';
export { GrpcReplicaAccess, REPLICA_CALL_TIMEOUT_MS } from './internal/grpc-replica-access.js';
export {
  HINT_REPLAY_BATCH,
  HINT_REPLAY_INTERVAL_MS,
  type ReplayCall,
} from './internal/hint-replay.js';
export {
  type Hint,
  type HintStore,
  MEMORY_HINT_STORE_DEFAULTS,
  MemoryHintStore,
} from './internal/hints.js';
export { LAG_BUCKETS, LagTable } from './internal/lag.js';
export {
  HEDGE_DEFAULTS,
  type HedgeOptions,
  MAX_HEDGES,
  MAX_READ_BALANCING_THRESHOLD,
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
export type { QuorumReadOptions, ReadMerge } from './internal/quorum-read.js';
export {
  LATENCY_EXPLORE,
  LATENCY_FACTOR,
  LATENCY_FLOOR_MS,
  OutstandingAttempts,
  ReadBalancing,
  slowStartShare,
} from './internal/read-balance.js';
export { RECALL_MERGE, singleSpaceQueryMerge } from './internal/recall-merge.js';
export {
  REPAIR_PAGE_SIZE,
  type ReplicaAccess,
  repairSpace,
  type ScanPage,
  type SpaceRepair,
  type StreamProgress,
  streamSpace,
} from './internal/repair.js';
export type {
  Replicated,
  ReplicateOptions,
  WriteObserver,
} from './internal/replication.js';
export { Router } from './internal/router.js';
export { type Gathered, gather, type SpaceAnswer } from './internal/scatter-gather.js';
export type { TrailingWrites } from './internal/trailing-writes.js';
export {
  type AttemptOutcome,
  type AttemptRunner,
  type AttemptSettle,
  type CallContext,
  type ConsolidateResult,
  type ExecuteOptions,
  NodeState,
  type NodeStates,
  Operation,
  type PartitionState,
  type QueryResult,
  type RecallResult,
  type Routed,
  type RoutedSink,
  type RouterHooks,
  type RouterInit,
  type RoutingDecision,
  type RoutingInfo,
  RoutingStrategy,
  type SettledCall,
  type StoreResult,
  type WithRouting,
} from './internal/types.js';
export { VersionClock } from './internal/version-clock.js';
