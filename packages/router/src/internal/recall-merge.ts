import type { QueryResponse, RecallResponse, ScoredMemory } from '@engram/proto';
import type { ReadMerge } from './quorum-read.js';

/** Merged memories of several replicas' answers, and whether the replicas disagreed. */
function mergeMemories(lists: readonly (readonly ScoredMemory[])[]): {
  memories: ScoredMemory[];
  diverged: boolean;
} {
  const byId = new Map<string, ScoredMemory>();
  let limit = 0;
  let diverged = false;
  let firstKeys: string | undefined;
  for (const list of lists) {
    limit = Math.max(limit, list.length);
    const keys: string[] = [];
    for (const scored of list) {
      const memory = scored.memory;
      if (memory === null) continue;
      keys.push(`${memory.id}\u0000${memory.version}`);
      const held = byId.get(memory.id);
      if (held === undefined || (held.memory?.version ?? 0) < memory.version) {
        byId.set(memory.id, scored);
      }
    }
    const signature = keys.sort().join('\u0001');
    if (firstKeys === undefined) firstKeys = signature;
    else if (signature !== firstKeys) diverged = true;
  }
  return { memories: [...byId.values()].sort(rank).slice(0, limit), diverged };
}

/**
 * Merges Recall answers of several replicas: memories by id, the highest version kept (the
 * last write wins, as on the nodes), ranked as a node ranks (score, then newer, then id), cut
 * to the longest answer's length (what one node would have returned for the request's limit).
 * The replicas disagreed when they did not return the same ids at the same versions: one of
 * them lacks a write, or holds an older copy, and the space needs a repair.
 */
export const RECALL_MERGE: ReadMerge<RecallResponse> = Object.freeze({
  merge(values: readonly RecallResponse[]) {
    const { memories, diverged } = mergeMemories(values.map((v) => v.memories));
    return { value: { memories, routing: values[0]?.routing ?? null }, diverged };
  },
});

/** The same merge for the one-space sub-queries of a scatter-gather Query. */
export const singleSpaceQueryMerge: ReadMerge<QueryResponse> = Object.freeze({
  merge(values: readonly QueryResponse[]) {
    const spaceId = values.find((v) => v.results.length > 0)?.results[0]?.spaceId;
    const { memories, diverged } = mergeMemories(
      values.map((v) => v.results.flatMap((r) => r.memories)),
    );
    return {
      value: {
        results: spaceId === undefined ? [] : [{ spaceId, memories }],
        errors: values[0]?.errors ?? [],
        routing: values[0]?.routing ?? null,
      },
      diverged,
    };
  },
});

function rank(a: ScoredMemory, b: ScoredMemory): number {
  const am = a.memory!;
  const bm = b.memory!;
  return (
    b.score - a.score ||
    bm.createdAtMs - am.createdAtMs ||
    (am.id < bm.id ? -1 : am.id > bm.id ? 1 : 0)
  );
}
