import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * The standard process_* and nodejs_* families (prom-client's default metrics) of this
 * process, collected on the main thread only: data-plane workers never load prom-client, so
 * nothing of it runs on their hot path. One registry per process (the metrics are the
 * process's, and prom-client's event-loop monitor and GC observer cannot be stopped), created
 * when the metrics listener starts, so the event-loop delay has samples by the first scrape.
 */
let registry: Registry | undefined;

/** Starts collecting (idempotent): the event-loop delay monitor and the GC observer. */
export function startProcessMetrics(): Registry {
  if (registry === undefined) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry });
  }
  return registry;
}

/** The default metrics in the Prometheus text format (what a scrape appends). */
export function processMetricsText(): Promise<string> {
  return startProcessMetrics().metrics();
}
