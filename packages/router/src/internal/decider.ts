import type { BreakerTable } from '@engram/breaker';
import type { NodeInfo, PlacementTable } from '@engram/ring';
import type { BreakerSlots } from './breaker-slots.js';
import { InvalidArgumentError, NoAssignmentError, NoLocalDataError } from './errors.js';
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
const RANK_UP_OPEN = 1;
const RANK_DOWN = 2;
const RANK_DRAINING = 3;

export interface DeciderInit {
  readonly table: PlacementTable;
  readonly slots: BreakerSlots;
  readonly breakers: BreakerTable;
  readonly partition: PartitionState;
  readonly nodeStates: NodeStates | undefined;
  readonly localNodeId: string | undefined;
  readonly maxSpaceIdLength: number;
}

/**
 * Routing decisions: which nodes an operation on a space goes to, in which order. Pure
 * reads of the placement table, the breakers, the node states and the partition flag; no I/O.
 *
 * Target order (when the strategy allows fall-back): the placement's nodes ranked by
 * (1) up (replicas with a closed or half-open breaker; the primary whatever its breaker, which
 * refuses it without a call when open), (2) up replicas with an open breaker, (3) down;
 * draining nodes get no new calls while any node is up. Within a rank, placement order. When no node is
 * up, placement order as is (health checks lag; a call may still succeed). Without fall-back
 * the placement's primary is the only target, whatever its state.
 */
export class Decider {
  readonly #table: PlacementTable;
  readonly #slots: BreakerSlots;
  readonly #breakers: BreakerTable;
  readonly #partition: PartitionState;
  readonly #nodeStates: NodeStates | undefined;
  readonly #localNodeId: string | undefined;
  readonly #maxSpaceIdLength: number;
  #scratch: Uint16Array;
  /** Rank per placement position (reused). */
  #ranks = new Uint8Array(INITIAL_SCRATCH);

  constructor(init: DeciderInit) {
    this.#table = init.table;
    this.#slots = init.slots;
    this.#breakers = init.breakers;
    this.#partition = init.partition;
    this.#nodeStates = init.nodeStates;
    this.#localNodeId = init.localNodeId;
    this.#maxSpaceIdLength = init.maxSpaceIdLength;
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
    if (partitioned || operation === Operation.Consolidate) {
      return this.#localDecision(spaceId, operation, partitioned, count, nodes, epoch);
    }
    const scratch = this.#scratch;
    const placement: NodeInfo[] = new Array(count);
    for (let i = 0; i < count; i++) placement[i] = nodes[scratch[i]!]!;
    // A Store is `Primary` whatever the fall-back setting (the spec's strategy table): its
    // replicas are there for `storeFallback` only, and `execute` knows it from the operation.
    const strategy =
      operation === Operation.Query
        ? RoutingStrategy.ScatterGather
        : fallback && operation !== Operation.Store
          ? RoutingStrategy.PrimaryWithFallback
          : RoutingStrategy.Primary;
    if (!fallback || count === 1) {
      return {
        spaceId,
        primary: placement[0]!,
        replicas: NO_NODES,
        placement,
        strategy,
        epoch,
        operation,
      };
    }
    const targets = this.#order(placement, count);
    return {
      spaceId,
      primary: targets[0]!,
      replicas: targets.slice(1),
      placement,
      strategy,
      epoch,
      operation,
    };
  }

  /** The placement ranked as the class comment says; `placement` itself when nothing moves. */
  #order(placement: NodeInfo[], count: number): NodeInfo[] {
    if (this.#ranks.length < count) this.#ranks = new Uint8Array(count);
    const ranks = this.#ranks;
    const scratch = this.#scratch;
    const slots = this.#slots.byIndex;
    const states = this.#nodeStates;
    const breakers = this.#breakers;
    let anyUp = false;
    let sorted = true;
    for (let i = 0; i < count; i++) {
      const index = scratch[i]!;
      const node = placement[i]!;
      const slot = index < slots.length ? slots[index]! : this.#slots.slotOf(node);
      const state = states === undefined ? NodeState.Up : states.stateOf(node, slot);
      let rank: number;
      if (state === NodeState.Up) {
        anyUp = true;
        // The primary keeps its place: its own breaker refuses it without a call when open.
        rank = i > 0 && slot >= 0 && breakers.state(slot) === 'open' ? RANK_UP_OPEN : RANK_UP;
      } else {
        rank = state === NodeState.Draining ? RANK_DRAINING : RANK_DOWN;
      }
      ranks[i] = rank;
      if (i > 0 && rank < ranks[i - 1]!) sorted = false;
    }
    if (!anyUp) return placement;
    if (sorted && ranks[count - 1] !== RANK_DRAINING) return placement;
    const out: NodeInfo[] = [];
    for (let rank = RANK_UP; rank < RANK_DRAINING; rank++) {
      for (let i = 0; i < count; i++) if (ranks[i] === rank) out.push(placement[i]!);
    }
    return out;
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
      const primary = nodes[this.#scratch[0]!]!;
      return local(spaceId, primary, operation, epoch);
    }
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
  return {
    spaceId,
    primary: node,
    replicas: NO_NODES,
    placement: [node],
    strategy: RoutingStrategy.LocalOnly,
    epoch,
    operation,
  };
}
