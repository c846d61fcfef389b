import type { Memory, SpaceDigest, Tombstone } from '@engram/proto';
import type { NodeInfo } from '@engram/ring';
import { isRouterError } from './errors.js';

/** A page of a space's entries as `ReplicaService.ScanSpace` returns it. */
export interface ScanPage {
  readonly memories: readonly Memory[];
  readonly tombstones: readonly Tombstone[];
  readonly more: boolean;
}

/**
 * The replica operations repair and streaming need, one call each (`engram.v1.ReplicaService`
 * on the nodes). Implemented over grpc-js clients by the Router (`router.replicas`) and by
 * router-node's control plane.
 */
export interface ReplicaAccess {
  /** The node's digest of one space; undefined when it holds nothing of it. */
  digest(node: NodeInfo, spaceId: string): Promise<SpaceDigest | undefined>;
  /** Spaces the node holds, after `after` in code-point order. */
  listSpaces(
    node: NodeInfo,
    after: string,
    limit: number,
  ): Promise<{ readonly spaces: readonly SpaceDigest[]; readonly more: boolean }>;
  scan(node: NodeInfo, spaceId: string, after: string, limit: number): Promise<ScanPage>;
  /** Applies entries last-write-wins; resolves with how many changed the node. */
  apply(
    node: NodeInfo,
    spaceId: string,
    memories: readonly Memory[],
    tombstones: readonly Tombstone[],
  ): Promise<number>;
}

/** Entries per ScanSpace page and per ApplyEntries batch. */
export const REPAIR_PAGE_SIZE = 500;

/** What a repair of one space did. */
export interface SpaceRepair {
  readonly spaceId: string;
  /** Replicas compared (that answered). */
  readonly compared: readonly string[];
  /** Replicas that could not be reached (repaired next time). */
  readonly unreachable: readonly string[];
  /** False when every replica's digest already matched. */
  readonly differed: boolean;
  /** Entries applied (that changed a replica), over all replicas. */
  readonly applied: number;
}

type Entry = { readonly memory: Memory } | { readonly tombstone: Tombstone };

/** Code-point order (the nodes page by it; `<` on strings compares UTF-16 units). */
function isAfter(a: string, b: string): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x > y;
    if (x > 0xffff) i++;
  }
  return a.length > b.length;
}

/** The last id of a page (the cursor for the next one). */
function lastId(page: ScanPage, from: string): string {
  let last = from;
  for (const m of page.memories) if (isAfter(m.id, last)) last = m.id;
  for (const t of page.tombstones) if (isAfter(t.id, last)) last = t.id;
  return last;
}

function versionOf(e: Entry): number {
  return 'memory' in e ? e.memory.version : e.tombstone.version;
}

function isMissingService(error: unknown): boolean {
  return isRouterError(error) && error.code === 'ReplicaServiceMissing';
}

/** Reads a whole space from a node, page by page. */
async function scanAll(access: ReplicaAccess, node: NodeInfo, spaceId: string): Promise<Entry[]> {
  const out: Entry[] = [];
  let cursor = '';
  for (;;) {
    const page = await access.scan(node, spaceId, cursor, REPAIR_PAGE_SIZE);
    for (const memory of page.memories) out.push({ memory });
    for (const tombstone of page.tombstones) out.push({ tombstone });
    const last = lastId(page, cursor);
    if (!page.more || last === cursor) return out;
    cursor = last;
  }
}

/**
 * Anti-entropy for one space: compares the replicas' digests; when they differ, reads every
 * reachable replica and gives each what it lacks or holds older (the newest version of every id,
 * tombstones included, as the nodes decide last-write-wins; equal versions of different
 * contents are all sent, and each node keeps the same one). Idempotent; a replica that cannot
 * be reached is reported, not fatal.
 */
