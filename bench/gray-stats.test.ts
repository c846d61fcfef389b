import { describe, expect, it } from 'vitest';
import {
  type CallLog,
  emptyLog,
  firstServed,
  formatFigures,
  metricSum,
  OP,
  parseMetrics,
  percentile,
  primariesOf,
  select,
  servedShares,
  servingSince,
  summarize,
} from './gray-stats.js';

/** A log of Recalls: [t0, ms, code, space, served]. */
function logOf(calls: readonly (readonly [number, number, number, number, number])[]): CallLog {
  const log = emptyLog();
  for (const [t0, ms, code, space, served] of calls) {
    log.t0.push(t0);
    log.ms.push(ms);
    log.code.push(code);
    log.op.push(OP.recall);
    log.space.push(space);
    log.served.push(served);
    log.late.push(0);
  }
  return log;
}

const all = (log: CallLog) => log.t0.map((_, i) => i);

describe('percentile', () => {
  it('is the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 0.5)).toBe(50);
    expect(percentile(v, 0.99)).toBe(99);
    expect(percentile(v, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([1, 2, 3], 0)).toBe(1);
  });
  it('is NaN for no values', () => {
    expect(percentile([], 0.5)).toBeNaN();
  });
});

describe('summarize', () => {
  it('counts failed calls in the latency and as errors by code', () => {
    const log = logOf([
      [0, 10, 0, 0, 1],
      [1, 2000, 4, 0, -1],
      [2, 20, 0, 0, 1],
      [3, 30, 14, 0, -1],
    ]);
    const s = summarize(log, all(log));
    expect(s.calls).toBe(4);
    expect(s.errors).toBe(2);
    expect([...s.byCode]).toEqual([
      [4, 1],
      [14, 1],
    ]);
    expect(s.maxMs).toBe(2000);
    expect(s.p50Ms).toBe(20);
  });
});

describe('select', () => {
  it('keeps calls sent in [from, to) of the op and spaces asked', () => {
    const log = logOf([
      [0, 1, 0, 0, 0],
      [5, 1, 0, 1, 0],
      [10, 1, 0, 0, 0],
    ]);
    log.op[1] = OP.store;
    expect(select(log, { from: 0, to: 10 })).toEqual([0, 1]);
    expect(select(log, { op: OP.recall })).toEqual([0, 2]);
    expect(select(log, { spaces: new Set([1]) })).toEqual([1]);
  });
});

describe('primariesOf', () => {
  it('is the node that served most OK calls of each space', () => {
    const log = logOf([
      [0, 1, 0, 0, 2],
      [1, 1, 0, 0, 2],
      [2, 1, 0, 0, 1],
      [3, 1, 0, 1, 0],
      [4, 1, 14, 2, -1],
    ]);
    expect([...primariesOf(log, all(log))]).toEqual([
      [0, 2],
      [1, 0],
    ]);
  });
});

