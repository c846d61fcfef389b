/** Stable error codes of `@engram/pool`; tests and callers match on these, never on messages. */
export const POOL_ERROR_CODE = {
  CONNECTION_FAILED: 'ConnectionFailed',
  UNKNOWN_NODE: 'UnknownNode',
  POOL_CLOSED: 'PoolClosed',
  INVALID_ARGUMENT: 'InvalidArgument',
} as const;

export type PoolErrorCode = (typeof POOL_ERROR_CODE)[keyof typeof POOL_ERROR_CODE];

/** Base class of every error the pool throws or rejects with (except option `RangeError`s). */
export class PoolError extends Error {
  readonly code: PoolErrorCode;
  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PoolError';
    this.code = code;
  }
}

/**
 * A node could not be reached: the connect timeout passed, the connection was refused or
 * reset, or every connection to the node is currently broken and awaiting replacement.
 */
export class ConnectionFailedError extends PoolError {
  declare readonly code: 'ConnectionFailed';
  readonly nodeId: string;
  readonly address: string;
  override readonly cause: Error;
  constructor(nodeId: string, address: string, cause: Error) {
    super(
      POOL_ERROR_CODE.CONNECTION_FAILED,
      `connection to node ${nodeId} at ${address} failed: ${cause.message}`,
      { cause },
    );
    this.name = 'ConnectionFailedError';
    this.nodeId = nodeId;
    this.address = address;
    this.cause = cause;
  }
}

/** The node id or slot was never added, or has been removed. */
export class UnknownNodeError extends PoolError {
  declare readonly code: 'UnknownNode';
  readonly node: string | number;
  constructor(node: string | number) {
    super(
      POOL_ERROR_CODE.UNKNOWN_NODE,
      `unknown node ${typeof node === 'number' ? `slot ${node}` : node}`,
    );
    this.name = 'UnknownNodeError';
    this.node = node;
  }
}

/** The pool was closed; it hands out nothing afterwards. */
export class PoolClosedError extends PoolError {
  declare readonly code: 'PoolClosed';
  constructor() {
    super(POOL_ERROR_CODE.POOL_CLOSED, 'connection pool is closed');
    this.name = 'PoolClosedError';
  }
}

/** An option or argument was out of range; names the field and the value received. */
export class InvalidPoolArgumentError extends RangeError {
  readonly code = POOL_ERROR_CODE.INVALID_ARGUMENT;
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, expected: string) {
    super(`${field} must be ${expected}, received ${describe(value)}`);
    this.name = 'InvalidPoolArgumentError';
    this.field = field;
    this.value = value;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  return typeof value;
}

/** True when `err` is a pool `ConnectionFailedError` (also across package copies, by code). */
export function isConnectionFailed(err: unknown): err is ConnectionFailedError {
  return (
    err instanceof ConnectionFailedError ||
    (typeof err === 'object' &&
      err !== null &&
      (err as { code?: unknown }).code === 'ConnectionFailed')
  );
}
