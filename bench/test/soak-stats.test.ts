import { describe, expect, it } from 'vitest';
import { lastWindow, leastSquaresSlope, samples, slopeWindowMinutes, sum } from '../soak-stats.js';

describe('leastSquaresSlope', () => {
  it('recovers the slope of an exact line', () => {
    const points = [0, 1, 2, 3, 4].map((x) => ({ x, y: 3 - 0.5 * x }));
    expect(leastSquaresSlope(points)).toBeCloseTo(-0.5, 12);
  });

  it('fits noise symmetric about a line to that line', () => {
    // y = 2x + 10, with +1/-1 alternating: the residuals cancel, the fit is the line.
    const points = Array.from({ length: 20 }, (_, x) => ({ x, y: 2 * x + 10 + (x % 2 ? 1 : -1) }));
    expect(leastSquaresSlope(points)).toBeCloseTo(2, 1);
  });

  it('is 0 for a flat series and NaN when there is no line to fit', () => {
    expect(leastSquaresSlope([1, 2, 3].map((x) => ({ x, y: 7 })))).toBe(0);
    expect(leastSquaresSlope([{ x: 1, y: 1 }])).toBeNaN();
    expect(
      leastSquaresSlope([
        { x: 1, y: 1 },
        { x: 1, y: 5 },
      ]),
    ).toBeNaN();
  });
});

describe('the slope window', () => {
  it('is the last 20 minutes, or the run after the warm-up when shorter', () => {
    expect(slopeWindowMinutes(30, 2)).toBe(20);
    expect(slopeWindowMinutes(12, 2)).toBe(10);
    expect(slopeWindowMinutes(1, 2)).toBe(0);
  });

  it('keeps the points of the last minutes only', () => {
    const points = [0, 5, 10, 15, 20, 25, 30].map((x) => ({ x, y: x }));
    expect(lastWindow(points, 30, 20).map((p) => p.x)).toEqual([10, 15, 20, 25, 30]);
  });
});

describe('reading /metrics text', () => {
  const text = [
    '# HELP engram_router_thread_heap_used_bytes V8 heap in use per thread.',
    '# TYPE engram_router_thread_heap_used_bytes gauge',
    'engram_router_thread_heap_used_bytes{thread="main"} 1000',
    'engram_router_thread_heap_used_bytes{thread="worker-0"} 2500',
    'engram_router_thread_heap_used_bytes_other 99',
    'nodejs_active_handles_total 7',
    'engram_router_gc_pause_seconds_count{kind="minor"} 4',
  ].join('\n');

  it('returns each sample by its labels, and not other families sharing the prefix', () => {
    const s = samples(text, 'engram_router_thread_heap_used_bytes');
    expect([...s]).toEqual([
      ['thread="main"', 1000],
      ['thread="worker-0"', 2500],
    ]);
    expect(sum(text, 'engram_router_thread_heap_used_bytes')).toBe(3500);
  });

  it('reads unlabelled samples, and sums to 0 for an absent family', () => {
    expect(sum(text, 'nodejs_active_handles_total')).toBe(7);
    expect(sum(text, 'engram_router_gc_pause_seconds_count')).toBe(4);
    expect(sum(text, 'engram_router_worker_restarts_total')).toBe(0);
  });
});
