import { LayoutMismatchError } from '@engram/common';
import { LIMIT_KINDS } from '@engram/h2';
import { NodeState, Operation as RouterOperation } from '@engram/router';
import { ROUTER_NODE_ERROR_CODES, type RouterNodeErrorCode } from './errors.js';

/**
 * The router-node's own shared memory (the placement table, breakers and retry budget have
 * their own buffers and layouts in @engram/ring, @engram/breaker and @engram/retry).
 *
 * One SharedArrayBuffer, created by the control plane and posted to every data-plane thread,
 * sized by the node slots it holds (`maxNodes`, written in C_SLOTS) and the thread count:
 *
 *   [ control words: Int32 × CONTROL_HEADER_WORDS ][ node words: Int32 × NODE_WORDS × slots ]
 *   [ metrics region of thread 0 ] … [ region of thread T-1 ]
 *
 * Every per-slot word is at an offset that depends on the slot only (slot-major records:
 * `nodeWord(slot, field)`, `slotMetrics(slot) + field`), never on the slot count, so a layout
 * of 64 slots and one of 4096 share every offset; only the buffer's length differs.
 *
 * Control words — written only by the control plane (main thread) with `Atomics.store`, read by
 * data-plane threads with `Atomics.load` on every call:
 *   C_MAGIC            layout check
 *   C_SLOTS            node slots the buffer holds (written once, before the buffer is posted)
 *   C_PARTITIONED      1 while fewer than a majority of nodes pass health checks
 *   C_HEALTH_DRAINING  1 once SIGTERM started (the drain window): health answers NOT_SERVING,
 *                      calls and connections are still served; stored, then `Atomics.notify`
 *                      (data planes wait on it to tell their Watch streams)
 *   C_DRAINING         1 once the drain window is over: GOAWAY sent, open Watch streams ended
 *
 * Node words — NODE_WORDS Int32 per slot `s`, at `nodeWord(s, field)`:
 *   N_STATE            state of the node in breaker/table slot `s` (NODE_STATE_*); control plane
 * Ordering: the control plane stores node states and the partition flag *before* it publishes
 * the table epoch that reflects them (the table's own `Atomics.store`), so a thread that sees
 * epoch E also sees states at least as new as E's. Each word is self-contained; no reader needs
 * two of them to agree.
 *
 * Slow-start words — N_UP_SINCE: when node `s` came back (its routed state went from down
 * or draining to up), in tenths of a second since C_TIME_BASE_S plus one; 0 = not returning.
 * Stored by the control plane (table publisher) before the epoch that publishes the node up, so
 * a thread that sees it up sees its ramp. Any thread that finds the ramp over
 * (`health.slowStartMs` elapsed) clears it with `Atomics.compareExchange`, so the common case
 * costs one load and no clock read; a CAS that loses to a newer return changes nothing.
 *
 * Passive words — N_LAST_ANSWER: when node `s` last answered a call (any status but a node
 * failure), in tenths of a second since C_TIME_BASE_S (written once by the control plane).
 * Written by every data-plane thread with `Atomics.store` only when the tenth changed (a plain
 * last-writer-wins: any recent value will do), read by the control plane, which counts a recent
 * answer as a passed health probe (passive evidence: a node that serves calls is not down).
 *
 * Outlier words (outlier-monitor.ts):
 *   N_EJECTED          1 while the outlier detector has node `s` ejected (tried after up ones); a
 *                      control word (main thread stores, data planes load on every decision).
 *                      Kept apart from N_STATE: ejection is not a health verdict.
 *   N_FAILURE_RUN      node failures in a row of node `s` across threads: a data-plane thread
 *                      `Atomics.add`s 1 per failed attempt and stores 0 on an answer (load
 *                      first, so a healthy node's word stays unwritten); the control plane
 *                      reads it every outlier tick and stores 0 when it ejects or returns the
 *                      node. A race may lose an increment or a reset: the count is evidence, a
 *                      threshold of a few failures tolerates that.
 *   N_GEN              how many times slot `s` was handed to a node (control plane, `Atomics.add`
 *                      before the epoch that publishes the newcomer). An attempt carries the
 *                      generation it started under; one that ends under another (its node was
 *                      removed and the slot reused meanwhile) is counted nowhere, so nothing of
 *                      the old node (failures, in-flight attempts, latency, breaker verdicts:
 *                      slot-breakers.ts) lands on the newcomer. The control plane clears the
 *                      slot's N_EJECTED, N_FAILURE_RUN, N_LAST_ANSWER and N_UP_SINCE words at the
 *                      same time (TablePublisher.handOut).
 *
 * Metrics regions — one per data-plane thread, Float64 words, **single writer** (that thread)
 * with plain stores; the only reader is the control plane rendering /metrics, which sums the
 * regions. Aligned 8-byte stores are not torn on the 64-bit targets V8 supports; a render may
 * miss the last few increments of a thread (they appear in the next scrape), it never sees a
 * counter go backwards. Per-thread regions mean no contended atomics on the hot path.
 */

