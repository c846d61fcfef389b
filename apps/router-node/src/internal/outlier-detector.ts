/**
 * Outlier detection (Envoy's outlier detection, resilience4j's slow-call rate), as a pure core:
 * no I/O, no timers, no clock of its own. The shell (outlier-monitor.ts) calls `tick` every
 * `intervalMs` with each member's counters, read from the data plane's shared memory, and
 * publishes what comes back; tests drive it on fake time with made-up counters.
 *
 * Rules, each naming the reason of an ejection:
 * - `stalled`: attempts to the node have been outstanding, with no answer from it, for longer
 *   than the stall threshold — max(`stallMs`, `latencyFactor` × the peers' median p99 of the
 *   last window) — while some peer answered since the last tick (every node silent at once is
 *   the router or the cluster stuck, not an outlier), and at some tick of that stall it held
 *   at least `STALL_MIN_HELD` attempts at once. A node that accepts connections but never
 *   answers (SIGSTOP, a deadlock) is caught by this one before any attempt timeout fires: it
 *   needs no completed call at all, and under load it holds many attempts within a few calls.
 *   One legitimately slow call under light load (a single attempt held, while the peers' p99
 *   is still unknown) is not enough; a single client's sequential calls to a hung node are
 *   left to attempt timeouts and `consecutive_failures`.
 * - `consecutive_failures`: the data plane's count of node failures in a row (node-failure
 *   statuses, resets, attempt timeouts; any answer resets it) reached `consecutiveFailures`.
 * - `failure_rate`: over the last window, at least `minRequests` attempts ended and the share
 *   of node failures among them is at least `failureRate`.
 * - `latency`: over the last window, the node's p50 or p99 (estimated from its attempt-duration
 *   histogram) is above `latencyFactor` × the median of its peers' same percentile, and above
 *   it by at least `latencyFloorMs` (so 0.2 ms against 0.6 ms never ejects). Peers are the
 *   other eligible nodes with `minRequests` attempts in the window (`P99_VOLUME` times as many
 *   for the p99, on both sides); a node without one is not judged on latency.
 * Every rule is checked every tick: the window rules on the window so far (a node once it has
 * the volume they need), the window starting over every `windowMs` (tumbling, as Envoy's
 * interval), so a node gone slow is out after `minRequests` slow attempts, not at the window's end.
 *
 * Ejection: for min(`baseEjectionMs` × n, `maxEjectionMs`), n = the node's ejection count,
 * which drops by one for every `baseEjectionMs` the node then spends in service without being
 * ejected again (Envoy's multiplier decay). The count stops at ceil(`maxEjectionMs` /
 * `baseEjectionMs`), the first count that gives the longest ejection, so a node ejected many
 * times is back to the base time after at most that many base periods in service. When the time is over the node returns to service
 * as it was (Envoy's behaviour): if it is still unwell, the same rules eject it again, for
 * longer. A node whose health goes from not-up to up (restarted, thawed) returns at once: it
 * is a new incarnation, and the health check has just vouched for it.
 *
 * Share: at most max(1, floor(`maxEjectedShare` × members)) nodes are ejected at once, and
 * none when there is a single member; as Envoy, at least one may always be ejected (a cluster
 * of two or three nodes is where one hung node hurts most). An ejected node is tried after
 * every other up node and before down ones, and still counts as reachable (NodeStates.isEjected),
 * so an ejection never makes a space unavailable.
 */
import { ConfigError } from './errors.js';
import { histogramQuantile } from './histogram-quantile.js';

/** Why a node was ejected (metric label values). */
export const EJECTION_REASONS = Object.freeze([
  'stalled',
  'consecutive_failures',
  'failure_rate',
  'latency',
] as const);
export type EjectionReason = (typeof EJECTION_REASONS)[number];

