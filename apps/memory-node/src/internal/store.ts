import type { Memory, MergedGroup, ScoredMemory, SpaceDigest, Tombstone } from '@engram/proto';
import { compareCodePoints, indexAfter } from './code-point.js';
import { ENTRY_KINDS, SpaceDigestState } from './digest.js';
import { dot, normalizeContent, normOf, tokenize } from './similarity.js';
import { memoryWins } from './versions.js';

// A live memory under its id, with what recall needs precomputed: the embedding's Euclidean
// norm (0 when absent) and, once a text cue has asked, the content's terms.
interface LiveSlot {
  readonly kind: typeof ENTRY_KINDS.Memory;
  memory: Memory;
  readonly norm: number;
  terms: Set<string> | undefined;
}

// A memory removed by a consolidation at `version`.
interface TombSlot {
  readonly kind: typeof ENTRY_KINDS.Tombstone;
  readonly version: number;
}

// Each id of a space holds one entry, a live memory or a tombstone: the greatest write it has
// seen in the last-write-wins order (below).
type Slot = LiveSlot | TombSlot;

interface Space {
  readonly slots: Map<string, Slot>;
  readonly digest: SpaceDigestState;
  // Ids in code-point order for ScanSpace, dropped when an id comes or goes and rebuilt by the
  // next scan: a stream after a burst of writes sorts once, where keeping the order on every
  // write would cost a splice per new id.
  sortedIds: string[] | undefined;
}

// Rough protobuf bytes of entries, to keep a page well under grpc's 4 MiB message default.
const MEMORY_OVERHEAD_BYTES = 48; // tags, lengths, confidence, created_at_ms, version
const TOMBSTONE_OVERHEAD_BYTES = 16;
const DIGEST_OVERHEAD_BYTES = 40;

function versionOf(slot: Slot): number {
  return slot.kind === ENTRY_KINDS.Memory ? slot.memory.version : slot.version;
}

// The last-write-wins order of the entries of one id: by version; at equal versions a
// tombstone beats a memory (a consolidation removes what it saw at its version), and two
// memories go by memoryWins. A total order, so the state of an id is the greatest write it has
// seen, whatever order the writes came in and however often.
function memoryBeats(memory: Memory, slot: Slot): boolean {
  return slot.kind === ENTRY_KINDS.Memory
    ? memoryWins(memory, slot.memory)
    : memory.version > slot.version;
}

function tombstoneBeats(version: number, slot: Slot): boolean {
  return slot.kind === ENTRY_KINDS.Memory ? version >= slot.memory.version : version > slot.version;
}

export interface Cue {
  text: string;
  embedding: readonly number[];
}

/**
 * A planned consolidation of one space at `version`: apply `writes` (raised kept memories at
 * `version`, tombstones of the merged ones) with {@link MemoryStore.applyEntries}.
 */
export interface MergePlan {
  spaceId: string;
  version: number;
  groups: { kept: Memory; removed: string[] }[];
  writes: { memories: Memory[]; tombstones: Tombstone[] };
  /** Live memories when planned. */
  before: number;
}

/** One page of a scan, as ScanSpace answers it. */
export interface ScanPage {
  memories: Memory[];
  tombstones: Tombstone[];
  more: boolean;
}

/**
 * In-memory memories and tombstones per space, last write wins per (space, id). Pure data
 * structure: no I/O, no clock; the node decides when a mutation is durable and then applies it
 * here. Every mutation keeps the space's digest up to date.
 */
export class MemoryStore {
  readonly #spaces = new Map<string, Space>();
  #sortedSpaces: string[] | undefined;

  get spaceCount(): number {
    return this.#spaces.size;
  }

  /** Live memories of a space. */
  size(spaceId: string): number {
    return this.#spaces.get(spaceId)?.digest.memories ?? 0;
  }

  /** Stores `memory` unless what the space holds under its id wins; true when it changed. */
  put(spaceId: string, memory: Memory): boolean {
    const space = this.#spaceFor(spaceId);
    const slot = space.slots.get(memory.id);
    if (slot !== undefined && !memoryBeats(memory, slot)) return false;
    this.#set(space, memory.id, liveSlot(memory));
    return true;
  }

