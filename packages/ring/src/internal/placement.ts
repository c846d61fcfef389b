/**
 * The ring math, shared by `Ring` (plain arrays) and `TableReader` (views over shared
 * memory) so both answer identically.
 *
 * Token scheme (a wire contract, pinned by test/vectors/placement.json):
 * - node `n` owns `vnodes` tokens; token `k` is MurmurHash3 x86_32 of the node id's UTF-8
 *   bytes with seed `k` (k = 0 .. vnodes-1);
 * - or, when nodes carry explicit tokens (`NodeInfo.tokens`, pinned by
 *   test/vectors/placement-tokens.json), exactly those, none held twice;
 * - vnodes are ordered by token, ties by node id in code-point (UTF-8 byte) order;
 * - a key with token `t` starts at the first vnode whose token is >= t, wrapping to 0.
 *
 * Replica walk from that start, visiting vnodes clockwise:
 * - lap 1: take a node unless it is already taken, or its zone is already used while some
 *   zone is still unused;
 * - lap 2 (only when lap 1 took fewer than the replication factor): take any node not
 *   already taken.
 * Nodes without a zone share the zone "".
 *
 * While membership changes, the same tokens serve two walks: the current placement passes
 * over joining nodes, the future one over leaving nodes (`WalkRule.skip`), each counting only
 * the zones and nodes it may take. A walk that skips nobody is the scheme above.
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
  /** Hashed tokens per node; ignored with `explicit`. */
  readonly vnodesPerNode: number;
  /**
   * Explicit tokens per node index (same order as `ids`), or null to hash `vnodesPerNode`
   * tokens per node. With them, a token held twice calls `duplicate` (which throws).
   */
  readonly explicit?: {
    readonly tokens: readonly Uint32Array[];
    readonly duplicate: (nodeA: number, nodeB: number, token: number) => never;
  } | null;
  /** Walks every row: the current placement's walker. */
  readonly walker: Walker;
}

/** Placement arrays plus the node owning each vnode position, which a walk at lookup needs. */
export interface OwnedArrays extends PlacementArrays {
  /** Node index per vnode position, `tokenCount` used. */
  readonly owners: Uint16Array;
}

export interface BuiltArrays extends OwnedArrays {
  readonly tokenCount: number;
}

/**
 * Role of a node in a membership change, as stored per node. A walk passes over the nodes of
 * one role as if they were absent: joining nodes for the current placement, leaving nodes for
 * the future one.
 */
export const ROLE_CODES = Object.freeze({ normal: 0, joining: 1, leaving: 2 } as const);
/** Role names by `ROLE_CODES` value. */
export const ROLE_NAMES = Object.freeze(['normal', 'joining', 'leaving'] as const);

/** Dense zone numbers (0-based, in order of first appearance) for each node's zone. */
export function zoneNumbersOf(zones: readonly string[]): Uint16Array {
  const numbers = new Map<string, number>();
  const zoneOf = new Uint16Array(zones.length);
  for (let i = 0; i < zones.length; i++) {
    let number = numbers.get(zones[i]!);
    if (number === undefined) {
      number = numbers.size;
      numbers.set(zones[i]!, number);
    }
    zoneOf[i] = number;
  }
  return zoneOf;
}

// `taken` entry of a node a walker passes over: above every stamp, so always "taken".
const SKIPPED = 0xffffffff;

/**
 * One kind of walk over one table (current or future placement) and its reusable marks.
 * `taken[n] >= stamp` means node n may not be taken in this walk: it was taken already
 * (entry = this walk's stamp) or the walker skips it (entry = SKIPPED). Stamps instead of
 * clearing per walk; skipped nodes folded into the same test, so skipping costs nothing.
 */
export interface Walker {
  /** Zone number per node index (dense, 0-based). */
  readonly zoneOf: Uint16Array;
  /** Distinct zones among the nodes the walk may take. */
  readonly zoneCount: number;
  /** Nodes a walk takes: min(replication factor, nodes it may take). */
  readonly stride: number;
  readonly taken: Uint32Array;
  readonly zoneUsed: Uint32Array;
  stamp: number;
}

/**
 * A walker for nodes with the given roles (`ROLE_CODES`), passing over those whose role is
 * `skip`. At least one node must remain (validated when the ring is built).
 */
