import type { BreakerTable } from '@engram/breaker';
import type { Random } from '@engram/retry';
import type { NodeInfo, PlacementTable } from '@engram/ring';
import type { BreakerSlots } from './breaker-slots.js';
import { InvalidArgumentError, NoAssignmentError, NoLocalDataError } from './errors.js';
import { LagTable } from './lag.js';
import {
  LATENCY_EXPLORE,
  LATENCY_FACTOR,
  LATENCY_FLOOR_MS,
  type OutstandingAttempts,
} from './read-balance.js';
import {
  NodeState,
  type NodeStates,
  Operation,
  type PartitionState,
  type RoutingDecision,
  RoutingStrategy,
} from './types.js';

const NO_NODES: readonly NodeInfo[] = Object.freeze([]);
/** Scratch for placements; grown when a table answers more (explicit assignments). */
const INITIAL_SCRATCH = 16;

/** Target ranks: lower is tried first; DRAINING is left out while any node is up. */
const RANK_UP = 0;
const RANK_UP_BEHIND = 1;
const RANK_UP_OPEN = 2;
const RANK_DOWN = 3;
const RANK_DRAINING = 4;

export interface DeciderInit {
  readonly table: PlacementTable;
  readonly slots: BreakerSlots;
  readonly breakers: BreakerTable;
  readonly partition: PartitionState;
  readonly nodeStates: NodeStates | undefined;
  readonly localNodeId: string | undefined;
  readonly maxSpaceIdLength: number;
  /** Stores go to every replica (`Replicated`) rather than to the primary. */
  readonly replicateWrites: boolean;
  /** Which replicas lack acknowledged writes: reads prefer the others. */
  readonly lag: LagTable | undefined;
  /** Least-request reads: attempts in flight per slot; undefined = placement order. */
  readonly outstanding: OutstandingAttempts | undefined;
  /** Attempts in flight the first choice may have beyond the other before a read moves. */
  readonly balanceThreshold: number;
  /** Picks the other choice of a least-request read, and draws slow-start admissions. */
  readonly random: Random;
}

/**
 * Routing decisions: which nodes an operation on a space goes to, in which order. Pure
 * reads of the placement table, the breakers, the node states and the partition flag; no I/O.
 *
 * Target order (when the strategy allows fall-back): the placement's nodes ranked by
 * (1) up (replicas with a closed or half-open breaker; the primary whatever its breaker, which
 * refuses it without a call when open), (2) for reads, up replicas known to lack an
 * acknowledged write of the space (LagTable), (3) up replicas with an open breaker and up nodes
 * the outlier detector ejected (NodeStates.isEjected: the primary too; still reachable), (4) down;
 * draining nodes get no new calls while any node is up. Within a rank, placement order. When
 * no node is up, placement order as is (health checks lag; a call may still succeed). Without
 * fall-back the placement's primary is the only target, whatever its state.
 *
 * Reads only, among the nodes of rank (1), one may move to the front (#readLead): a node in
 * slow start (NodeStates.warmth) leads only with the probability of its share, else the next
 * up node does; with least-request balancing, the lead gives way to another up node picked at
 * random when it has more than `balanceThreshold` attempts in flight beyond it. Every other
 * node keeps its place, so lagging, open, down and draining nodes keep their ranks.
 *
 * Stores with `replicateWrites` go to the whole placement (plus the pending owners of a space
 * being moved). While the router is partitioned (a minority of nodes up) without a
 * `localNodeId`, a space is served by its reachable replicas and the decision is `degraded`;
 * a space with none up fails at once with NoLocalData. With a `localNodeId` the seed's
 * LocalOnly rule holds.
 */
