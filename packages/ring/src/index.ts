// The host:port rules ring applies to node addresses; router-node's config uses them too.
// The base of RingError, re-exported (the same binding).
export { addressProblem, EngramError } from '@engram/common';
export {
  allocateClusterTokens,
  allocateTokens,
  DEFAULT_TOKENS_PER_NODE,
  type TokenAllocationOptions,
  type TokenHolder,
  type TokenNode,
} from './allocate-tokens.js';
export {
  CapacityExceededError,
  InvalidArgumentError,
  InvalidTableError,
  isRingError,
  RING_ERROR_CODES,
  RingError,
  type RingErrorCode,
} from './errors.js';
export { hashKey } from './hash-key.js';
export type { TableCapacity } from './internal/layout.js';
export {
  buildRing,
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_VNODES_PER_NODE,
  MAX_NODE_ID_LENGTH,
  MAX_NODES,
  MAX_REPLICATION_FACTOR,
  MAX_RING_TOKENS,
  MAX_SPACE_ID_LENGTH,
  MAX_TOKEN,
  MAX_TOKENS_PER_NODE,
  MAX_VNODES_PER_NODE,
  MAX_ZONE_LENGTH,
  NODE_ROLES,
  Ring,
  type RingOptions,
} from './ring.js';
export {
  DEFAULT_TABLE_MAX_BLOB_BYTES,
  DEFAULT_TABLE_MAX_NODES,
  DEFAULT_TABLE_MAX_REPLICATION_FACTOR,
  DEFAULT_TABLE_MAX_TOKENS,
  MAX_NODE_SLOT,
  MIN_TABLE_BLOB_BYTES,
  type PublishOptions,
  TABLE_GROWTH_FACTOR,
  TableReader,
  TableWriter,
  type TableWriterOptions,
} from './table.js';
export type {
  NodeInfo,
  NodeRole,
  PendingAssignment,
  Placement,
  PlacementTable,
  SpaceAssignment,
} from './types.js';
