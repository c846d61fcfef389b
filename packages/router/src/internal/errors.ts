import { EngramError, InvalidArgumentError, isEngramError } from '@engram/common';
import type { RoutingInfo } from '@engram/proto';
import { GrpcStatus } from '@engram/retry';

/** Bad input (a space id, an option): the common class, `field` and `value` named. */
export { InvalidArgumentError };

/** Stable codes of every error the router throws. */
export const ROUTER_ERROR_CODES = Object.freeze({
  NoAssignment: 'NoAssignment',
  NoLocalData: 'NoLocalData',
  InvalidEndpoint: 'InvalidEndpoint',
  ConnectionFailed: 'ConnectionFailed',
  CircuitBreakerOpen: 'CircuitBreakerOpen',
  DeadlineExceeded: 'DeadlineExceeded',
  AllReplicasFailed: 'AllReplicasFailed',
  RetryBudgetExhausted: 'RetryBudgetExhausted',
  InvalidArgument: 'InvalidArgument',
  Aborted: 'Aborted',
  RouterClosed: 'RouterClosed',
  InsufficientReplicas: 'InsufficientReplicas',
  ReplicaServiceMissing: 'ReplicaServiceMissing',
} as const);
export type RouterErrorCode = (typeof ROUTER_ERROR_CODES)[keyof typeof ROUTER_ERROR_CODES];

/** One target's failure inside an `AllReplicasFailedError` (or another error's `errors`). */
export interface TargetError {
  readonly nodeId: string;
  readonly error: unknown;
}

/** Base of every router error; match on `code`, never on the message. */
export class RouterError extends EngramError {
  declare readonly code: RouterErrorCode;
  /** Attempts started before the error (0 for a decision error). */
  attempts = 0;
  /** Routing of the failed operation, when it got as far as a decision. */
  routing: RoutingInfo | undefined;

  constructor(code: RouterErrorCode, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = 'RouterError';
  }
}

/** The table has no node for the space (empty table, nothing published yet). */
export class NoAssignmentError extends RouterError {
  override readonly code = 'NoAssignment' as const;
  readonly spaceId: string;
  constructor(spaceId: string, cause?: unknown) {
    super('NoAssignment', `no node is assigned to space ${JSON.stringify(spaceId)}`, cause);
    this.name = 'NoAssignmentError';
    this.spaceId = spaceId;
  }
}

/** LocalOnly routing, but the local node holds no copy of the space (or there is no local node). */
export class NoLocalDataError extends RouterError {
  override readonly code = 'NoLocalData' as const;
  readonly spaceId: string;
  readonly localNodeId: string | undefined;
  constructor(spaceId: string, localNodeId: string | undefined, why: string) {
    super('NoLocalData', `space ${JSON.stringify(spaceId)} has no local data: ${why}`);
    this.name = 'NoLocalDataError';
    this.spaceId = spaceId;
    this.localNodeId = localNodeId;
  }
}

/** A node's address cannot be connected to (rejected by the pool). */
export class InvalidEndpointError extends RouterError {
  override readonly code = 'InvalidEndpoint' as const;
  readonly nodeId: string;
  readonly address: string;
  constructor(nodeId: string, address: string, cause?: unknown) {
    super(
      'InvalidEndpoint',
      `node ${nodeId} has an invalid address ${JSON.stringify(address)}`,
      cause,
    );
    this.name = 'InvalidEndpointError';
    this.nodeId = nodeId;
    this.address = address;
  }
}

/** The only target could not be reached; `cause` is the last failure. */
export class ConnectionFailedError extends RouterError {
  override readonly code = 'ConnectionFailed' as const;
  readonly nodeId: string;
  constructor(nodeId: string, cause?: unknown) {
    super('ConnectionFailed', `could not reach node ${nodeId}`, cause);
    this.name = 'ConnectionFailedError';
    this.nodeId = nodeId;
  }
}

/** Every target's breaker was open and none could be tried. */
export class CircuitBreakerOpenError extends RouterError {
  override readonly code = 'CircuitBreakerOpen' as const;
  readonly nodeId: string;
  constructor(nodeId: string) {
    super('CircuitBreakerOpen', `circuit breaker of node ${nodeId} is open`);
    this.name = 'CircuitBreakerOpenError';
    this.nodeId = nodeId;
  }
}

/** The operation's deadline passed; `errors` holds what the targets had failed with so far. */
export class DeadlineExceededError extends RouterError {
  override readonly code = 'DeadlineExceeded' as const;
  readonly errors: readonly TargetError[];
  constructor(errors: readonly TargetError[] = [], cause?: unknown) {
    super('DeadlineExceeded', 'deadline exceeded', cause);
    this.name = 'DeadlineExceededError';
    this.errors = errors;
  }
}

/** Every target failed; `errors` has one entry per failed attempt, in order. */
export class AllReplicasFailedError extends RouterError {
  override readonly code = 'AllReplicasFailed' as const;
  readonly errors: readonly TargetError[];
  constructor(errors: readonly TargetError[]) {
    const last = errors.length === 0 ? undefined : errors[errors.length - 1]!.error;
    super('AllReplicasFailed', `all ${errors.length} attempts failed`, last);
    this.name = 'AllReplicasFailedError';
    this.errors = errors;
  }
}

/** A retry or fail-over was due but the retry budget had no token; `cause` is the last failure. */
export class RetryBudgetExhaustedError extends RouterError {
  override readonly code = 'RetryBudgetExhausted' as const;
  readonly errors: readonly TargetError[];
  constructor(errors: readonly TargetError[], cause?: unknown) {
    super('RetryBudgetExhausted', 'retry budget exhausted', cause);
    this.name = 'RetryBudgetExhaustedError';
    this.errors = errors;
  }
}