export function createWalker(
  zoneOf: Uint16Array,
  roles: Uint8Array,
  skip: number,
  replicationFactor: number,
): Walker {
  const taken = new Uint32Array(roles.length);
  const zones = new Set<number>();
  let takeable = 0;
  let zoneRange = 0;
  for (let n = 0; n < roles.length; n++) {
    zoneRange = Math.max(zoneRange, zoneOf[n]! + 1);
    if (roles[n] === skip) {
      taken[n] = SKIPPED;
    } else {
      takeable++;
      zones.add(zoneOf[n]!);
    }
  }
  return {
    zoneOf,
    zoneCount: zones.size,
    stride: Math.min(replicationFactor, takeable),
    taken,
    zoneUsed: new Uint32Array(Math.max(zoneRange, 1)),
    stamp: 0,
  };
}

function nextStamp(walker: Walker): number {
  let stamp = walker.stamp + 1;
  if (stamp === SKIPPED) {
    const taken = walker.taken;
    for (let n = 0; n < taken.length; n++) if (taken[n] !== SKIPPED) taken[n] = 0;
    walker.zoneUsed.fill(0);
    stamp = 1;
  }
  walker.stamp = stamp;
  return stamp;
}

/**
 * The replica walk (module comment) from vnode position `start`: writes the nodes taken to
 * `out[base..]` and returns how many, or -1 when an owner is not a node (a torn read of a
 * shared table; the caller retries). The one walk both the build (every row) and lookups
 * (future placements while a change is in progress) run.
 *
 * `shared`: owners live in a published table, so each is read with `Atomics.load` for the
 * ordering argument of layout.ts. The build passes false: `Atomics.load` on every step made
 * it ~15 % slower (100 nodes, measured), for arrays no other thread can see yet.
 */
export function walkInto(
  owners: Uint16Array,
  tokenCount: number,
  start: number,
  walker: Walker,
  out: Uint16Array,
  base: number,
  shared: boolean,
): number {
  const { zoneOf, zoneCount, stride, taken, zoneUsed } = walker;
  const nodeCount = taken.length;
  const stamp = nextStamp(walker);
  let count = 0;
  let zonesUsed = 0;
  for (let step = 0; step < tokenCount && count < stride; step++) {
    let at = start + step;
    if (at >= tokenCount) at -= tokenCount;
    const node = shared ? Atomics.load(owners, at) : owners[at]!;
    if (node >= nodeCount) return -1;
    if (taken[node]! >= stamp) continue;
    const zone = zoneOf[node]!;
    const zoneFresh = zoneUsed[zone] !== stamp;
    if (!zoneFresh && zonesUsed < zoneCount) continue;
    taken[node] = stamp;
    if (zoneFresh) {
      zoneUsed[zone] = stamp;
      zonesUsed++;
    }
    out[base + count++] = node;
  }
  for (let step = 0; step < tokenCount && count < stride; step++) {
    let at = start + step;
    if (at >= tokenCount) at -= tokenCount;
    const node = shared ? Atomics.load(owners, at) : owners[at]!;
    if (node >= nodeCount) return -1;
    if (taken[node]! >= stamp) continue;
    taken[node] = stamp;
    out[base + count++] = node;
  }
  return count;
}

const utf8 = new TextEncoder();

/** Computes the sorted tokens, their owners, the index and every vnode's replica row. */
export function buildArrays(input: BuildInput): BuiltArrays {
  const { ids, vnodesPerNode, walker } = input;
  const explicit = input.explicit ?? null;
  const nodeCount = ids.length;
  let tokenCount = nodeCount * vnodesPerNode;
  if (explicit !== null) {
    tokenCount = 0;
    for (const list of explicit.tokens) tokenCount += list.length;
  }

  // Pack (token, node index) into one float64: token * 2^16 + index < 2^48 is exact, and a
  // numeric sort of the packed values orders by token, then by node index, i.e. by node id.
  const packed = new Float64Array(tokenCount);
  let p = 0;
  for (let n = 0; n < nodeCount; n++) {
    if (explicit !== null) {
      const list = explicit.tokens[n]!;
      for (let k = 0; k < list.length; k++) packed[p++] = list[k]! * 65536 + n;
      continue;
    }
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
    // Explicit tokens are positions someone chose: one held twice is a mistake, not a tie.
    if (explicit !== null && i > 0 && tokens[i] === tokens[i - 1]) {
      explicit.duplicate(owners[i - 1]!, owner, tokens[i]!);
    }
  }

  const index = new Uint32Array(INDEX_LENGTH);
  let position = 0;
  for (let bucket = 0; bucket < INDEX_LENGTH; bucket++) {
    while (position < tokenCount && tokens[position]! >>> INDEX_SHIFT < bucket) position++;
    index[bucket] = position;
  }

  const stride = walker.stride;
  const rows = new Uint16Array(tokenCount * stride);
  for (let start = 0; start < tokenCount; start++) {
    walkInto(owners, tokenCount, start, walker, rows, start * stride, false);
  }
  return { tokens, index, rows, owners, tokenCount };
}
