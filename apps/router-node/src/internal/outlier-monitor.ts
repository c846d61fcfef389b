/**
 * The outlier detector's shell on the control plane (main thread): every `outlier.intervalMs`
 * it sums each member's attempt counters over the data-plane threads' regions (layout.ts),
 * runs the pure core (outlier-detector.ts), and publishes ejections in the N_EJECTED words,
 * which every data-plane thread reads on its next routing decision (an ejected node is routed
 * as a down one). It logs one line per ejection and return, and counts them for /metrics.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { esc, family } from './exposition.js';
import type { AttemptVerdict } from './forward.js';
import {
  controlWords,
  J_ANSWERED,
  J_FAILED,
  J_HIST,
  judgedOffset,
  metricsRegion,
  N_EJECTED,
  N_FAILURE_RUN,
  nodeWord,
  regionCount,
  S_OUTSTANDING,
  S_OUTSTANDING_GEN,
  slotCount,
  slotGeneration,
  slotMetrics,
  UPSTREAM_BUCKETS_S,
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
 * A data-plane thread's part of N_FAILURE_RUN (layout.ts): an attempt to `slot` ended as
 * `verdict` (forward.ts). A failure adds one, an answer resets the run, an attempt that says
 * nothing of the node (never sent, cancelled, the caller's deadline) leaves it.
 */
export function recordFailureRun(control: Int32Array, slot: number, verdict: AttemptVerdict): void {
  if (slot < 0 || slot >= slotCount(control) || verdict === 'unjudged') return;
  const at = nodeWord(slot, N_FAILURE_RUN);
  if (verdict === 'failed') Atomics.add(control, at, 1);
  else if (Atomics.load(control, at) !== 0) Atomics.store(control, at, 0);
}

/**
 * The detector's default clock: monotonic (`performance.now`), so a wall-clock step (NTP)
 * cannot lengthen or end an ejection, freeze the window rules or fake a stall.
 */
export const monotonicClock: { now(): number } = { now: () => performance.now() };

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
  /** Milliseconds on a monotonic timeline; default `monotonicClock` (tests pass fake time). */
  readonly clock?: { now(): number };
  readonly log: Logger;
}

/** What /metrics shows per member. */
export interface OutlierNodeMetrics {
  readonly id: string;
  readonly ejected: boolean;
  readonly ejections: Readonly<Record<EjectionReason, number>>;
}

const BUCKETS = UPSTREAM_BUCKETS_S.length + 1; // with +Inf

function zeroCounts(): Record<EjectionReason, number> {
  return Object.fromEntries(EJECTION_REASONS.map((r) => [r, 0])) as Record<EjectionReason, number>;
}

export class OutlierMonitor {
  readonly #init: OutlierMonitorInit;
  readonly #clock: { now(): number };
  readonly #control: Int32Array;
  readonly #regions: readonly Float64Array[];
  #config: OutlierConfig;
  #detector: OutlierDetector;
  #timer: unknown = null;
  /** Ejected node → the slot whose N_EJECTED word is set for it. */
  readonly #ejected = new Map<string, number>();
  /** Ejections per node and reason, since start (a removed node's go with it). */
  readonly #counts = new Map<string, Record<EjectionReason, number>>();
  /** Health verdict last seen per node (up or not), to see it come back. */
  readonly #up = new Map<string, boolean>();
  /** Nodes a rule wanted out while the share was full (logged once each). */
  readonly #capped = new Set<string>();
  /**
   * The slot each node was last seen in, and the slot's generation then (layout.ts
   * N_GEN): a node that left, moved, or was handed its slot afresh is forgotten.
   */
  readonly #slots = new Map<string, { readonly slot: number; readonly gen: number }>();

