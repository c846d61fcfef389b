/**
 * Why this module is long (~540 lines): the writer and the reader of one shared layout
 * (layout.ts) belong together; the publish order and the epoch-checked read loop are two halves
 * of one protocol, argued once.
 */
import { decode, encode } from '@msgpack/msgpack';
import { CapacityExceededError, InvalidArgumentError, InvalidTableError } from './errors.js';
import { hashKey } from './hash-key.js';
import {
  computeLayout,
  G_INDEX_BITS,
  G_LAYOUT_VERSION,
  G_MAGIC,
  G_MAX_BLOB_BYTES,
  G_MAX_NODES,
  G_MAX_REPLICATION_FACTOR,
  G_MAX_TOKENS,
  G_STATE,
  GLOBAL_HEADER_SLOTS,
  H_BLOB_BYTES,
  H_CONFIGURED_REPLICATION_FACTOR,
  H_EPOCH,
  H_MAX_PLACEMENT_SIZE,
  H_NODE_COUNT,
  H_STRIDE,
  H_TOKEN_COUNT,
  H_VNODES_PER_NODE,
  HALF_HEADER_SLOTS,
  type HalfOffsets,
  TABLE_LAYOUT_VERSION,
  TABLE_MAGIC,
  type TableCapacity,
} from './internal/layout.js';
import {
  createWalker,
  INDEX_BITS,
  INDEX_LENGTH,
  type OwnedArrays,
  ROLE_CODES,
  ROLE_NAMES,
  startPosition,
  zoneNumbersOf,
} from './internal/placement.js';
import {
  futureInto as futurePlacementInto,
  pendingInto as pendingNodesInto,
  type Transition,
} from './internal/transition.js';
import { MAX_NODES, MAX_REPLICATION_FACTOR, MAX_RING_TOKENS } from './limits.js';
import { type Ring, toPlacement } from './ring.js';
import type { NodeInfo, NodeRole, Placement, PlacementTable } from './types.js';

/**
 * The fixed capacities a `TableWriter` falls back to for an option not given when its `buffer`
 * (or `capacity`) is read before the first publish, so there is no table to size it from:
 * 36.5 MiB shared in all. Publish first, or give the options, for a buffer sized to the cluster.
 */
export const DEFAULT_TABLE_MAX_NODES = 1024;
/** 2^20 tokens: 128 nodes at the default 8192 vnodes. */
export const DEFAULT_TABLE_MAX_TOKENS = 1 << 20;
export const DEFAULT_TABLE_MAX_REPLICATION_FACTOR = 5;
export const DEFAULT_TABLE_MAX_BLOB_BYTES = 2 * 1024 * 1024; // 2 MiB
/**
 * Room a capacity derived from the first table published leaves for growth: twice its nodes,
 * tokens and metadata (a cluster can double before the writer throws `CapacityExceeded`).
 */
export const TABLE_GROWTH_FACTOR = 2;
/** Smallest metadata section a derived capacity reserves (node addresses, assignments). */
export const MIN_TABLE_BLOB_BYTES = 64 * 1024; // 64 KiB
const MAX_TABLE_BLOB_BYTES = 2 ** 30; // 1 GiB
/** Epochs live in 30 bits of the state word. */
const MAX_EPOCH = 2 ** 30 - 1;

/**
 * Capacities of a shared table; memory is reserved for two tables of this size, once (a
 * SharedArrayBuffer cannot grow). Each option left out is derived from the first table
 * published: `TABLE_GROWTH_FACTOR` (2) times its nodes, tokens and metadata bytes (metadata at
 * least 64 KiB), placement width at least 5. A later table beyond a capacity throws
 * `CapacityExceededError` naming the option to raise. Give all four for a buffer that exists
 * before the first publish at a size you chose.
 */
export interface TableWriterOptions {
  /** Nodes. Default: 2 × the first table's (1024 if `buffer` is read first); at most 65535. */
  readonly maxNodes?: number;
  /** Vnode tokens. Default: 2 × the first table's (2^20 if `buffer` is read first). */
  readonly maxTokens?: number;
  /**
   * Widest placement (ring replication factor or an assignment's size). Default: the first
   * table's widest, at least 5.
   */
  readonly maxReplicationFactor?: number;
  /**
   * Node metadata and assignments, msgpack-encoded. Default: 2 × the first table's, at least
   * 64 KiB (2 MiB if `buffer` is read first).
   */
  readonly maxBlobBytes?: number;
}

