/**
 * The outlier detector's shell on the control plane (main thread): every `outlier.intervalMs`
 * it sums each member's attempt counters over the data-plane threads' regions (layout.ts),
 * runs the pure core (outlier-detector.ts), and publishes ejections in the C_EJECTED words,
 * which every data-plane thread reads on its next routing decision (an ejected node is routed
 * as a down one). It logs one line per ejection and return, and counts them for /metrics.
 */
import type { Logger } from 'pino';
import { GRPC_STATUS } from './errors.js';
import { esc, family } from './exposition.js';
import { isFailedAttempt } from './forward.js';
import {
  C_EJECTED,
  controlWords,
  GRPC_STATUS_NAMES,
  M_OUTSTANDING,
  MAX_NODE_SLOTS,
  metricsRegion,
  P_FAILURE_RUN,
  regionCount,
  UPSTREAM_BUCKETS_S,
  upstreamHistOffset,
  upstreamOffset,
} from './layout.js';
import {
  EJECTION_REASONS,
  type EjectionReason,
  type NodeSample,
  OutlierDetector,
  type OutlierEvent,
  type OutlierSettings,
} from './outlier-detector.js';
import { markReturned } from './slow-start.js';
import type { Timers } from './timers.js';

/**
 * A data-plane thread's part of P_FAILURE_RUN (layout.ts): an attempt to `slot` ended with
 * `status`. A failure adds one, an answer resets the run, a cancel leaves it.
 */
export function recordFailureRun(control: Int32Array, slot: number, status: number): void {
  if (slot < 0 || slot >= MAX_NODE_SLOTS || status === GRPC_STATUS.CANCELLED) return;
  const at = P_FAILURE_RUN + slot;
  if (isFailedAttempt(status)) Atomics.add(control, at, 1);
  else if (Atomics.load(control, at) !== 0) Atomics.store(control, at, 0);
}

/** A member as the monitor sees it. */
export interface OutlierMember {
  readonly id: string;
  readonly slot: number;
  /** Routed as up (health up, not draining): judged, a peer, may be ejected. */
  readonly eligible: boolean;
}

/** The `outlier` section of the config. */
export interface OutlierConfig extends OutlierSettings {
  readonly enabled: boolean;
}

export interface OutlierMonitorInit {
  readonly config: OutlierConfig;
  /** The router-node state buffer (layout.ts). */
  readonly state: SharedArrayBuffer;
  /** The members now (placed ones, with a slot). */
  readonly members: () => Iterable<OutlierMember>;
  readonly timers: Timers;
  readonly clock: { now(): number };
  readonly log: Logger;
}

/** What /metrics shows per member. */
export interface OutlierNodeMetrics {
  readonly id: string;
  readonly ejected: boolean;
  readonly ejections: Readonly<Record<EjectionReason, number>>;
}

const STATUSES = GRPC_STATUS_NAMES.length;
const BUCKETS = UPSTREAM_BUCKETS_S.length + 1; // with +Inf

function zeroCounts(): Record<EjectionReason, number> {
  return Object.fromEntries(EJECTION_REASONS.map((r) => [r, 0])) as Record<EjectionReason, number>;
}

export class OutlierMonitor {
  readonly #init: OutlierMonitorInit;
  readonly #control: Int32Array;
  readonly #regions: readonly Float64Array[];
  #config: OutlierConfig;
  #detector: OutlierDetector;
  #timer: unknown = null;
  /** Ejected node → the slot whose C_EJECTED word is set for it. */
  readonly #ejected = new Map<string, number>();
  /** Ejections per node and reason, since start (a removed node's go with it). */
  readonly #counts = new Map<string, Record<EjectionReason, number>>();
  /** Health verdict last seen per node (up or not), to see it come back. */
  readonly #up = new Map<string, boolean>();
  /** Nodes a rule wanted out while the share was full (logged once each). */
  readonly #capped = new Set<string>();

  constructor(init: OutlierMonitorInit) {
    this.#init = init;
    this.#config = init.config;
    this.#detector = new OutlierDetector(init.config, UPSTREAM_BUCKETS_S);
    this.#control = controlWords(init.state);
    const n = regionCount(init.state);
    this.#regions = Array.from({ length: n }, (_, t) => metricsRegion(init.state, t));
  }

