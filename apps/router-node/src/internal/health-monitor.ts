import { Health } from './membership.js';
import { ProbeStatsTable } from './probe-stats.js';
import type { Timers } from './timers.js';

export interface HealthThresholds {
  /** Consecutive successful probes that mark a down node up. */
  readonly healthyThreshold: number;
  /** Consecutive failed probes that mark an up node down. */
  readonly unhealthyThreshold: number;
}

/**
 * The pure core of health checking: consecutive probe results per node, and the verdict
 * they reach. A streak counts in one direction (+ successes, − failures) and restarts at
 * ±1 when the direction flips, so one success in a run of failures delays a down verdict.
 */
export class HealthVerdicts {
  readonly #thresholds: HealthThresholds;
  readonly #streaks = new Map<string, number>();

  constructor(thresholds: HealthThresholds) {
    this.#thresholds = thresholds;
  }

  /**
   * Records one probe result of a node whose verdict is `current`; returns the new verdict
   * when this result flips it, else undefined. A node of unknown health (never probed) is up
   * on its first success, as Envoy marks a new host healthy after one passing check: making a
   * fresh node wait healthyThreshold rounds guards against nothing a flapping node would do,
   * it only delays every start and every AddNode. It is down after unhealthyThreshold
   * failures, as an up node would be.
   */
  record(id: string, ok: boolean, current: Health): Health | undefined {
    const prev = this.#streaks.get(id) ?? 0;
    const streak = ok ? Math.max(1, prev + 1) : Math.min(-1, prev - 1);
    this.#streaks.set(id, streak);
    const t = this.#thresholds;
    if (current !== Health.Down && streak <= -t.unhealthyThreshold) return Health.Down;
    if (current === Health.Unknown && ok) return Health.Up;
    if (current === Health.Down && streak >= t.healthyThreshold) return Health.Up;
    return undefined;
  }

  /** Current streak of a node (0 when it has none). */
  streak(id: string): number {
    return this.#streaks.get(id) ?? 0;
  }

  forget(id: string): void {
    this.#streaks.delete(id);
  }
}

export interface ProbeTarget {
  readonly id: string;
  readonly address: string;
}

/** Health probes of nodes (I/O). */
export interface Probe {
  /** One probe: resolves true when the node answers SERVING, false otherwise. */
  check(target: ProbeTarget, timeoutMs: number): Promise<boolean>;
  /** The target is no longer watched: release what `check` kept for it. */
  forget(target: ProbeTarget): void;
}

export interface HealthMonitorInit extends HealthThresholds {
  /** Probe interval of a node that is up (every node is probed in each round). */
  readonly intervalMs: number;
  /**
   * Probe interval of a node that is down or not yet probed (Envoy's `unhealthy_interval`);
   * default `intervalMs`. Shorter: a node that comes back is seen sooner.
   */
  readonly unhealthyIntervalMs?: number;
  /**
   * Probe interval of a node that is not up once a probe of it has passed, until its verdict
   * flips (Envoy's `healthy_edge_interval`); default `intervalMs`. With it, a node back after
   * an outage is up within `unhealthyIntervalMs + (healthyThreshold − 1) × healthyEdgeIntervalMs`
   * plus the probes' round trips, rather than `healthyThreshold` whole intervals.
   */
  readonly healthyEdgeIntervalMs?: number;
  readonly timeoutMs: number;
  readonly timers: Timers;
  readonly probe: Probe;
  /** The node's current verdict (undefined: no longer a member, results are dropped). */
  readonly current: (id: string) => Health | undefined;
  /** A verdict flipped. */
  readonly onVerdict: (id: string, health: Health) => void;
  /** Clock of probe round trips, milliseconds; default `performance.now`. */
  readonly now?: () => number;
  /** Where probe failures and round trips are recorded; default a table of its own. */
  readonly stats?: ProbeStatsTable;
}

interface Watched {
  readonly target: ProbeTarget;
  /** The probe running, settled once its result (or its timeout) is recorded. */
  probing: Promise<void> | null;
  /** The extra probe scheduled for a node that is not up (see `#scheduleExtra`). */
  extra: unknown;
}

/**
 * Probes every watched node each interval (a node whose probe is still running is skipped),
 * counts a probe that outlives `timeoutMs` as failed, and reports verdict flips. A node that is
 * not up is also probed between rounds, `unhealthyIntervalMs` after its last probe settled
 * (`healthyEdgeIntervalMs` once a probe passed). I/O is the injected `probe`; time is the
 * injected `timers`.
 */
export class HealthMonitor {
  readonly #init: HealthMonitorInit;
  readonly #verdicts: HealthVerdicts;
  readonly #watched = new Map<string, Watched>();
  /** Failures and round trip of each node's probes (the control plane's, kept across monitors). */
  readonly #stats: ProbeStatsTable;
  #interval: unknown;

