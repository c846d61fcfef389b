import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { family } from './exposition.js';

/**
 * The standard process_* and nodejs_* families (prom-client's default metrics) of this
 * process, collected on the main thread only: data-plane workers never load prom-client, so
 * nothing of it runs on their hot path. One registry per process (the metrics are the
 * process's, and prom-client's GC observer cannot be stopped), created when the metrics
 * listener starts, so the event-loop delay has samples by the first scrape.
 *
 * The event-loop delay families are this module's own (`EventLoopLag`, same names, types and
 * help as prom-client's): prom-client samples the delay every 10 ms, which woke the control
 * plane 100 times a second and was half of an idle router's CPU.
 */
let registry: Registry | undefined;
let lag: EventLoopLag | undefined;

/**
 * How often the main thread's event-loop delay is sampled. Ten samples a second give a scrape
 * every 15 s some 150 of them; the main thread only runs the control plane (the calls run on
 * the data-plane threads, which have their own CPU and latency metrics).
 */
export const EVENT_LOOP_RESOLUTION_MS = 100;

/**
 * prom-client's own monitor cannot be left out of its defaults; given this resolution (~24.8
 * days, setTimeout's ceiling) it never wakes the loop. Its families are replaced.
 */
const NEVER_MS = 2 ** 31 - 1;

/** The event-loop families, prom-client's names and help (dashboards and alerts keep working). */
const LAG_HELP: readonly (readonly [suffix: string, help: string])[] = [
  ['min', 'The minimum recorded event loop delay.'],
  ['max', 'The maximum recorded event loop delay.'],
  ['mean', 'The mean of the recorded event loop delays.'],
  ['stddev', 'The standard deviation of the recorded event loop delays.'],
  ['p50', 'The 50th percentile of the recorded event loop delays.'],
  ['p90', 'The 90th percentile of the recorded event loop delays.'],
  ['p99', 'The 99th percentile of the recorded event loop delays.'],
];

/** Starts collecting (idempotent): the event-loop delay monitor and the GC observer. */
export function startProcessMetrics(): Registry {
  if (registry === undefined) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: NEVER_MS });
    registry.removeSingleMetric('nodejs_eventloop_lag_seconds');
    for (const [suffix] of LAG_HELP) {
      registry.removeSingleMetric(`nodejs_eventloop_lag_${suffix}_seconds`);
    }
    lag = new EventLoopLag(monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS }));
  }
  return registry;
}

/** The default metrics in the Prometheus text format (what a scrape appends). */
export async function processMetricsText(): Promise<string> {
  const text = await startProcessMetrics().metrics();
  return text + (await lag!.text());
}

/**
 * The event-loop delay of this thread as prom-client reports it (`nodejs_eventloop_lag_*`),
 * without its two flaws:
 *
 * - A sample of `monitorEventLoopDelay` is the time between two runs of its timer, the
 *   resolution included (prom-client's idle minimum reads 10 ms): here the resolution is taken
 *   off, so a value is the delay beyond the timer's due time and a coarser resolution does not
 *   raise every figure.
 * - The histogram is reset at each scrape; a scrape that finds it empty (two scrapers within
 *   one resolution, an HA Prometheus pair) read NaN. Here it repeats the last non-empty window
 *   and resets nothing; before the first sample the summary families have no sample at all.
 *
 * `nodejs_eventloop_lag_seconds` is measured by the scrape itself, as prom-client does: the
 * time until a `setImmediate` runs (prom-client reports the previous scrape's; this one waits
 * for its own).
 */
export class EventLoopLag {
  readonly #histogram: IntervalHistogram;
  readonly #resolutionNs: number;
  /** min, max, mean, stddev, p50, p90, p99 of the last non-empty window, in seconds. */
  #last: readonly number[] | null = null;

  /**
   * `histogram`: from `monitorEventLoopDelay` (enabled here), sampling every `resolutionMs`
   * (the histogram does not tell its resolution: it is given again).
   */
  constructor(histogram: IntervalHistogram, resolutionMs: number = EVENT_LOOP_RESOLUTION_MS) {
    this.#histogram = histogram;
    this.#resolutionNs = resolutionMs * 1e6;
    histogram.enable();
  }

  /** The window's figures in seconds (resolution taken off), then a fresh window; or the last. */
  window(): readonly number[] | null {
    const h = this.#histogram;
    if (h.count > 0) {
      const r = this.#resolutionNs;
      const s = (ns: number) => Math.max(0, ns - r) / 1e9;
      this.#last = [
        s(h.min),
        s(h.max),
        s(h.mean),
        h.stddev / 1e9,
        s(h.percentile(50)),
        s(h.percentile(90)),
        s(h.percentile(99)),
      ];
      h.reset();
    }
    return this.#last;
  }

  /** The `nodejs_eventloop_lag_*` families in the Prometheus text format. */
  async text(): Promise<string> {
    const start = performance.now();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const now = (performance.now() - start) / 1000;
    const out: string[] = [];
    family(out, 'nodejs_eventloop_lag_seconds', 'gauge', 'Lag of event loop in seconds.', [
      ['', now],
    ]);
    const figures = this.window();
    LAG_HELP.forEach(([suffix, help], i) => {
      family(
        out,
        `nodejs_eventloop_lag_${suffix}_seconds`,
        'gauge',
        help,
        figures === null ? [] : [['', figures[i]!]],
      );
    });
    return `${out.join('\n')}\n`;
  }

  /** Stops sampling (tests; the process-wide monitor runs for the process's life). */
  close(): void {
    this.#histogram.disable();
  }
}
