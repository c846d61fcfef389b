import { describe, expect, it } from 'vitest';
import { isRouterNodeError } from '../src/internal/errors.js';
import { histogramQuantile } from '../src/internal/histogram-quantile.js';
import { UPSTREAM_BUCKETS_S } from '../src/internal/layout.js';
import {
  type NodeSample,
  OutlierDetector,
  type OutlierEvent,
  type OutlierSettings,
  P99_VOLUME,
  STALL_MIN_HELD,
} from '../src/internal/outlier-detector.js';

const SETTINGS: OutlierSettings = Object.freeze({
  intervalMs: 100,
  windowMs: 1000,
  consecutiveFailures: 5,
  failureRate: 0.5,
  minRequests: 20,
  latencyFactor: 5,
  latencyFloorMs: 5,
  stallMs: 500,
  baseEjectionMs: 10_000,
  maxEjectionMs: 25_000,
  maxEjectedShare: 0.3,
});

/** Cumulative counters of made-up nodes, as the shell would read them from shared memory. */
class Cluster {
  readonly nodes = new Map<string, { -readonly [K in keyof NodeSample]: NodeSample[K] }>();
  constructor(ids: readonly string[]) {
    for (const id of ids) {
      this.nodes.set(id, {
        id,
        eligible: true,
        answered: 0,
        failed: 0,
        latency: new Float64Array(UPSTREAM_BUCKETS_S.length + 1),
        outstanding: 0,
        consecutiveFailures: 0,
      });
    }
  }
  node(id: string) {
    return this.nodes.get(id)!;
  }
  /** `n` answers from `id`, each taking `ms`. */
  answer(id: string, n: number, ms: number): void {
    const x = this.node(id);
    x.answered += n;
    x.consecutiveFailures = 0;
    this.#observe(x.latency as Float64Array, n, ms);
  }
  fail(id: string, n: number, ms = 1): void {
    const x = this.node(id);
    x.failed += n;
    x.consecutiveFailures += n;
    this.#observe(x.latency as Float64Array, n, ms);
  }
  #observe(h: Float64Array, n: number, ms: number): void {
    let i = 0;
    while (i < UPSTREAM_BUCKETS_S.length && ms / 1000 > UPSTREAM_BUCKETS_S[i]!) i++;
    h[i]! += n;
  }
  samples(): NodeSample[] {
    return [...this.nodes.values()].map((x) => ({ ...x, latency: Float64Array.from(x.latency) }));
  }
}

/** Runs ticks every intervalMs from `t` for `ms`, calling `each` before each; returns events. */
function run(
  d: OutlierDetector,
  c: Cluster,
  clock: { t: number },
  ms: number,
  each: () => void = () => {},
): OutlierEvent[] {
  const out: OutlierEvent[] = [];
  const end = clock.t + ms;
  while (clock.t < end) {
    clock.t += d.settings.intervalMs;
    each();
    const events = d.tick(clock.t, c.samples());
    // As the shell does: the data plane's failure run starts over when a node goes or returns.
    for (const e of events) if (e.kind !== 'capped') c.node(e.id).consecutiveFailures = 0;
    out.push(...events);
  }
  return out;
}

const ejections = (events: readonly OutlierEvent[]) => events.filter((e) => e.kind === 'eject');

