import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { LIMIT_KINDS, type LimitKind } from '@engram/h2';
import { type DataMetrics, renderDataMetrics } from './data-metrics.js';
import { type EtcdMetrics, renderEtcdMetrics } from './etcd-metrics.js';
import { esc, family } from './exposition.js';
import type { AttemptVerdict } from './forward.js';
import {
  controlWords,
  DECISION_BUCKETS_S,
  GC_BUCKETS_S,
  GC_HIST_WORDS,
  GC_KINDS,
  GRPC_STATUS_NAMES,
  HEAP_EXTERNAL,
  HEAP_TOTAL,
  HEAP_USED,
  J_ANSWERED,
  J_FAILED,
  J_HIST,
  judgedOffset,
  M_DECISION,
  M_FALLBACKS,
  M_GC,
  M_HEAP,
  M_IN_FLIGHT,
  M_INGRESS_LIMITS,
  M_READ_REPAIRS,
  M_RETRIES,
  M_WRITES,
  metricsRegion,
  OPERATIONS,
  OUTCOMES,
  REQUEST_BUCKETS_S,
  regionCount,
  regionWords,
  requestHistOffset,
  S_OUTSTANDING,
  S_OUTSTANDING_GEN,
  S_POOL_SESSIONS,
  S_TRAILING,
  SLOT_METRIC_WORDS,
  slotCount,
  slotGeneration,
  slotMetrics,
  UPSTREAM_BUCKETS_S,
  UPSTREAM_HIST_WORDS,
  upstreamHistOffset,
  upstreamOffset,
  WRITE_RESULTS,
} from './layout.js';
import { type OutlierNodeMetrics, renderOutlierMetrics } from './outlier-monitor.js';
import { type ReloadMetrics, renderReloadMetrics } from './reload-metrics.js';

function observe(region: Float64Array, base: number, buckets: readonly number[], v: number): void {
  let i = 0;
  const n = buckets.length;
  while (i < n && v > buckets[i]!) i++;
  region[base + i]! += 1; // bucket i, or +Inf when i === n
  region[base + n + 1]! += v;
  region[base + n + 2]! += 1;
}