export class Decider {
  readonly #table: PlacementTable;
  readonly #slots: BreakerSlots;
  readonly #breakers: BreakerTable;
  readonly #partition: PartitionState;
  readonly #nodeStates: NodeStates | undefined;
  readonly #localNodeId: string | undefined;
  readonly #maxSpaceIdLength: number;
  readonly #replicateWrites: boolean;
  readonly #lag: LagTable | undefined;
  #scratch: Uint16Array;
  readonly #pendingScratch: Uint16Array;
  /** Set by #order: some node of the placement it ranked is up. */
  #anyUp = true;
  /** Rank per placement position (reused). */
  #ranks = new Uint8Array(INITIAL_SCRATCH);
  /** Breaker slot per placement position (reused; set by #order). */
  #posSlots = new Int32Array(INITIAL_SCRATCH);
  /** Positions of the rank-(1) nodes of a read, in placement order (reused). */
  #upPositions = new Uint16Array(INITIAL_SCRATCH);
  readonly #outstanding: OutstandingAttempts | undefined;
  readonly #balanceThreshold: number;
  readonly #random: Random;
  /** The node states answer `warmth` (slow start). */
  readonly #warmth: boolean;
  /** Least-request or slow start is on: reads may move a node to the front. */
  readonly #choosing: boolean;

  constructor(init: DeciderInit) {
    this.#table = init.table;
    this.#slots = init.slots;
    this.#breakers = init.breakers;
    this.#partition = init.partition;
    this.#nodeStates = init.nodeStates;
    this.#localNodeId = init.localNodeId;
    this.#maxSpaceIdLength = init.maxSpaceIdLength;
    this.#replicateWrites = init.replicateWrites;
    this.#lag = init.lag;
    this.#outstanding = init.outstanding;
    this.#balanceThreshold = init.balanceThreshold;
    this.#random = init.random;
    this.#warmth = typeof init.nodeStates?.warmth === 'function';
    this.#choosing = this.#outstanding !== undefined || this.#warmth;
    this.#pendingScratch = new Uint16Array(Math.max(INITIAL_SCRATCH, init.table.maxPlacementSize));
    this.#scratch = new Uint16Array(Math.max(INITIAL_SCRATCH, init.table.maxPlacementSize));
  }

  /** Throws InvalidArgument unless `spaceId` is a space id this router accepts. */
  checkSpaceId(spaceId: unknown, field: string): asserts spaceId is string {
    if (
      typeof spaceId !== 'string' ||
      spaceId.length === 0 ||
      spaceId.length > this.#maxSpaceIdLength
    ) {
      throw new InvalidArgumentError(
        field,
        spaceId,
        `a non-empty string of at most ${this.#maxSpaceIdLength} characters`,
      );
    }
  }

  /** The decision for one operation on one space; `fallback`: replicas may serve. */
  decide(spaceId: string, operation: Operation, fallback: boolean): RoutingDecision {
    this.checkSpaceId(spaceId, 'spaceId');
    const table = this.#table;
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
    this.#slots.sync();
    const epoch = this.#slots.epoch;
    const nodes = table.nodes;
    const partitioned = this.#partition.isPartitioned();
    const localId = this.#localNodeId;
    if (localId !== undefined && (partitioned || operation === Operation.Consolidate)) {
      return this.#localDecision(spaceId, operation, localId, count, nodes, epoch);
    }
    const scratch = this.#scratch;
    const placement: NodeInfo[] = new Array(count);
    for (let i = 0; i < count; i++) placement[i] = nodes[scratch[i]!]!;
    const isRead = operation === Operation.Recall || operation === Operation.Query;
    const replicated = operation === Operation.Store && this.#replicateWrites;
    // Rank every placement when it may matter: fall-back, a partition (which replica is
    // reachable), consolidation (the first up node runs it).
    const ranked =
      (fallback && count > 1) || partitioned || operation === Operation.Consolidate
        ? this.#order(placement, count, isRead ? LagTable.bucketOf(spaceId) : -1)
        : placement;
    if (partitioned && !this.#anyUp) {
      throw new NoLocalDataError(spaceId, undefined, 'no replica of the space is reachable');
    }
    const pending = replicated && table.pending ? this.#pending(spaceId, nodes) : NO_NODES;
    if (replicated) {
      return {
        spaceId,
        primary: placement[0]!,
        replicas: placement.slice(1),
        placement,
        pending,
        degraded: partitioned,
        strategy: RoutingStrategy.Replicated,
        epoch,
        operation,
      };
    }
    if (operation === Operation.Consolidate) {
      // One node consolidates (the first up one); the replicas converge by repair after it.
      return { ...local(spaceId, ranked[0]!, operation, epoch), placement, degraded: partitioned };
    }
    // A Store is `Primary` whatever the fall-back setting (the spec's strategy table): its
    // replicas are there for `storeFallback` only, and `execute` knows it from the operation.
    const strategy =
      operation === Operation.Query
        ? RoutingStrategy.ScatterGather
        : fallback && operation !== Operation.Store
          ? RoutingStrategy.PrimaryWithFallback
          : RoutingStrategy.Primary;
    const degraded = partitioned;
    if (!fallback || count === 1) {
      return {
        spaceId,
        primary: placement[0]!,
        replicas: NO_NODES,
        placement,
        pending,
        degraded,
        strategy,
        epoch,
        operation,
      };
    }
    return {
      spaceId,
      primary: ranked[0]!,
      replicas: ranked.slice(1),
      placement,
      pending,
      degraded,
      strategy,
      epoch,
      operation,
    };
  }

