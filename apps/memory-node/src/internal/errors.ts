import { EngramError, type InvalidArgumentError, isEngramError } from '@engram/common';

/** Error codes of the memory node, stable for tests and callers. */
export const MEMORY_NODE_ERROR_CODES = Object.freeze({
  /** A request field or a `startMemoryNode` option (the common `InvalidArgumentError`). */
  InvalidArgument: 'InvalidArgument',
  /** The append-only log could not be written (`StorageFailedError`). */
  StorageFailed: 'StorageFailed',
} as const);

export type MemoryNodeErrorCode =
  (typeof MEMORY_NODE_ERROR_CODES)[keyof typeof MEMORY_NODE_ERROR_CODES];

/**
 * Base class of the memory node's own errors. Bad request fields (`field` in proto snake_case
 * paths, e.g. `memory.embedding[2]`) and bad options throw the common `InvalidArgumentError`.
 */
export class MemoryNodeError extends EngramError {
  declare readonly code: MemoryNodeErrorCode;
  constructor(code: MemoryNodeErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = 'MemoryNodeError';
  }
}

/** The append-only log could not be written; the node stops accepting writes. */
export class StorageFailedError extends MemoryNodeError {
  declare readonly code: 'StorageFailed';
  constructor(message: string, cause: unknown) {
    super(MEMORY_NODE_ERROR_CODES.StorageFailed, message, { cause });
    this.name = 'StorageFailedError';
  }
}

/**
 * True for every error the memory node throws, by brand and code (so also for errors of
 * another copy of the package, which `instanceof` would miss).
 */
export function isMemoryNodeError(error: unknown): error is MemoryNodeError | InvalidArgumentError {
  return isEngramError(error) && Object.hasOwn(MEMORY_NODE_ERROR_CODES, error.code);
}