describe('servedShares', () => {
  it('splits the OK calls by node', () => {
    const log = logOf([
      [0, 1, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [2, 1, 0, 0, 0],
      [3, 1, 0, 0, 1],
      [4, 1, 14, 0, -1],
    ]);
    expect([...servedShares(log, all(log))]).toEqual([
      [0, 0.75],
      [1, 0.25],
    ]);
  });
});

describe('servingSince', () => {
  const opts = (log: CallLog) => ({
    node: 0,
    indexes: all(log),
    from: 0,
    to: 400,
    bucketMs: 100,
    minShare: 0.9,
  });

  it('is the start of the first bucket after which every bucket is served by the node', () => {
    const log = logOf([
      [10, 1, 0, 0, 1], // bucket 0: elsewhere
      [110, 1, 0, 0, 0], // bucket 1: the node…
      [150, 1, 0, 0, 1], // …and elsewhere: 50%
      [210, 1, 0, 0, 0], // bucket 2: the node
      [310, 1, 0, 0, 0], // bucket 3: the node
    ]);
    expect(servingSince(log, opts(log))).toBe(200);
  });

  it('is NaN when the last bucket with calls is not served by the node', () => {
    const log = logOf([
      [10, 1, 0, 0, 0],
      [310, 1, 0, 0, 1],
    ]);
    expect(servingSince(log, opts(log))).toBeNaN();
  });

  it('a failed call counts against the node; an empty bucket neither breaks nor starts the run', () => {
    const failed = logOf([
      [10, 1, 0, 0, 0],
      [110, 1, 14, 0, -1],
      [310, 1, 0, 0, 0],
    ]);
    expect(servingSince(failed, opts(failed))).toBe(300);
    const gap = logOf([
      [10, 1, 0, 0, 0],
      [310, 1, 0, 0, 0],
    ]);
    expect(servingSince(gap, opts(gap))).toBe(0);
  });
});

describe('firstServed', () => {
  it('is the first OK call served by the node at or after from', () => {
    const log = logOf([
      [5, 1, 0, 0, 0],
      [30, 1, 0, 0, 0],
      [20, 1, 0, 0, 0],
      [15, 1, 14, 0, 0],
    ]);
    expect(firstServed(log, all(log), 0, 10)).toBe(20);
    expect(firstServed(log, all(log), 1, 0)).toBeNaN();
  });
});

describe('parseMetrics and metricSum', () => {
  const text = [
    '# HELP engram_router_upstream_requests_total Attempts.',
    '# TYPE engram_router_upstream_requests_total counter',
    'engram_router_upstream_requests_total{node="n1",grpc_status="OK"} 10',
    'engram_router_upstream_requests_total{node="n1",grpc_status="DEADLINE_EXCEEDED"} 3',
    'engram_router_upstream_requests_total{node="n10",grpc_status="OK"} 100',
    'engram_router_node_up{node="n1"} 1',
    'engram_router_table_epoch 4',
    '',
  ].join('\n');
  const m = parseMetrics(text);

  it('reads every series as written', () => {
    expect(m.get('engram_router_node_up{node="n1"}')).toBe(1);
    expect(m.get('engram_router_table_epoch')).toBe(4);
    expect(m.size).toBe(5);
  });

  it('sums the series whose labels include the ones asked (n1 is not n10)', () => {
    const name = 'engram_router_upstream_requests_total';
    expect(metricSum(m, name, { node: 'n1' })).toBe(13);
    expect(metricSum(m, name, { node: 'n1', grpc_status: 'OK' })).toBe(10);
    expect(metricSum(m, name)).toBe(113);
    expect(metricSum(m, 'engram_router_table_epoch')).toBe(4);
    expect(metricSum(m, name, { node: 'n2' })).toBe(0);
  });
});

describe('formatFigures', () => {
  it('prints per build the median and range, and the last build over the first', () => {
    const out = formatFigures(
      ['start', 'current'],
      [
        {
          name: 'listen → serving, ms',
          values: [
            [3000, 2800, 3400],
            [500, 700, 600],
          ],
          digits: 0,
        },
        {
          name: 'openings',
          values: [
            [0, 0, 0],
            [0, 0, 0],
          ],
          digits: 0,
        },
        {
          name: 'p99, ms',
          values: [
            [10, Number.NaN, 30],
            [20, 20, 20],
          ],
        },
      ],
    ).split('\n');
    expect(out[0]).toMatch(
      /^figure +start median +min–max +current median +min–max +ratio current\/start$/,
    );
    expect(out[2]).toMatch(/^listen → serving, ms +3000 +2800–3400 +600 +500–700 +0\.20x$/);
    expect(out[3]).toMatch(/ 1\.00x$/);
    expect(out[4]).toMatch(/^p99, ms +20\.0 \(1 n\/a\) +10\.0–30\.0 +20\.0 +20\.0–20\.0 +1\.00x$/);
  });

  it('has no ratio column for one build', () => {
    const out = formatFigures(['current'], [{ name: 'x', values: [[1, 2, 3]] }]);
    expect(out.split('\n')[0]).not.toMatch(/ratio/);
    expect(out.split('\n')[2]).toMatch(/^x +2\.0 +1\.0–3\.0$/);
  });
});
