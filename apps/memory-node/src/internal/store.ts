import { InvalidArgumentError } from '@engram/common';
import type { Memory, MergedGroup, ScoredMemory } from '@engram/proto';

/** Limits applied to requests; validated once when the node starts. */
export interface StoreLimits {
  maxContentBytes: number;
  maxEmbeddingDims: number;
  maxIdBytes: number;
  maxSpaceIdBytes: number;
  maxRecallLimit: number;
  defaultRecallLimit: number;
  defaultSimilarityThreshold: number;
  maxQuerySpaces: number;
}

/**
 * Default max UTF-8 bytes of a space id. The router and the ring accept space ids of up to
 * 1024 UTF-16 units (`MAX_SPACE_ID_LENGTH` in @engram/ring), and whatever the router accepts a
 * node must accept: 1024 characters are at most 4096 UTF-8 bytes whatever they are (3 bytes per
 * BMP unit, 4 per surrogate pair of 2 units; 4 per code point covers both).
 */
export const DEFAULT_MAX_SPACE_ID_BYTES = 4096;

interface Entry {
  memory: Memory;
  /** Euclidean norm of the embedding (0 when absent). */
  norm: number;
  terms: Set<string> | undefined;
}

const TERM_RE = /[\p{L}\p{N}]+/gu;

export function tokenize(text: string): Set<string> {
  return new Set(text.toLowerCase().match(TERM_RE) ?? []);
}

function normOf(v: readonly number[]): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function normalizeContent(text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').trim();
}

export function validateSpaceId(spaceId: string, limits: StoreLimits, field = 'space_id'): void {
  if (spaceId.length === 0) throw new InvalidArgumentError(field, spaceId, 'a non-empty string');
  if (Buffer.byteLength(spaceId) > limits.maxSpaceIdBytes) {
    throw new InvalidArgumentError(
      field,
      spaceId,
      `at most ${limits.maxSpaceIdBytes} bytes (UTF-8)`,
    );
  }
}

export function validateEmbedding(v: readonly number[], field: string, limits: StoreLimits): void {
  if (v.length > limits.maxEmbeddingDims) {
    throw new InvalidArgumentError(field, v, `at most ${limits.maxEmbeddingDims} dimensions`);
  }
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]))
      throw new InvalidArgumentError(`${field}[${i}]`, v[i], 'a finite number');
  }
}

/** Validates a memory to store; returns it with defaults applied (id, created_at_ms). */
export function validateMemory(
  memory: Memory | null,
  limits: StoreLimits,
  assignId: () => string,
  nowMs: number,
): Memory {
  if (memory === null) throw new InvalidArgumentError('memory', memory, 'present');
  if (Buffer.byteLength(memory.id) > limits.maxIdBytes) {
    throw new InvalidArgumentError(
      'memory.id',
      memory.id,
      `at most ${limits.maxIdBytes} bytes (UTF-8)`,
    );
  }
  const contentBytes = Buffer.byteLength(memory.content);
  if (contentBytes > limits.maxContentBytes) {
    throw new InvalidArgumentError(
      'memory.content',
      memory.content,
      `at most ${limits.maxContentBytes} bytes (UTF-8), not ${contentBytes}`,
    );
  }
  validateEmbedding(memory.embedding, 'memory.embedding', limits);
  if (memory.content.length === 0 && memory.embedding.length === 0) {
    throw new InvalidArgumentError(
      'memory.content',
      memory.content,
      'non-empty when memory.embedding is empty',
    );
  }
  if (!(memory.confidence >= 0 && memory.confidence <= 1)) {
    throw new InvalidArgumentError('memory.confidence', memory.confidence, 'in [0, 1]');
  }
  if (!Number.isSafeInteger(memory.createdAtMs) || memory.createdAtMs < 0) {
    throw new InvalidArgumentError('memory.created_at_ms', memory.createdAtMs, 'an integer >= 0');
  }
  return {
    id: memory.id.length > 0 ? memory.id : assignId(),
    content: memory.content,
    embedding: memory.embedding,
    confidence: memory.confidence,
    createdAtMs: memory.createdAtMs === 0 ? nowMs : memory.createdAtMs,
    version: memory.version,
  };
}