/** Cold data of one table, msgpack-encoded once per publish and decoded once per epoch. */
interface TableMetadata {
  /** [id, address, zone | null, slot, role (`ROLE_CODES`)] per node, in index order. */
  readonly n: Array<[string, string, string | null, number, number]>;
  /** [spaceId, node indexes (primary first)] per assignment. */
  readonly a: Array<[string, number[]]>;
  /** [spaceId, node indexes, or null: back to the ring] per pending assignment. */
  readonly p: Array<[string, number[] | null]>;
}

function capacityOption(field: string, value: number | undefined, max: number) {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(field, value, `an integer from 1 to ${max}`);
  }
  return value;
}

/** A writer's buffer, once its capacities are known. */
interface SizedTable {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: TableCapacity;
  readonly global: Int32Array;
  readonly halves: readonly [HalfOffsets, HalfOffsets];
}

function allocate(capacity: TableCapacity): SizedTable {
  const layout = computeLayout(capacity, INDEX_LENGTH);
  const buffer = new SharedArrayBuffer(layout.totalBytes);
  const global = new Int32Array(buffer, 0, GLOBAL_HEADER_SLOTS);
  global[G_LAYOUT_VERSION] = TABLE_LAYOUT_VERSION;
  global[G_MAX_NODES] = capacity.maxNodes;
  global[G_MAX_TOKENS] = capacity.maxTokens;
  global[G_MAX_REPLICATION_FACTOR] = capacity.maxReplicationFactor;
  global[G_MAX_BLOB_BYTES] = capacity.maxBlobBytes;
  global[G_INDEX_BITS] = INDEX_BITS;
  // Last: a reader that sees the magic sees the capacities above.
  Atomics.store(global, G_MAGIC, TABLE_MAGIC);
  return { buffer, capacity: Object.freeze({ ...capacity }), global, halves: layout.halves };
}

/** Options of one `TableWriter.publish`. */
export interface PublishOptions {
  /**
   * Stable slot per node id (a non-negative integer, distinct per node) that readers report
   * through `nodeSlot`, e.g. the node's breaker slot. Default: the node's index.
   */
  readonly slots?: ReadonlyMap<string, number>;
}

/** Largest slot number a table carries. */
export const MAX_NODE_SLOT = 2 ** 31 - 1;

function slotsOf(ring: Ring, slots: ReadonlyMap<string, number> | undefined): number[] {
  if (slots === undefined) return ring.nodes.map((_, index) => index);
  if (!(slots instanceof Map))
    throw new InvalidArgumentError('slots', slots, 'a Map of node id to slot');
  const seen = new Set<number>();
  return ring.nodes.map((node) => {
    const slot = slots.get(node.id);
    if (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot > MAX_NODE_SLOT) {
      throw new InvalidArgumentError(
        `slots[${JSON.stringify(node.id)}]`,
        slot,
        'an integer from 0 to 2^31-1 for every node',
      );
    }
    if (seen.has(slot))
      throw new InvalidArgumentError(
        `slots[${JSON.stringify(node.id)}]`,
        slot,
        "distinct from the other nodes' slots",
      );
    seen.add(slot);
    return slot;
  });
}

/**
 * The single writer of a shared placement table. Create it in the control plane, hand
 * `buffer` to each thread's `TableReader`, and `publish` each new ring: readers switch to it
 * on their next lookup, never seeing a half-written table.
 */
export class TableWriter {
  /** The options given, validated; an absent one is derived when the buffer is sized. */
  readonly #options: { readonly [K in keyof TableCapacity]: number | undefined };
  #sized: SizedTable | undefined;
  #epoch = 0;

  constructor(options: TableWriterOptions = {}) {
    const given = {
      maxNodes: capacityOption('maxNodes', options.maxNodes, MAX_NODES),
      maxTokens: capacityOption('maxTokens', options.maxTokens, MAX_RING_TOKENS),
      maxReplicationFactor: capacityOption(
        'maxReplicationFactor',
        options.maxReplicationFactor,
        MAX_REPLICATION_FACTOR,
      ),
      maxBlobBytes: capacityOption('maxBlobBytes', options.maxBlobBytes, MAX_TABLE_BLOB_BYTES),
    };
    this.#options = given;
    const { maxNodes, maxTokens, maxReplicationFactor, maxBlobBytes } = given;
    // Every capacity given: nothing to wait for, the buffer exists from the start.
    if (
      maxNodes !== undefined &&
      maxTokens !== undefined &&
      maxReplicationFactor !== undefined &&
      maxBlobBytes !== undefined
    ) {
      this.#sized = allocate({ maxNodes, maxTokens, maxReplicationFactor, maxBlobBytes });
    }
  }

