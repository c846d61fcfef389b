/** A memory node as the ring knows it. */
export interface NodeInfo {
  /** Unique, non-empty node id. */
  readonly id: string;
  /** `host:port` (IPv6 hosts in brackets: `[::1]:7000`). */
  readonly address: string;
  /** Failure domain; nodes without one share the default zone `""`. */
  readonly zone?: string;
}

/** An explicit placement for one space that overrides the ring. */
export interface SpaceAssignment {
  readonly spaceId: string;
  /** Node id of the primary. */
  readonly primary: string;
  /** Node ids of the replicas, in fallback order; distinct and without the primary. */
  readonly replicas: readonly string[];
}

/** Where a space lives: the primary first, then replicas in fallback order. */
export interface Placement {
  readonly primary: NodeInfo;
  readonly replicas: readonly NodeInfo[];
}

/**
 * What routing needs from a placement table: a `Ring` built in this thread, or a
 * `TableReader` over a table published by another thread.
 */
export interface PlacementTable {
  /** Epoch of the table the last answer came from (0 for a ring that was never published). */
  readonly epoch: number;
  /** The nodes of that table, sorted by id; `lookupInto` answers indexes into this list. */
  readonly nodes: readonly NodeInfo[];
  /** Replicas per space on the ring (primary included), at most the node count. */
  readonly replicationFactor: number;
  /** Largest count `lookupInto` can return: size its `out` array with this. */
  readonly maxPlacementSize: number;
  /** Primary and replicas of a space, as objects. Allocates; prefer `lookupInto` on hot paths. */
  lookup(spaceId: string): Placement;
  /**
   * Allocation-free lookup: writes node indexes (primary first) into `out` and returns how
   * many make up the placement. Writes at most `out.length`.
   */
  lookupInto(spaceId: string, out: Uint16Array): number;
  /** Index of a node id in `nodes`, or -1. */
  nodeIndex(nodeId: string): number;
  /**
   * A number for the node at `index` that stays the same across epochs, for per-node state
   * kept outside the table (a shared breaker slot). The publisher chooses it
   * (`TableWriter.publish(ring, { slots })`); otherwise it is the node index.
   */
  nodeSlot(index: number): number;
}