export function resolveLimit(limit: number, limits: StoreLimits): number {
  if (limit === 0) return limits.defaultRecallLimit;
  if (!Number.isInteger(limit) || limit < 0 || limit > limits.maxRecallLimit) {
    throw new InvalidArgumentError('limit', limit, `an integer in [0, ${limits.maxRecallLimit}]`);
  }
  return limit;
}

export function resolveThreshold(t: number, limits: StoreLimits): number {
  if (t === 0) return limits.defaultSimilarityThreshold;
  if (!(t > 0 && t <= 1)) {
    throw new InvalidArgumentError('similarity_threshold', t, 'in (0, 1]');
  }
  return t;
}

export interface Cue {
  text: string;
  embedding: readonly number[];
}

/** A planned consolidation of one space: apply it with {@link MemoryStore.applyMerge}. */
export interface MergePlan {
  spaceId: string;
  groups: { kept: Memory; removed: string[] }[];
  before: number;
}

/**
 * In-memory memories per space. Pure data structure: no I/O, no clock; the node decides
 * when a mutation is durable and then applies it here.
 */
export class MemoryStore {
  readonly #spaces = new Map<string, Map<string, Entry>>();

  get spaceCount(): number {
    return this.#spaces.size;
  }

  size(spaceId: string): number {
    return this.#spaces.get(spaceId)?.size ?? 0;
  }

  put(spaceId: string, memory: Memory): void {
    let space = this.#spaces.get(spaceId);
    if (space === undefined) {
      space = new Map();
      this.#spaces.set(spaceId, space);
    }
    space.set(memory.id, { memory, norm: normOf(memory.embedding), terms: undefined });
  }

  get(spaceId: string, id: string): Memory | undefined {
    return this.#spaces.get(spaceId)?.get(id)?.memory;
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
    const scored: { entry: Entry; score: number }[] = [];
    if (cue.embedding.length > 0) {
      const cueNorm = normOf(cue.embedding);
      for (const entry of space.values()) {
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
        for (const entry of space.values()) scored.push({ entry, score: 0 });
      } else {
        for (const entry of space.values()) {
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
   * Plans merging near-duplicates: oldest first, each memory absorbs every later one whose
   * embedding has cosine >= threshold with it (same dimension) or whose normalized content
   * (lowercase, collapsed whitespace) is identical and non-empty. The kept memory takes the
   * highest confidence of its group.
   */
  planMerge(spaceId: string, threshold: number): MergePlan {
    const space = this.#spaces.get(spaceId);
    const entries = space === undefined ? [] : [...space.values()];
    entries.sort(
      (a, b) => a.memory.createdAtMs - b.memory.createdAtMs || (a.memory.id < b.memory.id ? -1 : 1),
    );
    const normalized = entries.map((e) => normalizeContent(e.memory.content));
    const absorbed = new Uint8Array(entries.length);
    const groups: MergePlan['groups'] = [];
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
      if (removed.length > 0) groups.push({ kept: { ...a.memory, confidence }, removed });
    }
    return { spaceId, groups, before: entries.length };
  }

  applyMerge(
    spaceId: string,
    groups: readonly { kept: Memory; removed: readonly string[] }[],
  ): void {
    const space = this.#spaces.get(spaceId);
    if (space === undefined) return;
    for (const g of groups) {
      for (const id of g.removed) space.delete(id);
      // Raise the confidence of whatever is stored under the kept id now: a Store may have
      // replaced it since the plan was made, and replay must reach the same state.
      const current = space.get(g.kept.id);
      if (current !== undefined && g.kept.confidence > current.memory.confidence) {
        current.memory = { ...current.memory, confidence: g.kept.confidence };
      }
    }
  }
}

export function toMergedGroups(plan: MergePlan): MergedGroup[] {
  return plan.groups.map((g) => ({ keptId: g.kept.id, mergedIds: g.removed }));
}