  /** Write-only owners of a space while a membership change moves it (see PlacementTable). */
  #pending(spaceId: string, nodes: readonly NodeInfo[]): readonly NodeInfo[] {
    const out = this.#pendingScratch;
    const n = this.#table.pendingInto(spaceId, out);
    if (n === 0) return NO_NODES;
    const pending: NodeInfo[] = new Array(Math.min(n, out.length));
    for (let i = 0; i < pending.length; i++) pending[i] = nodes[out[i]!]!;
    return pending;
  }

  /**
   * The placement ranked as the class comment says; `placement` itself when nothing moves.
   * `bucket` ≥ 0 for reads: a replica known to lack an acknowledged write of the space's bucket
   * (LagTable) goes behind the up ones that do not, and #readLead may put another up node first.
   * Sets `#anyUp`.
   */
  #order(placement: NodeInfo[], count: number, bucket: number): NodeInfo[] {
    if (this.#ranks.length < count) {
      this.#ranks = new Uint8Array(count);
      this.#posSlots = new Int32Array(count);
      this.#upPositions = new Uint16Array(count);
    }
    const ranks = this.#ranks;
    const posSlots = this.#posSlots;
    const scratch = this.#scratch;
    const slots = this.#slots.byIndex;
    const states = this.#nodeStates;
    const breakers = this.#breakers;
    const lag = bucket >= 0 && this.#lag?.any === true ? this.#lag : undefined;
    const ejected = states?.isEjected !== undefined;
    let anyUp = false;
    let sorted = true;
    let ups = 0;
    for (let i = 0; i < count; i++) {
      const index = scratch[i]!;
      const node = placement[i]!;
      const slot = index < slots.length ? slots[index]! : this.#slots.slotOf(node);
      posSlots[i] = slot;
      const state = states === undefined ? NodeState.Up : states.stateOf(node, slot);
      let rank: number;
      if (state === NodeState.Up) {
        anyUp = true;
        if (ejected && states!.isEjected!(node, slot)) rank = RANK_UP_OPEN;
        else if (lag?.isBehind(slot, bucket)) rank = RANK_UP_BEHIND;
        // The primary keeps its place: its own breaker refuses it without a call when open.
        else if (i > 0 && slot >= 0 && breakers.state(slot) === 'open') rank = RANK_UP_OPEN;
        else {
          rank = RANK_UP;
          this.#upPositions[ups++] = i;
        }
      } else {
        rank = state === NodeState.Draining ? RANK_DRAINING : RANK_DOWN;
      }
      ranks[i] = rank;
      if (i > 0 && rank < ranks[i - 1]!) sorted = false;
    }
    this.#anyUp = anyUp;
    if (!anyUp) return placement;
    const lead = bucket >= 0 && ups > 1 && this.#choosing ? this.#readLead(placement, ups) : -1;
    if (lead < 0 && sorted && ranks[count - 1] !== RANK_DRAINING) return placement;
    const out: NodeInfo[] = [];
    if (lead >= 0) out.push(placement[lead]!);
    for (let rank = RANK_UP; rank < RANK_DRAINING; rank++) {
      for (let i = 0; i < count; i++) if (ranks[i] === rank && i !== lead) out.push(placement[i]!);
    }
    return out;
  }

  /**
   * Of a read's `ups` (≥ 2) up nodes (`#upPositions`, placement order): the placement position
   * of the one to try first, or -1 when it is the first of them (nothing moves). Slow start
   * first: the first up node whose warmth admits it leads (all warming and none admitted: the
   * first). Then least-request: the lead gives way to another up node, picked at random, that
   * has more than the threshold fewer attempts in flight (and that its own warmth admits).
   * Allocates nothing; draws a random number only for a warming node or a loaded lead.
   */
  #readLead(placement: readonly NodeInfo[], ups: number): number {
    const up = this.#upPositions;
    const posSlots = this.#posSlots;
    let lead = 0;
    if (this.#warmth) {
      for (let j = 0; j < ups; j++) {
        if (this.#admits(placement, up[j]!)) {
          lead = j;
          break;
        }
      }
    }
    const outstanding = this.#outstanding;
    if (outstanding !== undefined) {
      const threshold = this.#balanceThreshold;
      const leadSlot = posSlots[up[lead]!]!;
      const load = outstanding.of(leadSlot);
      const latency = outstanding.latencyOf(leadSlot);
      if (load > threshold || latency > LATENCY_FLOOR_MS) {
        // The other choice: uniform over the other up nodes.
        const k = ups === 2 ? 1 : 1 + Math.floor(this.#random() * (ups - 1));
        const other = (lead + Math.min(k, ups - 1)) % ups;
        const position = up[other]!;
        const otherSlot = posSlots[position]!;
        const otherLatency = outstanding.latencyOf(otherSlot);
        const busier = load - outstanding.of(otherSlot) > threshold;
        // Slower: the other has answered, much faster; one read in LATENCY_EXPLORE stays.
        const slower =
          otherLatency > 0 &&
          latency > LATENCY_FACTOR * otherLatency &&
          latency - otherLatency >= LATENCY_FLOOR_MS &&
          this.#random() * LATENCY_EXPLORE >= 1;
        if ((busier || slower) && (!this.#warmth || this.#admits(placement, position))) {
          lead = other;
        }
      }
    }
    return lead === 0 ? -1 : up[lead]!;
  }

  /** Slow start: true with the probability of the node's warmth (always when fully warm). */
  #admits(placement: readonly NodeInfo[], position: number): boolean {
    const share = this.#nodeStates!.warmth!(placement[position]!, this.#posSlots[position]!);
    return share >= 1 || this.#random() < share;
  }

  /** LocalOnly (a router beside a node, `localNodeId`): the local node when it holds the space. */
  #localDecision(
    spaceId: string,
    operation: Operation,
    localId: string,
    count: number,
    nodes: readonly NodeInfo[],
    epoch: number,
  ): RoutingDecision {
    const localIndex = this.#table.nodeIndex(localId);
    if (localIndex >= 0) {
      const scratch = this.#scratch;
      for (let i = 0; i < count; i++) {
        if (scratch[i] === localIndex) {
          return local(spaceId, nodes[localIndex]!, operation, epoch);
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
}

function local(
  spaceId: string,
  node: NodeInfo,
  operation: Operation,
  epoch: number,
): RoutingDecision {
  return oneNode(node, spaceId, epoch, operation, RoutingStrategy.LocalOnly);
}

function oneNode(
  node: NodeInfo,
  spaceId: string,
  epoch: number,
  operation: Operation,
  strategy: RoutingStrategy,
): RoutingDecision {
  return {
    spaceId,
    primary: node,
    replicas: NO_NODES,
    placement: [node],
    pending: NO_NODES,
    strategy,
    epoch,
    operation,
  };
}

/**
 * A decision for one given node, no fall-back: one replica of a replicated write or a quorum
 * read, a hint replay. Its `fallback` is always false (the node is its own placement).
 */
export function singleNodeDecision(
  node: NodeInfo,
  spaceId: string,
  epoch: number,
  operation: Operation,
): RoutingDecision {
  return oneNode(node, spaceId, epoch, operation, RoutingStrategy.Primary);
}
