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
