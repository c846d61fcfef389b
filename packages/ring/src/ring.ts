import { parseAddress } from '@engram/common';
import { InvalidArgumentError } from './errors.js';
import { hashKey } from './hash-key.js';
import {
  type BuiltArrays,
  buildArrays,
  compareCodePoints,
  createWalker,
  ROLE_CODES,
  startPosition,
} from './internal/placement.js';
import type { NodeInfo, Placement, PlacementTable, SpaceAssignment } from './types.js';

/**
 * Virtual nodes per node by default. A node's share of the ring is the sum of the gaps in
 * front of its tokens, so with random tokens its spread is about 1/sqrt(vnodes). At 100
 * nodes that leaves the busiest node ~11 % over the mean at 256 vnodes, ~5 % at 2048 and
 * ~4 % at 4096 (over 1.05 in about half of random clusters); 8192 keeps it near 1.02–1.03
 * of owned token space, within the 1.05 target with 1M keys' sampling noise on top
 * (bench/index.ts). Costs 10 bytes per token per table: 8 MB at 100 nodes. Clusters of
 * many hundreds of nodes may choose fewer when they are first set up (changing it later
 * moves data).
 */
export const DEFAULT_VNODES_PER_NODE = 8192;
export const DEFAULT_REPLICATION_FACTOR = 3;
/** Node indexes are 16-bit in the shared table. */
export const MAX_NODES = 65_535;
export const MAX_VNODES_PER_NODE = 65_536;
export const MAX_REPLICATION_FACTOR = 16;
/** Guards memory on build: 2^24 tokens already take ~200 MB of scratch while building. */
export const MAX_RING_TOKENS = 1 << 24;
export const MAX_NODE_ID_LENGTH = 256;
export const MAX_ZONE_LENGTH = 256;
/** Space ids longer than this are rejected by assignments (and by the router). */
export const MAX_SPACE_ID_LENGTH = 1024;

export interface RingOptions {
  /** Cluster members; order does not matter (placement depends only on the set). */
  readonly nodes: readonly NodeInfo[];
  /** Tokens per node. Default `DEFAULT_VNODES_PER_NODE` (8192). */
  readonly vnodesPerNode?: number;
  /**
   * Nodes per space, primary included. Default 3. When it exceeds the node count, every
   * space is placed on all nodes (a shrinking cluster keeps routing) and
   * `replicationFactor` on the ring reports the effective value.
   */
  readonly replicationFactor?: number;
  /** Explicit placements that override the ring. Default none. */
  readonly assignments?: readonly SpaceAssignment[];
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function checkSpaceId(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_SPACE_ID_LENGTH) {
    throw new InvalidArgumentError(
      field,
      value,
      `a non-empty string of at most ${MAX_SPACE_ID_LENGTH} characters`,
    );
  }
  return value;
}

function validateNodes(nodes: unknown): NodeInfo[] {
  if (!Array.isArray(nodes)) throw new InvalidArgumentError('nodes', nodes, 'an array');
  if (nodes.length === 0) throw new InvalidArgumentError('nodes', nodes, 'a non-empty array');
  if (nodes.length > MAX_NODES) {
    throw new InvalidArgumentError('nodes', nodes.length, `an array of at most ${MAX_NODES} nodes`);
  }
  const seen = new Set<string>();
  const out: NodeInfo[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const node: unknown = nodes[i];
    if (typeof node !== 'object' || node === null) {
      throw new InvalidArgumentError(`nodes[${i}]`, node, 'an object');
    }
    const { id, address, zone } = node as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_NODE_ID_LENGTH) {
      throw new InvalidArgumentError(
        `nodes[${i}].id`,
        id,
        `a non-empty string of at most ${MAX_NODE_ID_LENGTH} characters`,
      );
    }
    if (seen.has(id))
      throw new InvalidArgumentError(`nodes[${i}].id`, id, 'unique among the nodes');
    seen.add(id);
    parseAddress(address, `nodes[${i}].address`);
    if (zone !== undefined && (typeof zone !== 'string' || zone.length > MAX_ZONE_LENGTH)) {
      throw new InvalidArgumentError(
        `nodes[${i}].zone`,
        zone,
        `a string of at most ${MAX_ZONE_LENGTH} characters when present`,
      );
    }
    out.push(
      Object.freeze(
        zone === undefined
          ? { id, address: address as string }
          : { id, address: address as string, zone },
      ),
    );
  }
  return out;
}

