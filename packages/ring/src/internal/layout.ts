/**
 * Layout of the shared placement table. One writer (the control plane's `TableWriter`),
 * any number of readers (`TableReader`, one per thread).
 *
 *   [ global header | half 0 | half 1 ]
 *   half = [ half header | tokens | index | rows | owners | metadata blob ]
 *
 * owners (node index per vnode position) serve the future walk while a membership change
 * is in progress; roles, zones and pending pins ride in the metadata blob.
 *
 * Global header (Int32 slots):
 *   MAGIC, LAYOUT_VERSION, capacities  written once by the writer's constructor, before the
 *                                      buffer is shared; read by readers at construction.
 *   STATE  (epoch << 1) | half         written by the writer with Atomics.store; read by
 *                                      readers with Atomics.load. 0 = nothing published.
 *
 * Publishing (writer): fill the half that STATE does not point at with plain writes, then
 * Atomics.store(STATE, (epoch << 1) | thatHalf). Readers never look at the inactive half,
 * so the writer never writes where a reader with the current STATE reads.
 *
 * Reading (reader): s = Atomics.load(STATE); read half (s & 1); then Atomics.load(STATE)
 * again. Equal means no publish completed in between, so the half read was not the one being
 * written (a half is rewritten only by the publish *after* the one that retired it, and the
 * epoch in STATE never repeats): the answer is from table s. Different means retry.
 *
 * The first load may be an earlier one: pendingInto answers for the table the reader is
 * already on, reading half (#state & 1) and checking STATE once after. Equal still proves no
 * publish completed since that earlier load, so none during the reads.
 *
 * Ordering caveat, stated once: the token reads are plain (unordered) reads, and the
 * ECMAScript memory model alone does not forbid a plain read from being satisfied after a
 * later seq-cst load. The entries that make the answer (the row, or the owners a future walk
 * visits) are therefore read with Atomics.load, and their addresses come from the token reads
 * (a data dependency), so on the platforms V8 targets the closing STATE load cannot complete
 * before them. A torn owner can be any number: the walk refuses one that is not a node index,
 * as startPosition refuses a torn index bucket, and the caller retries. Metadata (blob) is
 * decoded only when STATE moved and validated with Atomics.compareExchange, a read-modify-write
 * that orders every earlier read on all platforms. The torn-read stress tests exercise this.
 */

export const TABLE_MAGIC = 0x52474e45; // "ENGR" little-endian
/** 2: owners section, node roles and pending pins in the metadata. */
export const TABLE_LAYOUT_VERSION = 2;

/** Global header slots (Int32 index). */
export const G_MAGIC = 0;
export const G_LAYOUT_VERSION = 1;
export const G_STATE = 2;
export const G_MAX_NODES = 3;
export const G_MAX_TOKENS = 4;
export const G_MAX_REPLICATION_FACTOR = 5;
export const G_MAX_BLOB_BYTES = 6;
export const G_INDEX_BITS = 7;
export const GLOBAL_HEADER_SLOTS = 16;

/** Half header slots (Int32 index from the half's start). */
export const H_EPOCH = 0;
export const H_NODE_COUNT = 1;
export const H_TOKEN_COUNT = 2;
/** Row width: the current placement's size (effective replication factor). */
export const H_STRIDE = 3;
export const H_BLOB_BYTES = 4;
export const H_VNODES_PER_NODE = 5;
export const H_CONFIGURED_REPLICATION_FACTOR = 6;
/** Widest current, future or pinned placement. */
export const H_MAX_PLACEMENT_SIZE = 7;
export const HALF_HEADER_SLOTS = 16;

export interface TableCapacity {
  readonly maxNodes: number;
  readonly maxTokens: number;
  readonly maxReplicationFactor: number;
  readonly maxBlobBytes: number;
}

export interface HalfOffsets {
  readonly header: number;
  readonly tokens: number;
  readonly index: number;
  readonly rows: number;
  readonly owners: number;
  readonly blob: number;
}

export interface TableLayout {
  readonly totalBytes: number;
  readonly halves: readonly [HalfOffsets, HalfOffsets];
}

const align8 = (bytes: number): number => Math.ceil(bytes / 8) * 8;

/** Byte offsets of every section, derived from the capacities alone. */
export function computeLayout(capacity: TableCapacity, indexLength: number): TableLayout {
  const headerBytes = GLOBAL_HEADER_SLOTS * 4;
  const halfHeaderBytes = HALF_HEADER_SLOTS * 4;
  const tokensBytes = align8(capacity.maxTokens * 4);
  const indexBytes = align8(indexLength * 4);
  const rowsBytes = align8(capacity.maxTokens * capacity.maxReplicationFactor * 2);
  const ownersBytes = align8(capacity.maxTokens * 2);
  const blobBytes = align8(capacity.maxBlobBytes);
  const halfBytes =
    halfHeaderBytes + tokensBytes + indexBytes + rowsBytes + ownersBytes + blobBytes;
  const half = (start: number): HalfOffsets => {
    const tokens = start + halfHeaderBytes;
    const index = tokens + tokensBytes;
    const rows = index + indexBytes;
    const owners = rows + rowsBytes;
    return { header: start, tokens, index, rows, owners, blob: owners + ownersBytes };
  };
  return {
    totalBytes: headerBytes + 2 * halfBytes,
    halves: [half(headerBytes), half(headerBytes + halfBytes)],
  };
}
