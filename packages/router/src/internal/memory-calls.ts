import { randomUUID } from 'node:crypto';
import { isEngramError } from '@engram/common';
import { type ConnectionPool, UnknownNodeError } from '@engram/pool';
import {
  type ConsolidateRequest,
  type Init,
  MemoryServiceDefinition,
  type QueryRequest,
  type RecallRequest,
  type StoreRequest,
  type TypedMethodDefinition,
} from '@engram/proto';
import { Deadline } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, InvalidEndpointError } from './errors.js';
import { copyExecuteOptions } from './execute-options.js';
import { validateExecuteOptions } from './options.js';
import { RECALL_MERGE, singleSpaceQueryMerge } from './recall-merge.js';
import type { Router } from './router.js';
import { gather, type SpaceAnswer } from './scatter-gather.js';
import type {
  CallContext,
  ConsolidateResult,
  ExecuteOptions,
  QueryResult,
  RecallResult,
  Routed,
  StoreResult,
} from './types.js';
import { RoutingStrategy } from './types.js';
import { unaryCall } from './unary.js';
import { VersionClock } from './version-clock.js';

/**
 * The typed MemoryService calls of a Router (`router.store`, `recall`, `consolidate`,
 * `query`): grpc-js clients from the router's pool, decisions and execution from the router.
 * Stores are replicated (and their misses hinted) when the router's `replicateWrites` is on;
 * reads ask a quorum when its `readConsistency` is 'quorum'.
 */
export class MemoryCalls {
  readonly #router: Router;
  readonly #versions = new VersionClock();

  constructor(router: Router) {
    this.#router = router;
  }

  async store(request: Init<StoreRequest>, options?: ExecuteOptions): Promise<StoreResult> {
    const router = this.#router;
    const decision = router.routeStore(request.spaceId as string);
    const stamped = this.#stamp(request);
    const call = (ctx: CallContext) => this.#unary(ctx, MemoryServiceDefinition.Store, stamped);
    const { value, routing } =
      decision.strategy === RoutingStrategy.Replicated
        ? await router.replicate(decision, call, options)
        : await router.execute(decision, call, options);
    return Object.assign(value, { routing });
  }

  async recall(request: Init<RecallRequest>, options?: ExecuteOptions): Promise<RecallResult> {
    const router = this.#router;
    const decision = router.routeRecall(request.spaceId as string);
    const call = (ctx: CallContext) => this.#unary(ctx, MemoryServiceDefinition.Recall, request);
    const { value, routing } = this.#router.readsQuorum(decision)
      ? await router.readQuorum(decision, call, RECALL_MERGE, options)
      : await router.execute(decision, call, options);
    return Object.assign(value, { routing });
  }