export interface OutlierSettings {
  /** Time between ticks (the fast rules and returns are checked every tick), ms. */
  readonly intervalMs: number;
  /** Length of the failure-rate and latency windows, ms. */
  readonly windowMs: number;
  /** Node failures in a row that eject (`consecutive_failures`). */
  readonly consecutiveFailures: number;
  /** Share of failed attempts in a window that ejects, in (0, 1]. */
  readonly failureRate: number;
  /** Attempts a node needs in a window to be judged (and to count as a peer). */
  readonly minRequests: number;
  /** How many times the peers' median p50/p99 a node's may reach before it is an outlier. */
  readonly latencyFactor: number;
  /** Smallest latency excess over the peers' median that ejects, ms. */
  readonly latencyFloorMs: number;
  /** Shortest stall (attempts outstanding, no answer) that ejects, ms. */
  readonly stallMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  /** Share of the members that may be ejected at once (at least one of two or more). */
  readonly maxEjectedShare: number;
}

/** One member's counters at a tick (from every data-plane thread). */
export interface NodeSample {
  readonly id: string;
  /** Routed as up by the control plane (health up, not draining): judged and a peer. */
  readonly eligible: boolean;
  /** Attempts the node answered (any status but a node failure or a cancel), cumulative. */
  readonly answered: number;
  /**
   * Attempts that failed on the node (node-failure status, no reply, the router's attempt
   * timeout), cumulative. Attempts never sent, cancelled, or ended by the caller's own deadline
   * are neither answered nor failed.
   */
  readonly failed: number;
  /**
   * Durations of the answered and failed attempts (no others: a cancelled hedge loser would
   * hide a slow node): per-bucket counts over `bounds` (not cumulative), +Inf last. Cumulative.
   */
  readonly latency: ArrayLike<number>;
  /** Attempts in flight to the node now. */
  readonly outstanding: number;
  /** Node failures in a row now (all threads). */
  readonly consecutiveFailures: number;
}

/** Figures behind a decision, for the log line. */
export interface OutlierFigures {
  readonly [name: string]: number;
}

export type OutlierEvent =
  | {
      readonly kind: 'eject';
      readonly id: string;
      readonly reason: EjectionReason;
      /** How long this ejection lasts, ms. */
      readonly ejectionMs: number;
      /** The node's ejection count, this one included (after decay). */
      readonly ejections: number;
      readonly figures: OutlierFigures;
    }
  | {
      readonly kind: 'return';
      readonly id: string;
      /** `expired`: its ejection time is over; `health`: its health went from not-up to up. */
      readonly why: 'expired' | 'health';
    }
  | {
      /** A rule said eject, but `maxEjectedShare` of the members are ejected already. */
      readonly kind: 'capped';
      readonly id: string;
      readonly reason: EjectionReason;
      readonly figures: OutlierFigures;
    };

interface NodeState {
  /** Window baseline: answered, failed and the histogram at the window's start. */
  baseAnswered: number;
  baseFailed: number;
  baseLatency: Float64Array;
  lastAnswered: number;
  /** Since when attempts were outstanding with no answer (null: not stalled). */
  stallSince: number | null;
  /** Most attempts held at once at a tick of the current stall. */
  stallHeld: number;
  ejectedUntil: number | null;
  reason: EjectionReason | null;
  /** Ejection count (the multiplier), decayed while in service. */
  ejections: number;
  /** Last time the count changed or the node returned (decay is counted from it). */
  decayFrom: number;
}

const PRIORITY: readonly EjectionReason[] = EJECTION_REASONS;
/** The p99 rule needs this many times `minRequests` (a tail of ≥ 10 calls at 1 %). */
export const P99_VOLUME = 10;
/**
 * Attempts a stalled node must have held at once (at some tick of its stall) to be ejected as
 * `stalled`: one slow call is not a hung node.
 */
export const STALL_MIN_HELD = 2;

function check(field: string, v: number, min: number, max: number, integer = true): void {
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new ConfigError(
      `outlier.${field}`,
      v,
      `must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`,
    );
  }
}

