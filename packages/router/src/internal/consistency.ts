/** How many replicas must acknowledge a write before its client is answered (Dynamo's W). */
export const WriteConsistency = Object.freeze({
  One: 'one',
  /** A majority of the space's replicas (default): read-your-writes with quorum reads. */
  Quorum: 'quorum',
  All: 'all',
} as const);
export type WriteConsistency = (typeof WriteConsistency)[keyof typeof WriteConsistency];

/** Replicas a read asks (Dynamo's R). */
export const ReadConsistency = Object.freeze({
  /** The first live replica in placement order (the seed's PrimaryWithFallback). */
  One: 'one',
  /** A majority, in parallel, merged newest first, missing copies repaired. */
  Quorum: 'quorum',
} as const);
export type ReadConsistency = (typeof ReadConsistency)[keyof typeof ReadConsistency];

/** Acknowledgements a level needs out of `replicas`. */
export function requiredReplicas(level: WriteConsistency | ReadConsistency, replicas: number) {
  if (level === 'one') return Math.min(1, replicas);
  if (level === 'all') return replicas;
  return Math.floor(replicas / 2) + 1;
}
