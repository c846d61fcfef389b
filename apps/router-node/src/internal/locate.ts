import { InvalidArgumentError } from '@engram/common';
import { ConnectionPool, type PoolCredentials } from '@engram/pool';
import type { SpaceDigest } from '@engram/proto';
import { hashKey, MAX_SPACE_ID_LENGTH, type NodeInfo, type Placement } from '@engram/ring';
import { GrpcReplicaAccess } from '@engram/router';
import type { TableView } from './admin.js';
import type { AssignmentConfig } from './config.js';

/** A node's place in a space's placement. */
export type LocatedRole = 'primary' | 'replica' | 'incoming';

/** One node of a space's placement, as the router sees it and as the node answered. */
export interface LocatedNode {
  readonly id: string;
  readonly address: string;
  readonly zone: string;
  readonly role: LocatedRole;
  /** The placement after the change in progress drops it. */
  readonly outgoing: boolean;
  readonly state: string;
  readonly breaker: string;
  readonly lifecycle: string;
  readonly reachable: boolean;
  /** Why the node could not be asked; '' when it answered. */
  readonly error: string;
  readonly holdsData: boolean;
  readonly memories: number;
  readonly tombstones: number;
  readonly digest: string;
}

/** Where a space lives (the admin API's Locate). */
export interface Location {
  readonly spaceId: string;
  readonly token: number;
  readonly epoch: number;
  readonly placement: 'pinned' | 'ring';
  readonly nodes: readonly LocatedNode[];
  /** A pin being moved (primary '' = back to the ring), or null. */
  readonly pendingAssignment: AssignmentConfig | null;
}

/** Current and future placements of a space (a `Ring` or any `PlacementTable`). */
export interface PlacementSource {
  lookup(spaceId: string): Placement;
  lookupFuture(spaceId: string): Placement;
}

/** What the node holds of a space (ReplicaService.ListSpaces); undefined: nothing. Rejects when it cannot be asked. */
export type DigestOf = (node: NodeInfo, spaceId: string) => Promise<SpaceDigest | undefined>;

/** The space id a Locate asks about, or an InvalidArgumentError naming `spaceId`. */
export function validateSpaceId(spaceId: unknown): string {
  if (typeof spaceId !== 'string' || spaceId.length === 0 || spaceId.length > MAX_SPACE_ID_LENGTH) {
    throw new InvalidArgumentError(
      'spaceId',
      spaceId,
      `a non-empty string of at most ${MAX_SPACE_ID_LENGTH} characters`,
    );
  }
  return spaceId;
}

/**
 * Where `spaceId` lives: its placement read from `placement` (the ring of the table `view`
 * describes), each node's state from `view`, and what each holds asked of the node itself
 * through `digestOf`, all nodes at once. A node that cannot be asked is `reachable: false`
 * with the error; the answer still comes. Throws InvalidArgumentError (`spaceId`) first.
 */
export async function locateSpace(
  spaceId: unknown,
  view: TableView,
  placement: PlacementSource,
  digestOf: DigestOf,
): Promise<Location> {
  const id = validateSpaceId(spaceId);
  const current = placement.lookup(id);
  const future = placement.lookupFuture(id);
  const currentIds = [current.primary, ...current.replicas].map((n) => n.id);
  const futureIds = new Set([future.primary, ...future.replicas].map((n) => n.id));
  const placed: { node: NodeInfo; role: LocatedRole }[] = [
    { node: current.primary, role: 'primary' },
    ...current.replicas.map((node) => ({ node, role: 'replica' as const })),
    ...[future.primary, ...future.replicas]
      .filter((n) => !currentIds.includes(n.id))
      .map((node) => ({ node, role: 'incoming' as const })),
  ];
  const byId = new Map(view.nodes.map((n) => [n.id, n]));
  const nodes = await Promise.all(
    placed.map(async ({ node, role }): Promise<LocatedNode> => {
      const status = byId.get(node.id);
      const base = {
        id: node.id,
        address: status?.address ?? node.address,
        zone: status?.zone ?? node.zone ?? '',
        role,
        outgoing: !futureIds.has(node.id),
        state: status?.state ?? '',
        breaker: status?.breaker ?? '',
        lifecycle: status?.lifecycle ?? '',
      };
      try {
        const d = await digestOf({ id: node.id, address: base.address, zone: base.zone }, id);
        const memories = d?.memories ?? 0;
        const tombstones = d?.tombstones ?? 0;
        return {
          ...base,
          reachable: true,
          error: '',
          holdsData: memories + tombstones > 0,
          memories,
          tombstones,
          digest: d?.digest ?? '',
        };
      } catch (err) {
        return {
          ...base,
          reachable: false,
          error: err instanceof Error ? err.message : String(err),
          holdsData: false,
          memories: 0,
          tombstones: 0,
          digest: '',
        };
      }
    }),
  );
  return {
    spaceId: id,
    token: hashKey(id),
    epoch: view.epoch,
    placement: view.assignments.some((a) => a.spaceId === id) ? 'pinned' : 'ring',
    nodes,
    pendingAssignment: view.pendingAssignments.find((a) => a.spaceId === id) ?? null,
  };
}

/** Reconnect backoff of the Locate connections: a node back from a restart is asked again soon. */
const RECONNECT_MIN_MS = 100; // 100 ms
const RECONNECT_MAX_MS = 1000; // 1 s

/**
 * `DigestOf` over ReplicaService, on a connection pool of its own (the data plane's and data
 * movement's are left alone), each call bounded by `timeoutMs`. A node re-addressed since the
 * last call is dialled at its new address; `retain` forgets nodes no longer members.
 */
export class ReplicaDigests {
  readonly #pool: ConnectionPool;
  #access: GrpcReplicaAccess;

  constructor(credentials: PoolCredentials, timeoutMs: number) {
    this.#pool = new ConnectionPool({
      credentials,
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': RECONNECT_MIN_MS,
        'grpc.min_reconnect_backoff_ms': RECONNECT_MIN_MS,
        'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
      },
    });
    this.#access = new GrpcReplicaAccess(() => this.#pool, timeoutMs);
  }

  /** A reloaded `health.timeoutMs`: the next asks are bounded by it (the connections stay). */
  setTimeout(timeoutMs: number): void {
    this.#access = new GrpcReplicaAccess(() => this.#pool, timeoutMs);
  }

  readonly digest: DigestOf = (node, spaceId) => {
    this.#pool.addNode(node.id, node.address);
    return this.#access.digest(node, spaceId);
  };

  /** Closes the connections of nodes not in `ids`. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.#pool.nodeIds()) if (!ids.has(id)) void this.#pool.removeNode(id);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
