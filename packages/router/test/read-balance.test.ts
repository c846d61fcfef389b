import { seededRandom } from '@engram/common';
import type { NodeInfo } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LATENCY_EXPLORE,
  LATENCY_FLOOR_MS,
  LagTable,
  NodeState,
  type NodeStates,
  Operation,
  Router,
  type RouterInit,
  singleNodeDecision,
  slowStartShare,
} from '../src/index.js';
import { ringOf } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
  { id: 'c', address: '127.0.0.1:1003' },
];
const [A, B, C] = NODES as [NodeInfo, NodeInfo, NodeInfo];
/** s1's placement: a (primary), b, c. */
const ASSIGN = [{ spaceId: 's1', primary: 'a', replicas: ['b', 'c'] }];
const DECISIONS = 1000;

const routers: Router[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

/** A router with least-request reads (off by default) unless `init.options` says otherwise. */
function router(init: Partial<RouterInit> = {}): Router {
  const r = new Router({
    table: ringOf(NODES, ASSIGN),
    random: seededRandom(7),
    ...init,
    options: { readBalancing: 'least-request', ...init.options },
  });
  routers.push(r);
  return r;
}

/** `n` attempts in flight on `node` (calls that settle when the test ends). */
function hold(r: Router, node: NodeInfo, n: number): void {
  for (let i = 0; i < n; i++) {
    let release!: () => void;
    const call = new Promise<number>((resolve) => {
      release = () => resolve(1);
    });
    releases.push(release);
    void r.execute(singleNodeDecision(node, 's1', 0, Operation.Recall), () => call, {
      attemptTimeoutMs: Number.POSITIVE_INFINITY,
    });
  }
}

/** How many of `DECISIONS` recalls of s1 each node leads. */
function leads(r: Router, route: (r: Router) => NodeInfo = (x) => x.routeRecall('s1').primary) {
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < DECISIONS; i++) counts[route(r).id]!++;
  return counts;
}

function states(map: Record<string, NodeState>, warmth?: (node: NodeInfo) => number): NodeStates {
  return {
    stateOf: (node) => map[node.id] ?? NodeState.Up,
    ...(warmth !== undefined ? { warmth: (node: NodeInfo) => warmth(node) } : {}),
  };
}

const ids = (nodes: readonly NodeInfo[]) => nodes.map((n) => n.id);

