import { EngramError, isEngramError } from '@engram/common';
import { GrpcStatus } from '@engram/retry';

/** gRPC status codes (wire values), shared with @engram/retry rather than listed twice. */
export const GRPC_STATUS = GrpcStatus;

export const ROUTER_NODE_ERROR_CODES = Object.freeze([
  'InvalidConfig',
  'InvalidArgument',
  'NoAssignment',
  'NoLocalData',
  'ConnectionFailed',
  'CircuitBreakerOpen',
  'DeadlineExceeded',
  'AllReplicasFailed',
  'RetryBudgetExhausted',
  'InsufficientReplicas',
  'Cancelled',
  'Unavailable',
  'ListenFailed',
  /** An admin change lost a race with another router's (etcd mode): nothing applied. */
  'Aborted',
  /** etcd refused a request (permissions, a limit): retrying it will not help. */
  'StoreRefused',
] as const);
export type RouterNodeErrorCode = (typeof ROUTER_NODE_ERROR_CODES)[number];

/** Base of every router-node error; `code` is stable, tests match on it. */
export class RouterNodeError extends EngramError {
  declare readonly code: RouterNodeErrorCode;
  constructor(code: RouterNodeErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'RouterNodeError';
  }
}

const CODES: ReadonlySet<string> = new Set(ROUTER_NODE_ERROR_CODES);

/** True for any router-node error (by brand and code, not `instanceof`). */
export function isRouterNodeError(
  error: unknown,
): error is Error & { readonly code: RouterNodeErrorCode } {
  return isEngramError(error) && CODES.has(error.code);
}

/**
 * A bad setting: `field` names the offending input (dotted, `nodes[1].address`; `field` as
 * across the repo's packages) and `value` is what was received.
 */
export class ConfigError extends RouterNodeError {
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, reason: string, options?: ErrorOptions) {
    super('InvalidConfig', `config ${field} = ${safeJson(value)}: ${reason}`, options);
    this.name = 'ConfigError';
    this.field = field;
    this.value = value;
  }
}

/**
 * A listener that could not bind at start: which one (`the data plane`, `RouterAdmin`,
 * `metrics`), its config key, the address and the cause, in one line for the operator.
 */
export class ListenError extends RouterNodeError {
  readonly listener: string;
  readonly field: string;
  readonly address: string;
  constructor(
    listener: string,
    field: string,
    address: string,
    cause: string,
    options?: ErrorOptions,
  ) {
    super(
      'ListenFailed',
      `cannot listen on ${address} for ${listener} (${field}): ${cause}`,
      options,
    );
    this.name = 'ListenError';
    this.listener = listener;
    this.field = field;
    this.address = address;
  }
}

/** A routing failure of one call, with the gRPC status the ingress answers. */
export class RouteError extends RouterNodeError {
  readonly grpcStatus: number;
  readonly attempts: number;
  constructor(code: RouterNodeErrorCode, grpcStatus: number, message: string, attempts = 0) {
    super(code, message);
    this.name = 'RouteError';
    this.grpcStatus = grpcStatus;
    this.attempts = attempts;
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
