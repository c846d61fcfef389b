import type { Bench } from 'tinybench';
import type { Row } from './table.js';

/**
 * Rows from a finished tinybench run. Each task ran `batch` operations per sample, so a
 * sample's time / `batch` is the per-op time; `scale` converts ms to the table's unit
 * (1e6 for ns). p99 is therefore the 99th percentile of per-batch means.
 */
export function tinybenchRows(bench: Bench, batch = 1, scale = 1e6): Row[] {
  return bench.tasks.map((task) => {
    const r = task.result;
    if (!('latency' in r))
      throw new Error(`bench task "${task.name}" did not complete (${r.state})`);
    return {
      name: task.name,
      median: ((r.latency.p50 ?? Number.NaN) * scale) / batch,
      p99: ((r.latency.p99 ?? Number.NaN) * scale) / batch,
    };
  });
}
