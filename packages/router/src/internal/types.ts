import type { BreakerTable } from '@engram/breaker';
import type { ConnectionPool } from '@engram/pool';
import type { Clock, Deadline, Random, RetryBudgetLike } from '@engram/retry';
import type { NodeInfo, PlacementTable } from '@engram/ring';
import type { Logger } from 'pino';
import type { ReplayCall } from './hint-replay.js';
import type { HintStore } from './hints.js';
import type { LagTable } from './lag.js';
import type { RouterOptions } from './options.js';

/** How a decision's targets may be used. */
export const RoutingStrategy = Object.freeze({
  /** The primary only. */
  Primary: 'Primary',
  /** The primary, then each replica in order. */
  PrimaryWithFallback: 'PrimaryWithFallback',
  /** The local node only (partitioned, or consolidation). */
  LocalOnly: 'LocalOnly',
  /** One of several per-space decisions of a distributed query (reads with fallback). */
  ScatterGather: 'ScatterGather',
  /**
   * A write to every replica of the placement in parallel, answered after the write
   * consistency's number of acknowledgements (Dynamo's coordinator; `replicateWrites`).
   */
  Replicated: 'Replicated',
} as const);
export type RoutingStrategy = (typeof RoutingStrategy)[keyof typeof RoutingStrategy];

/** The operation a decision was made for (labels hooks; picks defaults such as hedging). */
export const Operation = Object.freeze({
  Store: 'store',
  Recall: 'recall',
  Consolidate: 'consolidate',
  Query: 'query',
} as const);
export type Operation = (typeof Operation)[keyof typeof Operation];

/** Where one operation on one space goes. Plain data; safe to keep or post to another thread. */
export interface RoutingDecision {
  readonly spaceId: string;
  /** The first node to try (for LocalOnly: the local node). */
  readonly primary: NodeInfo;
  /**
   * Fallback order (empty unless the strategy allows fallback): up nodes first, open breakers
   * and down nodes last, draining nodes left out (see the README's "Target order").
   */
  readonly replicas: readonly NodeInfo[];
  /**
   * The space's nodes in placement order, the placement's primary first, whatever their
   * state. A reply from any node but `placement[0]` is reported as a fall-back.
   */
  readonly placement: readonly NodeInfo[];
  /**
   * Writes only: nodes that will own the space once a membership change completes (a joining
   * node, the new owners of a leaving node's or a moving pin's spaces). They get every write but
   * serve no read and do not count towards the write consistency. Empty almost always.
   */
  readonly pending: readonly NodeInfo[];
  /** Served with less than the placement promises: the router reaches only a minority. */
  readonly degraded?: boolean | undefined;
  readonly strategy: RoutingStrategy;
  /** Table epoch the decision came from. */
  readonly epoch: number;
  /** The operation it was made for. */
  readonly operation: Operation;
}

/** What `execute` hands each attempt. */
export interface CallContext {
  readonly node: NodeInfo;
  /** 1-based, counting every attempt of the operation (hedges included). */
  readonly attempt: number;
  /** The node is not the decision's primary. */
  readonly fallback: boolean;
  /** Aborted on caller abort, operation deadline, attempt timeout, hedge loss or completion. */
  readonly signal: AbortSignal;
  /** The one operation deadline. */
  readonly deadline: Deadline;
  /**
   * The deadline of this attempt: the operation deadline, or earlier when `attemptTimeoutMs`
   * applies. Pass `attemptDeadline.toGrpcDeadline()` as the gRPC deadline (`grpc-timeout`).
   */
  readonly attemptDeadline: Deadline;
  /** True when this attempt was started as a hedge while another was still running. */
  readonly hedge: boolean;
}

/** How a result was obtained: engram.v1.RoutingInfo itself, so replies carry it as is. */
export type { RoutingInfo } from '@engram/proto';

import type {
  ConsolidateResponse,
  QueryResponse,
  RecallResponse,
  RoutingInfo,
  StoreResponse,
} from '@engram/proto';

export interface Routed<T> {
  readonly value: T;
  readonly routing: RoutingInfo;
}