  /**
   * The shared memory to hand to each thread's `TableReader`. Sized at the first publish when
   * an option was left out; read before it, the left-out options take the fixed
   * `DEFAULT_TABLE_MAX_*` capacities.
   */
  get buffer(): SharedArrayBuffer {
    return this.#size(undefined).buffer;
  }

  /** The capacities the buffer was sized for (read before the first publish: as `buffer`). */
  get capacity(): TableCapacity {
    return this.#size(undefined).capacity;
  }

  #size(first: { readonly ring: Ring; readonly blobBytes: number } | undefined): SizedTable {
    if (this.#sized !== undefined) return this.#sized;
    const o = this.#options;
    const grown = (n: number, max: number) => Math.min(max, n * TABLE_GROWTH_FACTOR);
    const capacity: TableCapacity =
      first === undefined
        ? {
            maxNodes: o.maxNodes ?? DEFAULT_TABLE_MAX_NODES,
            maxTokens: o.maxTokens ?? DEFAULT_TABLE_MAX_TOKENS,
            maxReplicationFactor: o.maxReplicationFactor ?? DEFAULT_TABLE_MAX_REPLICATION_FACTOR,
            maxBlobBytes: o.maxBlobBytes ?? DEFAULT_TABLE_MAX_BLOB_BYTES,
          }
        : {
            maxNodes: o.maxNodes ?? grown(Math.max(1, first.ring.nodes.length), MAX_NODES),
            maxTokens: o.maxTokens ?? grown(Math.max(1, first.ring.tokenCount), MAX_RING_TOKENS),
            maxReplicationFactor:
              o.maxReplicationFactor ??
              Math.max(first.ring.maxPlacementSize, DEFAULT_TABLE_MAX_REPLICATION_FACTOR),
            maxBlobBytes:
              o.maxBlobBytes ??
              Math.max(MIN_TABLE_BLOB_BYTES, grown(first.blobBytes, MAX_TABLE_BLOB_BYTES)),
          };
    this.#sized = allocate(capacity);
    return this.#sized;
  }