function validateAssignments(
  assignments: unknown,
  indexOf: ReadonlyMap<string, number>,
): Map<string, Uint16Array> {
  const map = new Map<string, Uint16Array>();
  if (assignments === undefined) return map;
  if (!Array.isArray(assignments)) {
    throw new InvalidArgumentError('assignments', assignments, 'an array');
  }
  for (let i = 0; i < assignments.length; i++) {
    const field = `assignments[${i}]`;
    const entry: unknown = assignments[i];
    if (typeof entry !== 'object' || entry === null) {
      throw new InvalidArgumentError(field, entry, 'an object');
    }
    const { spaceId, primary, replicas } = entry as Record<string, unknown>;
    checkSpaceId(`${field}.spaceId`, spaceId);
    if (map.has(spaceId as string)) {
      throw new InvalidArgumentError(`${field}.spaceId`, spaceId, 'a space not assigned before');
    }
    const primaryIndex = typeof primary === 'string' ? indexOf.get(primary) : undefined;
    if (primaryIndex === undefined) {
      throw new InvalidArgumentError(`${field}.primary`, primary, 'the id of a node of the ring');
    }
    const replicaList = replicas ?? [];
    if (!Array.isArray(replicaList)) {
      throw new InvalidArgumentError(`${field}.replicas`, replicas, 'an array of node ids');
    }
    if (replicaList.length + 1 > MAX_REPLICATION_FACTOR) {
      throw new InvalidArgumentError(
        `${field}.replicas`,
        replicaList.length,
        `an array of at most ${MAX_REPLICATION_FACTOR - 1} node ids`,
      );
    }
    const placement = new Uint16Array(replicaList.length + 1);
    placement[0] = primaryIndex;
    for (let r = 0; r < replicaList.length; r++) {
      const id: unknown = replicaList[r];
      const index = typeof id === 'string' ? indexOf.get(id) : undefined;
      if (index === undefined) {
        throw new InvalidArgumentError(
          `${field}.replicas[${r}]`,
          id,
          'the id of a node of the ring',
        );
      }
      if (placement.subarray(0, r + 1).includes(index)) {
        throw new InvalidArgumentError(
          `${field}.replicas[${r}]`,
          id,
          'distinct from the primary and the other replicas',
        );
      }
      placement[r + 1] = index;
    }
    map.set(spaceId as string, placement);
  }
  return map;
}

/**
 * Builds a placement ring. Deterministic: the same nodes (in any order), vnodes,
 * replication factor and assignments give the same placements in every thread and process.
 * Throws `InvalidArgumentError` (code `InvalidArgument`, with `field` and `value`).
 */
export function buildRing(options: RingOptions): Ring {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  const nodes = validateNodes(options.nodes).sort((a, b) => compareCodePoints(a.id, b.id));
  const vnodesPerNode = checkInteger(
    'vnodesPerNode',
    options.vnodesPerNode ?? DEFAULT_VNODES_PER_NODE,
    1,
    MAX_VNODES_PER_NODE,
  );
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
  const assignments = validateAssignments(options.assignments, indexOf);

  const zoneNumbers = new Map<string, number>();
  const zoneOf = new Uint16Array(nodes.length);
  for (let i = 0; i < nodes.length; i++) {
    const zone = nodes[i]!.zone ?? '';
    let number = zoneNumbers.get(zone);
    if (number === undefined) {
      number = zoneNumbers.size;
      zoneNumbers.set(zone, number);
    }
    zoneOf[i] = number;
  }
  const walker = createWalker(
    zoneOf,
    new Uint8Array(nodes.length),
    ROLE_CODES.joining,
    replicationFactor,
  );
  const stride = walker.stride;
  const arrays = buildArrays({ ids: nodes.map((node) => node.id), vnodesPerNode, walker });
  return new Ring(nodes, indexOf, arrays, vnodesPerNode, replicationFactor, stride, assignments);
}

/** An immutable placement table built in this thread. */
export class Ring implements PlacementTable {
  readonly epoch = 0;
  readonly nodes: readonly NodeInfo[];
  /** Effective replication factor: min(configured, node count). */
  readonly replicationFactor: number;
  /** The replication factor asked for. */
  readonly configuredReplicationFactor: number;
  readonly vnodesPerNode: number;
  readonly maxPlacementSize: number;
  /** @internal */ readonly arrays: BuiltArrays;
  /** @internal */ readonly assignmentMap: ReadonlyMap<string, Uint16Array>;
  readonly #indexOf: ReadonlyMap<string, number>;
  readonly #scratch: Uint16Array;

  /** @internal Use `buildRing`. */
  constructor(
    nodes: readonly NodeInfo[],
    indexOf: ReadonlyMap<string, number>,
    arrays: BuiltArrays,
    vnodesPerNode: number,
    configuredReplicationFactor: number,
    stride: number,
    assignments: ReadonlyMap<string, Uint16Array>,
  ) {
    this.nodes = Object.freeze(nodes.slice());
    this.#indexOf = indexOf;
    this.arrays = arrays;
    this.vnodesPerNode = vnodesPerNode;
    this.configuredReplicationFactor = configuredReplicationFactor;
    this.replicationFactor = stride;
    this.assignmentMap = assignments;
    let max = stride;
    for (const placement of assignments.values()) max = Math.max(max, placement.length);
    this.maxPlacementSize = max;
    this.#scratch = new Uint16Array(max);
  }

  /** Number of vnode tokens on the ring. */
  get tokenCount(): number {
    return this.arrays.tokenCount;
  }

  /** The explicit assignments, as given (validated). */
  get assignments(): SpaceAssignment[] {
    const out: SpaceAssignment[] = [];
    for (const [spaceId, placement] of this.assignmentMap) {
      const ids = Array.from(placement, (index) => this.nodes[index]!.id);
      out.push({ spaceId, primary: ids[0]!, replicas: ids.slice(1) });
    }
    return out;
  }

  nodeIndex(nodeId: string): number {
    return this.#indexOf.get(nodeId) ?? -1;
  }

  nodeSlot(index: number): number {
    return index;
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

  lookup(spaceId: string): Placement {
    const count = this.lookupInto(spaceId, this.#scratch);
    return toPlacement(this.nodes, this.#scratch, count);
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
