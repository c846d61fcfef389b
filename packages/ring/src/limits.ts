// The ring's defaults and caps, in one place for the ring, its validation and the table.
/**
 * Virtual nodes per node by default. A node's share of the ring is the sum of the gaps in
 * front of its tokens, so with random tokens its spread is about 1/sqrt(vnodes). At 100
 * nodes that leaves the busiest node ~11 % over the mean at 256 vnodes, ~5 % at 2048 and
 * ~4 % at 4096 (over 1.05 in about half of random clusters); 8192 keeps it near 1.02–1.03
 * of owned token space, within the 1.05 target with 1M keys' sampling noise on top
 * (bench/index.ts). Costs 12 bytes per token in a Ring at replication factor 3 (token,
 * owner, row): 9.4 MiB at 100 nodes. Clusters of
 * many hundreds of nodes may choose fewer when they are first set up (changing it later
 * moves data).
 */
export const DEFAULT_VNODES_PER_NODE = 8192;
export const DEFAULT_REPLICATION_FACTOR = 3;
/** Node indexes are 16-bit in the shared table. */
export const MAX_NODES = 65_535;
export const MAX_VNODES_PER_NODE = 65_536;
/**
 * Explicit tokens one node may carry (`NodeInfo.tokens`). They live in shared cluster state
 * (one etcd value per node: ~11 bytes a token as JSON), and the allocator balances within
 * 1.05 with far fewer (README: explicit tokens).
 */
export const MAX_TOKENS_PER_NODE = 4096;
/** Largest token: ring positions are unsigned 32-bit, like `hashKey`. */
export const MAX_TOKEN = 0xffff_ffff;
export const MAX_REPLICATION_FACTOR = 16;
/** Guards memory on build: 2^24 tokens already take ~200 MB of scratch while building. */
export const MAX_RING_TOKENS = 1 << 24;
export const MAX_NODE_ID_LENGTH = 256;
export const MAX_ZONE_LENGTH = 256;
/** Space ids longer than this are rejected by assignments (and by the router). */
export const MAX_SPACE_ID_LENGTH = 1024;