describe('least-request reads', () => {
  it('counts attempts in flight per node and forgets them once they end', async () => {
    const r = router();
    const slot = r.slotOf(A);
    hold(r, A, 3);
    expect(r.outstanding.of(slot)).toBe(3);
    for (const release of releases.splice(0)) release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.outstanding.of(slot)).toBe(0);
  });

  it('keeps placement order while the primary is at most the threshold ahead', () => {
    const r = router({ options: { readBalancingThreshold: 2 } });
    hold(r, A, 2);
    expect(leads(r)).toEqual({ a: DECISIONS, b: 0, c: 0 });
    expect(ids(r.routeRecall('s1').replicas)).toEqual(['b', 'c']);
  });

  it('moves a read to the less loaded replica of the two choices once the difference exceeds the threshold', () => {
    const r = router({ options: { readBalancingThreshold: 2 } });
    hold(r, A, 3);
    const counts = leads(r);
    expect(counts.a).toBe(0);
    // The other choice is random over b and c: both get reads (seeded, ~half each).
    expect(counts.b).toBeGreaterThan(DECISIONS * 0.3);
    expect(counts.c).toBeGreaterThan(DECISIONS * 0.3);
    // Only the lead moves: the primary is next, then the rest in placement order.
    const d = r.routeRecall('s1');
    expect(ids(d.replicas)[0]).toBe('a');
    expect(ids(d.placement)).toEqual(['a', 'b', 'c']);
  });

  it('compares the primary with one other choice: a replica as loaded as the primary is never preferred', () => {
    const r = router({ options: { readBalancingThreshold: 2 } });
    hold(r, A, 5);
    hold(r, B, 5);
    const counts = leads(r);
    expect(counts.b).toBe(0);
    // When the draw is c the read moves, when it is b it stays: both happen.
    expect(counts.a).toBeGreaterThan(DECISIONS * 0.3);
    expect(counts.c).toBeGreaterThan(DECISIONS * 0.3);
  });

  it('moves reads off a lead whose answers are much slower than the other choice, keeping one in LATENCY_EXPLORE on it', () => {
    const r = router();
    const [a, b, c] = [A, B, C].map((n) => r.slotOf(n)) as [number, number, number];
    for (let i = 0; i < 20; i++) {
      r.outstanding.answered(a, 100);
      r.outstanding.answered(b, 10);
      r.outstanding.answered(c, 10);
    }
    const slow = leads(r);
    expect(slow.a).toBeGreaterThan(0); // explored: its mean keeps being measured
    expect(slow.a).toBeLessThan(DECISIONS * (3 / LATENCY_EXPLORE));
    expect((slow.b ?? 0) + (slow.c ?? 0)).toBeGreaterThan(DECISIONS * 0.9);
    // Fast again: its mean comes down with its answers and it leads every read once more.
    for (let i = 0; i < 40; i++) r.outstanding.answered(a, 10);
    expect(leads(r)).toEqual({ a: DECISIONS, b: 0, c: 0 });
  });

  it('never moves a read for a small absolute difference (1 ms against 0.3 ms), nor before the other answered', () => {
    const r = router();
    const [a, b, c] = [A, B, C].map((n) => r.slotOf(n)) as [number, number, number];
    r.outstanding.answered(a, LATENCY_FLOOR_MS - 0.1);
    r.outstanding.answered(b, 0.3);
    r.outstanding.answered(c, 0.3);
    expect(leads(r)).toEqual({ a: DECISIONS, b: 0, c: 0 });
    const fresh = router();
    fresh.outstanding.answered(fresh.slotOf(A), 100); // no answer from b or c yet
    expect(leads(fresh)).toEqual({ a: DECISIONS, b: 0, c: 0 });
  });

  it('balances the spaces of a distributed query the same way', () => {
    const r = router({ options: { readBalancingThreshold: 0 } });
    hold(r, A, 1);
    const counts = leads(r, (x) => x.routeDistributedQuery(['s1'])[0]!.primary);
    expect(counts.a).toBe(0);
  });

  it('never reorders across ranks: lagging, open, down and draining nodes stay behind the up ones', () => {
    // b down, c lagging: a is the only up node and leads however loaded.
    const lag = new LagTable({ slots: 1024 });
    const r = router({ nodeStates: states({ b: NodeState.Down }), lag });
    lag.add(r.slotOf(C), LagTable.bucketOf('s1'), 1);
    hold(r, A, 50);
    expect(leads(r)).toEqual({ a: DECISIONS, b: 0, c: 0 });
    expect(ids(r.routeRecall('s1').replicas)).toEqual(['c', 'b']);

    // b's breaker open: c is the other choice, and b stays last.
    const open = router({ options: { breakerThreshold: 1 } });
    const slotB = open.slotOf(B);
    open.breakers.onFailure(slotB, open.breakers.tryAcquire(slotB));
    expect(open.breakers.state(slotB)).toBe('open');
    hold(open, A, 50);
    expect(leads(open)).toEqual({ a: 0, b: 0, c: DECISIONS });
    expect(ids(open.routeRecall('s1').replicas)).toEqual(['a', 'b']);

    // b draining: left out; c leads, then a.
    const draining = router({ nodeStates: states({ b: NodeState.Draining }) });
    hold(draining, A, 50);
    const d = draining.routeRecall('s1');
    expect(ids([d.primary, ...d.replicas])).toEqual(['c', 'a']);
  });

  it('never moves writes or consolidations, however loaded the primary', () => {
    const seed = router({ options: { replicateWrites: false } });
    hold(seed, A, 50);
    expect(leads(seed, (x) => x.routeStore('s1').primary)).toEqual({ a: DECISIONS, b: 0, c: 0 });
    expect(ids(seed.routeStore('s1').replicas)).toEqual(['b', 'c']);
    expect(seed.routeConsolidation('s1').primary.id).toBe('a');
    const replicated = router();
    hold(replicated, A, 50);
    const w = replicated.routeStore('s1');
    expect(w.strategy).toBe('Replicated');
    expect(w.primary.id).toBe('a');
    expect(ids(w.placement)).toEqual(['a', 'b', 'c']);
  });

  it("readBalancing 'placement' keeps the primary first whatever its load", () => {
    const r = router({ options: { readBalancing: 'placement' } });
    hold(r, A, 50);
    expect(leads(r)).toEqual({ a: DECISIONS, b: 0, c: 0 });
  });

  it('refuses bad options with a coded error naming the field', () => {
    const codeAndField = (options: object) => {
      try {
        router({ options });
      } catch (error) {
        const e = error as { code?: unknown; field?: unknown };
        return [e.code, e.field];
      }
      return undefined;
    };
    expect(codeAndField({ readBalancing: 'random' })).toEqual([
      'InvalidArgument',
      'options.readBalancing',
    ]);
    expect(codeAndField({ readBalancingThreshold: -1 })).toEqual([
      'InvalidArgument',
      'options.readBalancingThreshold',
    ]);
    expect(codeAndField({ readBalancingThreshold: 1.5 })).toEqual([
      'InvalidArgument',
      'options.readBalancingThreshold',
    ]);
  });
});

