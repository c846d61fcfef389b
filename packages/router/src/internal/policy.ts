import { GrpcStatus, isRetryableError, retryPushbackMs } from '@engram/retry';
import { InvalidEndpointError } from './errors.js';

/**
 * Which answers of a node say something about the node itself, in one place. Everything that
 * forwards calls (the typed conveniences here, router-node's byte-forwarding data plane) asks
 * these functions, so a status counts the same way on every path.
 *
 * Evidence that the node is unwell (counted on its breaker, and a reason to fail over when the
 * error is also retryable):
 * - UNAVAILABLE: the node could not take the call (nothing was applied);
 * - UNKNOWN, INTERNAL, DATA_LOSS: the node failed while handling it;
 * - RESOURCE_EXHAUSTED *with* `grpc-retry-pushback-ms`: the node says it is overloaded.
 *   Without pushback it is the request's fault (a message over a size limit, raised by a
 *   node or by grpc-js itself), so it is an answer, not a node failure;
 * - connection failures and attempt timeouts (see `defaultIsRetryable`).
 *
 * Every other status (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ...) is an answer: it
 * goes back to the caller as is and counts as a success for the node's breaker, because the
 * node did its job. A client sending bad requests must not be able to open breakers.
 */
export const NODE_FAILURE_STATUSES: ReadonlySet<number> = new Set([
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.UNKNOWN,
  GrpcStatus.INTERNAL,
  GrpcStatus.DATA_LOSS,
]);

/** True when a node's gRPC status is evidence against the node (see NODE_FAILURE_STATUSES). */
export function isNodeFailureStatus(status: number, hasPushback: boolean): boolean {
  return (
    NODE_FAILURE_STATUSES.has(status) || (status === GrpcStatus.RESOURCE_EXHAUSTED && hasPushback)
  );
}

/** True when an error from an attempt is evidence against its node (by its gRPC `code`). */
export function isNodeFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'number') return false;
  if (code === GrpcStatus.RESOURCE_EXHAUSTED) {
    const pushback = retryPushbackMs(error);
    return pushback !== undefined && pushback >= 0;
  }
  return NODE_FAILURE_STATUSES.has(code);
}

/** Raised into an attempt's signal when its own timeout (not the operation's) fires. */
export class AttemptTimeoutError extends Error {
  readonly code = 'AttemptTimeout' as const;
  constructor(timeoutMs: number) {
    super(`attempt timed out after ${timeoutMs} ms`);
    this.name = 'AttemptTimeoutError';
  }
}

/**
 * The router's default retry/fail-over classifier: connection failures (pool
 * `ConnectionFailed`, socket errors), gRPC UNAVAILABLE, RESOURCE_EXHAUSTED with pushback
 * (`isRetryableError` of @engram/retry), invalid endpoints and attempt timeouts. Everything
 * else (INVALID_ARGUMENT, NOT_FOUND, ...) goes straight back to the caller.
 */
export function defaultIsRetryable(error: unknown): boolean {
  return (
    isRetryableError(error) ||
    error instanceof InvalidEndpointError ||
    error instanceof AttemptTimeoutError
  );
}
