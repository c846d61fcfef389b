import type { IntervalHistogram } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import {
  EVENT_LOOP_RESOLUTION_MS,
  EventLoopLag,
  processMetricsText,
  startProcessMetrics,
} from '../src/internal/process-metrics.js';
import { checkExposition } from './exposition-check.js';

const MS = 1e6; // nanoseconds

/** A histogram of fixed samples (ns), as monitorEventLoopDelay records them. */
function fakeHistogram() {
  const h = {
    samples: [] as number[],
    enabled: false,
    resets: 0,
    enable: () => {
      h.enabled = true;
      return true;
    },
    disable: () => {
      h.enabled = false;
      return true;
    },
    reset: () => {
      h.samples = [];
      h.resets++;
    },
    get count() {
      return h.samples.length;
    },
    get min() {
      return h.samples.length === 0 ? 9223372036854776000 : Math.min(...h.samples);
    },
    get max() {
      return h.samples.length === 0 ? 0 : Math.max(...h.samples);
    },
    get mean() {
      return h.samples.reduce((a, b) => a + b, 0) / h.samples.length;
    },
    get stddev() {
      const m = h.mean;
      return Math.sqrt(h.samples.reduce((a, b) => a + (b - m) ** 2, 0) / h.samples.length);
    },
    percentile: (p: number) => {
      const sorted = [...h.samples].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    },
  };
  return h;
}

function sampleOf(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

const SUMMARIES = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map(
  (s) => `nodejs_eventloop_lag_${s}_seconds`,
);

describe('EventLoopLag', () => {
  it('reports the delay beyond the timer: the resolution is taken off each figure', async () => {
    const h = fakeHistogram();
    const lag = new EventLoopLag(h as unknown as IntervalHistogram, 100);
    expect(h.enabled).toBe(true);
    // Timer runs 100.5, 101, 102, 150 ms apart: late by 0.5, 1, 2 and 50 ms.
    h.samples.push(100.5 * MS, 101 * MS, 102 * MS, 150 * MS);
    const text = await lag.text();
    expect(checkExposition(text).problems).toEqual([]);
    expect(sampleOf(text, 'nodejs_eventloop_lag_min_seconds')).toBeCloseTo(0.0005, 9);
    expect(sampleOf(text, 'nodejs_eventloop_lag_max_seconds')).toBeCloseTo(0.05, 9);
    expect(sampleOf(text, 'nodejs_eventloop_lag_mean_seconds')).toBeCloseTo(0.013375, 9);
    expect(sampleOf(text, 'nodejs_eventloop_lag_p50_seconds')).toBeCloseTo(0.001, 9);
    expect(sampleOf(text, 'nodejs_eventloop_lag_p99_seconds')).toBeCloseTo(0.05, 9);
    // A spread does not move with a shift.
    expect(sampleOf(text, 'nodejs_eventloop_lag_stddev_seconds')).toBeCloseTo(
      Math.sqrt(((0.5 - 13.375) ** 2 + (1 - 13.375) ** 2 + (2 - 13.375) ** 2 + 36.625 ** 2) / 4) /
        1000,
      9,
    );
    expect(h.resets).toBe(1);
  });

  it('a timer that ran early or on time reads zero, never a negative delay', () => {
    const h = fakeHistogram();
    const lag = new EventLoopLag(h as unknown as IntervalHistogram, 100);
    h.samples.push(99.9 * MS, 100 * MS);
    const [min, max] = lag.window()!;
    expect(min).toBe(0);
    expect(max).toBe(0);
  });

  it('repeats the last window when a scrape finds no new sample, and resets nothing', async () => {
    const h = fakeHistogram();
    const lag = new EventLoopLag(h as unknown as IntervalHistogram, 100);
    h.samples.push(103 * MS);
    const first = await lag.text();
    const second = await lag.text(); // a second scraper within one resolution
    expect(h.resets).toBe(1);
    for (const name of SUMMARIES) {
      expect(sampleOf(second, name), name).toBe(sampleOf(first, name));
      expect(Number.isNaN(sampleOf(second, name)), name).toBe(false);
    }
    h.samples.push(110 * MS);
    expect(sampleOf(await lag.text(), 'nodejs_eventloop_lag_max_seconds')).toBeCloseTo(0.01, 9);
    expect(h.resets).toBe(2);
  });

  it('before its first sample: every family declared, the summaries without a sample', async () => {
    const h = fakeHistogram();
    const lag = new EventLoopLag(h as unknown as IntervalHistogram, 100);
    const text = await lag.text();
    const { problems, families } = checkExposition(text);
    expect(problems).toEqual([]);
    for (const name of SUMMARIES) {
      expect(families.get(name)?.type, name).toBe('gauge');
      expect(families.get(name)?.samples, name).toEqual([]);
    }
    expect(sampleOf(text, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(h.resets).toBe(0);
    lag.close();
    expect(h.enabled).toBe(false);
  });

  it('the process metrics carry each event-loop family once, on a real monitor', async () => {
    // The monitor's first sample needs two of its timer's runs; wait for one (its
    // resolution at a time, bounded far above what an idle loop needs).
    startProcessMetrics();
    for (let i = 0; i < 100; i++) {
      const t = await processMetricsText();
      if (sampleOf(t, 'nodejs_eventloop_lag_max_seconds') !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, EVENT_LOOP_RESOLUTION_MS));
    }
    // Two scrapes back to back: prom-client's own monitor read NaN in the second.
    const a = await processMetricsText();
    const b = await processMetricsText();
    for (const text of [a, b]) {
      const { problems, families } = checkExposition(text);
      expect(problems).toEqual([]);
      expect(families.get('nodejs_eventloop_lag_seconds')?.samples.length).toBe(1);
      expect(families.get('process_cpu_seconds_total')?.samples.length).toBe(1);
      for (const name of SUMMARIES) {
        const v = sampleOf(text, name);
        expect(Number.isFinite(v), `${name} ${v}`).toBe(true);
        expect(v!, name).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