  /** Epoch of the last published table; 0 before the first. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Publishes `ring` as the next epoch and returns that epoch. Throws
   * `CapacityExceededError` (and publishes nothing) when the ring does not fit.
   */
  publish(ring: Ring, options: PublishOptions = {}): number {
    const slots = slotsOf(ring, options.slots);
    const metadata: TableMetadata = {
      n: ring.nodes.map((node, index) => [
        node.id,
        node.address,
        node.zone ?? null,
        slots[index]!,
        ring.roles[index]!,
      ]),
      a: Array.from(ring.assignmentMap, ([spaceId, placement]) => [spaceId, Array.from(placement)]),
      p: Array.from(ring.pendingPinMap, ([spaceId, placement]) => [
        spaceId,
        placement === null ? null : Array.from(placement),
      ]),
    };
    const blob = encode(metadata);
    const { buffer, capacity, global, halves } = this.#size({ ring, blobBytes: blob.byteLength });
    const { maxNodes, maxTokens, maxReplicationFactor, maxBlobBytes } = capacity;
    if (ring.nodes.length > maxNodes)
      throw new CapacityExceededError('maxNodes', ring.nodes.length, maxNodes);
    if (ring.tokenCount > maxTokens)
      throw new CapacityExceededError('maxTokens', ring.tokenCount, maxTokens);
    if (ring.maxPlacementSize > maxReplicationFactor) {
      throw new CapacityExceededError(
        'maxReplicationFactor',
        ring.maxPlacementSize,
        maxReplicationFactor,
      );
    }
    if (blob.byteLength > maxBlobBytes) {
      throw new CapacityExceededError('maxBlobBytes', blob.byteLength, maxBlobBytes);
    }
    if (this.#epoch >= MAX_EPOCH) {
      throw new CapacityExceededError('epoch', this.#epoch + 1, MAX_EPOCH);
    }

    const state = Atomics.load(global, G_STATE);
    const target = state === 0 ? 0 : 1 - (state & 1);
    const half = halves[target]!;
    const epoch = this.#epoch + 1;
    const { tokens, index, rows, owners, tokenCount } = ring.arrays;
    const stride = ring.replicationFactor;

    new Uint32Array(buffer, half.tokens, tokenCount).set(tokens.subarray(0, tokenCount));
    new Uint32Array(buffer, half.index, INDEX_LENGTH).set(index);
    new Uint16Array(buffer, half.rows, tokenCount * stride).set(
      rows.subarray(0, tokenCount * stride),
    );
    // Written even when nothing is pending: every section of a half is the table of its epoch.
    new Uint16Array(buffer, half.owners, tokenCount).set(owners.subarray(0, tokenCount));
    new Uint8Array(buffer, half.blob, blob.byteLength).set(blob);
    const header = new Int32Array(buffer, half.header, HALF_HEADER_SLOTS);
    header[H_EPOCH] = epoch;
    header[H_NODE_COUNT] = ring.nodes.length;
    header[H_TOKEN_COUNT] = tokenCount;
    header[H_STRIDE] = stride;
    header[H_BLOB_BYTES] = blob.byteLength;
    header[H_VNODES_PER_NODE] = ring.vnodesPerNode;
    header[H_CONFIGURED_REPLICATION_FACTOR] = ring.configuredReplicationFactor;
    header[H_MAX_PLACEMENT_SIZE] = ring.maxPlacementSize;

    // The one publication point: everything above happens-before a reader's load of it.
    Atomics.store(global, G_STATE, (epoch << 1) | target);
    this.#epoch = epoch;
    return epoch;
  }
}

interface HalfView extends OwnedArrays {
  readonly header: Int32Array;
  readonly blob: Uint8Array;
}

/**
 * Reads the table a `TableWriter` publishes, from any thread, without locks. Each lookup
 * costs two `Atomics.load`s of the state word on top of the ring math; node metadata and
 * assignments are decoded only when the epoch moved. While a membership change is in
 * progress, `futureInto` and `pendingInto` walk the ring at lookup time (layout.ts: owners).
 */
export class TableReader implements PlacementTable {
  readonly #global: Int32Array;
  readonly #views: readonly [HalfView, HalfView];
  // -1 until the first table is seen, so a lookup before any publish reaches #refresh and throws.
  #state = -1;
  #epoch = 0;
  #nodes: readonly NodeInfo[] = [];
  #indexOf = new Map<string, number>();
  #slots: readonly number[] = [];
  #assignments = new Map<string, Uint16Array>();
  #roles = new Uint8Array(0);
  #pending = false;
  /** The placements of table #state, for futureInto / pendingInto; set by #refresh. */
  #transition: Transition | undefined;
  #tokenCount = 0;
  #stride = 0;
  #maxPlacementSize = 0;
  #vnodesPerNode = 0;
  #configuredReplicationFactor = 0;
  #scratch = new Uint16Array(MAX_REPLICATION_FACTOR);

  constructor(buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new InvalidArgumentError('buffer', buffer, 'a SharedArrayBuffer');
    }
    if (buffer.byteLength < GLOBAL_HEADER_SLOTS * 4) {
      throw new InvalidTableError('buffer is too small to hold a placement table');
    }
    const global = new Int32Array(buffer, 0, GLOBAL_HEADER_SLOTS);
    if (Atomics.load(global, G_MAGIC) !== TABLE_MAGIC) {
      throw new InvalidTableError('buffer does not hold a placement table (bad magic)');
    }
    if (global[G_LAYOUT_VERSION] !== TABLE_LAYOUT_VERSION || global[G_INDEX_BITS] !== INDEX_BITS) {
      throw new InvalidTableError(
        `table layout ${global[G_LAYOUT_VERSION]} is not ${TABLE_LAYOUT_VERSION}: writer and reader versions differ`,
      );
    }
    const capacity: TableCapacity = {
      maxNodes: global[G_MAX_NODES]!,
      maxTokens: global[G_MAX_TOKENS]!,
      maxReplicationFactor: global[G_MAX_REPLICATION_FACTOR]!,
      maxBlobBytes: global[G_MAX_BLOB_BYTES]!,
    };
    const layout = computeLayout(capacity, INDEX_LENGTH);
    if (layout.totalBytes !== buffer.byteLength) {
      throw new InvalidTableError('buffer size does not match the capacities in its header');
    }
    const view = (half: HalfOffsets): HalfView => ({
      header: new Int32Array(buffer, half.header, HALF_HEADER_SLOTS),
      tokens: new Uint32Array(buffer, half.tokens, capacity.maxTokens),
      index: new Uint32Array(buffer, half.index, INDEX_LENGTH),
      rows: new Uint16Array(buffer, half.rows, capacity.maxTokens * capacity.maxReplicationFactor),
      owners: new Uint16Array(buffer, half.owners, capacity.maxTokens),
      blob: new Uint8Array(buffer, half.blob, capacity.maxBlobBytes),
    });
    this.#global = global;
    this.#views = [view(layout.halves[0]), view(layout.halves[1])];
    this.refresh();
  }

