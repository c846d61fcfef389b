import { EngramError, type InvalidArgumentError, isEngramError } from '@engram/common';

/** Stable error codes of `@engram/pool`; tests and callers match on these, never on messages. */
export const POOL_ERROR_CODES = Object.freeze({
  ConnectionFailed: 'ConnectionFailed',
  UnknownNode: 'UnknownNode',
  PoolClosed: 'PoolClosed',
  InvalidArgument: 'InvalidArgument',
} as const);

export type PoolErrorCode = (typeof POOL_ERROR_CODES)[keyof typeof POOL_ERROR_CODES];

/**
 * Base class of the errors the pool throws or rejects with. Bad options and arguments throw
 * the common `InvalidArgumentError` (a `RangeError`); `isPoolError` recognises both.
 */
export class PoolError extends EngramError {
  declare readonly code: PoolErrorCode;
  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'PoolError';
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
      POOL_ERROR_CODES.ConnectionFailed,
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
      POOL_ERROR_CODES.UnknownNode,
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
    super(POOL_ERROR_CODES.PoolClosed, 'connection pool is closed');
    this.name = 'PoolClosedError';
  }
}

/**
 * True for every error the pool throws or rejects with, by brand and code (so also for errors
 * of another copy of the package, which `instanceof` would miss).
 */
export function isPoolError(error: unknown): error is PoolError | InvalidArgumentError {
  return isEngramError(error) && Object.hasOwn(POOL_ERROR_CODES, error.code);
}

/** True when `err` is a `ConnectionFailedError`, of this or another copy of the package. */
export function isConnectionFailed(err: unknown): err is ConnectionFailedError {
  return isEngramError(err, POOL_ERROR_CODES.ConnectionFailed);
}
