import type { AttemptObserver } from './forward.js';
import type { MetricsRecorder } from './metrics.js';
import { recordFailureRun } from './outlier-monitor.js';

/**
 * A data-plane thread's AttemptObserver: each attempt is counted on the slot and slot
 * generation it started on (its token, layout.ts N_GEN), in the per-node metric, the
 * outlier detector's words and the failure run (N_FAILURE_RUN). An attempt that ends after its
 * slot was handed to another node is counted nowhere (it was the old node's), and the in-flight
 * gauge of a slot always comes back to 0. `inFlight`: counted in the in-flight gauge (not for a
 * Consolidate, which may rightly run long and must not look like a stalled node).
 */
export function attemptObserver(
  metrics: MetricsRecorder,
  control: Int32Array,
  slotOf: (nodeId: string) => number,
  inFlight: boolean,
): AttemptObserver {
  return {
    started: (nodeId) => metrics.attemptStarted(slotOf(nodeId), inFlight),
    ended: (token, status, seconds, verdict) => {
      const slot = metrics.attemptEnded(token, inFlight, status, seconds, verdict);
      if (slot >= 0) recordFailureRun(control, slot, verdict);
    },
  };
}
