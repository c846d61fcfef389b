import { InvalidArgumentError } from './errors.js';
import { hashKey } from './hash-key.js';
import {
  checkInteger,
  duplicateTokenError,
  type ValidatedChange,
  validateChange,
  validateNodes,
  validateNodeTokens,
} from './internal/options.js';
import {
  type BuiltArrays,
  buildArrays,
  compareCodePoints,
  createWalker,
  ROLE_CODES,
  ROLE_NAMES,
  startPosition,
  type Walker,
  zoneNumbersOf,
} from './internal/placement.js';
import {
  futureInto as futurePlacementInto,
  pendingInto as pendingNodesInto,
  type Transition,
} from './internal/transition.js';
import {
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_VNODES_PER_NODE,
  MAX_REPLICATION_FACTOR,
  MAX_RING_TOKENS,
  MAX_VNODES_PER_NODE,
} from './limits.js';
import type {
  NodeInfo,
  NodeRole,
  PendingAssignment,
  Placement,
  PlacementTable,
  SpaceAssignment,
} from './types.js';

export {
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
} from './limits.js';

/** The roles `nodeRole` reports. */
export const NODE_ROLES = Object.freeze({
  normal: 'normal',
  joining: 'joining',
  leaving: 'leaving',
} as const satisfies Record<NodeRole, NodeRole>);

export interface RingOptions {
  /**
   * Cluster members; order does not matter (placement depends only on the set). When they
   * carry `tokens` (all of them), the ring uses exactly those instead of hashed vnodes.
   */
  readonly nodes: readonly NodeInfo[];
  /**
   * Hashed tokens per node. Default `DEFAULT_VNODES_PER_NODE` (8192). Must be absent when
   * the nodes carry explicit `tokens`.
   */
  readonly vnodesPerNode?: number;
  /**
   * Nodes per space, primary included. Default 3. When it exceeds the node count, every
   * space is placed on all nodes (a shrinking cluster keeps routing) and
   * `replicationFactor` on the ring reports the effective value.
   */
  readonly replicationFactor?: number;
  /**
   * Explicit placements that override the ring. Default none. They may not name a joining
   * node, nor a leaving one unless `pendingAssignments` moves the space.
   */
  readonly assignments?: readonly SpaceAssignment[];
  /**
   * Ids of nodes (of `nodes`) receiving their spaces: the current placement is computed as
   * if they were absent, the future one with them. Default none.
   */
  readonly joining?: readonly string[];
  /**
   * Ids of nodes (of `nodes`) handing their spaces over: the current placement keeps them,
   * the future one is computed as if they were absent. Not also joining. Default none.
   */
  readonly leaving?: readonly string[];
  /**
   * Pins that take effect once the change completes, one per space: where a space with or
   * without a current assignment moves to, or `primary: null` to return an assigned space to
   * the ring. They may not name a leaving node. Default none.
   */
  readonly pendingAssignments?: readonly PendingAssignment[];
}

/**
 * Builds a placement ring. Deterministic: the same nodes (in any order), vnodes,
 * replication factor, assignments and change in progress give the same placements in every
 * thread and process. Throws `InvalidArgumentError` (code `InvalidArgument`, with `field`
 * and `value`).
 */