/**
 * Where one attempt of a `SettledCall` reports: `resolve` with its value or `reject` with its
 * error, once (a later report, or one after the router gave the attempt up, is ignored).
 * Errors are classified as for `execute`'s promises (retryable, node failure, pushback).
 */
export interface AttemptSettle<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * An attempt that reports through `settle` instead of returning a promise (`executeTo`): no
 * promise, no closure per attempt. A report made before the call returns, or a throw, is
 * handled after it returns, as a promise's settlement would be.
 */
export type SettledCall<T> = (ctx: CallContext, settle: AttemptSettle<T>) => void;

/**
 * A `SettledCall` as an object's method: a caller that has an object per call anyway (the
 * request's own stream handler, say) passes it to `executeTo` and makes no closure per call.
 */
export interface AttemptRunner<T> {
  runAttempt(ctx: CallContext, settle: AttemptSettle<T>): void;
}

/**
 * Where `executeTo` delivers the outcome: `routed` or `failed`, exactly once. A sink that
 * throws is logged; the operation is over either way.
 */
export interface RoutedSink<T> {
  routed(value: T, routing: RoutingInfo): void;
  failed(error: unknown): void;
}

/**
 * A MemoryService reply as the Router returns it: `routing` is always filled (the wire type
 * allows `null`, for a node answered directly). Still assignable to the wire type, so a
 * server can answer with it as is.
 */
export type WithRouting<T extends { routing: RoutingInfo | null }> = T & { routing: RoutingInfo };
/** `router.store`'s reply. */
export type StoreResult = WithRouting<StoreResponse>;
/** `router.recall`'s reply. */
export type RecallResult = WithRouting<RecallResponse>;
/** `router.consolidate`'s reply. */
export type ConsolidateResult = WithRouting<ConsolidateResponse>;
/** `router.query`'s reply. */
export type QueryResult = WithRouting<QueryResponse>;

/** Whether this router is cut off from the cluster (e.g. `Atomics.load` on a shared flag). */
export interface PartitionState {
  isPartitioned(): boolean;
}

/** What the cluster's control plane says about a node; decisions order targets by it. */
export const NodeState = Object.freeze({
  /** Serving. */
  Up: 'up',
  /** Failed its health checks: tried only after every up node. */
  Down: 'down',
  /** Taken out of service by an operator: no new calls while any node is up. */
  Draining: 'draining',
} as const);
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

/**
 * The state of each node, read on every decision that may fall back (so keep it cheap: an
 * `Atomics.load` on a shared word, a Map lookup). `slot` is the node's breaker slot (-1 when
 * it has none), which router-node also uses as its node-state slot.
 */
export interface NodeStates {
  stateOf(node: NodeInfo, slot: number): NodeState;
  /**
   * Slow start (optional): the share of reads an up node that recently came back may take, in
   * [0, 1] (`slowStartShare` computes a linear ramp); 1 = no restriction. A read tries such a
   * node first only with this probability, else the next up node. Asked for up nodes of reads
   * that may fall back, so keep it as cheap as `stateOf`. Writes keep their placement.
   */
  warmth?(node: NodeInfo, slot: number): number;
  /**
   * Outlier ejection (optional): an up node judged unwell by its recent calls (slow, failing,
   * hung). It is ranked after every other up node (as a replica with an open breaker is; a
   * primary too) and before down ones, and it still counts as reachable: an ejection reorders
   * a placement, it never makes a space unavailable. Writes keep their placement.
   */
  isEjected?(node: NodeInfo, slot: number): boolean;
}

