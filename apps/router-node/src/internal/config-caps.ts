// Bounds of the config keys. The schema (config-schema.ts) takes a library's own exported
// constant where there is one, so the config cannot accept what the library refuses after
// either changes. These are the rest: where router-node is stricter than a library (said why),
// or where no library exports a bound; those keep the values router-node checked before the
// schema existed, now named.

/**
 * Primary + replicas the shared placement table holds per token; control-plane sizes its
 * TableWriter with it, so it caps `replicationFactor`.
 */
// Stricter than @engram/ring's MAX_REPLICATION_FACTOR (16; a test checks it stays below): the
// table's rows take tokens × this × 2 bytes in each of its two halves, 10 MiB at 64 nodes ×
// 8192 vnodes here against 32 MiB at 16, shared by every thread, for copies a memory cluster
// of at most 64 nodes does not need.
export const TABLE_MAX_REPLICATION_FACTOR = 5;
/**
 * Ring tokens the shared table holds: `maxNodes × vnodesPerNode` may not exceed it. A token
 * costs TABLE_BYTES_PER_TOKEN (its hash, its row of TABLE_MAX_REPLICATION_FACTOR node indexes,
 * its owner; twice, in the table's two halves), so this cap is 128 MiB of shared memory.
 */
export const TABLE_MAX_TOKENS = 1 << 22;
export const TABLE_BYTES_PER_TOKEN = 2 * (4 + 2 * TABLE_MAX_REPLICATION_FACTOR + 2);
export const MAX_PORT = 65_535;
export const MAX_TIMER_MS = 2_147_483_647; // setTimeout's ceiling (~24.8 days)
export const MAX_CONCURRENT_STREAMS = 100_000;
// Linux's usual hard limit of open files (fs.nr_open): a thread cannot hold more sockets.
export const MAX_CONNECTIONS_PER_WORKER = 1_048_576;
export const MIN_HEADER_LIST_BYTES = 1024; // 1 KiB
export const MAX_HEADER_LIST_BYTES = 16 * 1024 * 1024; // 16 MiB
export const MAX_WORKERS = 256;
export const MAX_YOUNG_GENERATION_MB = 1024; // MiB per thread (1 GiB)
export const MAX_RETRY_BASE_DELAY_MS = 60 * 1000; // 1 min
export const MAX_RETRY_MAX_DELAY_MS = 10 * 60 * 1000; // 10 min
// @engram/router accepts deadlines up to 24 h (that bound is not exported); router-node keeps
// its one hour.
export const MAX_CALL_MS = 60 * 60 * 1000; // 1 h
// @engram/breaker's ConsecutiveFailures accepts up to 10⁶ (not exported).
export const MAX_BREAKER_THRESHOLD = 1000;
export const MIN_MESSAGE_BYTES = 1024; // 1 KiB
export const MAX_MESSAGE_BYTES = 1024 * 1024 * 1024; // 1 GiB; a request is buffered whole
// @engram/retry's budget checks these bounds without exporting them; a test pins that it
// accepts both ends of each range, so a change there fails here.
export const BUDGET_MIN_TTL_MS = 100; // 100 ms
export const BUDGET_MAX_TTL_MS = 10 * 60 * 1000; // 10 min
export const BUDGET_MAX_MIN_RETRIES_PER_SECOND = 10_000;
// @engram/pool accepts timers up to 2^31 - 1 ms (its MAX_TIMER_MS is not exported).
export const MAX_CONNECT_TIMEOUT_MS = 10 * 60 * 1000; // 10 min
export const MAX_KEEPALIVE_INTERVAL_MS = 24 * 60 * 60 * 1000; // 24 h
export const MAX_KEEPALIVE_TIMEOUT_MS = 10 * 60 * 1000; // 10 min
export const MIN_HEALTH_INTERVAL_MS = 10; // 10 ms
export const MAX_HEALTH_INTERVAL_MS = 60 * 60 * 1000; // 1 h
export const MAX_HEALTH_TIMEOUT_MS = 10 * 60 * 1000; // 10 min
export const MAX_HEALTH_THRESHOLD = 100;
export const MAX_HINT_BYTES_PER_NODE = 64 * 1024 * 1024 * 1024; // 64 GiB
export const MAX_HINT_AGE_MS = 30 * 24 * 60 * 60 * 1000; // 30 days
export const MAX_SHUTDOWN_GRACE_MS = 60 * 60 * 1000; // 1 h
export const MAX_LOCAL_NODES = 16; // child processes of this one
export const MAX_LOCAL_ZONES = 16;

/** pino's levels, most to least severe, then `silent`. */
export const LOG_LEVELS = Object.freeze([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const);
/** Longest outlier window, stall threshold or ejection time. */
export const MAX_OUTLIER_MS = 24 * 60 * 60 * 1000; // 1 day