  /** Records a tombstone unless what the space holds under `id` wins; true when it changed. */
  tombstone(spaceId: string, id: string, version: number): boolean {
    const space = this.#spaceFor(spaceId);
    const slot = space.slots.get(id);
    if (slot !== undefined && !tombstoneBeats(version, slot)) return false;
    this.#set(space, id, { kind: ENTRY_KINDS.Tombstone, version });
    return true;
  }

  /** True when {@link put} would change the store now (it would later only if it does now). */
  wouldPut(spaceId: string, memory: Memory): boolean {
    const slot = this.#spaces.get(spaceId)?.slots.get(memory.id);
    return slot === undefined || memoryBeats(memory, slot);
  }

  /** True when {@link tombstone} would change the store now. */
  wouldTombstone(spaceId: string, id: string, version: number): boolean {
    const slot = this.#spaces.get(spaceId)?.slots.get(id);
    return slot === undefined || tombstoneBeats(version, slot);
  }

  /** Applies memories then tombstones last-write-wins; returns how many changed the store. */
  applyEntries(
    spaceId: string,
    memories: readonly Memory[],
    tombstones: readonly Tombstone[],
  ): number {
    let applied = 0;
    for (const m of memories) if (this.put(spaceId, m)) applied++;
    for (const t of tombstones) if (this.tombstone(spaceId, t.id, t.version)) applied++;
    return applied;
  }

  /**
   * Replays a store record written before versions existed (version 0): the later record
   * replaces the earlier one, as it did then, instead of the byte-wise tie-break.
   */
  putLegacy(spaceId: string, memory: Memory): void {
    const slot = this.#spaces.get(spaceId)?.slots.get(memory.id);
    if (slot?.kind === ENTRY_KINDS.Memory && slot.memory.version === 0 && memory.version === 0) {
      this.#set(this.#spaceFor(spaceId), memory.id, liveSlot(memory));
    } else {
      this.put(spaceId, memory);
    }
  }

  /**
   * Replays a consolidation written before versions existed: the merged ids are deleted (no
   * tombstone, as then: a later record may store them again) and whatever is stored under the
   * kept id takes the group's confidence when that is higher.
   */
  applyLegacyMerge(
    spaceId: string,
    groups: readonly { kept: { id: string; confidence: number }; removed: readonly string[] }[],
  ): void {
    const space = this.#spaces.get(spaceId);
    if (space === undefined) return;
    for (const g of groups) {
      for (const id of g.removed) {
        const slot = space.slots.get(id);
        if (slot?.kind !== ENTRY_KINDS.Memory) continue;
        space.digest.remove(slot.kind, id, slot.memory.version);
        space.slots.delete(id);
        space.sortedIds = undefined;
      }
      const current = space.slots.get(g.kept.id);
      if (current?.kind === ENTRY_KINDS.Memory && g.kept.confidence > current.memory.confidence) {
        // id and version unchanged, so the digest is too
        current.memory = { ...current.memory, confidence: g.kept.confidence };
      }
    }
  }

  get(spaceId: string, id: string): Memory | undefined {
    const slot = this.#spaces.get(spaceId)?.slots.get(id);
    return slot?.kind === ENTRY_KINDS.Memory ? slot.memory : undefined;
  }

  /** The version of the tombstone under `id`, if the space holds one. */
  tombstoneVersion(spaceId: string, id: string): number | undefined {
    const slot = this.#spaces.get(spaceId)?.slots.get(id);
    return slot?.kind === ENTRY_KINDS.Tombstone ? slot.version : undefined;
  }

  /** The digest of a space; undefined when the node holds nothing of it. */
  digest(spaceId: string): SpaceDigest | undefined {
    const space = this.#spaces.get(spaceId);
    if (space === undefined) return undefined;
    const d = space.digest;
    return { spaceId, memories: d.memories, tombstones: d.tombstones, digest: d.hex };
  }

