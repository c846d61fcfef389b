/**
 * `GET /status.json`: what the status page shows, as one JSON document built on the main
 * thread from the control plane's table view, the published ring and the sampler's history.
 */
import type { Ring } from '@engram/ring';
import type { EtcdView, TableView } from './admin.js';
import type { RequestHistory } from './status-sampler.js';
import type { StreamStatus } from './streamer.js';

/** Size of the token space a ring's tokens live in (32-bit MurmurHash3). */
export const TOKEN_SPACE = 2 ** 32;

/** One node of the status snapshot. */
export interface NodeStatus {
  readonly id: string;
  readonly address: string;
  readonly zone: string;
  /** Health verdict: up, down, draining or unknown (not probed yet). */
  readonly state: string;
  readonly lifecycle: string;
  /** closed, open or half-open. */
  readonly breaker: string;
  readonly hintsPending: number;
  readonly hintBytesPending: number;
  readonly repairNeeded: boolean;
  /** Last health probe's round trip, when the table view reports one; else null. */
  readonly healthLatencyMs: number | null;
  /** Fraction of the token space this node is the primary of (0 when not on the ring). */
  readonly ringShare: number;
  /** Ejected by outlier detection (tried after the other up nodes; `state` is the health verdict). */
  readonly ejected: boolean;
}

export interface StatusSnapshot {
  readonly generatedAtMs: number;
  readonly epoch: number;
  readonly partitioned: boolean;
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  readonly nodes: readonly NodeStatus[];
  readonly streams: readonly StreamStatus[];
  readonly history: RequestHistory;
  /** etcd mode: the placement revision and etcd as this router sees it; null without etcd. */
  readonly etcd: (EtcdView & { readonly revision: number }) | null;
}

const sharesByRing = new WeakMap<Ring, ReadonlyMap<string, number>>();

/**
 * Each node's share of the token space as the ring's current placement has it: a key whose
 * token t falls in (tokens[i-1], tokens[i]] starts its walk at vnode i (the first at or above
 * t, wrapping to 0), so that arc belongs to row i's primary. Joining nodes own tokens but are
 * no row's primary yet, so their share is 0. Cached per ring (rings are immutable).
 */
export function ringShares(ring: Ring): ReadonlyMap<string, number> {
  const cached = sharesByRing.get(ring);
  if (cached !== undefined) return cached;
  const { tokens, rows, tokenCount } = ring.arrays;
  const stride = ring.replicationFactor;
  const owned = new Float64Array(ring.nodes.length);
  for (let i = 0; i < tokenCount; i++) {
    // Vnode 0's arc wraps: from past the last token, through 2^32 - 1 and 0, to tokens[0].
    const arc =
      i === 0 ? TOKEN_SPACE - tokens[tokenCount - 1]! + tokens[0]! : tokens[i]! - tokens[i - 1]!;
    owned[rows[i * stride]!]! += arc;
  }
  const shares = new Map<string, number>();
  for (const [n, node] of ring.nodes.entries()) shares.set(node.id, owned[n]! / TOKEN_SPACE);
  sharesByRing.set(ring, shares);
  return shares;
}

/** The snapshot of `table` (nodes in its order), `ring` (null before the first publish) and `history`. */
export function buildStatusSnapshot(
  table: TableView,
  ring: Ring | null,
  history: RequestHistory,
  nowMs: number,
): StatusSnapshot {
  const shares = ring === null ? new Map<string, number>() : ringShares(ring);
  return {
    generatedAtMs: nowMs,
    epoch: table.epoch,
    partitioned: table.partitioned,
    replicationFactor: table.replicationFactor,
    vnodesPerNode: table.vnodesPerNode,
    nodes: table.nodes.map((n) => ({
      id: n.id,
      address: n.address,
      zone: n.zone,
      state: n.state,
      lifecycle: n.lifecycle,
      breaker: n.breaker,
      hintsPending: n.hintsPending,
      hintBytesPending: n.hintBytesPending,
      repairNeeded: n.repairNeeded,
      // The table says 0 before a node's first probe: shown as no figure, not as 0 ms.
      healthLatencyMs: n.state === 'unknown' ? null : n.healthLatencyMs,
      ringShare: shares.get(n.id) ?? 0,
      ejected: n.ejected === true,
    })),
    streams: table.streams,
    etcd: table.etcd === null ? null : { ...table.etcd, revision: table.revision },
    history,
  };
}
