import { performance } from 'node:perf_hooks';
import { type BreakerStateName, BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { ConnectionPool } from '@engram/pool';
import type {
  ConsolidateRequest,
  Init,
  QueryRequest,
  RecallRequest,
  StoreRequest,
} from '@engram/proto';
import {
  type Clock,
  Deadline,
  type Random,
  RetryBudget,
  type RetryBudgetLike,
  systemClock,
} from '@engram/retry';
import type { NodeInfo, PlacementTable } from '@engram/ring';
import { type Logger, pino } from 'pino';
import { BreakerSlots } from './breaker-slots.js';
import { Decider } from './decider.js';
import { DueTimers } from './due-timers.js';
import { InvalidArgumentError, RouterClosedError } from './errors.js';
import { copyExecuteOptions } from './execute-options.js';
import { type Attempt, Execution, type ExecutionHost } from './execution.js';
import { GrpcReplicaAccess } from './grpc-replica-access.js';
import { HintReplay, type ReplayCall } from './hint-replay.js';
import { type HintStore, MemoryHintStore } from './hints.js';
import { LagTable } from './lag.js';
import { LatencyWindow } from './latency.js';
import { MemoryCalls } from './memory-calls.js';
import { type ResolvedRouterOptions, resolveOptions, validateExecuteOptions } from './options.js';
import { QuorumRead, type QuorumReadOptions, type ReadMerge } from './quorum-read.js';
import { OutstandingAttempts, ReadBalancing } from './read-balance.js';
import { type ReplicaAccess, repairSpace, type SpaceRepair } from './repair.js';
import {
  type Replicated,
  type ReplicateOptions,
  Replication,
  settledCall,
  type WriteObserver,
} from './replication.js';
import { TrailingWrites } from './trailing-writes.js';
import {
  type AttemptRunner,
  type CallContext,
  type ConsolidateResult,
  type ExecuteOptions,
  NodeState,
  type NodeStates,
  Operation,
  type PartitionState,
  type QueryResult,
  type RecallResult,
  type Routed,
  type RoutedSink,
  type RouterHooks,
  type RouterInit,
  type RoutingDecision,
  RoutingStrategy,
  type SettledCall,
  type StoreResult,
} from './types.js';

const NEVER_PARTITIONED: PartitionState = Object.freeze({ isPartitioned: () => false });

/**
 * The spec's Router: synchronous routing decisions over a placement table, and `execute`,
 * which runs a call on the decided nodes behind their breakers, with retries, fall-back,
 * optional hedging, the retry budget, one deadline and the caller's signal.
 */
export class Router implements ExecutionHost {
  readonly options: ResolvedRouterOptions;
  readonly table: PlacementTable;
  readonly breakers: BreakerTable;
  readonly budget: RetryBudgetLike;
  readonly clock: Clock;
  readonly random: Random;
  readonly hooks: RouterHooks;
  readonly logger: Logger;
  readonly latency = new LatencyWindow();
  /** Attempt timeouts: one native timer per millisecond of due times, not one per attempt. */
  readonly attemptTimers: DueTimers<Attempt<unknown>>;
  /** Attempts in flight from this router per node slot (least-request reads compare them). */
  readonly outstanding: OutstandingAttempts;
  readonly #slots: BreakerSlots;
  readonly #decider: Decider;
  readonly #sharedBreakers: boolean;
  /** Removes our listener from a shared breaker table; undefined for our own table. */
  readonly #stopListening: (() => void) | undefined;
  #pool: ConnectionPool | undefined;
  readonly #ownPool: boolean;
  readonly #managePool: boolean;
  /** The table epoch the managed pool's membership was last synced to. */
  #poolEpoch = Number.NaN;
  readonly #nodeStates: NodeStates | undefined;
  /** Node states at the last pool sync: a node found up again gets its connections at once. */
  readonly #lastStates = new Map<string, NodeState>();
  /** Which replicas lack acknowledged writes (reads prefer the others). */
  readonly lag: LagTable;
  /** Replica writes still running after their answer, per node. */
  readonly trailing: TrailingWrites;
  /** Writes replicas missed (library use; router-node keeps its own on disk). */
  readonly hints: HintStore<ReplayCall>;
  readonly #calls: MemoryCalls;
  readonly #hintReplay: HintReplay;
  #replicas: ReplicaAccess | undefined;
  #closed = false;

  constructor(init: RouterInit) {
    if (typeof init !== 'object' || init === null) {
      throw new InvalidArgumentError('init', init, 'an object');
    }
    const table = init.table;
    if (typeof table !== 'object' || table === null || typeof table.lookupInto !== 'function') {
      throw new InvalidArgumentError('init.table', table, 'a PlacementTable (Ring or TableReader)');
    }
    if (
      init.localNodeId !== undefined &&
      (typeof init.localNodeId !== 'string' || init.localNodeId === '')
    ) {
      throw new InvalidArgumentError('init.localNodeId', init.localNodeId, 'a non-empty string');
    }
    if (init.managePool !== undefined && typeof init.managePool !== 'boolean') {
      throw new InvalidArgumentError('init.managePool', init.managePool, 'a boolean');
    }
    this.options = resolveOptions(init.options);
    this.table = table;
    this.clock = init.clock ?? systemClock;
    this.attemptTimers = new DueTimers(this.clock, (attempt) =>
      attempt.execution.timedOut(attempt),
    );
    this.random = init.random ?? Math.random;
    this.hooks = init.hooks ?? {};
    this.logger = init.logger ?? pino({ level: 'silent' });
    this.budget = init.budget ?? new RetryBudget({ clock: this.clock });
    const listener = (slot: number, from: BreakerStateName, to: BreakerStateName, reason: string) =>
      this.#onBreakerTransition(slot, from, to, reason);
    if (init.breakers !== undefined) {
      this.breakers = init.breakers;
      this.#sharedBreakers = true;
      // The owner of a shared table may listen too; removed again by close().
      this.#stopListening = init.breakers.addListener(listener);
    } else {
      this.breakers = new BreakerTable({
        capacity: this.options.breakerCapacity,
        trip: new ConsecutiveFailures(this.options.breakerThreshold),
        openTimeoutMs: this.options.breakerTimeoutMs,
        clock: this.clock,
        onStateChange: listener,
      });
      this.#sharedBreakers = false;
      this.#stopListening = undefined;
    }
    this.#slots = new BreakerSlots(table, this.breakers, this.#sharedBreakers);
    this.lag = init.lag ?? new LagTable({ slots: this.breakers.capacity });
    this.trailing = new TrailingWrites();
    this.hints = init.hints ?? new MemoryHintStore<ReplayCall>();
    this.outstanding = new OutstandingAttempts(this.breakers.capacity);
    this.#decider = new Decider({
      table,
      slots: this.#slots,
      breakers: this.breakers,
      partition: init.partition ?? NEVER_PARTITIONED,
      nodeStates: init.nodeStates,
      localNodeId: init.localNodeId,
      maxSpaceIdLength: this.options.maxSpaceIdLength,
      replicateWrites: this.options.replicateWrites,
      lag: this.lag,
      outstanding:
        this.options.readBalancing === ReadBalancing.LeastRequest ? this.outstanding : undefined,
      balanceThreshold: this.options.readBalancingThreshold,
      random: this.random,
    });
    this.#calls = new MemoryCalls(this);
    this.#hintReplay = new HintReplay(this);
    this.#nodeStates = init.nodeStates;
    this.#pool = init.pool;
    this.#ownPool = init.pool === undefined;
    this.#managePool = init.managePool ?? this.#ownPool;
  }

  /**
   * Whether a read of this decision asks a quorum: `readConsistency: 'quorum'`, more than one
   * replica, and not the partitioned LocalOnly (one node by design).
   */
  readsQuorum(decision: RoutingDecision): boolean {
    return (
      this.options.readConsistency === 'quorum' &&
      decision.strategy !== RoutingStrategy.LocalOnly &&
      decision.placement.length > 1
    );
  }

  /** Where a Store goes: the primary, with fall-back to replicas when `storeFallback`. */
  routeStore(spaceId: string): RoutingDecision {
    return this.#decide(spaceId, Operation.Store, this.options.storeFallback);
  }

  /** Where a Recall goes: the primary, then replicas when `replicaFallback`. */
  routeRecall(spaceId: string): RoutingDecision {
    return this.#decide(spaceId, Operation.Recall, this.options.replicaFallback);
  }

  /**
   * Consolidation is always local: the local node when it holds the space, else NoLocalData.
   * Without a `localNodeId` (a library user, not co-located with a node) it runs on the
   * space's primary alone — still one node, never fanned out or failed over.
   */
  routeConsolidation(spaceId: string): RoutingDecision {
    return this.#decide(spaceId, Operation.Consolidate, false);
  }

  /** One ScatterGather decision per space (LocalOnly while partitioned). Throws on a bad id. */
  routeDistributedQuery(spaceIds: readonly string[]): RoutingDecision[] {
    if (!Array.isArray(spaceIds)) {
      throw new InvalidArgumentError('spaceIds', spaceIds, 'an array of space ids');
    }
    const out: RoutingDecision[] = new Array(spaceIds.length);
    for (let i = 0; i < spaceIds.length; i++) {
      out[i] = this.#decide(spaceIds[i] as string, Operation.Query, this.options.replicaFallback);
    }
    return out;
  }

  /** Throws InvalidArgument unless `spaceId` is a space id this router accepts. */
  checkSpaceId(spaceId: unknown, field = 'spaceId'): asserts spaceId is string {
    this.#decider.checkSpaceId(spaceId, field);
  }

  /**
   * Runs `call` on the decision's nodes: primary first, then replicas in order when the
   * strategy allows, each behind its breaker, with retries and backoff under one deadline,
   * the retry budget and the caller's signal. See the README for the exact policy.
   */
  execute<T>(
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    options: ExecuteOptions = {},
  ): Promise<Routed<T>> {
    if (this.#closed) return Promise.reject(new RouterClosedError());
    try {
      // A bad per-call option is the caller's mistake: rejected before any attempt, so it can
      // never time out attempts and count as failures on healthy nodes' breakers.
      validateExecuteOptions(options);
      return new Execution<T>(this, decision, call, options).run();
    } catch (error) {
      return Promise.reject(error); // never throw synchronously
    }
  }

  /**
   * `execute` without promises, for a data path that counts allocations: each attempt reports
   * to the `AttemptSettle` it is given (`call` is a function, or an object whose `runAttempt`
   * runs an attempt: no closure per call), and the outcome goes to `sink` (`routed` or `failed`,
   * once; possibly before this returns, when the decision cannot start). The same policy,
   * deadline, breakers, budget and hooks as `execute`.
   */
  executeTo<T>(
    decision: RoutingDecision,
    call: SettledCall<T> | AttemptRunner<T>,
    options: ExecuteOptions,
    sink: RoutedSink<T>,
  ): void {
    if (!this.#closed) {
      try {
        validateExecuteOptions(options);
      } catch (error) {
        sink.failed(error);
        return;
      }
    }
    this.runTo(decision, call, options, sink); // closed: RouterClosedError to the sink
  }

  /** Store through the router (replicated with `replicateWrites`); `response.routing` is filled. */
  store(request: Init<StoreRequest>, options?: ExecuteOptions): Promise<StoreResult> {
    return this.#calls.store(request, options);
  }

  /** Recall through the router (hedged when `options.hedge` is set); `routing` is filled. */
  recall(request: Init<RecallRequest>, options?: ExecuteOptions): Promise<RecallResult> {
    return this.#calls.recall(request, options);
  }

  /** Consolidate on one node, then repair the space's replicas (see MemoryCalls). */
  consolidate(
    request: Init<ConsolidateRequest>,
    options?: ExecuteOptions,
  ): Promise<ConsolidateResult> {
    return this.#calls.consolidate(request, options);
  }

  /** Scatter-gather over many spaces: partial results and per-space errors (see `gather`); `routing` is filled. */
  query(request: Init<QueryRequest>, options: ExecuteOptions = {}): Promise<QueryResult> {
    return this.#calls.query(request, options);
  }

  /**
   * A replicated write (Dynamo's coordinator, see Replication): `call` runs on every replica of
   * the decision's placement and its pending owners, and the result comes after the write
   * consistency's number of acknowledgements. Replicas that miss it go to `options.observer`
   * (default: this router's lag table and hint store).
   */
  replicate<T>(
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    options: ReplicateOptions = {},
  ): Promise<Replicated<T>> {
    return this.#replicate(decision, settledCall(call), call, options);
  }

  /**
   * `replicate` with attempts that report through an `AttemptSettle` (as `executeTo`'s): no
   * promise per replica or attempt, one for the write's answer.
   */
  replicateSettled<T>(
    decision: RoutingDecision,
    call: SettledCall<T>,
    options: ReplicateOptions = {},
  ): Promise<Replicated<T>> {
    return this.#replicate(decision, call, undefined, options);
  }

  /**
   * `replay`: the call as the library's hints replay it; when not given, made from `call` only
   * if the library observer is needed (a caller with its own observer pays no closure).
   */
  #replicate<T>(
    decision: RoutingDecision,
    call: SettledCall<T>,
    replay: ReplayCall | undefined,
    options: ReplicateOptions,
  ): Promise<Replicated<T>> {
    if (this.#closed) return Promise.reject(new RouterClosedError());
    try {
      validateExecuteOptions(options);
      const deadline =
        options.deadline ??
        Deadline.after(options.deadlineMs ?? this.options.deadlineMs, this.clock);
      const consistency = options.consistency ?? this.options.writeConsistency;
      const observer = options.observer ?? this.#libraryObserver(replay ?? promiseCall(call));
      const perWrite = copyExecuteOptions(options);
      perWrite.deadline = deadline;
      return new Replication<T>(this, decision, call, perWrite, observer, consistency).run();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * `executeTo` without validating `options` (ReplicationHost: a replication validates them
   * once per write). Internal: callers outside this package use `executeTo`.
   */
  runTo<T>(
    decision: RoutingDecision,
    call: SettledCall<T> | AttemptRunner<T>,
    options: ExecuteOptions,
    sink: RoutedSink<T>,
  ): void {
    if (this.#closed) {
      sink.failed(new RouterClosedError());
      return;
    }
    let execution: Execution<T>;
    try {
      execution = new Execution<T>(this, decision, call, options, true);
    } catch (error) {
      sink.failed(error);
      return;
    }
    execution.runTo(sink);
  }

  /** A quorum read (see QuorumRead): a majority of replicas, answers merged by `merge`. */
  readQuorum<T>(
    decision: RoutingDecision,
    call: (ctx: CallContext) => Promise<T>,
    merge: ReadMerge<T>,
    options: QuorumReadOptions = {},
  ): Promise<Routed<T>> {
    if (this.#closed) return Promise.reject(new RouterClosedError());
    try {
      validateExecuteOptions(options);
      const deadline =
        options.deadline ??
        Deadline.after(options.deadlineMs ?? this.options.deadlineMs, this.clock);
      const onDivergence =
        options.onDivergence ??
        ((spaceId: string) => {
          this.repairSpace(spaceId).catch((error: unknown) =>
            this.logger.warn({ err: error, spaceId }, 'read repair failed'),
          );
        });
      const perRead = copyExecuteOptions(options);
      perRead.deadline = deadline;
      return new QuorumRead<T>(this, decision, call, merge, perRead, onDivergence).run();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Anti-entropy for one space over its current placement: digests compared, what a replica
   * lacks copied to it (see `repairSpace` in repair.ts). Needs nodes serving ReplicaService.
   */
  async repairSpace(spaceId: string, _options?: ExecuteOptions): Promise<SpaceRepair> {
    this.checkSpaceId(spaceId);
    const placement = this.table.lookup(spaceId);
    return repairSpace(this.replicas, spaceId, [placement.primary, ...placement.replicas]);
  }

  /** ReplicaService over this router's pool (repair and streaming). */
  get replicas(): ReplicaAccess {
    this.#replicas ??= new GrpcReplicaAccess(() => this.pool);
    return this.#replicas;
  }

  /**
   * Replays pending hints (library use: hints kept in this router's hint store), oldest first
   * per node, each as a single-node write; a node's replay stops at its first failure (tried
   * again on the next call). Resolves with the hints applied.
   */
  replayHints(): Promise<number> {
    return this.#hintReplay.replay();
  }

  /** Closes the pool if the router created it, and detaches from a shared breaker table. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#hintReplay.stop();
    this.#stopListening?.();
    if (this.#ownPool && this.#pool !== undefined) await this.#pool.close();
  }

  /**
   * A half-open breaker let one of the node's probe calls through: when the router manages the
   * pool, the node's broken connections are replaced now (`reconnectNow`) rather than after
   * their reconnect backoff, so the probe reaches the node instead of failing fast and
   * reopening the breaker for a whole open timeout. Health marking a node up does the same
   * (`#syncPool`), but a thread can admit the probe before it has seen that epoch: the control
   * plane writes node states and breakers before it publishes the table.
   */
  probing(node: NodeInfo): void {
    if (this.#managePool && !this.#closed) this.#pool?.reconnectNow(node.id);
  }

  /** Breaker slot of a node, or -1 when it has none (then it is never refused). */
  slotOf(node: NodeInfo): number {
    this.#syncPool();
    return this.#slots.slotOf(node);
  }

  /**
   * The pool the typed conveniences use (created on first use when none was given), its
   * membership synced to the table's current epoch when the router manages it.
   */
  get pool(): ConnectionPool {
    if (this.#pool === undefined) {
      if (this.#closed) throw new RouterClosedError();
      const hook = this.hooks.onPoolConnection;
      this.#pool = new ConnectionPool(
        hook === undefined
          ? {}
          : {
              onConnection: (event) => {
                const pool = this.#pool;
                const open =
                  pool === undefined ? 0 : pool.channelCount + pool.sessionCount + pool.h2Count;
                this.#emit(() => hook(event.nodeId, event.type, event.kind, open));
              },
            },
      );
    }
    this.#syncPool();
    return this.#pool;
  }

  #decide(spaceId: string, operation: Operation, fallback: boolean): RoutingDecision {
    const onDecision = this.hooks.onDecision;
    // Timed: the decision alone (table lookup, node states, breakers, strategy), between two
    // clock reads; the pool sync and the hook call are outside. A reading includes one clock
    // read's overhead (~40 ns hot, more when the caches are cold; README).
    // (performance.now(): nanosecond resolution without a BigInt per reading.)
    const started = onDecision === undefined ? 0 : performance.now();
    const decision = this.#decider.decide(spaceId, operation, fallback);
    const ns = onDecision === undefined ? 0 : (performance.now() - started) * 1e6;
    this.#syncPool();
    if (onDecision !== undefined) {
      // Inline rather than through #emit: no closure per decision.
      try {
        onDecision(operation, decision.strategy, ns);
      } catch (error) {
        this.logger.error({ err: error }, 'router hook threw');
      }
    }
    return decision;
  }

  /**
   * One compare per call: when the table's epoch moved, a managed pool follows the
   * membership: departed nodes are removed, the others get `addNode` with their current
   * address (a no-op unless it changed), and a node whose state went back to up has its broken
   * connections replaced now rather than after their reconnect backoff, so its first calls do
   * not fail fast and count as failures (a recovery that would shut it out again).
   */
  #syncPool(): void {
    const table = this.table;
    const epoch = table.epoch;
    if (epoch === this.#poolEpoch) return;
    const pool = this.#pool;
    if (!this.#managePool || pool === undefined || this.#closed) return;
    this.#poolEpoch = epoch;
    for (const id of pool.nodeIds()) {
      if (table.nodeIndex(id) >= 0) continue;
      pool.removeNode(id).catch((error: unknown) => {
        this.logger.debug({ err: error, node: id }, 'closing a departed node failed');
      });
    }
    const states = this.#nodeStates;
    const seen = this.#lastStates;
    for (let i = 0; i < table.nodes.length; i++) {
      const node = table.nodes[i]!;
      try {
        pool.addNode(node.id, node.address);
      } catch (error) {
        this.logger.warn({ err: error, node: node.id }, 'pool refused a node address');
        continue;
      }
      if (states === undefined) continue;
      const state = states.stateOf(node, this.#slots.slotOf(node));
      const before = seen.get(node.id);
      seen.set(node.id, state);
      if (state === NodeState.Up && before !== undefined && before !== NodeState.Up) {
        pool.reconnectNow(node.id);
      }
    }
    if (seen.size > table.nodes.length) {
      for (const id of seen.keys()) if (table.nodeIndex(id) < 0) seen.delete(id);
    }
  }

  /**
   * The observer of a replicated write made through this router when the caller gave none:
   * lagging replicas raise the lag table until they land; a replica that missed the write gets
   * a hint in `hints` (the call itself, replayed as is), counted in the lag table until replayed.
   */
  #libraryObserver(call: ReplayCall): WriteObserver {
    return {
      lagging: (node, spaceId) => this.lag.add(this.slotOf(node), LagTable.bucketOf(spaceId), 1),
      settled: (node, spaceId) => this.lag.add(this.slotOf(node), LagTable.bucketOf(spaceId), -1),
      missed: async (node, spaceId) => {
        const kept = await this.hints.add({
          node,
          spaceId,
          request: call,
          createdAtMs: Date.now(),
        });
        if (!kept) {
          this.logger.warn({ node: node.id, spaceId }, 'hint dropped (store full): repair needed');
          return;
        }
        this.lag.add(this.slotOf(node), LagTable.bucketOf(spaceId), 1);
        this.#hintReplay.schedule();
      },
    };
  }

  #onBreakerTransition(slot: number, from: string, to: string, reason: string): void {
    const node = this.#slots.nodeOf(slot);
    const nodeId = node?.id ?? `slot ${slot}`;
    this.logger.warn({ node: nodeId, from, to, reason }, 'circuit breaker transition');
    const hook = this.hooks.onBreakerTransition;
    if (hook !== undefined && node !== undefined) this.#emit(() => hook(node, from, to, reason));
  }

  #emit(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger.error({ err: error }, 'router hook threw');
    }
  }
}

/** An `executeTo`-style call as a promise-returning one (hints replay calls this way). */
function promiseCall<T>(call: SettledCall<T>): ReplayCall {
  return (ctx) =>
    new Promise<T>((resolve, reject) => {
      call(ctx, { resolve, reject });
    });
}
