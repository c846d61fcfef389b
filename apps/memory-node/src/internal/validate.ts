import { InvalidArgumentError } from '@engram/common';
import type { Memory, Tombstone } from '@engram/proto';

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

export function validateSpaceId(spaceId: string, limits: StoreLimits, field = 'space_id'): void {
  if (spaceId.length === 0) throw new InvalidArgumentError(field, spaceId, 'a non-empty string');
  checkBytes(spaceId, limits.maxSpaceIdBytes, field);
}

/** Throws when `value` has more than `max` UTF-8 bytes. */
export function checkBytes(value: string, max: number, field: string): void {
  if (Buffer.byteLength(value) > max) {
    throw new InvalidArgumentError(field, value, `at most ${max} bytes (UTF-8)`);
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

/**
 * A uint64 version decoded as a number: only safe integers are exact (a larger one lost its
 * low bits in decoding, so two different versions could compare equal).
 */
export function validateVersion(version: number, field: string, min: 0 | 1 = 0): void {
  if (!Number.isSafeInteger(version) || version < min) {
    throw new InvalidArgumentError(
      field,
      version,
      `an integer in [${min}, ${Number.MAX_SAFE_INTEGER}]`,
    );
  }
}

// The checks Store and ApplyEntries share, with `prefix` naming the memory (`memory`,
// `memories[2]`).
function checkMemory(memory: Memory, prefix: string, limits: StoreLimits, minVersion: 0 | 1) {
  checkBytes(memory.id, limits.maxIdBytes, `${prefix}.id`);
  const contentBytes = Buffer.byteLength(memory.content);
  if (contentBytes > limits.maxContentBytes) {
    throw new InvalidArgumentError(
      `${prefix}.content`,
      memory.content,
      `at most ${limits.maxContentBytes} bytes (UTF-8), not ${contentBytes}`,
    );
  }
  validateEmbedding(memory.embedding, `${prefix}.embedding`, limits);
  if (memory.content.length === 0 && memory.embedding.length === 0) {
    throw new InvalidArgumentError(
      `${prefix}.content`,
      memory.content,
      `non-empty when ${prefix}.embedding is empty`,
    );
  }
  if (!(memory.confidence >= 0 && memory.confidence <= 1)) {
    throw new InvalidArgumentError(`${prefix}.confidence`, memory.confidence, 'in [0, 1]');
  }
  if (!Number.isSafeInteger(memory.createdAtMs) || memory.createdAtMs < 0) {
    throw new InvalidArgumentError(
      `${prefix}.created_at_ms`,
      memory.createdAtMs,
      'an integer >= 0',
    );
  }
  validateVersion(memory.version, `${prefix}.version`, minVersion);
}

/**
 * Validates a memory to store; returns it with defaults applied (id, created_at_ms, and the
 * version from `stamp` when it is 0). Every field is listed so the stored object has one shape.
 */
export function validateMemory(
  memory: Memory | null,
  limits: StoreLimits,
  assignId: () => string,
  nowMs: number,
  stamp: () => number = () => 0,
): Memory {
  if (memory === null) throw new InvalidArgumentError('memory', memory, 'present');
  checkMemory(memory, 'memory', limits, 0);
  return {
    id: memory.id.length > 0 ? memory.id : assignId(),
    content: memory.content,
    embedding: memory.embedding,
    confidence: memory.confidence,
    createdAtMs: memory.createdAtMs === 0 ? nowMs : memory.createdAtMs,
    version: memory.version === 0 ? stamp() : memory.version,
  };
}

/**
 * Validates the entries of an ApplyEntries request: copies from another replica, so they are
 * kept exactly as sent (a replica must not restamp them), and need an id and a version.
 */
export function validateEntries(
  memories: readonly Memory[],
  tombstones: readonly Tombstone[],
  limits: StoreLimits,
): { memories: Memory[]; tombstones: Tombstone[] } {
  const outMemories = memories.map((m, i): Memory => {
    const prefix = `memories[${i}]`;
    if (m.id.length === 0) throw new InvalidArgumentError(`${prefix}.id`, m.id, 'non-empty');
    checkMemory(m, prefix, limits, 1);
    return {
      id: m.id,
      content: m.content,
      embedding: m.embedding,
      confidence: m.confidence,
      createdAtMs: m.createdAtMs,
      version: m.version,
    };
  });
  const outTombstones = tombstones.map((t, i): Tombstone => {
    const prefix = `tombstones[${i}]`;
    if (t.id.length === 0) throw new InvalidArgumentError(`${prefix}.id`, t.id, 'non-empty');
    checkBytes(t.id, limits.maxIdBytes, `${prefix}.id`);
    validateVersion(t.version, `${prefix}.version`, 1);
    return { id: t.id, version: t.version };
  });
  return { memories: outMemories, tombstones: outTombstones };
}

/** A page or result size: 0 means `fallback`; else an integer in [1, max]. */
export function resolvePageLimit(limit: number, fallback: number, max: number): number {
  if (limit === 0) return fallback;
  if (!Number.isInteger(limit) || limit < 0 || limit > max) {
    throw new InvalidArgumentError('limit', limit, `an integer in [0, ${max}]`);
  }
  return limit;
}

export function resolveLimit(limit: number, limits: StoreLimits): number {
  return resolvePageLimit(limit, limits.defaultRecallLimit, limits.maxRecallLimit);
}

export function resolveThreshold(t: number, limits: StoreLimits): number {
  if (t === 0) return limits.defaultSimilarityThreshold;
  if (!(t > 0 && t <= 1)) {
    throw new InvalidArgumentError('similarity_threshold', t, 'in (0, 1]');
  }
  return t;
}