  constructor(init: HealthMonitorInit) {
    this.#init = init;
    this.#verdicts = new HealthVerdicts(init);
    this.#stats = init.stats ?? new ProbeStatsTable();
  }

  /**
   * Starts probing: a first round at once, then one every interval. Resolves when the first
   * round's probes are settled (each within `timeoutMs`: a probe that outlives it fails).
   */
  start(): Promise<void> {
    if (this.#interval !== undefined) return Promise.resolve();
    this.#interval = this.#init.timers.setInterval(() => this.probeAll(), this.#init.intervalMs);
    return this.probeAll();
  }

  stop(): void {
    if (this.#interval !== undefined) this.#init.timers.clearInterval(this.#interval);
    this.#interval = undefined;
    for (const w of this.#watched.values()) {
      this.#clearExtra(w);
      this.#init.probe.forget(w.target);
    }
    this.#watched.clear();
  }

  /** Watches a node (replacing an earlier target of the same id: a new address starts over). */
  watch(target: ProbeTarget): void {
    const old = this.#watched.get(target.id);
    if (old !== undefined && old.target.address === target.address) return;
    if (old !== undefined) {
      this.#clearExtra(old);
      this.#init.probe.forget(old.target);
      // A new address starts over; a first watch (a new monitor after a health reload, whose
      // stats table the control plane keeps) does not.
      this.#stats.forget(target.id);
    }
    this.#verdicts.forget(target.id);
    const w: Watched = { target, probing: null, extra: undefined };
    this.#watched.set(target.id, w);
    if (this.#interval !== undefined) this.#probe(w);
  }

  unwatch(id: string): void {
    const old = this.#watched.get(id);
    if (old === undefined) return;
    this.#watched.delete(id);
    this.#clearExtra(old);
    this.#verdicts.forget(id);
    this.#stats.forget(id);
    this.#init.probe.forget(old.target);
  }

  streak(id: string): number {
    return this.#verdicts.streak(id);
  }

  /** Round trip of the node's last settled probe, milliseconds; undefined before the first. */
  latencyMs(id: string): number | undefined {
    return this.#stats.of(id)?.lastMs;
  }

  /**
   * One round: a probe for every watched node not already being probed. Resolves when each
   * node's probe (this round's, or the one already running) is settled.
   */
  probeAll(): Promise<void> {
    return Promise.all([...this.#watched.values()].map((w) => this.#probe(w))).then(() => {});
  }

  #probe(w: Watched): Promise<void> {
    if (w.probing !== null) return w.probing;
    // This probe replaces a pending extra one; the next is scheduled when this one settles.
    this.#clearExtra(w);
    const { timers, timeoutMs, probe } = this.#init;
    let settled = false;
    let done = (): void => {};
    w.probing = new Promise<void>((resolve) => {
      done = resolve;
    });
    const running = w.probing;
    const now = this.#init.now ?? (() => performance.now());
    const started = now();
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      w.probing = null;
      if (this.#watched.get(w.target.id) === w)
        this.#stats.record(w.target.id, ok, now() - started);
      this.#result(w, ok);
      done();
    };
    const timer = timers.setTimeout(() => finish(false), timeoutMs);
    probe.check(w.target, timeoutMs).then(finish, () => finish(false));
    return running;
  }

  #result(w: Watched, ok: boolean): void {
    const id = w.target.id;
    // A node removed or re-addressed while its probe ran: the result is about the old target.
    if (this.#watched.get(id) !== w) return;
    const current = this.#init.current(id);
    if (current === undefined) return;
    const verdict = this.#verdicts.record(id, ok, current);
    if (verdict !== undefined) this.#init.onVerdict(id, verdict);
    if ((verdict ?? current) !== Health.Up) this.#scheduleExtra(w, ok);
  }

  /**
   * A node that is not up gets its next probe sooner than the next round: `healthyEdgeIntervalMs`
   * after a passed probe, `unhealthyIntervalMs` after a failed one (either only when shorter
   * than the interval). The rounds go on as well; a round finding the node's probe still
   * running skips it, so a node is never probed twice at once.
   */
  #scheduleExtra(w: Watched, ok: boolean): void {
    const init = this.#init;
    if (this.#interval === undefined || w.extra !== undefined) return;
    const delay = ok
      ? (init.healthyEdgeIntervalMs ?? init.intervalMs)
      : (init.unhealthyIntervalMs ?? init.intervalMs);
    if (delay >= init.intervalMs) return;
    w.extra = init.timers.setTimeout(() => {
      w.extra = undefined;
      if (this.#watched.get(w.target.id) === w && this.#interval !== undefined) {
        void this.#probe(w);
      }
    }, delay);
  }

  #clearExtra(w: Watched): void {
    if (w.extra === undefined) return;
    this.#init.timers.clearTimeout(w.extra);
    w.extra = undefined;
  }
}