  /**
   * Epoch of the table the last answer came from (0 before any). Like `nodes` and the other
   * getters it does not look for a newer table, so indexes from `lookupInto` always refer to
   * `nodes` as they are now: only `lookupInto`, `futureInto`, `lookup`, `lookupFuture` and
   * `refresh` move to a new epoch (and `pendingInto` when a newer table replaced its own).
   */
  get epoch(): number {
    return this.#epoch;
  }

  get nodes(): readonly NodeInfo[] {
    return this.#nodes;
  }

  get replicationFactor(): number {
    return this.#stride;
  }

  get configuredReplicationFactor(): number {
    return this.#configuredReplicationFactor;
  }

  /** Hashed vnodes per node of the table; 0 when its nodes carry explicit tokens. */
  get vnodesPerNode(): number {
    return this.#vnodesPerNode;
  }

  get maxPlacementSize(): number {
    return this.#maxPlacementSize;
  }

  get pending(): boolean {
    return this.#pending;
  }

  /** True once a writer has published a table into the buffer. */
  get published(): boolean {
    return Atomics.load(this.#global, G_STATE) !== 0;
  }

  /** Moves to the newest published table, if any; returns true when the epoch moved. */
  refresh(): boolean {
    const state = Atomics.load(this.#global, G_STATE);
    if (state === this.#state || state === 0) return false;
    this.#refresh(state);
    return true;
  }

  nodeIndex(nodeId: string): number {
    return this.#indexOf.get(nodeId) ?? -1;
  }

  nodeSlot(index: number): number {
    return this.#slots[index] ?? -1;
  }

  nodeRole(index: number): NodeRole | undefined {
    const code = this.#roles[index];
    return code === undefined ? undefined : ROLE_NAMES[code];
  }

  lookupInto(spaceId: string, out: Uint16Array): number {
    const token = hashKey(spaceId);
    const global = this.#global;
    for (;;) {
      const state = Atomics.load(global, G_STATE);
      if (state !== this.#state) this.#refresh(state);
      if (this.#assignments.size !== 0) {
        // Assignments are a private copy decoded for this state: nothing shared to validate.
        const assigned = this.#assignments.get(spaceId);
        if (assigned !== undefined) return copyOut(assigned, assigned.length, out);
      }
      const view = this.#views[state & 1]!;
      const start = startPosition(view, this.#tokenCount, token);
      const stride = this.#stride;
      const n = Math.min(stride, out.length);
      if (start >= 0) {
        const base = start * stride;
        for (let i = 0; i < n; i++) out[i] = Atomics.load(view.rows, base + i);
      }
      if (start >= 0 && Atomics.load(global, G_STATE) === state) return stride;
    }
  }

  futureInto(spaceId: string, out: Uint16Array): number {
    const token = hashKey(spaceId);
    const global = this.#global;
    for (;;) {
      const state = Atomics.load(global, G_STATE);
      if (state !== this.#state) this.#refresh(state);
      const count = futurePlacementInto(this.#transition!, spaceId, token, out);
      if (count >= 0 && Atomics.load(global, G_STATE) === state) return count;
    }
  }

  pendingInto(spaceId: string, out: Uint16Array): number {
    if (!this.#pending) return 0;
    const token = hashKey(spaceId);
    const global = this.#global;
    for (;;) {
      // The table the reader is on (the last lookupInto's), not the newest: the two answers
      // must index the same `nodes`.
      const state = this.#state;
      const count = pendingNodesInto(this.#transition!, spaceId, token, out);
      const now = Atomics.load(global, G_STATE);
      if (count >= 0 && now === state) return count;
      // A newer table was published: this one's half may be rewritten under us, so answer
      // from the newer one (the caller sees `epoch` move).
      this.#refresh(now);
      if (!this.#pending) return 0;
    }
  }

  lookup(spaceId: string): Placement {
    const count = this.lookupInto(spaceId, this.#scratch);
    return toPlacement(this.#nodes, this.#scratch, count);
  }

  lookupFuture(spaceId: string): Placement {
    const count = this.futureInto(spaceId, this.#scratch);
    return toPlacement(this.#nodes, this.#scratch, count);
  }

  /** Decodes the cold data of table `state`, retrying while the writer moves on. */
  #refresh(observed: number): void {
    let state = observed;
    for (;;) {
      if (state === 0) throw new InvalidTableError('no table has been published yet');
      const view = this.#views[state & 1]!;
      const header = view.header;
      const epoch = header[H_EPOCH]!;
      const nodeCount = header[H_NODE_COUNT]!;
      const tokenCount = header[H_TOKEN_COUNT]!;
      const stride = header[H_STRIDE]!;
      const vnodes = header[H_VNODES_PER_NODE]!;
      const configured = header[H_CONFIGURED_REPLICATION_FACTOR]!;
      const maxPlacement = header[H_MAX_PLACEMENT_SIZE]!;
      const blobBytes = header[H_BLOB_BYTES]!;
      let metadata: TableMetadata | undefined;
      if (blobBytes > 0 && blobBytes <= view.blob.length) {
        try {
          // slice: decode from a private copy so a concurrent rewrite cannot tear the decode.
          metadata = decode(view.blob.slice(0, blobBytes)) as TableMetadata;
        } catch {
          metadata = undefined; // torn: the state check below sends us round again
        }
      }
      // A read-modify-write orders every read above before this check on all platforms.
      const now = Atomics.compareExchange(this.#global, G_STATE, state, state);
      if (now === state && metadata !== undefined && epoch === state >>> 1) {
        const slots = metadata.n.map((entry) => entry[3]);
        const nodes = metadata.n.map(([id, address, zone]) =>
          Object.freeze(zone === null ? { id, address } : { id, address, zone }),
        );
        if (nodes.length !== nodeCount)
          throw new InvalidTableError('node count does not match metadata');
        const indexOf = new Map<string, number>();
        for (let i = 0; i < nodes.length; i++) indexOf.set(nodes[i]!.id, i);
        const assignments = new Map<string, Uint16Array>();
        for (const [spaceId, placement] of metadata.a) {
          assignments.set(spaceId, Uint16Array.from(placement));
        }
        const pendingPins = new Map<string, Uint16Array | null>();
        for (const [spaceId, placement] of metadata.p) {
          pendingPins.set(spaceId, placement === null ? null : Uint16Array.from(placement));
        }
        const roles = Uint8Array.from(metadata.n, (entry) => entry[4]);
        const moving = roles.some((role) => role !== ROLE_CODES.normal);
        // The same walker the ring built for its future placement: same zones, same roles.
        const future = moving
          ? createWalker(
              zoneNumbersOf(metadata.n.map((entry) => entry[2] ?? '')),
              roles,
              ROLE_CODES.leaving,
              configured,
            )
          : null;
        this.#nodes = Object.freeze(nodes);
        this.#indexOf = indexOf;
        this.#slots = slots;
        this.#assignments = assignments;
        this.#roles = roles;
        this.#pending = moving || pendingPins.size !== 0;
        this.#transition = {
          arrays: view,
          tokenCount,
          stride,
          assignments,
          pendingPins,
          future,
          shared: true,
          scratch: [
            new Uint16Array(maxPlacement),
            new Uint16Array(maxPlacement),
            new Uint16Array(maxPlacement),
          ],
        };
        this.#tokenCount = tokenCount;
        this.#stride = stride;
        this.#vnodesPerNode = vnodes;
        this.#configuredReplicationFactor = configured;
        this.#maxPlacementSize = maxPlacement;
        this.#epoch = epoch;
        if (this.#scratch.length < maxPlacement) this.#scratch = new Uint16Array(maxPlacement);
        this.#state = state;
        return;
      }
      state = now;
    }
  }
}

function copyOut(source: Uint16Array, count: number, out: Uint16Array): number {
  const n = Math.min(count, out.length);
  for (let i = 0; i < n; i++) out[i] = source[i]!;
  return count;
}
