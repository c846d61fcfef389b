/** One node's health probes, as /metrics, GetTable and the status page show them. */
export interface ProbeStat {
  /** Probes the health check counted as failed: not SERVING, an error, or its timeout. */
  readonly failures: number;
  /** The last settled probe's round trip, milliseconds (a timed-out one: its timeout). */
  readonly lastMs: number;
}

/**
 * Per node id: failed probes and the last probe's round trip. The health monitor records into
 * it; the control plane owns it, so a reload of `health.*` (a new monitor) keeps the counts.
 * A node's entry goes when it is unwatched or re-addressed (its probes start over).
 */
export class ProbeStatsTable {
  readonly #stats = new Map<string, { failures: number; lastMs: number }>();

  record(nodeId: string, ok: boolean, ms: number): void {
    let s = this.#stats.get(nodeId);
    if (s === undefined) {
      s = { failures: 0, lastMs: 0 };
      this.#stats.set(nodeId, s);
    }
    s.lastMs = ms;
    if (!ok) s.failures++;
  }

  forget(nodeId: string): void {
    this.#stats.delete(nodeId);
  }

  /** The node's probe stats, undefined before its first probe settled. */
  of(nodeId: string): ProbeStat | undefined {
    return this.#stats.get(nodeId);
  }
}