export async function repairSpace(
  access: ReplicaAccess,
  spaceId: string,
  replicas: readonly NodeInfo[],
): Promise<SpaceRepair> {
  const digests = await Promise.allSettled(replicas.map((n) => access.digest(n, spaceId)));
  const reachable: NodeInfo[] = [];
  const unreachable: string[] = [];
  const seen = new Set<string>();
  for (const d of digests) {
    // A node without ReplicaService is not "unreachable": the repair cannot work, say so.
    if (d.status === 'rejected' && isMissingService(d.reason)) throw d.reason;
  }
  digests.forEach((d, i) => {
    const node = replicas[i]!;
    if (d.status === 'rejected') {
      unreachable.push(node.id);
      return;
    }
    reachable.push(node);
    seen.add(
      d.value === undefined ? '' : `${d.value.memories}:${d.value.tombstones}:${d.value.digest}`,
    );
  });
  const compared = reachable.map((n) => n.id);
  if (reachable.length < 2 || seen.size <= 1) {
    return { spaceId, compared, unreachable, differed: false, applied: 0 };
  }
  // Every replica's entries, then the winners per id.
  const held = await Promise.all(
    reachable.map(async (n) => {
      try {
        return await scanAll(access, n, spaceId);
      } catch (error) {
        if (isMissingService(error)) throw error;
        return undefined;
      }
    }),
  );
  const winners = new Map<string, Entry[]>();
  for (const entries of held) {
    for (const e of entries ?? []) {
      const id = 'memory' in e ? e.memory.id : e.tombstone.id;
      const best = winners.get(id);
      if (best === undefined || versionOf(best[0]!) < versionOf(e)) winners.set(id, [e]);
      else if (versionOf(best[0]!) === versionOf(e)) best.push(e);
    }
  }
  let applied = 0;
  await Promise.all(
    reachable.map(async (node, i) => {
      const mine = held[i];
      if (mine === undefined) {
        unreachable.push(node.id);
        return;
      }
      const has = new Map<string, number>();
      for (const e of mine) {
        const id = 'memory' in e ? e.memory.id : e.tombstone.id;
        has.set(id, Math.max(has.get(id) ?? -1, versionOf(e)));
      }
      const memories: Memory[] = [];
      const tombstones: Tombstone[] = [];
      for (const [id, candidates] of winners) {
        const mineVersion = has.get(id) ?? -1;
        for (const c of candidates) {
          // Equal versions are sent too: the node breaks the tie itself, the same way everywhere.
          if (versionOf(c) < mineVersion) continue;
          if (versionOf(c) === mineVersion && candidates.length === 1) continue;
          if ('memory' in c) memories.push(c.memory);
          else tombstones.push(c.tombstone);
        }
      }
      // Not `applied += await …`: that reads `applied` before the await, and the replicas'
      // applies run concurrently, so all but one count would be lost.
      const n = await applyInBatches(access, node, spaceId, memories, tombstones);
      applied += n;
    }),
  );
  return { spaceId, compared, unreachable, differed: true, applied };
}

async function applyInBatches(
  access: ReplicaAccess,
  node: NodeInfo,
  spaceId: string,
  memories: readonly Memory[],
  tombstones: readonly Tombstone[],
): Promise<number> {
  let applied = 0;
  for (let i = 0; i < memories.length; i += REPAIR_PAGE_SIZE) {
    applied += await access.apply(node, spaceId, memories.slice(i, i + REPAIR_PAGE_SIZE), []);
  }
  for (let i = 0; i < tombstones.length; i += REPAIR_PAGE_SIZE) {
    applied += await access.apply(node, spaceId, [], tombstones.slice(i, i + REPAIR_PAGE_SIZE));
  }
  return applied;
}

/** Progress of one space's stream, for resuming it and for reporting. */
export interface StreamProgress {
  /** The last id copied; the stream resumes after it. */
  readonly after: string;
  /** Entries copied so far. */
  readonly copied: number;
  readonly done: boolean;
}

/**
 * Copies one space from `source` to `targets` (a node taking over the space), page by page from
 * `from.after`, calling `onPage` after each page lands on every target (persist it to resume
 * after a restart). Idempotent: entries apply last-write-wins, so copying again is harmless.
 */
export async function streamSpace(
  access: ReplicaAccess,
  spaceId: string,
  source: NodeInfo,
  targets: readonly NodeInfo[],
  from: StreamProgress = { after: '', copied: 0, done: false },
  onPage?: (progress: StreamProgress) => void | Promise<void>,
): Promise<StreamProgress> {
  let cursor = from.after;
  let copied = from.copied;
  for (;;) {
    const page = await access.scan(source, spaceId, cursor, REPAIR_PAGE_SIZE);
    const last = lastId(page, cursor);
    if (page.memories.length + page.tombstones.length > 0) {
      await Promise.all(
        targets.map((t) => access.apply(t, spaceId, page.memories, page.tombstones)),
      );
    }
    copied += page.memories.length + page.tombstones.length;
    const done = !page.more || last === cursor;
    const progress = { after: last, copied, done };
    await onPage?.(progress);
    if (done) return progress;
    cursor = last;
  }
}