  constructor(init: OutlierMonitorInit) {
    this.#init = init;
    this.#clock = init.clock ?? monotonicClock;
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
    const list = [...members];
    this.#sync(list);
    const seen = new Set<string>();
    for (const m of list) {
      seen.add(m.id);
      const wasUp = this.#up.get(m.id);
      this.#up.set(m.id, m.up);
      if (m.up && wasUp === false) {
        // The failures of its down spell (refused connections) are not the new incarnation's.
        if (m.slot >= 0 && m.slot < slotCount(this.#control)) {
          Atomics.store(this.#control, nodeWord(m.slot, N_FAILURE_RUN), 0);
        }
        const e = this.#detector.healthUp(m.id, this.#clock.now());
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
    const all = [...this.#init.members()];
    // Nodes that left or moved are forgotten before anything is published: their old slot may
    // be a newcomer's now, whose words must not be touched on their behalf.
    this.#sync(all);
    const members = all.filter((m) => m.slot >= 0 && m.slot < slotCount(this.#control));
    const samples = members.map((m) => this.#sample(m));
    const events = this.#detector.tick(this.#clock.now(), samples);
    const slots = new Map(members.map((m) => [m.id, m.slot]));
    const capped = new Set<string>();
    for (const e of events) this.#apply(e, slots, capped);
    for (const id of this.#capped) if (!capped.has(id)) this.#capped.delete(id);
  }

  /**
   * Forgets every node that is no longer a member, is in another slot than it was, or was
   * handed its slot afresh (the control plane does that for a node whose address changed): the
   * counters it was judged on are another node's. Forgotten: the detector's state, its
   * ejection (a slot now free gets its word back to 0; a slot handed out was cleared by the
   * control plane as it did, TablePublisher.handOut) and, for a node gone, its counts.
   */
  #sync(members: readonly { readonly id: string; readonly slot: number }[]): void {
    const now = new Map<string, { slot: number; gen: number }>();
    const inUse = new Set<number>();
    for (const m of members) {
      if (m.slot < 0 || m.slot >= slotCount(this.#control)) continue;
      now.set(m.id, { slot: m.slot, gen: slotGeneration(this.#control, m.slot) });
      inUse.add(m.slot);
    }
    for (const [id, { slot, gen }] of [...this.#slots]) {
      const cur = now.get(id);
      if (cur !== undefined && cur.slot === slot && cur.gen === gen) continue;
      this.#slots.delete(id);
      this.#detector.forget(id);
      this.#capped.delete(id);
      if (!now.has(id)) this.#counts.delete(id);
      const ejectedAt = this.#ejected.get(id);
      if (ejectedAt === undefined) continue;
      this.#ejected.delete(id);
      if (!inUse.has(ejectedAt)) Atomics.store(this.#control, nodeWord(ejectedAt, N_EJECTED), 0);
      const why = cur === undefined ? 'removed' : 'replaced';
      this.#init.log.info(
        { event: 'outlier-return', node: id, why },
        `node ${id} back in service after its outlier ejection (${why})`,
      );
    }
    for (const [id, at] of now) this.#slots.set(id, at);
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
    Atomics.store(this.#control, nodeWord(slot, N_EJECTED), 1);
    Atomics.store(this.#control, nodeWord(slot, N_FAILURE_RUN), 0);
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
    Atomics.store(this.#control, nodeWord(slot, N_FAILURE_RUN), 0);
    // Back in service: its reads ramp up over health.slowStartMs as after a down spell. Stored
    // before the ejected word clears, so no thread sees it back without its ramp.
    markReturned(this.#control, slot);
    Atomics.store(this.#control, nodeWord(slot, N_EJECTED), 0);
    this.#init.log.info(
      { event: 'outlier-return', node: id, why },
      `node ${id} back in service after its outlier ejection (${why})`,
    );
  }

  /**
   * A member's counters summed over every thread region: the detector's own words (layout.ts
   * S_JUDGED: answered, failed and their durations, nothing that says nothing of the node),
   * and the in-flight gauges that count for the slot's current generation (a thread that has
   * sent nothing to the newcomer of a reused slot still counts the old node's attempts).
   */
  #sample(m: OutlierMember): NodeSample {
    let answered = 0;
    let failed = 0;
    let outstanding = 0;
    const latency = new Float64Array(BUCKETS);
    const base = judgedOffset(m.slot);
    const gen = slotGeneration(this.#control, m.slot);
    const at = slotMetrics(m.slot);
    for (const r of this.#regions) {
      answered += r[base + J_ANSWERED]!;
      failed += r[base + J_FAILED]!;
      for (let b = 0; b < BUCKETS; b++) latency[b]! += r[base + J_HIST + b]!;
      if (r[at + S_OUTSTANDING_GEN] === gen) outstanding += r[at + S_OUTSTANDING]!;
    }
    return {
      id: m.id,
      eligible: m.eligible,
      answered,
      failed,
      latency,
      // Never below 0, whatever a thread's gauge holds.
      outstanding: Math.max(0, outstanding),
      consecutiveFailures: Atomics.load(this.#control, nodeWord(m.slot, N_FAILURE_RUN)),
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
    '1 while the outlier detector has the node ejected (tried after the other up nodes), else 0.',
    nodes.map((n) => [`node="${esc(n.id)}"`, n.ejected ? 1 : 0] as const),
  );
}