export function buildRing(options: RingOptions): Ring {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  const input = validateNodes(options.nodes);
  const inputTokens = validateNodeTokens(options.nodes);
  // Sorted by id; `inputIndex[i]` is where nodes[i] was given (for errors naming the input).
  const inputIndex = input
    .map((_, i) => i)
    .sort((a, b) => compareCodePoints(input[a]!.id, input[b]!.id));
  const nodes = inputIndex.map((i) => input[i]!);
  if (inputTokens !== null && options.vnodesPerNode !== undefined) {
    throw new InvalidArgumentError(
      'vnodesPerNode',
      options.vnodesPerNode,
      'absent when the nodes carry explicit tokens',
    );
  }
  // 0: no hashed vnodes, the nodes' explicit tokens place them.
  const vnodesPerNode =
    inputTokens === null
      ? checkInteger(
          'vnodesPerNode',
          options.vnodesPerNode ?? DEFAULT_VNODES_PER_NODE,
          1,
          MAX_VNODES_PER_NODE,
        )
      : 0;
  const replicationFactor = checkInteger(
    'replicationFactor',
    options.replicationFactor ?? DEFAULT_REPLICATION_FACTOR,
    1,
    MAX_REPLICATION_FACTOR,
  );
  if (nodes.length * vnodesPerNode > MAX_RING_TOKENS) {
    throw new InvalidArgumentError(
      'vnodesPerNode',
      vnodesPerNode,
      `at most ${Math.floor(MAX_RING_TOKENS / nodes.length)} with ${nodes.length} nodes (${MAX_RING_TOKENS} tokens in all)`,
    );
  }
  const indexOf = new Map<string, number>();
  for (let i = 0; i < nodes.length; i++) indexOf.set(nodes[i]!.id, i);
  const change = validateChange(options, indexOf);

  const zoneOf = zoneNumbersOf(nodes.map((node) => node.zone ?? ''));
  // Joining nodes' tokens are in the arrays but never taken: their vnodes exist already for
  // the future walk, and the current walk passes over them exactly as if they were absent.
  const current = createWalker(zoneOf, change.roles, ROLE_CODES.joining, replicationFactor);
  const explicit =
    inputTokens === null
      ? null
      : {
          tokens: inputIndex.map((i) => inputTokens[i]!),
          duplicate: (a: number, b: number, token: number): never => {
            throw duplicateTokenError(options.nodes, inputIndex[a]!, inputIndex[b]!, token);
          },
        };
  const arrays = buildArrays({
    ids: nodes.map((node) => node.id),
    vnodesPerNode,
    walker: current,
    explicit,
  });
  const future =
    change.joiningCount + change.leavingCount === 0
      ? null
      : createWalker(zoneOf, change.roles, ROLE_CODES.leaving, replicationFactor);
  return new Ring({
    nodes,
    indexOf,
    arrays,
    vnodesPerNode,
    configuredReplicationFactor: replicationFactor,
    stride: current.stride,
    change,
    future,
  });
}

/** @internal What `buildRing` hands the `Ring` constructor. */
export interface RingParts {
  readonly nodes: readonly NodeInfo[];
  readonly indexOf: ReadonlyMap<string, number>;
  readonly arrays: BuiltArrays;
  readonly vnodesPerNode: number;
  readonly configuredReplicationFactor: number;
  /** Current placement size: min(replication factor, nodes not joining). */
  readonly stride: number;
  readonly change: ValidatedChange;
  /** Future ring walker; null when no node joins or leaves. */
  readonly future: Walker | null;
}

/** An immutable placement table built in this thread. */
export class Ring implements PlacementTable {
  readonly epoch = 0;
  readonly nodes: readonly NodeInfo[];
  /** Effective replication factor of the current placement: min(configured, nodes not joining). */
  readonly replicationFactor: number;
  /** The replication factor asked for. */
  readonly configuredReplicationFactor: number;
  /** Hashed vnodes per node; 0 when the nodes carry explicit tokens. */
  readonly vnodesPerNode: number;
  readonly maxPlacementSize: number;
  readonly pending: boolean;
  /** @internal */ readonly arrays: BuiltArrays;
  /** @internal */ readonly assignmentMap: ReadonlyMap<string, Uint16Array>;
  /** @internal Future pins; `null`: back to the ring. */
  readonly pendingPinMap: ReadonlyMap<string, Uint16Array | null>;
  /** @internal `ROLE_CODES` value per node index. */
  readonly roles: Uint8Array;
  readonly #indexOf: ReadonlyMap<string, number>;
  readonly #scratch: Uint16Array;
  readonly #transition: Transition;