/** Validates settings (ConfigError naming the key); the config schema holds the same bounds. */
export function validateOutlierSettings(s: OutlierSettings): OutlierSettings {
  const DAY_MS = 24 * 60 * 60 * 1000;
  check('intervalMs', s.intervalMs, 10, 60_000);
  check('windowMs', s.windowMs, 100, DAY_MS);
  check('consecutiveFailures', s.consecutiveFailures, 1, 1_000_000);
  check('failureRate', s.failureRate, 0.01, 1, false);
  check('minRequests', s.minRequests, 1, 1_000_000);
  check('latencyFactor', s.latencyFactor, 1.1, 1000, false);
  check('latencyFloorMs', s.latencyFloorMs, 0, 60_000, false);
  check('stallMs', s.stallMs, 10, DAY_MS);
  check('baseEjectionMs', s.baseEjectionMs, 100, DAY_MS);
  check('maxEjectionMs', s.maxEjectionMs, 100, DAY_MS);
  check('maxEjectedShare', s.maxEjectedShare, 0.01, 1, false);
  if (s.maxEjectionMs < s.baseEjectionMs) {
    throw new ConfigError(
      'outlier.maxEjectionMs',
      s.maxEjectionMs,
      `must be at least outlier.baseEjectionMs (${s.baseEjectionMs})`,
    );
  }
  return s;
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

/** A node's window figures. */
interface WindowStats {
  readonly id: string;
  readonly requests: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
}

/**
 * The detector. `bounds` are the upper bounds (seconds) of the histogram buckets the samples'
 * `latency` counts; figures and settings are in milliseconds.
 */
export class OutlierDetector {
  #s: OutlierSettings;
  readonly #bounds: readonly number[];
  readonly #nodes = new Map<string, NodeState>();
  #windowStart: number | null = null;
  /** Median p99 of the eligible nodes judged in the last window, ms (NaN: none yet). */
  #peerP99Ms = Number.NaN;

  constructor(settings: OutlierSettings, bounds: readonly number[]) {
    this.#s = validateOutlierSettings(settings);
    this.#bounds = bounds;
  }

  get settings(): OutlierSettings {
    return this.#s;
  }

  /** New settings (a reload); ejections in force keep their end time. */
  reconfigure(settings: OutlierSettings): void {
    this.#s = validateOutlierSettings(settings);
  }

  /** Whether `id` is ejected now (as of the last tick). */
  isEjected(id: string): boolean {
    return this.#nodes.get(id)?.ejectedUntil != null;
  }

  /** The stall threshold in force, ms: max(stallMs, latencyFactor × the peers' median p99). */
  get stallThresholdMs(): number {
    const p = this.#peerP99Ms;
    return Number.isFinite(p)
      ? Math.max(this.#s.stallMs, this.#s.latencyFactor * p)
      : this.#s.stallMs;
  }

  /**
   * One tick at `nowMs` with every member's counters (a member missing from `samples` is
   * forgotten). Returns what changed, in order: returns first, then ejections.
   */
  tick(nowMs: number, samples: readonly NodeSample[]): OutlierEvent[] {
    const s = this.#s;
    const events: OutlierEvent[] = [];
    const seen = new Set<string>();
    for (const x of samples) seen.add(x.id);
    for (const id of [...this.#nodes.keys()]) if (!seen.has(id)) this.#nodes.delete(id);

    const states: NodeState[] = [];
    for (const x of samples) {
      let st = this.#nodes.get(x.id);
      if (st === undefined) {
        st = this.#fresh(x, nowMs);
        this.#nodes.set(x.id, st);
      }
      states.push(st);
      if (st.ejectedUntil !== null) {
        if (nowMs >= st.ejectedUntil) events.push(this.#return(x.id, st, nowMs, 'expired'));
      } else if (st.ejections > 0 && nowMs - st.decayFrom >= s.baseEjectionMs) {
        const steps = Math.floor((nowMs - st.decayFrom) / s.baseEjectionMs);
        st.ejections = Math.max(0, st.ejections - steps);
        st.decayFrom += steps * s.baseEjectionMs;
      }
    }

    // Candidates: the fast rules every tick, the window rules when a window is over.
    const candidates = new Map<string, { reason: EjectionReason; figures: OutlierFigures }>();
    const propose = (id: string, reason: EjectionReason, figures: OutlierFigures) => {
      const had = candidates.get(id);
      if (had === undefined || PRIORITY.indexOf(reason) < PRIORITY.indexOf(had.reason)) {
        candidates.set(id, { reason, figures });
      }
    };
    const stallMs = this.stallThresholdMs;
    // Which eligible nodes answered since the last tick: a stall is an outlier only while some
    // peer answers (when every node is silent, the router or the whole cluster is stuck, e.g.
    // starved of CPU, and no node is to blame).
    const answeredNow = samples.map((x, i) => x.answered !== states[i]!.lastAnswered);
    let answering = 0;
    for (let i = 0; i < samples.length; i++)
      if (samples[i]!.eligible && answeredNow[i]) answering++;
    for (let i = 0; i < samples.length; i++) {
      const x = samples[i]!;
      const st = states[i]!;
      if (answeredNow[i]) {
        st.lastAnswered = x.answered;
        st.stallSince = null;
      }
      if (x.outstanding <= 0) st.stallSince = null;
      else if (st.stallSince === null) {
        st.stallSince = nowMs;
        st.stallHeld = x.outstanding;
      } else st.stallHeld = Math.max(st.stallHeld, x.outstanding);
      if (!x.eligible || st.ejectedUntil !== null) continue;
      if (
        st.stallSince !== null &&
        nowMs - st.stallSince >= stallMs &&
        st.stallHeld >= STALL_MIN_HELD &&
        answering > 0
      ) {
        propose(x.id, 'stalled', {
          stalledMs: nowMs - st.stallSince,
          thresholdMs: stallMs,
          outstanding: x.outstanding,
          held: st.stallHeld,
          peersAnswering: answering,
        });
      }
      if (x.consecutiveFailures >= s.consecutiveFailures) {
        propose(x.id, 'consecutive_failures', {
          consecutiveFailures: x.consecutiveFailures,
          threshold: s.consecutiveFailures,
        });
      }
    }
    // The window rules judge the window so far on every tick (each node once it has the volume
    // they need, so a node gone slow is out after minRequests slow attempts, not at the next
    // window's end), and the window starts over every windowMs.
    if (this.#windowStart === null) this.#windowStart = nowMs;
    else {
      const over = nowMs - this.#windowStart >= s.windowMs;
      this.#judgeWindow(samples, states, propose, over);
      if (over) this.#windowStart = nowMs;
    }

    // Ejections within the share, the most serious reason first.
    const members = samples.length;
    const cap = members < 2 ? 0 : Math.max(1, Math.floor(s.maxEjectedShare * members));
    let ejected = 0;
    for (const st of states) if (st.ejectedUntil !== null) ejected++;
    const ordered = [...candidates.entries()].sort(
      (a, b) => PRIORITY.indexOf(a[1].reason) - PRIORITY.indexOf(b[1].reason),
    );
    for (const [id, { reason, figures }] of ordered) {
      const st = this.#nodes.get(id)!;
      if (ejected >= cap) {
        events.push({ kind: 'capped', id, reason, figures });
        continue;
      }
      // Capped where the ejection time stops growing, so the count decays in bounded time.
      st.ejections = Math.min(st.ejections + 1, Math.ceil(s.maxEjectionMs / s.baseEjectionMs));
      st.decayFrom = nowMs;
      const ejectionMs = Math.min(s.baseEjectionMs * st.ejections, s.maxEjectionMs);
      st.ejectedUntil = nowMs + ejectionMs;
      st.reason = reason;
      st.stallSince = null;
      ejected++;
      events.push({ kind: 'eject', id, reason, ejectionMs, ejections: st.ejections, figures });
    }
    return events;
  }

  /**
   * The node's health went from not-up to up (restarted, thawed): a new incarnation the health
   * check has just vouched for, back in service at once, its stall forgotten. Returns the
   * return, if it was ejected. (The shell starts its failure run over too: failures counted
   * while it was down say nothing of the new incarnation.)
   */
  healthUp(id: string, nowMs: number): OutlierEvent | null {
    const st = this.#nodes.get(id);
    if (st === undefined) return null;
    st.stallSince = null;
    if (st.ejectedUntil === null) return null;
    return this.#return(id, st, nowMs, 'health');
  }

  /**
   * Forgets `id` (no event): the shell says it is no longer the node it judged (removed, or
   * moved to another slot whose counters are not its own). Seen again, it starts afresh.
   */
  forget(id: string): void {
    this.#nodes.delete(id);
  }

  #return(id: string, st: NodeState, nowMs: number, why: 'expired' | 'health'): OutlierEvent {
    st.ejectedUntil = null;
    st.reason = null;
    st.stallSince = null;
    st.decayFrom = nowMs;
    return { kind: 'return', id, why };
  }

  #fresh(x: NodeSample, nowMs: number): NodeState {
    return {
      baseAnswered: x.answered,
      baseFailed: x.failed,
      baseLatency: Float64Array.from(x.latency),
      lastAnswered: x.answered,
      stallSince: null,
      stallHeld: 0,
      ejectedUntil: null,
      reason: null,
      ejections: 0,
      decayFrom: nowMs,
    };
  }

  /**
   * The window rules over the deltas since the window's start; when `over`, the next window
   * starts (the deltas' bases move to now).
   */
  #judgeWindow(
    samples: readonly NodeSample[],
    states: readonly NodeState[],
    propose: (id: string, reason: EjectionReason, figures: OutlierFigures) => void,
    over: boolean,
  ): void {
    const s = this.#s;
    const judged: WindowStats[] = [];
    const delta = new Float64Array(this.#bounds.length + 1);
    for (let i = 0; i < samples.length; i++) {
      const x = samples[i]!;
      const st = states[i]!;
      const requests = x.answered - st.baseAnswered + (x.failed - st.baseFailed);
      // A node that appeared mid-window is judged on its part of it (minRequests still holds).
      if (x.eligible && st.ejectedUntil === null && requests >= s.minRequests) {
        for (let b = 0; b < delta.length; b++) delta[b] = (x.latency[b] ?? 0) - st.baseLatency[b]!;
        judged.push({
          id: x.id,
          requests,
          failed: x.failed - st.baseFailed,
          p50: histogramQuantile(this.#bounds, delta, 0.5) * 1000,
          p99: histogramQuantile(this.#bounds, delta, 0.99) * 1000,
        });
      }
      if (over) {
        st.baseAnswered = x.answered;
        st.baseFailed = x.failed;
        st.baseLatency = Float64Array.from(x.latency);
      }
    }
    if (judged.length > 0) this.#peerP99Ms = median(judged.map((j) => j.p99));
    for (const j of judged) {
      const rate = j.failed / j.requests;
      if (rate >= s.failureRate) {
        propose(j.id, 'failure_rate', {
          failureRate: rate,
          requests: j.requests,
          threshold: s.failureRate,
        });
      }
      for (const q of ['p50', 'p99'] as const) {
        // A p99 from few attempts is one slow call (a GC pause): judged from P99_VOLUME times
        // the volume, so its tail holds several calls, against peers with as many.
        const need = q === 'p99' ? P99_VOLUME * s.minRequests : s.minRequests;
        if (j.requests < need) continue;
        const peers = judged.filter((p) => p !== j && p.requests >= need);
        if (peers.length === 0) continue;
        const peer = median(peers.map((p) => p[q]));
        const own = j[q];
        if (own > s.latencyFactor * peer && own - peer >= s.latencyFloorMs) {
          propose(j.id, 'latency', {
            [`${q}Ms`]: own,
            [`peers${q === 'p50' ? 'P50' : 'P99'}Ms`]: peer,
            factor: s.latencyFactor,
            requests: j.requests,
          });
          break;
        }
      }
    }
  }
}