export const LAYOUT_MAGIC = 0x52_4e_30_38; // "RN08" (slot-major node words, sized by maxNodes)

export const C_MAGIC = 0;
export const C_PARTITIONED = 1;
export const C_DRAINING = 2;
/** Wall-clock seconds (since the Unix epoch) the passive words count from. */
export const C_TIME_BASE_S = 3;
export const C_HEALTH_DRAINING = 4;
/** Node slots the buffer holds (shared breaker slot = node words = lag row = metrics slot). */
export const C_SLOTS = 5;
export const CONTROL_HEADER_WORDS = 8;

/** Fields of a slot's node words (`nodeWord`). */
export const N_STATE = 0;
export const N_LAST_ANSWER = 1;
export const N_UP_SINCE = 2;
export const N_EJECTED = 3;
export const N_FAILURE_RUN = 4;
export const N_GEN = 5;
export const NODE_WORDS = 6;

/** Index in the control words of `field` (N_*) of node slot `slot`. */
export function nodeWord(slot: number, field: number): number {
  return CONTROL_HEADER_WORDS + slot * NODE_WORDS + field;
}

/** Node slots of a state buffer (its control words). */
export function slotCount(control: Int32Array): number {
  // Written once before the buffer is posted (postMessage orders it): a plain read.
  return control[C_SLOTS]!;
}

/**
 * How many times node slot `slot` was handed to a node (N_GEN), as an unsigned number: the
 * word wraps past 2^31 handouts, and a generation must stay comparable and non-negative.
 */
export function slotGeneration(control: Int32Array, slot: number): number {
  return Atomics.load(control, nodeWord(slot, N_GEN)) >>> 0;
}

function controlWordCount(slots: number): number {
  return CONTROL_HEADER_WORDS + slots * NODE_WORDS;
}
/** Control words padded to 8 bytes, so the Float64 regions after them are aligned. */
function controlBytes(slots: number): number {
  return Math.ceil((controlWordCount(slots) * 4) / 8) * 8;
}

/**
 * Tenths of a second since the buffer's time base: the passive words' clock. `wallMs`: a
 * `Date.now()` reading (the data plane passes one taken once per turn).
 */
export function passiveNow(control: Int32Array, wallMs: number = Date.now()): number {
  return Math.floor((wallMs / 1000 - Atomics.load(control, C_TIME_BASE_S)) * 10);
}

/** Node-state words: the index of the node's NodeState in NODE_STATE_NAMES. */
export const NODE_STATE_NAMES: readonly NodeState[] = Object.freeze([
  NodeState.Up,
  NodeState.Down,
  NodeState.Draining,
]);
export const NODE_STATE: Readonly<Record<NodeState, number>> = Object.freeze(
  Object.fromEntries(NODE_STATE_NAMES.map((name, i) => [name, i])) as Record<NodeState, number>,
);