  /** Starts ticking (nothing when `outlier.enabled` is false). */
  start(): void {
    if (this.#timer !== null || !this.#config.enabled) return;
    this.#timer = this.#init.timers.setInterval(() => this.tick(), this.#config.intervalMs);
  }

  stop(): void {
    if (this.#timer !== null) this.#init.timers.clearInterval(this.#timer);
    this.#timer = null;
  }

  /** A reload: new settings apply at once; disabling returns every ejected node. */
  reconfigure(config: OutlierConfig): void {
    const before = this.#config;
    this.#detector.reconfigure(config);
    this.#config = config;
    if (!config.enabled) {
      this.stop();
      for (const id of [...this.#ejected.keys()]) this.#release(id, 'disabled');
      this.#detector = new OutlierDetector(config, UPSTREAM_BUCKETS_S);
      return;
    }
    if (before.intervalMs !== config.intervalMs || !before.enabled) {
      this.stop();
      this.start();
    }
  }

  /**
   * Every membership the control plane makes current (its health verdicts included): a node
   * whose health went from not-up to up is back in service at once (see `healthUp`). Seen on
   * every change, so a down spell shorter than a tick is not missed.
   */
  membershipChanged(
    members: Iterable<{ readonly id: string; readonly slot: number; readonly up: boolean }>,
  ): void {
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.id);
      const wasUp = this.#up.get(m.id);
      this.#up.set(m.id, m.up);
      if (m.up && wasUp === false) {
        // The failures of its down spell (refused connections) are not the new incarnation's.
        if (m.slot >= 0 && m.slot < MAX_NODE_SLOTS) {
          Atomics.store(this.#control, P_FAILURE_RUN + m.slot, 0);
        }
        const e = this.#detector.healthUp(m.id, this.#init.clock.now());
        if (e !== null && e.kind === 'return') this.#release(e.id, e.why);
      }
    }
    for (const id of [...this.#up.keys()]) if (!seen.has(id)) this.#up.delete(id);
  }

  isEjected(id: string): boolean {
    return this.#ejected.has(id);
  }

  metrics(): OutlierNodeMetrics[] {
    return [...this.#init.members()].map((m) => ({
      id: m.id,
      ejected: this.#ejected.has(m.id),
      ejections: this.#counts.get(m.id) ?? zeroCounts(),
    }));
  }

  /** One round: read the counters, run the detector, publish (the timer calls it). */
  tick(): void {
    const members = [...this.#init.members()].filter((m) => m.slot >= 0 && m.slot < MAX_NODE_SLOTS);
    const samples = members.map((m) => this.#sample(m));
    const events = this.#detector.tick(this.#init.clock.now(), samples);
    const slots = new Map(members.map((m) => [m.id, m.slot]));
    const capped = new Set<string>();
    for (const e of events) this.#apply(e, slots, capped);
    for (const id of this.#capped) if (!capped.has(id)) this.#capped.delete(id);
    // A node removed while ejected (the detector forgets it): its slot's word goes back to 0.
    for (const [id, slot] of [...this.#ejected]) {
      if (slots.get(id) !== slot) this.#release(id, 'removed');
    }
    for (const id of [...this.#counts.keys()]) if (!slots.has(id)) this.#counts.delete(id);
  }

  #apply(e: OutlierEvent, slots: ReadonlyMap<string, number>, capped: Set<string>): void {
    const log = this.#init.log;
    if (e.kind === 'return') {
      this.#release(e.id, e.why);
      return;
    }
    if (e.kind === 'capped') {
      capped.add(e.id);
      if (!this.#capped.has(e.id)) {
        this.#capped.add(e.id);
        log.warn(
          { event: 'outlier-capped', node: e.id, reason: e.reason, ...e.figures },
          `node ${e.id} is an outlier (${e.reason}) but outlier.maxEjectedShare of the nodes are ejected already`,
        );
      }
      return;
    }
    const slot = slots.get(e.id)!;
    Atomics.store(this.#control, C_EJECTED + slot, 1);
    Atomics.store(this.#control, P_FAILURE_RUN + slot, 0);
    this.#ejected.set(e.id, slot);
    let counts = this.#counts.get(e.id);
    if (counts === undefined) {
      counts = zeroCounts();
      this.#counts.set(e.id, counts);
    }
    counts[e.reason]++;
    log.warn(
      {
        event: 'outlier-eject',
        node: e.id,
        reason: e.reason,
        ejectionMs: e.ejectionMs,
        ejections: e.ejections,
        ...e.figures,
      },
      `node ${e.id} ejected as an outlier (${e.reason}) for ${e.ejectionMs} ms: ${figuresText(e.figures)}`,
    );
  }

  #release(id: string, why: string): void {
    const slot = this.#ejected.get(id);
    if (slot === undefined) return;
    this.#ejected.delete(id);
    Atomics.store(this.#control, P_FAILURE_RUN + slot, 0);
    // Back in service: its reads ramp up over health.slowStartMs as after a down spell. Stored
    // before the ejected word clears, so no thread sees it back without its ramp.
    if (why !== 'removed') markReturned(this.#control, slot);
    Atomics.store(this.#control, C_EJECTED + slot, 0);
    this.#init.log.info(
      { event: 'outlier-return', node: id, why },
      `node ${id} back in service after its outlier ejection (${why})`,
    );
  }

  /** A member's counters summed over every thread region. */
  #sample(m: OutlierMember): NodeSample {
    let answered = 0;
    let failed = 0;
    let outstanding = 0;
    const latency = new Float64Array(BUCKETS);
    const statusBase = upstreamOffset(m.slot, 0);
    const histBase = upstreamHistOffset(m.slot);
    for (const r of this.#regions) {
      for (let s = 0; s < STATUSES; s++) {
        const v = r[statusBase + s]!;
        if (v === 0 || s === GRPC_STATUS.CANCELLED) continue;
        if (isFailedAttempt(s)) failed += v;
        else answered += v;
      }
      for (let b = 0; b < BUCKETS; b++) latency[b]! += r[histBase + b]!;
      outstanding += r[M_OUTSTANDING + m.slot]!;
    }
    return {
      id: m.id,
      eligible: m.eligible,
      answered,
      failed,
      latency,
      outstanding,
      consecutiveFailures: Atomics.load(this.#control, P_FAILURE_RUN + m.slot),
    };
  }
}

function figuresText(f: Readonly<Record<string, number>>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
    .join(' ');
}

/** Appends the outlier families to a /metrics exposition. */
export function renderOutlierMetrics(out: string[], nodes: readonly OutlierNodeMetrics[]): void {
  family(
    out,
    'engram_router_outlier_ejections_total',
    'counter',
    'Outlier ejections per node and reason: stalled (attempts outstanding, no answer), consecutive_failures, failure_rate, latency (p50/p99 against the peers).',
    nodes.flatMap((n) =>
      EJECTION_REASONS.map((r) => [`node="${esc(n.id)}",reason="${r}"`, n.ejections[r]] as const),
    ),
  );
  family(
    out,
    'engram_router_node_ejected',
    'gauge',
    '1 while the outlier detector has the node ejected (routed as a down node), else 0.',
    nodes.map((n) => [`node="${esc(n.id)}"`, n.ejected ? 1 : 0] as const),
  );
}
