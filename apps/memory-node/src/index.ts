export {
  InvalidArgumentError,
  InvalidOptionError,
  MEMORY_NODE_ERROR_CODES,
  MemoryNodeError,
  type MemoryNodeErrorCode,
  StorageFailedError,
} from './internal/errors.js';
export {
  type Clock,
  MEMORY_NODE_DEFAULTS,
  type MemoryNode,
  type MemoryNodeOptions,
  type MemoryNodeTlsOptions,
  startMemoryNode,
} from './internal/node.js';
