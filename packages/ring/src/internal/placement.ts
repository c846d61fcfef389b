/**
 * The ring math, shared by `Ring` (plain arrays) and `TableReader` (views over shared
 * memory) so both answer identically.
 *
 * Token scheme (a wire contract, pinned by test/vectors/placement.json):
 * - node `n` owns `vnodes` tokens; token `k` is MurmurHash3 x86_32 of the node id's UTF-8
 *   bytes with seed `k` (k = 0 .. vnodes-1);
 * - vnodes are ordered by token, ties by node id in code-point (UTF-8 byte) order;
 * - a key with token `t` starts at the first vnode whose token is >= t, wrapping to 0.
 *
 * Replica walk from that start, visiting vnodes clockwise:
 * - lap 1: take a node unless it is already taken, or its zone is already used while some
 *   zone is still unused;
 * - lap 2 (only when lap 1 took fewer than the replication factor): take any node not
 *   already taken.
 * Nodes without a zone share the zone "".
 */
import { murmur3x86_32 } from './murmur3.js';

/** Bits of a token that select an index bucket: 2^16 buckets of token positions. */
export const INDEX_BITS = 16;
export const INDEX_SHIFT = 32 - INDEX_BITS;
export const INDEX_LENGTH = (1 << INDEX_BITS) + 1;

/** Hot arrays of one table; lengths may exceed the counts (shared-buffer capacity). */
export interface PlacementArrays {
  /** Sorted vnode tokens, `tokenCount` used. */
  readonly tokens: Uint32Array;
  /** `index[b]` = first vnode position whose token's top INDEX_BITS are >= b. */
  readonly index: Uint32Array;
  /** Row per vnode position: `stride` node indexes, primary first. */
  readonly rows: Uint16Array;
}

/** First vnode position for `token`; `tokenCount` must be > 0. Returns -1 on torn input. */
export function startPosition(arrays: PlacementArrays, tokenCount: number, token: number): number {
  const tokens = arrays.tokens;
  const bucket = token >>> INDEX_SHIFT;
  let lo = arrays.index[bucket]!;
  let hi = arrays.index[bucket + 1]!;
  // A table read while being rewritten can hold anything; the caller validates and retries.
  if (!(lo <= hi && hi <= tokenCount)) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (tokens[mid]! < token) lo = mid + 1;
    else hi = mid;
  }
  return lo === tokenCount ? 0 : lo;
}

/** Compares strings by code point, which is also UTF-8 byte order (unlike `<` on UTF-16). */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above every other BMP unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

export interface BuildInput {
  /** Node ids, already sorted with `compareCodePoints`. */
  readonly ids: readonly string[];
  /** Zone number of each node (dense, 0-based). */
  readonly zoneOf: Uint16Array;
  readonly zoneCount: number;
  readonly vnodesPerNode: number;
  /** Row width: min(replication factor, node count). */
  readonly stride: number;
}

export interface BuiltArrays extends PlacementArrays {
  readonly tokenCount: number;
}

const utf8 = new TextEncoder();

/** Computes the sorted tokens, the index and every vnode's replica row. */
export function buildArrays(input: BuildInput): BuiltArrays {
  const { ids, zoneOf, zoneCount, vnodesPerNode, stride } = input;
  const nodeCount = ids.length;
  const tokenCount = nodeCount * vnodesPerNode;

  // Pack (token, node index) into one float64: token * 2^16 + index < 2^48 is exact, and a
  // numeric sort of the packed values orders by token, then by node index, i.e. by node id.
  const packed = new Float64Array(tokenCount);
  let p = 0;
  for (let n = 0; n < nodeCount; n++) {
    const bytes = utf8.encode(ids[n]!);
    for (let k = 0; k < vnodesPerNode; k++) {
      packed[p++] = murmur3x86_32(bytes, bytes.length, k) * 65536 + n;
    }
  }
  packed.sort();

  const tokens = new Uint32Array(tokenCount);
  const owners = new Uint16Array(tokenCount);
  for (let i = 0; i < tokenCount; i++) {
    const value = packed[i]!;
    const owner = value % 65536;
    owners[i] = owner;
    tokens[i] = (value - owner) / 65536;
  }

  const index = new Uint32Array(INDEX_LENGTH);
  let position = 0;
  for (let bucket = 0; bucket < INDEX_LENGTH; bucket++) {
    while (position < tokenCount && tokens[position]! >>> INDEX_SHIFT < bucket) position++;
    index[bucket] = position;
  }

  const rows = new Uint16Array(tokenCount * stride);
  // Stamps instead of clearing per walk: entry === walk number means "taken in this walk".
  const taken = new Uint32Array(nodeCount);
  const zoneUsed = new Uint32Array(Math.max(zoneCount, 1));
  for (let start = 0; start < tokenCount; start++) {
    const stamp = start + 1;
    const rowBase = start * stride;
    let count = 0;
    let zonesUsed = 0;
    for (let step = 0; step < tokenCount && count < stride; step++) {
      let at = start + step;
      if (at >= tokenCount) at -= tokenCount;
      const node = owners[at]!;
      if (taken[node] === stamp) continue;
      const zone = zoneOf[node]!;
      const zoneFresh = zoneUsed[zone] !== stamp;
      if (!zoneFresh && zonesUsed < zoneCount) continue;
      taken[node] = stamp;
      if (zoneFresh) {
        zoneUsed[zone] = stamp;
        zonesUsed++;
      }
      rows[rowBase + count++] = node;
    }
    for (let step = 0; step < tokenCount && count < stride; step++) {
      let at = start + step;
      if (at >= tokenCount) at -= tokenCount;
      const node = owners[at]!;
      if (taken[node] === stamp) continue;
      taken[node] = stamp;
      rows[rowBase + count++] = node;
    }
  }
  return { tokens, index, rows, tokenCount };
}