  /**
   * Digests of the spaces after `after` in code-point order: at most `limit`, and no more
   * than about `maxBytes` on the wire (at least one). `more` when spaces follow.
   */
  listSpaces(
    after: string,
    limit: number,
    maxBytes: number,
  ): { spaces: SpaceDigest[]; more: boolean } {
    this.#sortedSpaces ??= [...this.#spaces.keys()].sort(compareCodePoints);
    const sorted = this.#sortedSpaces;
    const spaces: SpaceDigest[] = [];
    let bytes = 0;
    let i = indexAfter(sorted, after);
    for (; i < sorted.length && spaces.length < limit; i++) {
      const spaceId = sorted[i]!;
      const size = Buffer.byteLength(spaceId) + DIGEST_OVERHEAD_BYTES;
      if (spaces.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      spaces.push(this.digest(spaceId)!);
    }
    return { spaces, more: i < sorted.length };
  }

  /**
   * The memories and tombstones of a space after id `after` in code-point order: at most
   * `limit` entries in total, and no more than about `maxBytes` on the wire (at least one).
   */
  scan(spaceId: string, after: string, limit: number, maxBytes: number): ScanPage {
    const page: ScanPage = { memories: [], tombstones: [], more: false };
    const space = this.#spaces.get(spaceId);
    if (space === undefined) return page;
    space.sortedIds ??= [...space.slots.keys()].sort(compareCodePoints);
    const ids = space.sortedIds;
    let count = 0;
    let bytes = 0;
    let i = indexAfter(ids, after);
    for (; i < ids.length && count < limit; i++) {
      const id = ids[i]!;
      const slot = space.slots.get(id)!;
      const size =
        slot.kind === ENTRY_KINDS.Memory
          ? Buffer.byteLength(id) +
            Buffer.byteLength(slot.memory.content) +
            4 * slot.memory.embedding.length +
            MEMORY_OVERHEAD_BYTES
          : Buffer.byteLength(id) + TOMBSTONE_OVERHEAD_BYTES;
      if (count > 0 && bytes + size > maxBytes) break;
      bytes += size;
      count++;
      if (slot.kind === ENTRY_KINDS.Memory) page.memories.push(slot.memory);
      else page.tombstones.push({ id, version: slot.version });
    }
    page.more = i < ids.length;
    return page;
  }

  /**
   * Ranks a space's memories against the cue: cosine similarity when the cue has an
   * embedding (memories of another dimension are skipped), else the fraction of the cue's
   * terms present in the memory (memories sharing none are skipped); an empty cue returns
   * the newest memories with score 0. Ties go to the newer memory.
   */
  recall(spaceId: string, cue: Cue, limit: number): ScoredMemory[] {
    const space = this.#spaces.get(spaceId);
    if (space === undefined) return [];
    const scored: { entry: LiveSlot; score: number }[] = [];
    // plain loops over the slots (no generator): this is the node's hot path
    const slots = space.slots.values();
    if (cue.embedding.length > 0) {
      const cueNorm = normOf(cue.embedding);
      for (const entry of slots) {
        if (entry.kind !== ENTRY_KINDS.Memory) continue;
        if (entry.memory.embedding.length !== cue.embedding.length) continue;
        const denom = cueNorm * entry.norm;
        scored.push({
          entry,
          score: denom === 0 ? 0 : dot(cue.embedding, entry.memory.embedding) / denom,
        });
      }
    } else {
      const cueTerms = tokenize(cue.text);
      if (cueTerms.size === 0) {
        for (const entry of slots)
          if (entry.kind === ENTRY_KINDS.Memory) scored.push({ entry, score: 0 });
      } else {
        for (const entry of slots) {
          if (entry.kind !== ENTRY_KINDS.Memory) continue;
          entry.terms ??= tokenize(entry.memory.content);
          let hits = 0;
          for (const t of cueTerms) if (entry.terms.has(t)) hits++;
          if (hits > 0) scored.push({ entry, score: hits / cueTerms.size });
        }
      }
    }
    scored.sort(
      (a, b) =>
        b.score - a.score ||
        b.entry.memory.createdAtMs - a.entry.memory.createdAtMs ||
        (a.entry.memory.id < b.entry.memory.id ? -1 : 1),
    );
    const out: ScoredMemory[] = [];
    for (let i = 0; i < scored.length && i < limit; i++) {
      const s = scored[i]!;
      out.push({ memory: s.entry.memory, score: s.score });
    }
    return out;
  }

  /**
   * Plans merging near-duplicates among the memories older than `version` (a write at or
   * after it is not the consolidation's to judge): oldest first, each memory absorbs every
   * later one whose embedding has cosine >= threshold with it (same dimension) or whose
   * normalized content (lowercase, collapsed whitespace) is identical and non-empty. The kept
   * memory takes the highest confidence of its group, and `version` when that raises it; each
   * absorbed one gets a tombstone at `version`. Depends only on the space's contents, so
   * replicas holding the same data plan the same.
   */
  planMerge(spaceId: string, threshold: number, version: number): MergePlan {
    const space = this.#spaces.get(spaceId);
    const all = space === undefined ? [] : liveSlots(space);
    const entries = all.filter((e) => e.memory.version < version);
    entries.sort(
      (a, b) =>
        a.memory.createdAtMs - b.memory.createdAtMs || compareCodePoints(a.memory.id, b.memory.id),
    );
    const normalized = entries.map((e) => normalizeContent(e.memory.content));
    const absorbed = new Uint8Array(entries.length);
    const plan: MergePlan = {
      spaceId,
      version,
      groups: [],
      writes: { memories: [], tombstones: [] },
      before: all.length,
    };
    for (let i = 0; i < entries.length; i++) {
      if (absorbed[i] === 1) continue;
      const a = entries[i]!;
      const removed: string[] = [];
      let confidence = a.memory.confidence;
      for (let j = i + 1; j < entries.length; j++) {
        if (absorbed[j] === 1) continue;
        const b = entries[j]!;
        const sameContent = normalized[i]!.length > 0 && normalized[i] === normalized[j];
        let similar = false;
        if (
          !sameContent &&
          a.norm > 0 &&
          b.norm > 0 &&
          a.memory.embedding.length === b.memory.embedding.length
        ) {
          similar = dot(a.memory.embedding, b.memory.embedding) / (a.norm * b.norm) >= threshold;
        }
        if (sameContent || similar) {
          absorbed[j] = 1;
          removed.push(b.memory.id);
          confidence = Math.max(confidence, b.memory.confidence);
        }
      }
      if (removed.length === 0) continue;
      let kept = a.memory;
      if (confidence > kept.confidence) {
        kept = { ...kept, confidence, version };
        plan.writes.memories.push(kept);
      }
      plan.groups.push({ kept, removed });
      for (const id of removed) plan.writes.tombstones.push({ id, version });
    }
    return plan;
  }

  #spaceFor(spaceId: string): Space {
    let space = this.#spaces.get(spaceId);
    if (space === undefined) {
      space = { slots: new Map(), digest: new SpaceDigestState(), sortedIds: undefined };
      this.#spaces.set(spaceId, space);
      this.#sortedSpaces = undefined;
    }
    return space;
  }

  #set(space: Space, id: string, slot: Slot): void {
    const old = space.slots.get(id);
    if (old === undefined) space.sortedIds = undefined;
    else space.digest.remove(old.kind, id, versionOf(old));
    space.slots.set(id, slot);
    space.digest.add(slot.kind, id, versionOf(slot));
  }
}

function liveSlot(memory: Memory): LiveSlot {
  return { kind: ENTRY_KINDS.Memory, memory, norm: normOf(memory.embedding), terms: undefined };
}

function liveSlots(space: Space): LiveSlot[] {
  const out: LiveSlot[] = [];
  for (const slot of space.slots.values()) if (slot.kind === ENTRY_KINDS.Memory) out.push(slot);
  return out;
}

export function toMergedGroups(plan: MergePlan): MergedGroup[] {
  return plan.groups.map((g) => ({ keptId: g.kept.id, mergedIds: g.removed }));
}