/*
 * The lists read on every call (OPERATIONS, the histogram buckets) are readonly by type, not
 * frozen: V8 (Node 20) reads a frozen array's elements through its generic keyed-load stub,
 * ~3.5× slower per read in optimized code, and a call reads ~20 bucket bounds.
 */

/** Operations, as metric labels; index = position. `other` = methods passed through by space id. */
export const OPERATIONS = [
  RouterOperation.Store,
  RouterOperation.Recall,
  RouterOperation.Consolidate,
  RouterOperation.Query,
  'other',
] as const;
export type Operation = (typeof OPERATIONS)[number];
/** Index of each operation in OPERATIONS (the metrics layout's order). */
export const OP: Readonly<Record<Operation, number>> = Object.freeze(
  Object.fromEntries(OPERATIONS.map((name, i) => [name, i])) as Record<Operation, number>,
);

/**
 * Outcomes, as metric labels. `ok` = the node answered OK; `upstream_error` = the node
 * answered a non-OK status that was passed to the client unchanged (e.g. INVALID_ARGUMENT);
 * the rest are router error codes.
 */
export type Outcome = 'ok' | 'upstream_error' | Exclude<RouterNodeErrorCode, 'InvalidConfig'>;
/** Derived from the error codes, so a new code gets its metric label without a second list. */
export const OUTCOMES: readonly Outcome[] = Object.freeze([
  'ok',
  'upstream_error',
  ...ROUTER_NODE_ERROR_CODES.filter(
    (code): code is Exclude<RouterNodeErrorCode, 'InvalidConfig'> => code !== 'InvalidConfig',
  ),
]);
export const OUTCOME_INDEX: ReadonlyMap<string, number> = new Map(OUTCOMES.map((o, i) => [o, i]));
/** Index of `ok` and `upstream_error` in OUTCOMES: the usual ends of a call, no lookup. */
export const OUTCOME_OK = 0;
export const OUTCOME_UPSTREAM_ERROR = 1;

/** Upper bounds of the request-duration buckets, seconds. */
export const REQUEST_BUCKETS_S: readonly number[] = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/**
 * Upper bounds of the routing-decision buckets, seconds: 50 ns to 1 ms, so a decision that
 * costs a few hundred nanoseconds lands in a bucket of its own (README: what is timed).
 */
export const DECISION_BUCKETS_S: readonly number[] = [
  5e-8, 1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3,
];
/** Upper bounds of the upstream-attempt buckets, seconds. */
export const UPSTREAM_BUCKETS_S: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/**
 * gRPC status names by code (0..16), as the `grpc_status` label of upstream attempts; an
 * attempt that got no status (connection failed, stream reset) is counted as UNAVAILABLE, one
 * the router ended at its attempt deadline as DEADLINE_EXCEEDED, one it cancelled (hedge lost,
 * client gone) as CANCELLED.
 */