/** The writing side: one per data-plane thread, over that thread's region. Allocation-free. */
export class MetricsRecorder {
  readonly region: Float64Array;
  readonly #control: Int32Array;
  /** Node slots of the buffer: a slot at or past it is counted nowhere. */
  readonly #slots: number;
  constructor(buffer: SharedArrayBuffer, thread: number) {
    this.region = metricsRegion(buffer, thread);
    this.#control = controlWords(buffer);
    this.#slots = slotCount(this.#control);
  }
  request(op: number, outcome: number, seconds: number): void {
    observe(this.region, requestHistOffset(op, outcome), REQUEST_BUCKETS_S, seconds);
  }
  decision(seconds: number): void {
    observe(this.region, M_DECISION, DECISION_BUCKETS_S, seconds);
  }
  retry(op: number): void {
    this.region[M_RETRIES + op]! += 1;
  }
  fallback(op: number): void {
    this.region[M_FALLBACKS + op]! += 1;
  }
  inFlight(delta: number): void {
    this.region[M_IN_FLIGHT]! += delta;
  }
  gc(kind: number, seconds: number): void {
    observe(this.region, M_GC + kind * GC_HIST_WORDS, GC_BUCKETS_S, seconds);
  }
  /**
   * Records this thread's GC pauses (perf_hooks entries, delivered after the pause) until
   * the returned function is called.
   */
  observeGc(): () => void {
    const kindIndex = (k: number): number =>
      k === constants.NODE_PERFORMANCE_GC_MINOR
        ? 0
        : k === constants.NODE_PERFORMANCE_GC_MAJOR
          ? 1
          : k === constants.NODE_PERFORMANCE_GC_INCREMENTAL
            ? 2
            : 3;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
        this.gc(kindIndex(kind), e.duration / 1000);
      }
    });
    obs.observe({ entryTypes: ['gc'] });
    return () => obs.disconnect();
  }
  /** A replicated write ended: WRITE_FULL, WRITE_DEGRADED or WRITE_INSUFFICIENT. */
  replicatedWrite(result: number): void {
    this.region[M_WRITES + result]! += 1;
  }
  /** A quorum read found replicas that differ (a read repair was asked for). */
  readRepair(): void {
    this.region[M_READ_REPAIRS]! += 1;
  }
  /** An ingress limit acted (a stall timeout, or a connection over the cap). */
  ingressLimit(kind: LimitKind): void {
    this.region[M_INGRESS_LIMITS + LIMIT_KINDS.indexOf(kind)]! += 1;
  }
  poolSessions(slot: number, count: number): void {
    if (slot >= 0 && slot < this.#slots) this.region[slotMetrics(slot) + S_POOL_SESSIONS] = count;
  }
  /**
   * One attempt sent to the node in `slot` ended with gRPC `status` after `seconds`. Two
   * stores and a bucket scan, no allocation; a slot or status out of range is not counted.
   */
  upstream(slot: number, status: number, seconds: number): void {
    if (slot < 0 || slot >= this.#slots || status < 0 || status >= GRPC_STATUS_NAMES.length) {
      return;
    }
    this.region[upstreamOffset(slot, status)]! += 1;
    observe(this.region, upstreamHistOffset(slot), UPSTREAM_BUCKETS_S, seconds);
  }
  /**
   * An attempt to the node in `slot` was sent: returns its token for `attemptEnded` (the slot
   * and the slot's generation, N_GEN; -1 for a slot out of range, counted nowhere).
   * `inFlight`: counted in the in-flight gauge (S_OUTSTANDING), zeroed first if it still
   * counts for an older generation of the slot (a node since removed).
   */
  attemptStarted(slot: number, inFlight: boolean): number {
    if (slot < 0 || slot >= this.#slots) return -1;
    const gen = slotGeneration(this.#control, slot);
    if (inFlight) {
      const r = this.region;
      const at = slotMetrics(slot);
      if (r[at + S_OUTSTANDING_GEN] !== gen) {
        r[at + S_OUTSTANDING] = 0;
        r[at + S_OUTSTANDING_GEN] = gen;
      }
      r[at + S_OUTSTANDING]! += 1;
    }
    // gen < 2^32 and slot < 2^16: the token stays an exact integer (< 2^48).
    return gen * this.#slots + slot;
  }

  /**
   * The attempt of `token` (from `attemptStarted`) ended: counted in the metric (`upstream`),
   * in the detector's words unless `unjudged`, and out of the in-flight gauge. Returns its slot,
   * or -1 when nothing was counted: the slot was handed to another node since the attempt
   * started (it was the old node's, not the newcomer's).
   */
  attemptEnded(
    token: number,
    inFlight: boolean,
    status: number,
    seconds: number,
    verdict: AttemptVerdict,
  ): number {
    if (token < 0) return -1;
    const slot = token % this.#slots;
    const gen = (token - slot) / this.#slots;
    if (slotGeneration(this.#control, slot) !== gen) return -1;
    const r = this.region;
    // Same generation as when it started, so the gauge still counts it (it was zeroed only
    // for a newer generation).
    if (inFlight) r[slotMetrics(slot) + S_OUTSTANDING]! -= 1;
    this.upstream(slot, status, seconds);
    if (verdict !== 'unjudged') {
      const base = judgedOffset(slot);
      r[base + (verdict === 'answered' ? J_ANSWERED : J_FAILED)]! += 1;
      observe(r, base + J_HIST, UPSTREAM_BUCKETS_S, seconds);
    }
    return slot;
  }
  /**
   * Writes the trailing-writes gauge of every node slot: `trailing(slot)` for the slots of
   * `nodes` (slot, node id), 0 for the others (a node gone from the table trails nothing here).
   */
  sampleTrailing(
    nodes: readonly (readonly [number, string])[],
    trailing: (id: string) => number,
  ): void {
    const r = this.region;
    for (let s = 0; s < this.#slots; s++) r[slotMetrics(s) + S_TRAILING] = 0;
    for (const [slot, id] of nodes) {
      if (slot >= 0 && slot < this.#slots) r[slotMetrics(slot) + S_TRAILING] = trailing(id);
    }
  }
  /** Writes this thread's V8 heap gauges (a worker calls it every THREAD_HEAP_INTERVAL_MS). */
  sampleHeap(): void {
    const h = getHeapStatistics();
    this.region[M_HEAP + HEAP_USED] = h.used_heap_size;
    this.region[M_HEAP + HEAP_TOTAL] = h.total_heap_size;
    this.region[M_HEAP + HEAP_EXTERNAL] = h.external_memory;
  }
}

/** Breaker transitions of one node (counted once, by the thread whose CAS won). */
export interface TransitionCounts {
  readonly open: number;
  readonly halfOpen: number;
  readonly closed: number;
}

/** A node as /metrics shows it (control plane). */
export interface NodeMetrics {
  readonly id: string;
  readonly slot: number;
  /** Breaker state name: closed | open | half-open. */
  readonly breaker: string;
  /** The health verdict is up (whatever the lifecycle: a healthy draining node is up). */
  readonly up: boolean;
  /** active | joining | leaving | drained | draining. */
  readonly lifecycle: string;
  readonly transitions: TransitionCounts;
  /** Health probes that failed (answered not SERVING, errored or timed out). */
  readonly probeFailures: number;
  /** The last probe's round trip, seconds (undefined: not probed yet). */
  readonly probeSeconds: number | undefined;
  /**
   * The slot's attempt counters when this node took the slot over (SlotBaselines): subtracted,
   * so a node added into a removed node's slot starts from 0. Undefined: nothing to subtract.
   */
  readonly upstreamBase?: Float64Array | undefined;
}

/** A thread's V8 heap, bytes. */
export interface HeapBytes {
  readonly used: number;
  readonly total: number;
  readonly external: number;
}

/** Everything /metrics shows besides the shared counters, from the control plane. */
export interface ControlSnapshot {
  readonly epoch: number;
  readonly partitioned: boolean;
  readonly nodes: readonly NodeMetrics[];
  readonly workers: number;
  /** Data-plane workers restarted after exiting unexpectedly. */
  readonly workerRestarts: number;
  /** Hints, repair and streaming, when the control plane moves data. */
  readonly data?: DataMetrics;
  /** SIGHUP config reloads. */
  readonly reload?: ReloadMetrics;
  /** router-node's package version and the Node.js version running it. */
  readonly build: { readonly version: string; readonly nodeVersion: string };
  /** The main thread's heap (the workers write theirs into their regions). */
  readonly mainHeap: HeapBytes;
  /** Configured worker threads (regions 0..n-1 carry their heap gauges; 0 = none). */
  readonly workerThreads: number;
  /** Outlier ejections per member (outlier-monitor.ts). */
  readonly outlier?: readonly OutlierNodeMetrics[];
  /** etcd mode (etcd-mode.ts). */
  readonly etcd?: EtcdMetrics;
}

/** Lifecycle labels of engram_router_node_lifecycle (each node has all, its own at 1). */
export const LIFECYCLES = Object.freeze(['active', 'joining', 'leaving', 'drained', 'draining']);

/** The main thread's heap now. */
export function mainHeap(): HeapBytes {
  const h = getHeapStatistics();
  return { used: h.used_heap_size, total: h.total_heap_size, external: h.external_memory };
}

const BREAKER_VALUE: Readonly<Record<string, number>> = { closed: 0, open: 1, 'half-open': 2 };

/**
 * Zeroes the gauges of a data-plane thread that exited (in flight, pool sessions, heap,
 * attempts outstanding, trailing writes): they would stay stuck at their last values. Its counters stay.
 */
export function clearThreadGauges(buffer: SharedArrayBuffer, thread: number): void {
  const region = metricsRegion(buffer, thread);
  region[M_IN_FLIGHT] = 0;
  region.fill(0, M_HEAP, M_HEAP + 3);
  const slots = slotCount(controlWords(buffer));
  for (let s = 0; s < slots; s++) {
    const at = slotMetrics(s);
    region[at + S_POOL_SESSIONS] = 0;
    region[at + S_OUTSTANDING] = 0;
    region[at + S_TRAILING] = 0;
  }
}

/** Sums every thread region into one array (the consistent cross-worker view). */
export function sumRegions(buffer: SharedArrayBuffer): Float64Array {
  const n = regionCount(buffer);
  let total: Float64Array | undefined;
  for (let t = 0; t < n; t++) {
    const r = metricsRegion(buffer, t);
    total ??= new Float64Array(r.length);
    for (let i = 0; i < r.length; i++) total[i]! += r[i]!;
  }
  return total ?? new Float64Array(regionWords(slotCount(controlWords(buffer))));
}

/** True when summed regions `m` hold node slot `slot`'s record. */
function holdsSlot(m: Float64Array, slot: number): boolean {
  return slot >= 0 && slotMetrics(slot) + SLOT_METRIC_WORDS <= m.length;
}

function histogram(
  out: string[],
  name: string,
  labels: string,
  m: Float64Array,
  base: number,
  buckets: readonly number[],
): void {
  let cumulative = 0;
  const sep = labels === '' ? '' : ',';
  for (let i = 0; i < buckets.length; i++) {
    cumulative += m[base + i]!;
    out.push(`${name}_bucket{${labels}${sep}le="${buckets[i]}"} ${cumulative}`);
  }
  cumulative += m[base + buckets.length]!;
  out.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${cumulative}`);
  const braces = labels === '' ? '' : `{${labels}}`;
  out.push(`${name}_sum${braces} ${m[base + buckets.length + 1]}`);
  out.push(`${name}_count${braces} ${m[base + buckets.length + 2]}`);
}

/** Prometheus text exposition (format 0.0.4) of the shared counters and the control state. */
export function renderMetrics(buffer: SharedArrayBuffer, control: ControlSnapshot): string {
  const m = sumRegions(buffer);
  const out: string[] = [];
  const req = 'engram_router_request_duration_seconds';
  out.push(
    `# HELP ${req} Time from a call's last request byte to its reply, by operation and outcome.`,
  );
  out.push(`# TYPE ${req} histogram`);
  for (let op = 0; op < OPERATIONS.length; op++) {
    for (let oc = 0; oc < OUTCOMES.length; oc++) {
      const base = requestHistOffset(op, oc);
      // Label sets that never happened stay out of the exposition (keeps scrapes small).
      if (m[base + REQUEST_BUCKETS_S.length + 2] === 0 && oc !== 0) continue;
      histogram(
        out,
        req,
        `operation="${OPERATIONS[op]}",outcome="${OUTCOMES[oc]}"`,
        m,
        base,
        REQUEST_BUCKETS_S,
      );
    }
  }
  const dec = 'engram_router_decision_duration_seconds';
  out.push(`# HELP ${dec} Routing decision latency (space id read, table lookup, strategy).`);
  out.push(`# TYPE ${dec} histogram`);
  histogram(out, dec, '', m, M_DECISION, DECISION_BUCKETS_S);
  const counter = (name: string, help: string, base: number) => {
    out.push(`# HELP ${name} ${help}`);
    out.push(`# TYPE ${name} counter`);
    for (let op = 0; op < OPERATIONS.length; op++) {
      out.push(`${name}{operation="${OPERATIONS[op]}"} ${m[base + op]}`);
    }
  };
  counter('engram_router_retries_total', 'Attempts after the first one, by operation.', M_RETRIES);
  counter(
    'engram_router_fallbacks_total',
    'Calls served by a node other than the primary, by operation.',
    M_FALLBACKS,
  );
  const gc = 'engram_router_gc_pause_seconds';
  out.push(`# HELP ${gc} Garbage-collection pauses of the data-plane threads, by kind.`);
  out.push(`# TYPE ${gc} histogram`);
  for (let k = 0; k < GC_KINDS.length; k++) {
    histogram(out, gc, `kind="${GC_KINDS[k]}"`, m, M_GC + k * GC_HIST_WORDS, GC_BUCKETS_S);
  }
  out.push('# HELP engram_router_in_flight_requests Calls being routed now, all workers.');
  out.push('# TYPE engram_router_in_flight_requests gauge');
  out.push(`engram_router_in_flight_requests ${m[M_IN_FLIGHT]}`);
  out.push(
    '# HELP engram_router_breaker_state Circuit breaker per node: 0 closed, 1 open, 2 half-open.',
  );
  out.push('# TYPE engram_router_breaker_state gauge');
  for (const n of control.nodes) {
    out.push(`engram_router_breaker_state{node="${esc(n.id)}"} ${BREAKER_VALUE[n.breaker] ?? -1}`);
  }
  family(
    out,
    'engram_router_node_up',
    'gauge',
    'Health verdict per node: 1 up (a healthy node that is draining or leaving included), 0 down or not probed yet.',
    control.nodes.map((n) => [`node="${esc(n.id)}"`, n.up ? 1 : 0] as const),
  );
  family(
    out,
    'engram_router_node_lifecycle',
    'gauge',
    'What an operator asked of each node: 1 for its lifecycle (active, joining, leaving, drained, draining), 0 for the others.',
    control.nodes.flatMap((n) =>
      LIFECYCLES.map(
        (l) => [`node="${esc(n.id)}",lifecycle="${l}"`, n.lifecycle === l ? 1 : 0] as const,
      ),
    ),
  );
  family(
    out,
    'engram_router_breaker_transitions_total',
    'counter',
    'Circuit-breaker transitions per node and target state (each counted once, by the thread that made it).',
    control.nodes.flatMap((n) => {
      const node = `node="${esc(n.id)}"`;
      const t = n.transitions;
      return [
        [`${node},to="open"`, t.open],
        [`${node},to="half_open"`, t.halfOpen],
        [`${node},to="closed"`, t.closed],
      ] as const;
    }),
  );
  family(
    out,
    'engram_router_health_probe_failures_total',
    'counter',
    'Health probes per node that failed (not SERVING, an error, or no answer within health.timeoutMs).',
    control.nodes.map((n) => [`node="${esc(n.id)}"`, n.probeFailures] as const),
  );
  family(
    out,
    'engram_router_health_probe_duration_seconds',
    'gauge',
    'Round trip of the last health probe per node (a failed probe: until it failed).',
    control.nodes
      .filter((n) => n.probeSeconds !== undefined)
      .map((n) => [`node="${esc(n.id)}"`, n.probeSeconds!] as const),
  );
  renderUpstream(out, m, control.nodes);
  out.push('# HELP engram_router_pool_channels Open HTTP/2 connections to each node, all workers.');
  out.push('# TYPE engram_router_pool_channels gauge');
  for (const n of control.nodes) {
    const v = holdsSlot(m, n.slot) ? m[slotMetrics(n.slot) + S_POOL_SESSIONS] : 0;
    out.push(`engram_router_pool_channels{node="${esc(n.id)}"} ${v}`);
  }
  out.push(
    '# HELP engram_router_trailing_writes Replica writes still running on each node after their clients were answered, all workers: a replica falling behind (they end applied, or as hints when they time out).',
  );
  out.push('# TYPE engram_router_trailing_writes gauge');
  for (const n of control.nodes) {
    const v = holdsSlot(m, n.slot) ? m[slotMetrics(n.slot) + S_TRAILING] : 0;
    out.push(`engram_router_trailing_writes{node="${esc(n.id)}"} ${v}`);
  }
  out.push('# HELP engram_router_table_epoch Epoch of the published routing table.');
  out.push('# TYPE engram_router_table_epoch gauge');
  out.push(`engram_router_table_epoch ${control.epoch}`);
  out.push(
    '# HELP engram_router_partitioned 1 while fewer than a majority of nodes are reachable.',
  );
  out.push('# TYPE engram_router_partitioned gauge');
  out.push(`engram_router_partitioned ${control.partitioned ? 1 : 0}`);
  out.push(
    '# HELP engram_router_workers Data-plane threads running now (0 = the main thread serves).',
  );
  out.push('# TYPE engram_router_workers gauge');
  out.push(`engram_router_workers ${control.workers}`);
  out.push(
    '# HELP engram_router_worker_restarts_total Data-plane workers restarted after an unexpected exit.',
  );
  out.push('# TYPE engram_router_worker_restarts_total counter');
  out.push(`engram_router_worker_restarts_total ${control.workerRestarts}`);
  family(
    out,
    'engram_router_replicated_writes_total',
    'counter',
    'Replicated writes by result: full (every replica), degraded (acknowledged, a replica short), insufficient (W not met).',
    WRITE_RESULTS.map((r, i) => [`result="${r}"`, m[M_WRITES + i]!] as const),
  );
  family(
    out,
    'engram_router_read_repairs_total',
    'counter',
    'Quorum reads whose replicas differed (each asks for a repair of the space).',
    [['', m[M_READ_REPAIRS]!]],
  );
  family(
    out,
    'engram_router_ingress_limited_total',
    'counter',
    'Client connections and calls an ingress limit ended: header_timeout (stuck mid-read, closed), body_timeout (request overdue, 408), send_timeout (reply stuck behind flow control, reset), unread (client does not read, closed), max_connections (over listen.maxConnectionsPerWorker, closed at accept).',
    LIMIT_KINDS.map((k, i) => [`kind="${k}"`, m[M_INGRESS_LIMITS + i]!] as const),
  );
  renderThreadHeaps(out, buffer, control);
  family(
    out,
    'engram_router_build_info',
    'gauge',
    'Always 1: the router-node version and the Node.js version running it.',
    [
      [
        `version="${esc(control.build.version)}",node_version="${esc(control.build.nodeVersion)}"`,
        1,
      ],
    ],
  );
  if (control.data !== undefined) renderDataMetrics(out, control.data);
  if (control.reload !== undefined) renderReloadMetrics(out, control.reload);
  if (control.outlier !== undefined) renderOutlierMetrics(out, control.outlier);
  if (control.etcd !== undefined) renderEtcdMetrics(out, control.etcd);
  return `${out.join('\n')}\n`;
}

/** Attempts sent to each member node, by gRPC status, and their duration (all threads). */
/** Words of a slot's attempt counters: one per gRPC status, then the attempt histogram. */
export const SLOT_UPSTREAM_WORDS = GRPC_STATUS_NAMES.length + UPSTREAM_HIST_WORDS;

/** A slot's attempt counters summed across thread regions (the layout of SLOT_UPSTREAM_WORDS). */
export function slotUpstream(m: Float64Array, slot: number): Float64Array {
  const out = new Float64Array(SLOT_UPSTREAM_WORDS);
  const n = GRPC_STATUS_NAMES.length;
  out.set(m.subarray(upstreamOffset(slot, 0), upstreamOffset(slot, 0) + n), 0);
  out.set(m.subarray(upstreamHistOffset(slot), upstreamHistOffset(slot) + UPSTREAM_HIST_WORDS), n);
  return out;
}

/**
 * Where each slot's per-node counters (attempts, breaker transitions) start for the node that
 * holds it. Slots are reused after a removal, and the shared counters are per slot: a node that
 * takes a slot over is counted from the slot's values at that moment. Main thread only.
 */
export class SlotBaselines<T> {
  readonly #by = new Map<number, { readonly id: string; readonly base: T | undefined }>();

  /**
   * Called with every membership the control plane makes current. A slot seen for the first
   * time has counted nothing for anyone else (no baseline); one whose node changed gets
   * `current(slot)` as its baseline.
   */
  sync(
    members: Iterable<{ readonly id: string; readonly slot: number }>,
    current: (slot: number) => T,
  ): void {
    for (const { id, slot } of members) {
      const prev = this.#by.get(slot);
      if (prev === undefined) this.#by.set(slot, { id, base: undefined });
      else if (prev.id !== id) this.#by.set(slot, { id, base: current(slot) });
    }
  }

  /** The baseline of `slot` for node `id` (undefined: none, or the slot is not id's). */
  of(slot: number, id: string): T | undefined {
    const b = this.#by.get(slot);
    return b !== undefined && b.id === id ? b.base : undefined;
  }
}

function renderUpstream(out: string[], m: Float64Array, nodes: readonly NodeMetrics[]): void {
  const placed = nodes.filter((n) => holdsSlot(m, n.slot));
  const counts: (readonly [string, number])[] = [];
  for (const n of placed) {
    for (let s = 0; s < GRPC_STATUS_NAMES.length; s++) {
      const v = m[upstreamOffset(n.slot, s)]! - (n.upstreamBase?.[s] ?? 0);
      // A status a node never returned stays out (OK is always shown).
      if (v === 0 && s !== 0) continue;
      counts.push([`node="${esc(n.id)}",grpc_status="${GRPC_STATUS_NAMES[s]}"`, v]);
    }
  }
  family(
    out,
    'engram_router_upstream_requests_total',
    'counter',
    'Attempts the data plane sent to each memory node, by the gRPC status they ended with (no status: UNAVAILABLE; ended by the attempt deadline: DEADLINE_EXCEEDED; cancelled by the router: CANCELLED).',
    counts,
  );
  const name = 'engram_router_upstream_request_duration_seconds';
  out.push(`# HELP ${name} Time from sending an attempt to a memory node to its end, per node.`);
  out.push(`# TYPE ${name} histogram`);
  for (const n of placed) {
    const base = n.upstreamBase;
    if (base === undefined) {
      histogram(
        out,
        name,
        `node="${esc(n.id)}"`,
        m,
        upstreamHistOffset(n.slot),
        UPSTREAM_BUCKETS_S,
      );
      continue;
    }
    const own = slotUpstream(m, n.slot);
    for (let i = 0; i < own.length; i++) own[i]! -= base[i]!;
    histogram(out, name, `node="${esc(n.id)}"`, own, GRPC_STATUS_NAMES.length, UPSTREAM_BUCKETS_S);
  }
}

/** Heap gauges of the main thread and of each worker that has written its region. */
function renderThreadHeaps(out: string[], buffer: SharedArrayBuffer, c: ControlSnapshot): void {
  const rows: (readonly [string, HeapBytes])[] = [['main', c.mainHeap]];
  const n = Math.min(c.workerThreads, regionCount(buffer));
  for (let t = 0; t < n; t++) {
    const r = metricsRegion(buffer, t);
    // 0 until the worker's first sample, and again once it exited (reset by the supervisor).
    if (r[M_HEAP + HEAP_TOTAL] === 0) continue;
    rows.push([
      `worker-${t}`,
      {
        used: r[M_HEAP + HEAP_USED]!,
        total: r[M_HEAP + HEAP_TOTAL]!,
        external: r[M_HEAP + HEAP_EXTERNAL]!,
      },
    ]);
  }
  const gauge = (name: string, help: string, pick: (h: HeapBytes) => number) =>
    family(
      out,
      name,
      'gauge',
      help,
      rows.map(([thread, h]) => [`thread="${thread}"`, pick(h)] as const),
    );
  gauge(
    'engram_router_thread_heap_used_bytes',
    'V8 heap in use per thread (main, worker-N; workers write theirs every second).',
    (h) => h.used,
  );
  gauge('engram_router_thread_heap_total_bytes', 'V8 heap reserved per thread.', (h) => h.total);
  gauge(
    'engram_router_thread_external_bytes',
    'Memory outside the V8 heap held by JS objects (Buffers included) per thread.',
    (h) => h.external,
  );
}
