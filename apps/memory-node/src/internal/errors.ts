/** Error codes of the memory node, stable for tests and callers. */
export const MEMORY_NODE_ERROR_CODES = {
  INVALID_ARGUMENT: 'ENGRAM_MEMORY_NODE_INVALID_ARGUMENT',
  INVALID_OPTION: 'ENGRAM_MEMORY_NODE_INVALID_OPTION',
  STORAGE_FAILED: 'ENGRAM_MEMORY_NODE_STORAGE_FAILED',
} as const;
export type MemoryNodeErrorCode =
  (typeof MEMORY_NODE_ERROR_CODES)[keyof typeof MEMORY_NODE_ERROR_CODES];

/** Base class of the memory node's errors. */
export class MemoryNodeError extends Error {
  override name = 'MemoryNodeError';
  readonly code: MemoryNodeErrorCode;
  constructor(code: MemoryNodeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A request field failed validation; `field` uses proto (snake_case) paths, e.g. `memory.embedding[2]`. */
export class InvalidArgumentError extends MemoryNodeError {
  override name = 'InvalidArgumentError';
  readonly field: string;
  constructor(field: string, problem: string) {
    super(MEMORY_NODE_ERROR_CODES.INVALID_ARGUMENT, `${field}: ${problem}`);
    this.field = field;
  }
}

/** A `startMemoryNode` option is invalid. */
export class InvalidOptionError extends MemoryNodeError {
  override name = 'InvalidOptionError';
  readonly option: string;
  constructor(option: string, value: unknown, expected: string) {
    super(
      MEMORY_NODE_ERROR_CODES.INVALID_OPTION,
      `option ${option} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    );
    this.option = option;
  }
}

/** The append-only log could not be written; the node stops accepting writes. */
export class StorageFailedError extends MemoryNodeError {
  override name = 'StorageFailedError';
  constructor(message: string, cause: unknown) {
    super(MEMORY_NODE_ERROR_CODES.STORAGE_FAILED, message, { cause });
  }
}