describe('slow start', () => {
  const WINDOW_MS = 10_000;

  /** A router whose node a came back at fake time 0, seen at `elapsedMs`. */
  function returning(elapsedMs: number, init: Partial<RouterInit> = {}): Router {
    let now = 0;
    const warmth = (node: NodeInfo) => (node.id === 'a' ? slowStartShare(now, WINDOW_MS) : 1);
    const r = router({ nodeStates: states({}, warmth), ...init });
    now = elapsedMs;
    return r;
  }

  it('the ramp is linear over the window and 1 outside it', () => {
    expect(slowStartShare(0, WINDOW_MS)).toBe(0);
    expect(slowStartShare(WINDOW_MS / 4, WINDOW_MS)).toBe(0.25);
    expect(slowStartShare(WINDOW_MS, WINDOW_MS)).toBe(1);
    expect(slowStartShare(-5, WINDOW_MS)).toBe(1);
    expect(slowStartShare(5, 0)).toBe(1);
  });

  it('a returning primary leads no read at 0 % of its window, about half at 50 %, every one at 100 %', () => {
    expect(returning(0).routeRecall('s1').primary.id).toBe('b');
    expect(leads(returning(0)).a).toBe(0);
    const half = leads(returning(WINDOW_MS / 2)).a;
    expect(half).toBeGreaterThan(DECISIONS * 0.4);
    expect(half).toBeLessThan(DECISIONS * 0.6);
    expect(leads(returning(WINDOW_MS)).a).toBe(DECISIONS);
  });

  it('a read that passes over it tries it next, and writes keep it first', () => {
    const r = returning(0, { options: { replicateWrites: false } });
    expect(ids(r.routeRecall('s1').replicas)).toEqual(['a', 'c']);
    expect(r.routeStore('s1').primary.id).toBe('a');
    expect(r.routeConsolidation('s1').primary.id).toBe('a');
  });

  it('least-request does not send a cold node every read: as the other choice it is admitted at its share', () => {
    // c came back; a is loaded past the threshold. At 0 % c never leads.
    let now = 0;
    const warmth = (node: NodeInfo) => (node.id === 'c' ? slowStartShare(now, WINDOW_MS) : 1);
    const r = router({ nodeStates: states({}, warmth) });
    hold(r, A, 10);
    const cold = leads(r);
    expect(cold.c).toBe(0);
    expect(cold.b).toBeGreaterThan(DECISIONS * 0.3);
    now = WINDOW_MS;
    expect(leads(r).c).toBeGreaterThan(DECISIONS * 0.3);
  });
});
