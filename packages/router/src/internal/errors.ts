import { CircuitBreakerOpenError } from '@engram/breaker';
import { EngramError, InvalidArgumentError, isEngramError } from '@engram/common';
import type { RoutingInfo } from '@engram/proto';
import {
  AbortedError,
  DeadlineExceededError,
  GrpcStatus,
  RetryBudgetExhaustedError,
  RetryError,
  type TargetError,
} from '@engram/retry';

/**
 * The router throws the classes of the packages that own the concept, re-exported here as the
 * same objects (so `instanceof` and the guards agree whichever package they are imported from):
 * bad input is @engram/common's, an open breaker @engram/breaker's, a passed deadline, an empty
 * retry budget and an abort @engram/retry's.
 */
export {
  AbortedError,
  CircuitBreakerOpenError,
  DeadlineExceededError,
  InvalidArgumentError,
  RetryBudgetExhaustedError,
  type TargetError,
};

/**
 * What the router adds to the errors it throws that are not `RouterError`s: after a decision,
 * the operation's `routing`, and on an open breaker the operation's `attempts` (the retry
 * classes have `attempts` already). Declared on those classes, so `err.routing` type-checks the
 * same on every error the router throws.
 */
declare module '@engram/retry' {
  interface RetryError {
    /** Routing of the failed operation, when the router threw it after a decision. */
    routing?: RoutingInfo | undefined;
  }
}
declare module '@engram/breaker' {
  interface CircuitBreakerOpenError {
    /** Attempts the router's operation started before every breaker refused. */
    attempts?: number;
    /** Routing of the failed operation, when the router threw it after a decision. */
    routing?: RoutingInfo | undefined;
  }
}

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

/** The router was closed. */
export class RouterClosedError extends RouterError {
  override readonly code = 'RouterClosed' as const;
  constructor() {
    super('RouterClosed', 'router is closed');
    this.name = 'RouterClosedError';
  }
}

/** The errors an operation's end stamps with its `attempts` and `routing`. */
export function carriesRouting(
  error: unknown,
): error is RouterError | RetryError | CircuitBreakerOpenError {
  return (
    error instanceof RouterError ||
    error instanceof RetryError ||
    error instanceof CircuitBreakerOpenError
  );
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