describe('OutlierDetector', () => {
  it('ejects a node that holds attempts and answers none for stallMs, before any completes', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    c.node('a').outstanding = 2; // hung: accepted, never answers, nothing completed yet
    const events = run(d, c, clock, SETTINGS.stallMs + 2 * SETTINGS.intervalMs, () => {
      c.answer('b', 5, 1);
      c.answer('c', 5, 1);
    });
    const e = ejections(events);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ id: 'a', reason: 'stalled', ejectionMs: SETTINGS.baseEjectionMs });
    expect(d.isEjected('a')).toBe(true);
    expect(d.isEjected('b')).toBe(false);
  });

  it('blames no node when every node is silent at once (the router or the cluster is stuck)', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    for (const id of ['a', 'b', 'c']) c.node(id).outstanding = 4;
    expect(ejections(run(d, c, clock, 10 * SETTINGS.stallMs))).toEqual([]);
    // Then the peers answer again and 'a' does not: 'a' is the outlier.
    const events = run(d, c, clock, SETTINGS.intervalMs, () => {
      c.answer('b', 5, 1);
      c.answer('c', 5, 1);
    });
    expect(ejections(events)).toMatchObject([{ id: 'a', reason: 'stalled' }]);
  });

  it('does not take a busy node that keeps answering for a stalled one', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    for (const id of ['a', 'b', 'c']) c.node(id).outstanding = 8;
    const events = run(d, c, clock, 10 * SETTINGS.stallMs, () => {
      c.answer('a', 1, 300); // slowish but answering every tick
      c.answer('b', 10, 1);
      c.answer('c', 10, 1);
    });
    expect(ejections(events).filter((e) => e.reason === 'stalled')).toEqual([]);
  });

  it('scales the stall threshold with the peers p99 (latencyFactor times it)', () => {
    const d = new OutlierDetector({ ...SETTINGS, stallMs: 100 }, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    // A window where everyone answers in ~80 ms: the threshold becomes 5 × p99 ≈ 400 ms.
    run(d, c, clock, SETTINGS.windowMs, () => {
      for (const id of ['a', 'b', 'c']) c.answer(id, 10, 80);
    });
    expect(d.stallThresholdMs).toBeGreaterThan(300);
    expect(d.stallThresholdMs).toBeLessThanOrEqual(5 * 100);
    c.node('a').outstanding = STALL_MIN_HELD;
    const early = run(d, c, clock, 200, () => {
      c.answer('b', 1, 80);
      c.answer('c', 1, 80);
    });
    expect(ejections(early)).toEqual([]);
    const later = run(d, c, clock, 400, () => {
      c.answer('b', 1, 80);
      c.answer('c', 1, 80);
    });
    expect(ejections(later)).toMatchObject([{ id: 'a', reason: 'stalled' }]);
  });

  it('does not eject for one slow call under light load: a stall needs STALL_MIN_HELD attempts held at once', () => {
    expect(STALL_MIN_HELD).toBe(2);
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    // One legitimately slow call (1.5 s: under a 2 s attempt timeout, over stallMs) while the
    // peers' p99 is unknown (below minRequests): not a hung node.
    c.node('a').outstanding = 1;
    const peers = () => {
      c.answer('b', 1, 1);
      c.answer('c', 1, 1);
    };
    expect(ejections(run(d, c, clock, 1500, peers))).toEqual([]);
    c.answer('a', 1, 1500);
    c.node('a').outstanding = 0;
    expect(ejections(run(d, c, clock, 10 * SETTINGS.stallMs, peers))).toEqual([]);
    // A second attempt held at once in the same stall (no answer in between) is the evidence;
    // it counts even once one of them ended (timed out) before stallMs was reached.
    c.node('a').outstanding = 1;
    expect(ejections(run(d, c, clock, 2 * SETTINGS.intervalMs, peers))).toEqual([]);
    c.node('a').outstanding = 2;
    expect(ejections(run(d, c, clock, SETTINGS.intervalMs, peers))).toEqual([]);
    c.node('a').outstanding = 1;
    const e = ejections(run(d, c, clock, SETTINGS.stallMs, peers));
    expect(e).toMatchObject([{ id: 'a', reason: 'stalled' }]);
    expect(e[0]!.kind === 'eject' && e[0]!.figures.held).toBe(2);
  });

  it('forgets the most attempts held when the stall ends (an answer starts it over)', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const peers = () => {
      c.answer('b', 1, 1);
      c.answer('c', 1, 1);
    };
    c.node('a').outstanding = 2;
    run(d, c, clock, SETTINGS.intervalMs, peers);
    c.answer('a', 1, 1); // answered: not stalled, two held at once is no evidence any more
    c.node('a').outstanding = 1;
    expect(ejections(run(d, c, clock, 10 * SETTINGS.stallMs, peers))).toEqual([]);
  });

  it('ejects on consecutiveFailures failures in a row, not on fewer', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    c.fail('b', SETTINGS.consecutiveFailures - 1);
    expect(ejections(run(d, c, clock, 300))).toEqual([]);
    c.answer('b', 1, 1); // an answer ends the run
    c.fail('b', SETTINGS.consecutiveFailures - 1);
    expect(ejections(run(d, c, clock, 300))).toEqual([]);
    c.fail('b', 1);
    expect(ejections(run(d, c, clock, 100))).toMatchObject([
      { id: 'b', reason: 'consecutive_failures' },
    ]);
  });

  it('ejects on a failure rate at or over failureRate in a window of at least minRequests', () => {
    const d = new OutlierDetector({ ...SETTINGS, consecutiveFailures: 1000 }, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    // First window: 'c' fails 60 % but of too few attempts to be judged.
    const few = run(d, c, clock, SETTINGS.windowMs, () => {
      c.answer('a', 5, 1);
      c.answer('b', 5, 1);
    });
    c.fail('c', 6);
    c.answer('c', 4, 1);
    expect(ejections(few)).toEqual([]);
    const events = run(d, c, clock, SETTINGS.windowMs, () => {
      c.answer('a', 5, 1);
      c.answer('b', 5, 1);
      c.fail('c', 3);
      c.answer('c', 2, 1);
    });
    expect(ejections(events)).toMatchObject([{ id: 'c', reason: 'failure_rate' }]);
    const f = ejections(events)[0]!.figures;
    expect(f.failureRate).toBeCloseTo(0.6, 5);
  });

  it('ejects a node whose p50 is latencyFactor times its peers median, with an absolute floor', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c', 'd']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    // 10× slower, 9 ms above: out.
    const events = run(d, c, clock, SETTINGS.windowMs, () => {
      c.answer('a', 5, 1);
      c.answer('b', 5, 1);
      c.answer('c', 5, 1);
      c.answer('d', 5, 10);
    });
    const e = ejections(events);
    expect(e).toMatchObject([{ id: 'd', reason: 'latency' }]);
    expect(e[0]!.figures.p50Ms).toBeGreaterThan(5 * e[0]!.figures.peersP50Ms!);
  });

  it('judges the window so far on every tick: a node gone slow is out once it has minRequests attempts, before the window ends', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c', 'd']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const perTick = () => {
      c.answer('a', 5, 1);
      c.answer('b', 5, 1);
      c.answer('c', 5, 1);
      c.answer('d', 5, 10);
    };
    // 5 attempts per tick: 15 after three ticks, below minRequests (20): not judged yet.
    expect(ejections(run(d, c, clock, 3 * SETTINGS.intervalMs, perTick))).toEqual([]);
    // The fourth tick brings 20, 600 ms before the window's end.
    const e = ejections(run(d, c, clock, SETTINGS.intervalMs, perTick));
    expect(e).toMatchObject([{ id: 'd', reason: 'latency' }]);
    expect(clock.t).toBeLessThan(SETTINGS.windowMs);
  });

  it('never ejects on a tiny absolute difference (0.2 ms against 0.6 ms is 3× but 0.4 ms)', () => {
    const d = new OutlierDetector({ ...SETTINGS, latencyFactor: 2 }, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const events = run(d, c, clock, 5 * SETTINGS.windowMs, () => {
      c.answer('a', 5, 0.2);
      c.answer('b', 5, 0.2);
      c.answer('c', 5, 0.6);
    });
    expect(ejections(events)).toEqual([]);
  });

  it('judges the p99 only with P99_VOLUME times minRequests, on both sides', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    // A slow tail on 'c' (3 % at 100 ms), p50 like its peers; below the p99 volume: kept.
    const perTick = (P99_VOLUME * SETTINGS.minRequests) / (SETTINGS.windowMs / SETTINGS.intervalMs);
    const tail = () => {
      c.answer('a', perTick / 2, 1);
      c.answer('b', perTick / 2, 1);
      c.answer('c', (perTick / 2) * 0.97, 1);
      c.answer('c', (perTick / 2) * 0.03, 100);
    };
    expect(ejections(run(d, c, clock, SETTINGS.windowMs, tail))).toEqual([]);
    const full = () => {
      c.answer('a', perTick, 1);
      c.answer('b', perTick, 1);
      c.answer('c', perTick * 0.97, 1);
      c.answer('c', perTick * 0.03, 100);
    };
    const e = ejections(run(d, c, clock, SETTINGS.windowMs, full));
    expect(e).toMatchObject([{ id: 'c', reason: 'latency' }]);
    expect(e[0]!.figures.p99Ms).toBeGreaterThan(50);
  });

  it('grows the ejection time with repeated ejections, capped at maxEjectionMs', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      c.fail('a', SETTINGS.consecutiveFailures);
      const e = ejections(run(d, c, clock, SETTINGS.intervalMs));
      expect(e).toMatchObject([{ id: 'a', reason: 'consecutive_failures' }]);
      times.push((e[0] as { ejectionMs: number }).ejectionMs);
      // Stays out for exactly its time, then returns.
      const during = run(d, c, clock, times[i]! - SETTINGS.intervalMs);
      expect(during.filter((x) => x.kind === 'return')).toEqual([]);
      expect(d.isEjected('a')).toBe(true);
      const back = run(d, c, clock, SETTINGS.intervalMs);
      expect(back).toMatchObject([{ kind: 'return', id: 'a', why: 'expired' }]);
    }
    expect(times).toEqual([10_000, 20_000, 25_000, 25_000]);
  });

  it('lets the multiplier decay by one per baseEjectionMs in service', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const ejectOnce = () => {
      c.fail('a', SETTINGS.consecutiveFailures);
      const e = ejections(run(d, c, clock, SETTINGS.intervalMs));
      return (e[0] as { ejectionMs: number }).ejectionMs;
    };
    expect(ejectOnce()).toBe(10_000);
    run(d, c, clock, 10_000); // returns
    expect(ejectOnce()).toBe(20_000); // again soon: twice as long
    run(d, c, clock, 20_000);
    // Two base periods in service: the count drops from 2 to 0.
    run(d, c, clock, 2 * SETTINGS.baseEjectionMs);
    expect(ejectOnce()).toBe(10_000);
  });

  it('caps the ejection count at ceil(maxEjectionMs / baseEjectionMs), so it decays in bounded time', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    const cap = Math.ceil(SETTINGS.maxEjectionMs / SETTINGS.baseEjectionMs); // 3
    const counts: number[] = [];
    for (let i = 0; i < 10; i++) {
      // Ejected again as soon as it is back: no time in service to decay.
      c.fail('a', SETTINGS.consecutiveFailures);
      const e = ejections(run(d, c, clock, SETTINGS.intervalMs))[0] as {
        ejections: number;
        ejectionMs: number;
      };
      counts.push(e.ejections);
      run(d, c, clock, e.ejectionMs);
      expect(d.isEjected('a')).toBe(false);
    }
    expect(counts).toEqual([1, 2, 3, 3, 3, 3, 3, 3, 3, 3]);
    // cap base periods in service after ten ejections: the base ejection time again.
    run(d, c, clock, cap * SETTINGS.baseEjectionMs);
    c.fail('a', SETTINGS.consecutiveFailures);
    expect(ejections(run(d, c, clock, SETTINGS.intervalMs))).toMatchObject([
      { id: 'a', ejectionMs: SETTINGS.baseEjectionMs, ejections: 1 },
    ]);
  });

  it('ejects at most maxEjectedShare of the nodes, and at least one of two or more', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    for (const id of ['a', 'b', 'c']) c.fail(id, SETTINGS.consecutiveFailures);
    const events = run(d, c, clock, SETTINGS.intervalMs);
    // floor(0.3 × 7) = 2 out, the third capped (and told).
    expect(ejections(events)).toHaveLength(2);
    expect(events.filter((e) => e.kind === 'capped')).toHaveLength(1);

    const pair = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const two = new Cluster(['a', 'b']);
    pair.tick(0, two.samples());
    two.fail('a', SETTINGS.consecutiveFailures);
    two.fail('b', SETTINGS.consecutiveFailures);
    expect(ejections(pair.tick(100, two.samples()))).toHaveLength(1);
  });

  it('never ejects a lone node', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    c.node('a').outstanding = 3;
    const events = run(d, c, clock, 3 * SETTINGS.windowMs, () => c.fail('a', 10));
    expect(ejections(events)).toEqual([]);
  });

  it('does not judge or eject a node that is not routed as up; health coming back returns it', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    const clock = { t: 0 };
    d.tick(clock.t, c.samples());
    c.node('a').eligible = false;
    c.fail('a', 50);
    expect(ejections(run(d, c, clock, 300))).toEqual([]);
    // Up, still failing: ejected; then killed and restarted (health down, then up): back at once.
    c.node('a').eligible = true;
    expect(ejections(run(d, c, clock, 100))).toMatchObject([{ id: 'a' }]);
    expect(d.healthUp('b', clock.t)).toBeNull(); // not ejected: nothing to return
    expect(d.healthUp('a', clock.t)).toEqual({ kind: 'return', id: 'a', why: 'health' });
    expect(d.isEjected('a')).toBe(false);
  });

  it('forgets a node that left the membership', () => {
    const d = new OutlierDetector(SETTINGS, UPSTREAM_BUCKETS_S);
    const c = new Cluster(['a', 'b', 'c']);
    d.tick(0, c.samples());
    c.fail('a', SETTINGS.consecutiveFailures);
    d.tick(100, c.samples());
    expect(d.isEjected('a')).toBe(true);
    c.nodes.delete('a');
    d.tick(200, c.samples());
    expect(d.isEjected('a')).toBe(false);
  });

  it('refuses settings out of range with a coded error naming the key', () => {
    const bad = (s: Partial<OutlierSettings>) => {
      try {
        new OutlierDetector({ ...SETTINGS, ...s }, UPSTREAM_BUCKETS_S);
      } catch (err) {
        expect(isRouterNodeError(err)).toBe(true);
        return err as { code: string; field: string };
      }
      throw new Error('accepted');
    };
    expect(bad({ failureRate: 0 })).toMatchObject({
      code: 'InvalidConfig',
      field: 'outlier.failureRate',
    });
    expect(bad({ intervalMs: 1.5 })).toMatchObject({ field: 'outlier.intervalMs' });
    expect(bad({ maxEjectionMs: 5000 })).toMatchObject({ field: 'outlier.maxEjectionMs' });
  });

  it('estimates quantiles inside the bucket they fall in', () => {
    const counts = [0, 0, 0, 10, 0]; // all in (0.5, 1]
    expect(histogramQuantile([0.1, 0.25, 0.5, 1], counts, 0.5)).toBeCloseTo(0.75, 10);
    expect(histogramQuantile([0.1, 0.25, 0.5, 1], [0, 0, 0, 0, 3], 0.5)).toBe(1);
    expect(Number.isNaN(histogramQuantile([1], [0, 0], 0.5))).toBe(true);
  });
});
