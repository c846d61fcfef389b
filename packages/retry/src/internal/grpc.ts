/** gRPC status codes (numeric, as grpc-js's `status` enum), without depending on grpc-js. */
export const GrpcStatus = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The shape of a grpc-js ServiceError that matters here. */
export interface GrpcLikeError {
  readonly code: number;
  readonly metadata?: { get(key: string): unknown[] };
}

/** Metadata key a server uses to tell a client when (or whether) to retry (gRFC A6). */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';

/**
 * Error codes of failures to reach a node at all, which are safe to retry for any call:
 * Node socket errors, and the `ConnectionFailed` code of @engram/pool.
 */
export const RETRYABLE_CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ConnectionFailed',
]);

function isGrpcLike(error: unknown): error is GrpcLikeError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { code?: unknown }).code === 'number'
  );
}

const PUSHBACK_PATTERN = /^\d+$/;

/**
 * The server's `grpc-retry-pushback-ms`: undefined when absent, the delay in ms when it is a
 * non-negative integer, and -1 when it is present but negative or malformed, which per gRFC A6
 * means "do not retry".
 */
export function retryPushbackMs(error: unknown): number | undefined {
  if (
    !isGrpcLike(error) ||
    error.metadata === undefined ||
    typeof error.metadata.get !== 'function'
  ) {
    return undefined;
  }
  const values = error.metadata.get(RETRY_PUSHBACK_KEY);
  if (!Array.isArray(values) || values.length === 0) return undefined;
  const raw = values[0];
  const text =
    typeof raw === 'string'
      ? raw
      : raw instanceof Uint8Array
        ? Buffer.from(raw).toString('latin1')
        : '';
  if (!PUSHBACK_PATTERN.test(text)) return -1;
  const ms = Number(text);
  return Number.isSafeInteger(ms) ? ms : -1;
}

/**
 * Default classifier. Retried:
 * - gRPC `UNAVAILABLE` (the node could not take the call; nothing was applied);
 * - gRPC `RESOURCE_EXHAUSTED` only when the server sent a valid pushback (grpc-js also raises
 *   it locally, e.g. for an oversized message, where a retry cannot help);
 * - connection failures (RETRYABLE_CONNECTION_CODES).
 * Not retried: everything else, notably INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
 * FAILED_PRECONDITION, PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED, INTERNAL, UNKNOWN,
 * DATA_LOSS, ABORTED (a conflict the caller must resolve), CANCELLED and DEADLINE_EXCEEDED
 * (the one deadline covers all attempts), and any status whose pushback says "do not retry".
 */
export function isRetryableError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return RETRYABLE_CONNECTION_CODES.has(code);
  if (typeof code !== 'number') return false;
  const pushback = retryPushbackMs(error);
  if (pushback !== undefined && pushback < 0) return false;
  if (code === GrpcStatus.UNAVAILABLE) return true;
  return code === GrpcStatus.RESOURCE_EXHAUSTED && pushback !== undefined;
}
