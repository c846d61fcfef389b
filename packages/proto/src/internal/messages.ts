/**
 * TypeScript shapes of the engram.v1 and grpc.health.v1 messages exactly as grpc-js hands them
 * out with {@link LOADER_OPTIONS}: camelCase field names, every scalar and repeated field
 * present (defaults applied), 64-bit integers as `number`, enums as their string names, and
 * unset sub-messages as `null`.
 */

export interface Memory {
  /** Empty on Store means "assign one". */
  id: string;
  content: string;
  /** float32 on the wire: values round-trip with float32 precision. */
  embedding: number[];
  /** 0..1 */
  confidence: number;
  /** Milliseconds since the Unix epoch (int64 decoded as number); 0 on Store means "now". */
  createdAtMs: number;
  /**
   * Last-write-wins version: microseconds since the Unix epoch of the write (uint64 decoded as
   * number, exact below 2^53, i.e. until the year 2255). Ties go to the larger
   * `encodeMemory` bytes. 0 on Store means "stamp it now".
   */
  version: number;
}

export interface Cue {
  text: string;
  embedding: number[];
}

export interface RoutingInfo {
  servedBy: string;
  attempts: number;
  fallback: boolean;
  /** "direct" when a node answered without a router, else the routing strategy name. */
  strategy: string;
  /** uint64 decoded as number (exact below 2^53). */
  tableEpoch: number;
  /** Replicas that acknowledged a replicated write before the reply (0 otherwise). */
  acknowledged: number;
  /** Replicas a replicated write was sent to (0 otherwise). */
  asked: number;
  /**
   * Served with less than the placement promises: a write acknowledged by fewer than all its
   * replicas, or a read served while the router reaches only a minority of the cluster.
   */
  degraded: boolean;
}

export interface StoreRequest {
  spaceId: string;
  memory: Memory | null;
}

export interface StoreResponse {
  memoryId: string;
  routing: RoutingInfo | null;
}

export interface RecallRequest {
  spaceId: string;
  cue: Cue | null;
  /** 0 means the server default. */
  limit: number;
}

export interface ScoredMemory {
  memory: Memory | null;
  score: number;
}

export interface RecallResponse {
  memories: ScoredMemory[];
  routing: RoutingInfo | null;
}

export interface ConsolidateRequest {
  spaceId: string;
  /** Cosine similarity at or above which two memories merge; 0 means the server default. */
  similarityThreshold: number;
  /**
   * Version given to what the consolidation writes (raised kept memories, tombstones of the
   * merged ones); 0 means the node's clock. Stamped by the router.
   */
  version: number;
}

export interface MergedGroup {
  keptId: string;
  mergedIds: string[];
}

export interface ConsolidateResponse {
  merged: MergedGroup[];
  memoriesBefore: number;
  memoriesAfter: number;
  routing: RoutingInfo | null;
}

export interface QueryRequest {
  spaceIds: string[];
  cue: Cue | null;
  limit: number;
}

export interface SpaceResult {
  spaceId: string;
  memories: ScoredMemory[];
}

export interface SpaceError {
  spaceId: string;
  /** A gRPC status code number (`grpc.status`). */
  code: number;
  message: string;
}

export interface QueryResponse {
  results: SpaceResult[];
  errors: SpaceError[];
  routing: RoutingInfo | null;
}

/**
 * A memory removed (merged away by Consolidate) at `version`: a copy of the same or an older
 * version is not resurrected by a replay, a stream or a repair; a newer one replaces it.
 */
export interface Tombstone {
  id: string;
  /** uint64 decoded as number (exact below 2^53). */
  version: number;
}

/** What a replica holds of a space: equal digests mean equal contents. */
export interface SpaceDigest {
  spaceId: string;
  /** Live memories. */
  memories: number;
  tombstones: number;
  /**
   * XOR over every entry (memory or tombstone) of the first 8 bytes of
   * SHA-256(id NUL version NUL kind), version in decimal, kind "m" or "t"; 16 lowercase hex
   * digits.
   */
  digest: string;
}

export interface ListSpacesRequest {
  /** Spaces after this id (code-point order); empty = from the start. */
  after: string;
  /** 0 = the server default (1000). */
  limit: number;
  /** When set, only this space (a digest for one space). */
  spaceId: string;
}

export interface ListSpacesResponse {
  spaces: SpaceDigest[];
  /** True when more spaces follow the last one returned. */
  more: boolean;
}

export interface ScanSpaceRequest {
  spaceId: string;
  /** Entries after this memory id (code-point order); empty = from the start. */
  after: string;
  /** 0 = the server default (500). */
  limit: number;
}

export interface ScanSpaceResponse {
  memories: Memory[];
  tombstones: Tombstone[];
  more: boolean;
}

export interface ApplyEntriesRequest {
  spaceId: string;
  memories: Memory[];
  tombstones: Tombstone[];
}

export interface ApplyEntriesResponse {
  /** Entries that changed the node (newer than what it held). */
  applied: number;
}

export const SERVING_STATUS = {
  UNKNOWN: 'UNKNOWN',
  SERVING: 'SERVING',
  NOT_SERVING: 'NOT_SERVING',
  SERVICE_UNKNOWN: 'SERVICE_UNKNOWN',
} as const;
export type ServingStatus = (typeof SERVING_STATUS)[keyof typeof SERVING_STATUS];

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

/**
 * What you may pass when *sending* a message: every field optional (proto3 defaults fill
 * the rest), sub-messages may be omitted or `null`.
 */
export type Init<T> = T extends readonly (infer E)[]
  ? readonly Init<E>[]
  : T extends object
    ? { [K in keyof T]?: Init<NonNullable<T[K]>> | (null extends T[K] ? null : never) }
    : T;
