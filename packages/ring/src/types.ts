/** A memory node as the ring knows it. */
export interface NodeInfo {
  /** Unique, non-empty node id. */
  readonly id: string;
  /** `host:port` (IPv6 hosts in brackets: `[::1]:7000`). */
  readonly address: string;
  /** Failure domain; nodes without one share the default zone `""`. */
  readonly zone?: string;
  /**
   * Explicit ring positions (unsigned 32-bit integers, at most `MAX_TOKENS_PER_NODE`, none
   * shared with another node), e.g. chosen by `allocateTokens` and kept in shared cluster
   * state. Either every node of a ring carries tokens or none does; without them a node's
   * tokens are hashed from its id (`vnodesPerNode`).
   */
  readonly tokens?: readonly number[];
}

/** An explicit placement for one space that overrides the ring. */
export interface SpaceAssignment {
  readonly spaceId: string;
  /** Node id of the primary. */
  readonly primary: string;
  /** Node ids of the replicas, in fallback order; distinct and without the primary. */
  readonly replicas: readonly string[];
}

/**
 * The pin a space moves to while its data streams (`RingOptions.pendingAssignments`): the
 * nodes of a `SpaceAssignment`, or `primary: null` for a space that goes from its current
 * assignment back to the ring's placement.
 */
export type PendingAssignment =
  | SpaceAssignment
  | {
      readonly spaceId: string;
      /** `null`: once the move completes, the space follows the ring again. */
      readonly primary: null;
      /** Absent or empty: the ring chooses the replicas. */
      readonly replicas?: readonly [];
    };

/** What a node is doing in a membership change (`NODE_ROLES`). */
export type NodeRole = 'normal' | 'joining' | 'leaving';

/** Where a space lives: the primary first, then replicas in fallback order. */
export interface Placement {
  readonly primary: NodeInfo;
  readonly replicas: readonly NodeInfo[];
}

/**
 * What routing needs from a placement table: a `Ring` built in this thread, or a
 * `TableReader` over a table published by another thread.
 *
 * While membership changes (nodes joining or leaving, pins moving) a space has three
 * placements: the *current* one (`lookupInto`: reads, and the writes that count towards
 * acknowledgement), the *future* one (`futureInto`: after the change completes) and the
 * *pending* nodes (`pendingInto`: future minus current, extra write targets meanwhile).
 * Without a change in progress the future is the current placement and nothing is pending.
 */
export interface PlacementTable {
  /** Epoch of the table the last answer came from (0 for a ring that was never published). */
  readonly epoch: number;
  /** The nodes of that table, sorted by id; `lookupInto` answers indexes into this list. */
  readonly nodes: readonly NodeInfo[];
  /** Replicas per space on the ring (primary included), at most the node count. */
  readonly replicationFactor: number;
  /**
   * Largest count `lookupInto`, `futureInto` or `pendingInto` can return: size their `out`
   * arrays with this.
   */
  readonly maxPlacementSize: number;
  /**
   * True while a membership change is in progress: some node joins or leaves, or some space
   * has a pending assignment. When false, `pendingInto` answers 0 and `futureInto` answers
   * as `lookupInto`.
   */
  readonly pending: boolean;
  /** Primary and replicas of a space, as objects. Allocates; prefer `lookupInto` on hot paths. */
  lookup(spaceId: string): Placement;
  /**
   * Allocation-free lookup: writes node indexes (primary first) into `out` and returns how
   * many make up the placement. Writes at most `out.length`.
   */
  lookupInto(spaceId: string, out: Uint16Array): number;
  /**
   * Allocation-free future placement: the nodes that will hold the space once the change in
   * progress completes (joining nodes in, leaving nodes out, pending assignments in force),
   * primary first. Same conventions as `lookupInto`.
   */
  futureInto(spaceId: string, out: Uint16Array): number;
  /**
   * The pending write targets of a space: nodes of its future placement that are not in its
   * current placement, in future order. Writes them into `out` (at most `out.length`) and
   * returns how many there are; 0 at once, allocation- and hash-free, when `pending` is false.
   * Answers for the same table as the `lookupInto` before it, so the two combine into one
   * write set (a `TableReader` only moves on if a newer table replaced that one's shared
   * arrays meanwhile: then its `epoch` changed, and the caller looks up again).
   */
  pendingInto(spaceId: string, out: Uint16Array): number;
  /** The future placement as objects. Allocates; prefer `futureInto` on hot paths. */
  lookupFuture(spaceId: string): Placement;
  /**
   * Role of the node at `index` in the change in progress: `joining` (takes writes, not
   * reads), `leaving` (still serves, hands over), or `normal`; undefined outside `nodes`.
   */
  nodeRole(index: number): NodeRole | undefined;
  /** Index of a node id in `nodes`, or -1. */
  nodeIndex(nodeId: string): number;
  /**
   * A number for the node at `index` that stays the same across epochs, for per-node state
   * kept outside the table (a shared breaker slot). The publisher chooses it
   * (`TableWriter.publish(ring, { slots })`); otherwise it is the node index.
   */
  nodeSlot(index: number): number;
}