export const GRPC_STATUS_NAMES = Object.freeze([
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const);

/** Upper bounds of the GC pause buckets, seconds. */
export const GC_BUCKETS_S: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
/** GC kinds (perf_hooks `detail.kind`), as labels; index = position. */
export const GC_KINDS = Object.freeze(['minor', 'major', 'incremental', 'weakcb'] as const);

/** How replicated writes ended, as labels; index = position. */
export const WRITE_RESULTS = Object.freeze(['full', 'degraded', 'insufficient'] as const);
export const WRITE_FULL = 0;
export const WRITE_DEGRADED = 1;
export const WRITE_INSUFFICIENT = 2;

/** A histogram's words: one per bucket, +Inf, sum (seconds), count. */
const histWords = (buckets: readonly number[]) => buckets.length + 3;
export const REQUEST_HIST_WORDS = histWords(REQUEST_BUCKETS_S);
export const DECISION_HIST_WORDS = histWords(DECISION_BUCKETS_S);
export const GC_HIST_WORDS = histWords(GC_BUCKETS_S);
export const UPSTREAM_HIST_WORDS = histWords(UPSTREAM_BUCKETS_S);

// Offsets inside one thread's region, in Float64 words: the thread's own words first, then one
// record of SLOT_METRIC_WORDS per node slot (`slotMetrics`).
export const M_REQUESTS = 0; // [op][outcome] histograms
export const M_DECISION = M_REQUESTS + OPERATIONS.length * OUTCOMES.length * REQUEST_HIST_WORDS;
export const M_RETRIES = M_DECISION + DECISION_HIST_WORDS; // [op]
export const M_FALLBACKS = M_RETRIES + OPERATIONS.length; // [op]
export const M_IN_FLIGHT = M_FALLBACKS + OPERATIONS.length; // gauge
export const M_GC = M_IN_FLIGHT + 1; // [kind] GC pause histograms
export const M_WRITES = M_GC + GC_KINDS.length * GC_HIST_WORDS; // [write result]
export const M_READ_REPAIRS = M_WRITES + WRITE_RESULTS.length; // quorum reads that diverged
export const M_INGRESS_LIMITS = M_READ_REPAIRS + 1; // [LIMIT_KINDS of @engram/h2]
/**
 * The thread's V8 heap: used, total and external bytes (gauges a worker writes every
 * THREAD_HEAP_INTERVAL_MS; 0 until the first write, and on the main-thread data plane).
 */
export const M_HEAP = M_INGRESS_LIMITS + LIMIT_KINDS.length;
export const HEAP_USED = 0;
export const HEAP_TOTAL = 1;
export const HEAP_EXTERNAL = 2;
export const THREAD_HEAP_INTERVAL_MS = 1000;
/** First node slot's record. */
export const M_SLOTS = M_HEAP + 3;

// Fields of a node slot's record (offsets from `slotMetrics(slot)`).
/** Gauge: open raw sessions to the node. */
export const S_POOL_SESSIONS = 0;
/** [grpc status] attempts sent to the node, by the status they ended with. */
export const S_UPSTREAM = S_POOL_SESSIONS + 1;
/** Histogram: each attempt's time from sending to its end, whatever the status. */
export const S_UPSTREAM_HIST = S_UPSTREAM + GRPC_STATUS_NAMES.length;
/**
 * Gauge: attempts this thread has in flight to the node (+1 when sent, -1 when ended, on the
 * slot the attempt started on). Read by the outlier detector (a node that holds attempts and
 * answers none is stalled); reset by the control plane when the thread exits.
 */
export const S_OUTSTANDING = S_UPSTREAM_HIST + UPSTREAM_HIST_WORDS;
/**
 * The slot generation (N_GEN) this thread's S_OUTSTANDING word counts for: the thread zeroes
 * its gauge when it first sends under a newer generation, and the detector reads only gauges
 * of the slot's current generation (the old node's attempts still in flight are not the
 * newcomer's).
 */
export const S_OUTSTANDING_GEN = S_OUTSTANDING + 1;
/**
 * The outlier detector's inputs, JUDGED_WORDS: attempts the node answered, attempts that
 * failed on it, and the histogram of those attempts' durations (UPSTREAM_BUCKETS_S). Unlike
 * S_UPSTREAM (which counts every attempt, for the metric) it leaves out attempts that say
 * nothing of the node: never sent (no usable connection), cancelled by the router (hedge lost,
 * client gone), ended by the caller's own deadline (forward.ts: `attemptVerdict`).
 */
export const S_JUDGED = S_OUTSTANDING_GEN + 1;
export const J_ANSWERED = 0;
export const J_FAILED = 1;
export const J_HIST = 2;
export const JUDGED_WORDS = J_HIST + UPSTREAM_HIST_WORDS;
/**
 * Gauge: replica writes this thread still has running on the node after their clients were
 * answered (the Router's `trailing`), sampled every THREAD_HEAP_INTERVAL_MS.
 */
export const S_TRAILING = S_JUDGED + JUDGED_WORDS;
export const SLOT_METRIC_WORDS = S_TRAILING + 1;

/** Offset in a region of node slot `slot`'s record (SLOT_METRIC_WORDS, fields S_*). */
export function slotMetrics(slot: number): number {
  return M_SLOTS + slot * SLOT_METRIC_WORDS;
}

/** Float64 words of one thread's region with `slots` node slots. */
export function regionWords(slots: number): number {
  return M_SLOTS + slots * SLOT_METRIC_WORDS;
}

/** Offset of the request histogram of (op, outcome) in a region. */
export function requestHistOffset(op: number, outcome: number): number {
  return M_REQUESTS + (op * OUTCOMES.length + outcome) * REQUEST_HIST_WORDS;
}

/** Offset of the attempt counter of (node slot, gRPC status) in a region. */
export function upstreamOffset(slot: number, status: number): number {
  return slotMetrics(slot) + S_UPSTREAM + status;
}

/** Offset of a node slot's outlier-detector words (JUDGED_WORDS) in a region. */
export function judgedOffset(slot: number): number {
  return slotMetrics(slot) + S_JUDGED;
}

/** Offset of a node slot's upstream-attempt histogram in a region. */
export function upstreamHistOffset(slot: number): number {
  return slotMetrics(slot) + S_UPSTREAM_HIST;
}

/**
 * Slot counts a state buffer accepts: @engram/ring's node cap (a table cannot place more), so
 * every slot a membership hands out has its words.
 */
export const MAX_STATE_SLOTS = 65_535;

/** Bytes of a state buffer for `threads` data-plane threads and `slots` node slots. */
export function stateByteLength(threads: number, slots: number): number {
  return controlBytes(slots) + threads * regionWords(slots) * 8;
}

/**
 * A state buffer for `threads` data-plane threads and `slots` node slots (the config's
 * `maxNodes`: a membership never holds more slots than nodes, layout.ts' readers trust that).
 */
export function createStateBuffer(threads: number, slots: number): SharedArrayBuffer {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_STATE_SLOTS) {
    throw new RangeError(`slots: expected an integer from 1 to ${MAX_STATE_SLOTS}, got ${slots}`);
  }
  const buffer = new SharedArrayBuffer(stateByteLength(threads, slots));
  const words = new Int32Array(buffer, 0, controlWordCount(slots));
  Atomics.store(words, C_SLOTS, slots);
  Atomics.store(words, C_TIME_BASE_S, Math.floor(Date.now() / 1000));
  Atomics.store(words, C_MAGIC, LAYOUT_MAGIC);
  return buffer;
}

export function controlWords(buffer: SharedArrayBuffer): Int32Array {
  const header = new Int32Array(buffer, 0, CONTROL_HEADER_WORDS);
  if (Atomics.load(header, C_MAGIC) !== LAYOUT_MAGIC) {
    throw new LayoutMismatchError('router-node state buffer', 'its magic word does not match');
  }
  return new Int32Array(buffer, 0, controlWordCount(Atomics.load(header, C_SLOTS)));
}

/** Number of thread regions in a state buffer. */
export function regionCount(buffer: SharedArrayBuffer): number {
  const slots = slotCount(controlWords(buffer));
  return (buffer.byteLength - controlBytes(slots)) / (regionWords(slots) * 8);
}

export function metricsRegion(buffer: SharedArrayBuffer, thread: number): Float64Array {
  if (thread < 0 || thread >= regionCount(buffer)) throw new RangeError(`thread ${thread}`);
  const slots = slotCount(controlWords(buffer));
  const words = regionWords(slots);
  return new Float64Array(buffer, controlBytes(slots) + thread * words * 8, words);
}
