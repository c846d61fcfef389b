export { EngramError, InvalidArgumentError } from '@engram/common';
// Types the node's signatures use, re-exported.
export type { HealthReporter, Memory, ReplicaServiceHandlers } from '@engram/proto';
export type { Logger } from 'pino';
export {
  isMemoryNodeError,
  MEMORY_NODE_ERROR_CODES,
  MemoryNodeError,
  type MemoryNodeErrorCode,
  StorageFailedError,
} from './internal/errors.js';
export {
  FAULT_DEFAULTS,
  type FaultControl,
  type FaultSettings,
  type FaultState,
  type FaultUpdate,
  INJECTED_FAULT_MESSAGE,
  MAX_FAULT_LATENCY_MS,
  validateFaultUpdate,
} from './internal/faults.js';
export {
  MEMORY_NODE_DEFAULTS,
  type MemoryNode,
  type MemoryNodeOptions,
  type MemoryNodeTlsOptions,
  startMemoryNode,
} from './internal/node.js';
export { REPLICA_PAGE_LIMITS } from './internal/replica-service.js';
export type { WallClock } from './internal/versions.js';