  /**
   * Consolidate on one node (see routeConsolidation); no attempt timeout by default. With
   * replicated writes, the merges are then copied to the other replicas by a repair of the
   * space (`router.repairSpace`), so the replicas agree afterwards.
   */
  async consolidate(
    request: Init<ConsolidateRequest>,
    options?: ExecuteOptions,
  ): Promise<ConsolidateResult> {
    const router = this.#router;
    const decision = router.routeConsolidation(request.spaceId as string);
    const stamped =
      request.version === undefined || request.version === 0
        ? { ...request, version: this.#versions.next() }
        : request;
    const perCall = copyExecuteOptions(options ?? {});
    perCall.attemptTimeoutMs = options?.attemptTimeoutMs ?? Number.POSITIVE_INFINITY;
    const { value, routing } = await router.execute(
      decision,
      (ctx) => this.#unary(ctx, MemoryServiceDefinition.Consolidate, stamped),
      perCall,
    );
    if (router.options.replicateWrites && decision.placement.length > 1) {
      await router.repairSpace(decision.spaceId, options);
    }
    return Object.assign(value, { routing });
  }

  /**
   * Scatter-gather: each distinct space to its own decision, all in parallel under one
   * deadline. A space that fails (no route, every replica down, deadline) becomes an entry
   * in `errors` with its gRPC status; the others' results are returned (see `gather`).
   * Throws only for a malformed request (InvalidArgument).
   */
  async query(request: Init<QueryRequest>, options: ExecuteOptions = {}): Promise<QueryResult> {
    const router: Router = this.#router;
    const spaceIds = request.spaceIds;
    if (!Array.isArray(spaceIds)) {
      throw new InvalidArgumentError('request.spaceIds', spaceIds, 'an array of space ids');
    }
    validateExecuteOptions(options);
    const unique = [...new Set(spaceIds as readonly string[])];
    for (const spaceId of unique) router.checkSpaceId(spaceId, 'request.spaceIds[]');
    const deadline =
      options.deadline ??
      Deadline.after(options.deadlineMs ?? router.options.deadlineMs, router.clock);
    const perSpace: ExecuteOptions = {
      ...options,
      deadline,
      operation: options.operation ?? 'query',
    };
    const epochs: number[] = [];
    const settled = await Promise.allSettled(
      unique.map(async (spaceId): Promise<Routed<SpaceAnswer>> => {
        // async: a space without a route (NoLocalData, NoAssignment) becomes that space's error.
        const decision = router.routeDistributedQuery([spaceId])[0]!;
        epochs.push(decision.epoch);
        const sub: Init<QueryRequest> = {
          spaceIds: [spaceId],
          cue: request.cue ?? null,
          limit: request.limit ?? 0,
        };
        const call = (ctx: CallContext) => this.#unary(ctx, MemoryServiceDefinition.Query, sub);
        return this.#router.readsQuorum(decision)
          ? router.readQuorum(decision, call, singleSpaceQueryMerge, perSpace)
          : router.execute(decision, call, perSpace);
      }),
    );
    return gather(unique, settled, epochs, router.table.epoch);
  }

  /** A unary call of `method` to the attempt's node. */
  unary<Req, Res>(
    ctx: CallContext,
    method: TypedMethodDefinition<Req, Res>,
    request: unknown,
  ): Promise<Res> {
    return this.#unary(ctx, method, request);
  }

  /**
   * Gives the memory an id, a version and a creation time when it has none, once, before the
   * first attempt: every retry, fail-over, replica and hint carries the same ones, so a node
   * that applied the write already overwrites it with itself (nodes apply last-write-wins by
   * version) and replicas hold byte-identical copies (a node stamping its own "now" would not).
   */
  #stamp(request: Init<StoreRequest>): Init<StoreRequest> {
    const memory = request.memory;
    if (typeof memory !== 'object' || memory === null) return request;
    const needsId =
      this.#router.options.assignMemoryIds && (memory.id === undefined || memory.id === '');
    const needsVersion = memory.version === undefined || memory.version === 0;
    const needsCreatedAt = memory.createdAtMs === undefined || Number(memory.createdAtMs) === 0;
    if (!needsId && !needsVersion && !needsCreatedAt) return request;
    const version = this.#versions.next();
    return {
      ...request,
      memory: {
        ...memory,
        ...(needsId ? { id: randomUUID() } : {}),
        ...(needsVersion ? { version } : {}),
        ...(needsCreatedAt ? { createdAtMs: Math.floor(version / 1000) } : {}),
      },
    };
  }

  #unary<Req, Res>(
    ctx: CallContext,
    method: TypedMethodDefinition<Req, Res>,
    request: unknown,
  ): Promise<Res> {
    return unaryCall(this.#client(ctx.node), method, request, ctx);
  }

  /**
   * The node's client from the pool. The pool's slot is looked up on every call (one Map
   * lookup), never cached here: the owner of a shared pool may remove and re-add a node, which
   * gives it a new slot. A node the pool does not know (yet, or any more) is registered.
   */
  #client(node: NodeInfo): grpc.Client {
    const pool = this.#router.pool;
    const slot = pool.slotOf(node.id);
    if (slot >= 0) {
      try {
        return pool.acquireClient(slot);
      } catch (error) {
        // Removed between slotOf and acquire: register it again below.
        if (!(error instanceof UnknownNodeError)) throw error;
      }
    }
    return pool.acquireClient(register(pool, node));
  }
}

function register(pool: ConnectionPool, node: NodeInfo): number {
  try {
    return pool.addNode(node.id, node.address);
  } catch (error) {
    if (isEngramError(error, 'InvalidArgument')) {
      throw new InvalidEndpointError(node.id, node.address, error);
    }
    throw error;
  }
}
