import { randomUUID } from 'node:crypto';
import { type BreakerStateName, BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { isEngramError } from '@engram/common';
import { ConnectionPool, UnknownNodeError } from '@engram/pool';
import {
  type ConsolidateRequest,
  type ConsolidateResponse,
  type Init,
  MemoryServiceDefinition,
  type QueryRequest,
  type QueryResponse,
  type RecallRequest,
  type RecallResponse,
  type SpaceError,
  type SpaceResult,
  type StoreRequest,
  type StoreResponse,
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
import type * as grpc from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import {
  InvalidArgumentError,
  InvalidEndpointError,
  NoAssignmentError,
  NoLocalDataError,
  RouterClosedError,
  toGrpcStatus,
} from './errors.js';
import { defaultIsRetryable, Execution, type ExecutionHost, whenCancelled } from './execution.js';
import { LatencyWindow } from './latency.js';
import { type ResolvedRouterOptions, resolveOptions, validateExecuteOptions } from './options.js';
import {
  type CallContext,
  type ExecuteOptions,
  Operation,
  type PartitionState,
  type Routed,
  type RouterHooks,
  type RouterInit,
  type RoutingDecision,
  type RoutingInfo,
  RoutingStrategy,
} from './types.js';
import { unaryCall } from './unary.js';

export { defaultIsRetryable, whenCancelled };

const NEVER_PARTITIONED: PartitionState = Object.freeze({ isPartitioned: () => false });
const NO_REPLICAS: readonly NodeInfo[] = Object.freeze([]);
/** Scratch for placements; grown when a table answers more (explicit assignments). */
const INITIAL_SCRATCH = 16;

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
  readonly #partition: PartitionState;
  readonly #localNodeId: string | undefined;
  readonly #sharedBreakers: boolean;
  /** Private breakers: slot by node id (nodes beyond the capacity are absent: unguarded). */
  readonly #privateSlots = new Map<string, number>();
  /** Private breaker slots of nodes that left the table, reset when handed out again. */
  readonly #freeSlots: number[] = [];
  #nextSlot = 0;
  readonly #slotNodes = new Map<number, NodeInfo>();
  /** The table epoch the slots (and the private pool's membership) were last synced to. */
  #epoch = Number.NaN;
  /** Breaker slot (or -1) per node index of the table at `#epoch`. */
  #slotByIndex: Int32Array = new Int32Array(0);
  /** Removes our listener from a shared breaker table; undefined for our own table. */
  readonly #stopListening: (() => void) | undefined;
  #scratch: Uint16Array;
  #pool: ConnectionPool | undefined;
  readonly #ownPool: boolean;
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
    this.options = resolveOptions(init.options);
    this.table = table;
    this.clock = init.clock ?? systemClock;
    this.random = init.random ?? Math.random;
    this.hooks = init.hooks ?? {};
    this.logger = init.logger ?? pino({ level: 'silent' });
    this.budget = init.budget ?? new RetryBudget({ clock: this.clock });
    this.#partition = init.partition ?? NEVER_PARTITIONED;
    this.#localNodeId = init.localNodeId;
    this.#scratch = new Uint16Array(Math.max(INITIAL_SCRATCH, table.maxPlacementSize));
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
    this.#pool = init.pool;
    this.#ownPool = init.pool === undefined;
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

  /** Store through the router; `response.routing` is filled. */
  async store(request: Init<StoreRequest>, options?: ExecuteOptions): Promise<StoreResponse> {
    const decision = this.routeStore(request.spaceId as string);
    const memory = request.memory;
    if (
      this.options.assignMemoryIds &&
      typeof memory === 'object' &&
      memory !== null &&
      (memory.id === undefined || memory.id === '')
    ) {
      request = { ...request, memory: { ...memory, id: randomUUID() } };
    }
    const { value, routing } = await this.execute(
      decision,
      (ctx) => this.#unary(ctx, MemoryServiceDefinition.Store, request),
      options,
    );
    value.routing = routing;
    return value;
  }

  /** Recall through the router (hedged when `options.hedge` is set); `routing` is filled. */
  async recall(request: Init<RecallRequest>, options?: ExecuteOptions): Promise<RecallResponse> {
    const decision = this.routeRecall(request.spaceId as string);
    const { value, routing } = await this.execute(
      decision,
      (ctx) => this.#unary(ctx, MemoryServiceDefinition.Recall, request),
      options,
    );
    value.routing = routing;
    return value;
  }

  /** Consolidate on one node (see routeConsolidation); no attempt timeout by default. */
  async consolidate(
    request: Init<ConsolidateRequest>,
    options?: ExecuteOptions,
  ): Promise<ConsolidateResponse> {
    const decision = this.routeConsolidation(request.spaceId as string);
    const { value, routing } = await this.execute(
      decision,
      (ctx) => this.#unary(ctx, MemoryServiceDefinition.Consolidate, request),
      { ...options, attemptTimeoutMs: options?.attemptTimeoutMs ?? Number.POSITIVE_INFINITY },
    );
    value.routing = routing;
    return value;
  }

  /**
   * Scatter-gather: each distinct space to its own decision, all in parallel under one
   * deadline. A space that fails (no route, every replica down, deadline) becomes an entry
   * in `errors` with its gRPC status; the others' results are returned. `routing.servedBy`
   * lists the nodes that served, comma-separated; `attempts` sums every space's attempts.
   * Throws only for a malformed request (InvalidArgument).
   */
  async query(request: Init<QueryRequest>, options: ExecuteOptions = {}): Promise<QueryResponse> {
    const spaceIds = request.spaceIds;
    if (!Array.isArray(spaceIds)) {
      throw new InvalidArgumentError('request.spaceIds', spaceIds, 'an array of space ids');
    }
    validateExecuteOptions(options);
    const unique = [...new Set(spaceIds as readonly string[])];
    for (const spaceId of unique) this.#checkSpaceId(spaceId, 'request.spaceIds[]');
    const deadline =
      options.deadline ?? Deadline.after(options.deadlineMs ?? this.options.deadlineMs, this.clock);
    const perSpace: ExecuteOptions = {
      ...options,
      deadline,
      operation: options.operation ?? 'query',
    };
    // The epoch the decisions used (the newest, should the table move between two of them).
    let tableEpoch = Number.NEGATIVE_INFINITY;
    const settled = await Promise.allSettled(
      unique.map(async (spaceId) => {
        // async: a space without a route (NoLocalData, NoAssignment) becomes that space's error.
        const decision = this.#decide(spaceId, Operation.Query, this.options.replicaFallback);
        if (decision.epoch > tableEpoch) tableEpoch = decision.epoch;
        const sub: Init<QueryRequest> = {
          spaceIds: [spaceId],
          cue: request.cue ?? null,
          limit: request.limit ?? 0,
        };
        return this.execute(
          decision,
          (ctx) => this.#unary(ctx, MemoryServiceDefinition.Query, sub),
          perSpace,
        );
      }),
    );
    const results: SpaceResult[] = [];
    const errors: SpaceError[] = [];
    const servedBy: string[] = [];
    let attempts = 0;
    let fallback = false;
    for (let i = 0; i < settled.length; i++) {
      const outcome = settled[i]!;
      const spaceId = unique[i]!;
      if (outcome.status === 'fulfilled') {
        const { value, routing } = outcome.value;
        attempts += routing.attempts;
        fallback ||= routing.fallback;
        if (!servedBy.includes(routing.servedBy)) servedBy.push(routing.servedBy);
        for (const r of value.results) results.push(r);
        for (const e of value.errors) errors.push(e);
      } else {
        const error = outcome.reason as { attempts?: unknown };
        if (typeof error?.attempts === 'number') attempts += error.attempts;
        const status = toGrpcStatus(outcome.reason);
        errors.push({ spaceId, code: status.code, message: status.message });
      }
    }
    const routing: RoutingInfo = {
      servedBy: servedBy.join(','),
      attempts,
      fallback,
      strategy: RoutingStrategy.ScatterGather,
      // No decision made (every space without a route): the table's epoch now.
      tableEpoch: tableEpoch === Number.NEGATIVE_INFINITY ? this.table.epoch : tableEpoch,
    };
    return { results, errors, routing };
  }

  /** Closes the pool if the router created it, and detaches from a shared breaker table. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopListening?.();
    if (this.#ownPool && this.#pool !== undefined) await this.#pool.close();
  }

  /** Breaker slot of a node, or -1 when it has none (then it is never refused). */
  slotOf(node: NodeInfo): number {
    this.#sync();
    if (!this.#sharedBreakers) return this.#privateSlot(node);
    const table = this.table;
    const index = table.nodeIndex(node.id);
    if (index < 0) return -1;
    const cached = this.#slotByIndex[index];
    return cached ?? this.#sharedSlot(index, node);
  }

  /**
   * One compare per decision: when the table's epoch moved, recompute the breaker slot of
   * every node, free the private breaker slots of nodes that left, and remove departed nodes
   * from the router's own pool (never from a pool passed in `init.pool`: that one is its
   * owner's to manage). Nodes still present get `addNode` with their current address.
   */
  #sync(): void {
    const table = this.table;
    const epoch = table.epoch;
    if (epoch === this.#epoch) return;
    this.#epoch = epoch;
    const nodes = table.nodes;
    const slots = new Int32Array(nodes.length);
    if (this.#sharedBreakers) {
      for (let i = 0; i < nodes.length; i++) slots[i] = this.#sharedSlot(i, nodes[i]!);
    } else {
      for (const [id, slot] of this.#privateSlots) {
        if (table.nodeIndex(id) >= 0) continue;
        this.#privateSlots.delete(id);
        this.#slotNodes.delete(slot);
        this.#freeSlots.push(slot);
      }
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i]!;
        const slot = this.#privateSlot(node);
        if (slot >= 0 && this.#slotNodes.get(slot) !== node) this.#slotNodes.set(slot, node);
        slots[i] = slot;
      }
    }
    this.#slotByIndex = slots;
    const pool = this.#pool;
    if (this.#ownPool && pool !== undefined && !this.#closed) {
      for (const id of pool.nodeIds()) {
        const index = table.nodeIndex(id);
        if (index < 0) {
          pool.removeNode(id).catch((error: unknown) => {
            this.logger.debug({ err: error, node: id }, 'closing a departed node failed');
          });
          continue;
        }
        const node = nodes[index]!;
        try {
          pool.addNode(node.id, node.address); // no-op unless its address changed
        } catch (error) {
          this.logger.warn({ err: error, node: node.id }, 'pool refused a node address');
        }
      }
    }
  }

  #sharedSlot(index: number, node: NodeInfo): number {
    const slot = this.table.nodeSlot(index);
    if (slot < 0 || slot >= this.breakers.capacity) return -1;
    if (this.#slotNodes.get(slot) !== node) this.#slotNodes.set(slot, node);
    return slot;
  }

  #privateSlot(node: NodeInfo): number {
    const known = this.#privateSlots.get(node.id);
    if (known !== undefined) return known;
    let slot = this.#freeSlots.pop();
    if (slot !== undefined) {
      // A departed node's breaker (maybe open): the newcomer starts closed.
      this.breakers.reset(slot);
    } else if (this.#nextSlot < this.breakers.capacity) {
      slot = this.#nextSlot++;
    } else {
      return -1; // unguarded; asked again once a departed node frees a slot
    }
    this.#privateSlots.set(node.id, slot);
    this.#slotNodes.set(slot, node);
    return slot;
  }

  /** The pool the typed conveniences use (created on first use when none was given). */
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
    return this.#pool;
  }

  #checkSpaceId(spaceId: unknown, field: string): asserts spaceId is string {
    if (
      typeof spaceId !== 'string' ||
      spaceId.length === 0 ||
      spaceId.length > this.options.maxSpaceIdLength
    ) {
      throw new InvalidArgumentError(
        field,
        spaceId,
        `a non-empty string of at most ${this.options.maxSpaceIdLength} characters`,
      );
    }
  }

  #decide(spaceId: string, operation: Operation, fallback: boolean): RoutingDecision {
    const onDecision = this.hooks.onDecision;
    const started = onDecision === undefined ? 0n : process.hrtime.bigint();
    this.#checkSpaceId(spaceId, 'spaceId');
    const table = this.table;
    let count: number;
    try {
      count = table.lookupInto(spaceId, this.#scratch);
      if (count > this.#scratch.length) {
        this.#scratch = new Uint16Array(count);
        count = table.lookupInto(spaceId, this.#scratch);
      }
    } catch (error) {
      throw new NoAssignmentError(spaceId, error);
    }
    if (count === 0) throw new NoAssignmentError(spaceId);
    this.#sync();
    const epoch = this.#epoch;
    const nodes = table.nodes;
    const scratch = this.#scratch;
    const partitioned = this.#partition.isPartitioned();
    let decision: RoutingDecision;
    if (partitioned || operation === Operation.Consolidate) {
      decision = this.#localDecision(spaceId, operation, partitioned, count, nodes, epoch);
    } else {
      const primary = nodes[scratch[0]!]!;
      const replicas = fallback && count > 1 ? this.#orderReplicas(count, nodes) : NO_REPLICAS;
      // A Store is `Primary` whatever the fall-back setting (the spec's strategy table): its
      // replicas are there for `storeFallback` only, and `execute` knows it from the operation.
      const strategy =
        operation === Operation.Query
          ? RoutingStrategy.ScatterGather
          : fallback && operation !== Operation.Store
            ? RoutingStrategy.PrimaryWithFallback
            : RoutingStrategy.Primary;
      decision = { spaceId, primary, replicas, strategy, epoch, operation };
    }
    if (onDecision !== undefined) {
      this.#emit(() =>
        onDecision(operation, decision.strategy, Number(process.hrtime.bigint() - started)),
      );
    }
    return decision;
  }

  /** Replicas in placement order, those with an open breaker moved last (stable). */
  #orderReplicas(count: number, nodes: readonly NodeInfo[]): NodeInfo[] {
    const scratch = this.#scratch;
    const replicas: NodeInfo[] = new Array(count - 1);
    let front = 0;
    let back = count - 2;
    // Open ones fill from the back, so reverse them afterwards to keep their relative order.
    // Slots were synced for this epoch, by node index: no lookup per replica.
    const slots = this.#slotByIndex;
    for (let i = 1; i < count; i++) {
      const index = scratch[i]!;
      const node = nodes[index]!;
      const slot = index < slots.length ? slots[index]! : this.slotOf(node);
      if (slot >= 0 && this.breakers.state(slot) === 'open') replicas[back--] = node;
      else replicas[front++] = node;
    }
    for (let i = front, j = count - 2; i < j; i++, j--) {
      const t = replicas[i]!;
      replicas[i] = replicas[j]!;
      replicas[j] = t;
    }
    return replicas;
  }

  #localDecision(
    spaceId: string,
    operation: Operation,
    partitioned: boolean,
    count: number,
    nodes: readonly NodeInfo[],
    epoch: number,
  ): RoutingDecision {
    const localId = this.#localNodeId;
    if (localId === undefined) {
      if (partitioned) {
        throw new NoLocalDataError(
          spaceId,
          undefined,
          'partitioned and no localNodeId is configured',
        );
      }
      // Consolidation without a local node: the primary alone.
      return {
        spaceId,
        primary: nodes[this.#scratch[0]!]!,
        replicas: NO_REPLICAS,
        strategy: RoutingStrategy.LocalOnly,
        epoch,
        operation,
      };
    }
    const localIndex = this.table.nodeIndex(localId);
    if (localIndex >= 0) {
      const scratch = this.#scratch;
      for (let i = 0; i < count; i++) {
        if (scratch[i] === localIndex) {
          return {
            spaceId,
            primary: nodes[localIndex]!,
            replicas: NO_REPLICAS,
            strategy: RoutingStrategy.LocalOnly,
            epoch,
            operation,
          };
        }
      }
    }
    throw new NoLocalDataError(
      spaceId,
      localId,
      localIndex < 0
        ? `local node ${localId} is not in the table`
        : `local node ${localId} is neither primary nor replica`,
    );
  }

  /**
   * The node's client from the pool. The pool's slot is looked up on every call (one Map
   * lookup), never cached here: the owner of a shared pool may remove and re-add a node, which
   * gives it a new slot. A node the pool does not know (yet, or any more) is registered.
   */
  #client(ctx: CallContext): grpc.Client {
    const node = ctx.node;
    const pool = this.pool;
    const slot = pool.slotOf(node.id);
    if (slot >= 0) {
      try {
        return pool.acquireClient(slot);
      } catch (error) {
        // Removed between slotOf and acquire: register it again below.
        if (!(error instanceof UnknownNodeError)) throw error;
      }
    }
    return pool.acquireClient(this.#register(pool, node));
  }

  #register(pool: ConnectionPool, node: NodeInfo): number {
    try {
      return pool.addNode(node.id, node.address);
    } catch (error) {
      if (isEngramError(error, 'InvalidArgument')) {
        throw new InvalidEndpointError(node.id, node.address, error);
      }
      throw error;
    }
  }

  #unary<Req, Res>(
    ctx: CallContext,
    method: import('@engram/proto').TypedMethodDefinition<Req, Res>,
    request: unknown,
  ): Promise<Res> {
    return unaryCall(this.#client(ctx), method, request, ctx);
  }

  #onBreakerTransition(slot: number, from: string, to: string, reason: string): void {
    const node = this.#slotNodes.get(slot);
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