export interface ExecuteOptions {
  /** The caller's signal: aborting it ends the operation with `AbortedError`. */
  readonly signal?: AbortSignal | undefined;
  /** One deadline for the operation and every attempt; wins over `deadlineMs`. */
  readonly deadline?: Deadline | undefined;
  /** Deadline from now, ms. Default `options.deadlineMs` (10 s). */
  readonly deadlineMs?: number | undefined;
  /** Label for hooks/metrics. Default the decision's operation. */
  readonly operation?: string | undefined;
  /** Per-call hedging override. Default: on for recall/query when `options.hedge` is set. */
  readonly hedge?: boolean | undefined;
  /** Per-call override of `options.attemptTimeoutMs` (Infinity = none). */
  readonly attemptTimeoutMs?: number | undefined;
  /**
   * Which errors the operation may retry or fail over on. Default: the router's policy
   * (connection failures, UNAVAILABLE, attempt timeouts; see README).
   */
  readonly isRetryable?: ((error: unknown) => boolean) | undefined;
}

export type AttemptOutcome = 'ok' | 'error' | 'rejected';

/** Metrics and log hooks. All optional; called synchronously; must not throw. */
export interface RouterHooks {
  /** A decision was made (durationNs measured only when this hook is set). */
  onDecision?(operation: string, strategy: RoutingStrategy, durationNs: number): void;
  /** An attempt ended ('rejected': the breaker refused it, no call was made). */
  onAttempt?(
    operation: string,
    node: NodeInfo,
    outcome: AttemptOutcome,
    durationMs: number,
    error?: unknown,
  ): void;
  /** A retry on `node` is scheduled after `delayMs` (0 for a fail-over or hedge). */
  onRetry?(operation: string, node: NodeInfo, attempt: number, delayMs: number): void;
  /** The operation moved from one node to another (fail-over or hedge). */
  onFallback?(operation: string, from: NodeInfo, to: NodeInfo): void;
  /** The operation ended: 'ok' or the error's code. */
  onComplete?(
    operation: string,
    outcome: 'ok' | (string & {}),
    durationMs: number,
    routing?: RoutingInfo,
  ): void;
  /**
   * A connection of the router's own pool opened or closed (pool size); `openConnections` is
   * the pool's total after the event. A pool passed in `init.pool` reports through its own
   * `onConnection` option instead.
   */
  onPoolConnection?(
    nodeId: string,
    type: 'open' | 'close',
    kind: 'channel' | 'session' | 'h2',
    openConnections: number,
  ): void;
  /** A breaker this router drove changed state. */
  onBreakerTransition?(node: NodeInfo, from: string, to: string, reason: string): void;
}

export interface RouterInit {
  /** A `Ring` (single thread) or a `TableReader` over a shared table. */
  readonly table: PlacementTable;
  /**
   * Shared breakers; slot = `table.nodeSlot(nodeIndex)`. Default: a private table sized
   * `options.breakerCapacity`, slots by node id, with `breakerThreshold`/`breakerTimeoutMs`.
   */
  readonly breakers?: BreakerTable | undefined;
  /** Shared or local retry budget. Default: a private `RetryBudget` with its defaults. */
  readonly budget?: RetryBudgetLike | undefined;
  /** Needed by the typed conveniences only. Default: a private pool, closed by `close()`. */
  readonly pool?: ConnectionPool | undefined;
  /**
   * Keep `pool`'s membership in step with the table (nodes added, re-addressed, removed as
   * epochs move). Default: true for the router's own pool, false for one passed in `pool`.
   */
  readonly managePool?: boolean | undefined;
  /** Default: never partitioned. */
  readonly partition?: PartitionState | undefined;
  /** Default: every node is up (breakers alone order the targets). */
  readonly nodeStates?: NodeStates | undefined;
  /**
   * Which replicas lack acknowledged writes, by space bucket (reads prefer the others); pass a
   * view over a shared one to share it between threads. Default: a private table.
   */
  readonly lag?: LagTable | undefined;
  /** Where replicated writes keep hints for replicas that missed them. Default: in memory. */
  readonly hints?: HintStore<ReplayCall> | undefined;
  /** This process's node id, for LocalOnly decisions. */
  readonly localNodeId?: string | undefined;
  readonly options?: RouterOptions | undefined;
  readonly hooks?: RouterHooks | undefined;
  readonly clock?: Clock | undefined;
  readonly random?: Random | undefined;
  /** Default: a silent pino logger. */
  readonly logger?: Logger | undefined;
}
