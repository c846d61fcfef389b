import { performance } from 'node:perf_hooks';
import type { Probe, ProbeTarget } from './health-monitor.js';

/** What /metrics shows of one node's health probes. */
export interface ProbeStat {
  /** Probes that failed: not SERVING, an error, or no answer within the probe's timeout. */
  readonly failures: number;
  /** The last settled probe's round trip, seconds (a failed one: until it failed). */
  readonly lastSeconds: number;
}

/**
 * A Probe that counts failures and times each probe of the probe it wraps, per node id. The
 * health monitor sees the same results; only the main thread probes, once per interval.
 * A node's stats go when the monitor forgets it (removed, or re-addressed: it starts over).
 */
export class ProbeStats implements Probe {
  readonly #inner: Probe;
  readonly #stats = new Map<string, { failures: number; lastSeconds: number }>();

  constructor(inner: Probe) {
    this.#inner = inner;
  }

  async check(target: ProbeTarget, timeoutMs: number): Promise<boolean> {
    const started = performance.now();
    let ok = false;
    try {
      ok = await this.#inner.check(target, timeoutMs);
      return ok;
    } finally {
      let s = this.#stats.get(target.id);
      if (s === undefined) {
        s = { failures: 0, lastSeconds: 0 };
        this.#stats.set(target.id, s);
      }
      s.lastSeconds = (performance.now() - started) / 1000;
      if (!ok) s.failures++;
    }
  }

  forget(target: ProbeTarget): void {
    this.#stats.delete(target.id);
    this.#inner.forget(target);
  }

  /** The node's probe stats, undefined before its first probe settled. */
  of(nodeId: string): ProbeStat | undefined {
    return this.#stats.get(nodeId);
  }
}