  /** @internal Use `buildRing`. */
  constructor(parts: RingParts) {
    const { arrays, change, future, stride } = parts;
    this.nodes = Object.freeze(parts.nodes.slice());
    this.#indexOf = parts.indexOf;
    this.arrays = arrays;
    this.vnodesPerNode = parts.vnodesPerNode;
    this.configuredReplicationFactor = parts.configuredReplicationFactor;
    this.replicationFactor = stride;
    this.assignmentMap = change.assignments;
    this.pendingPinMap = change.pendingPins;
    this.roles = change.roles;
    this.pending = future !== null || change.pendingPins.size !== 0;
    let max = Math.max(stride, future?.stride ?? stride);
    for (const placement of change.assignments.values()) max = Math.max(max, placement.length);
    for (const placement of change.pendingPins.values()) {
      if (placement !== null) max = Math.max(max, placement.length);
    }
    this.maxPlacementSize = max;
    this.#scratch = new Uint16Array(max);
    this.#transition = {
      arrays,
      tokenCount: arrays.tokenCount,
      stride,
      assignments: change.assignments,
      pendingPins: change.pendingPins,
      future,
      shared: false,
      scratch: [new Uint16Array(max), new Uint16Array(max), new Uint16Array(max)],
    };
  }

  /** Number of vnode tokens on the ring (joining nodes' included). */
  get tokenCount(): number {
    return this.arrays.tokenCount;
  }

  /** The explicit assignments, as given (validated). */
  get assignments(): SpaceAssignment[] {
    const out: SpaceAssignment[] = [];
    for (const [spaceId, placement] of this.assignmentMap) {
      out.push(this.#pin(spaceId, placement));
    }
    return out;
  }

  /** The pending assignments, as given (validated). */
  get pendingAssignments(): PendingAssignment[] {
    const out: PendingAssignment[] = [];
    for (const [spaceId, placement] of this.pendingPinMap) {
      out.push(placement === null ? { spaceId, primary: null } : this.#pin(spaceId, placement));
    }
    return out;
  }

  /** Ids of the joining nodes, in node order. */
  get joining(): string[] {
    return this.#withRole(ROLE_CODES.joining);
  }

  /** Ids of the leaving nodes, in node order. */
  get leaving(): string[] {
    return this.#withRole(ROLE_CODES.leaving);
  }

  nodeIndex(nodeId: string): number {
    return this.#indexOf.get(nodeId) ?? -1;
  }

  nodeSlot(index: number): number {
    return index;
  }

  nodeRole(index: number): NodeRole | undefined {
    const code = this.roles[index];
    return code === undefined ? undefined : ROLE_NAMES[code];
  }

  lookupInto(spaceId: string, out: Uint16Array): number {
    const token = hashKey(spaceId);
    if (this.assignmentMap.size !== 0) {
      const assigned = this.assignmentMap.get(spaceId);
      if (assigned !== undefined) return copyPlacement(assigned, 0, assigned.length, out);
    }
    const start = startPosition(this.arrays, this.arrays.tokenCount, token);
    const stride = this.replicationFactor;
    return copyPlacement(this.arrays.rows, start * stride, stride, out);
  }

  futureInto(spaceId: string, out: Uint16Array): number {
    if (!this.pending) return this.lookupInto(spaceId, out);
    return futurePlacementInto(this.#transition, spaceId, hashKey(spaceId), out);
  }

  pendingInto(spaceId: string, out: Uint16Array): number {
    if (!this.pending) return 0;
    return pendingNodesInto(this.#transition, spaceId, hashKey(spaceId), out);
  }

  lookup(spaceId: string): Placement {
    const count = this.lookupInto(spaceId, this.#scratch);
    return toPlacement(this.nodes, this.#scratch, count);
  }

  lookupFuture(spaceId: string): Placement {
    const count = this.futureInto(spaceId, this.#scratch);
    return toPlacement(this.nodes, this.#scratch, count);
  }

  #pin(spaceId: string, placement: Uint16Array): SpaceAssignment {
    const ids = Array.from(placement, (index) => this.nodes[index]!.id);
    return { spaceId, primary: ids[0]!, replicas: ids.slice(1) };
  }

  #withRole(role: number): string[] {
    const ids: string[] = [];
    for (let i = 0; i < this.roles.length; i++)
      if (this.roles[i] === role) ids.push(this.nodes[i]!.id);
    return ids;
  }
}

function copyPlacement(source: Uint16Array, from: number, count: number, out: Uint16Array): number {
  const n = Math.min(count, out.length);
  for (let i = 0; i < n; i++) out[i] = source[from + i]!;
  return count;
}

/** @internal */
export function toPlacement(
  nodes: readonly NodeInfo[],
  indexes: Uint16Array,
  count: number,
): Placement {
  const replicas: NodeInfo[] = [];
  for (let i = 1; i < count; i++) replicas.push(nodes[indexes[i]!]!);
  return { primary: nodes[indexes[0]!]!, replicas };
}