/** The caller's signal aborted the operation; `cause` is the signal's reason. */
export class AbortedError extends RouterError {
  override readonly code = 'Aborted' as const;
  constructor(cause?: unknown) {
    super('Aborted', 'operation aborted', cause);
    this.name = 'AbortedError';
  }
}

/** The router was closed. */
export class RouterClosedError extends RouterError {
  override readonly code = 'RouterClosed' as const;
  constructor() {
    super('RouterClosed', 'router is closed');
    this.name = 'RouterClosedError';
  }
}

const ROUTER_CODES: ReadonlySet<string> = new Set(Object.values(ROUTER_ERROR_CODES));

/**
 * True for any error the router throws, `InvalidArgumentError` included (by brand and code,
 * not `instanceof`: works across two copies of the package).
 */
export function isRouterError(error: unknown): error is Error & { readonly code: RouterErrorCode } {
  return isEngramError(error) && ROUTER_CODES.has(error.code);
}

const STATUS_BY_CODE: Readonly<Record<RouterErrorCode, number>> = Object.freeze({
  NoAssignment: GrpcStatus.UNAVAILABLE,
  NoLocalData: GrpcStatus.UNAVAILABLE,
  InvalidEndpoint: GrpcStatus.UNAVAILABLE,
  ConnectionFailed: GrpcStatus.UNAVAILABLE,
  CircuitBreakerOpen: GrpcStatus.UNAVAILABLE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  AllReplicasFailed: GrpcStatus.UNAVAILABLE,
  RetryBudgetExhausted: GrpcStatus.UNAVAILABLE,
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  Aborted: GrpcStatus.CANCELLED,
  RouterClosed: GrpcStatus.UNAVAILABLE,
  InsufficientReplicas: GrpcStatus.UNAVAILABLE,
  ReplicaServiceMissing: GrpcStatus.FAILED_PRECONDITION,
});

/**
 * A replicated write or a quorum read did not reach the replicas its consistency level needs.
 * For a write, as Cassandra says of its timeouts: the write was not acknowledged, but it *may*
 * exist on the replicas that did take it (`acknowledged` of them), and replicas that missed it
 * get hints; a retry with the same memory id and version is safe.
 */
export class InsufficientReplicasError extends RouterError {
  override readonly code = 'InsufficientReplicas' as const;
  /** Replicas the consistency level needs. */
  readonly required: number;
  /** Replicas that answered. */
  readonly acknowledged: number;
  /** Replicas asked (the space's placement). */
  readonly asked: number;
  readonly errors: readonly TargetError[];
  constructor(
    kind: 'write' | 'read',
    required: number,
    acknowledged: number,
    asked: number,
    errors: readonly TargetError[],
  ) {
    super(
      'InsufficientReplicas',
      kind === 'write'
        ? `${acknowledged} of ${asked} replicas acknowledged the write, ${required} required; ` +
            'it may exist on the replicas that took it'
        : `${acknowledged} of ${asked} replicas answered the read, ${required} required`,
      errors.length === 0 ? undefined : errors[errors.length - 1]!.error,
    );
    this.name = 'InsufficientReplicasError';
    this.required = required;
    this.acknowledged = acknowledged;
    this.asked = asked;
    this.errors = errors;
  }
}

/**
 * A node does not serve `engram.v1.ReplicaService` (it answered UNIMPLEMENTED): repair and
 * streaming refuse to read from or write to it, since they cannot copy its data without the
 * scan and apply calls. Upgrade the node.
 */
export class ReplicaServiceMissingError extends RouterError {
  override readonly code = 'ReplicaServiceMissing' as const;
  readonly nodeId: string;
  /** The method the node does not implement, e.g. `/engram.v1.ReplicaService/ScanSpace`. */
  readonly method: string;
  constructor(nodeId: string, method: string, options?: ErrorOptions) {
    super(
      'ReplicaServiceMissing',
      `node ${nodeId} does not implement ${method}: it cannot take part in repair or ` +
        'streaming (upgrade it to a memory node that serves engram.v1.ReplicaService)',
      options,
    );
    this.name = 'ReplicaServiceMissingError';
    this.nodeId = nodeId;
    this.method = method;
  }
}

/** A gRPC status for any error the router can throw, for servers answering a client. */
export interface GrpcStatusInfo {
  readonly code: number;
  readonly message: string;
}

/**
 * Maps an error to the status a server should answer with: router errors by `code` (message
 * prefixed with the code, e.g. `"AllReplicasFailed: all 3 attempts failed"`), gRPC errors
 * from a node pass through (their numeric code and details), anything else is INTERNAL.
 */
export function toGrpcStatus(error: unknown): GrpcStatusInfo {
  if (isRouterError(error)) {
    return { code: STATUS_BY_CODE[error.code], message: `${error.code}: ${error.message}` };
  }
  if (typeof error === 'object' && error !== null) {
    const { code, details, message } = error as {
      code?: unknown;
      details?: unknown;
      message?: unknown;
    };
    if (typeof code === 'number' && Number.isInteger(code) && code >= 0 && code <= 16) {
      const text =
        typeof details === 'string' ? details : typeof message === 'string' ? message : '';
      return { code, message: text };
    }
    if (code === 'ConnectionFailed') {
      return { code: GrpcStatus.UNAVAILABLE, message: String(message ?? 'connection failed') };
    }
  }
  return {
    code: GrpcStatus.INTERNAL,
    message: error instanceof Error ? error.message : String(error),
  };
}
