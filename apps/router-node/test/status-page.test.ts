import { createHash } from 'node:crypto';
import http from 'node:http';
import { buildRing, hashKey } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import type { TableView } from '../src/internal/admin.js';
import { histogramQuantile } from '../src/internal/histogram-quantile.js';
import {
  createStateBuffer,
  metricsRegion,
  OP,
  OUTCOME_INDEX,
  REQUEST_BUCKETS_S,
  requestHistOffset,
} from '../src/internal/layout.js';
import { startMetricsServer } from '../src/internal/metrics-server.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from '../src/internal/status-page.js';
import { startStatusRoutes } from '../src/internal/status-routes.js';
import {
  type RequestTotals,
  readRequestTotals,
  StatusSampler,
} from '../src/internal/status-sampler.js';
import { buildStatusSnapshot, ringShares, TOKEN_SPACE } from '../src/internal/status-snapshot.js';
import { FakeTime } from './fake-time.js';
import { Cleanup } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('histogramQuantile', () => {
  const bounds = [0.001, 0.01, 0.1];

  it('interpolates linearly inside the bucket the rank falls in, the first bucket from 0', () => {
    // 10 calls in (1 ms, 10 ms]: the median is halfway, 5.5 ms.
    expect(histogramQuantile(bounds, [0, 10, 0, 0], 0.5)).toBeCloseTo(0.0055, 12);
    // 4 calls in [0, 1 ms]: the median at 0.5 ms.
    expect(histogramQuantile(bounds, [4, 0, 0, 0], 0.5)).toBeCloseTo(0.0005, 12);
    // 90 fast, 10 slow: p50 among the fast, p99 nine tenths into the slow bucket.
    expect(histogramQuantile(bounds, [90, 0, 10, 0], 0.5)).toBeCloseTo(0.001 * (50 / 90), 12);
    expect(histogramQuantile(bounds, [90, 0, 10, 0], 0.99)).toBeCloseTo(0.01 + 0.09 * 0.9, 12);
  });

  it('answers the largest finite bound for the +Inf bucket, NaN for an empty histogram', () => {
    expect(histogramQuantile(bounds, [0, 0, 0, 5], 0.5)).toBe(0.1);
    expect(histogramQuantile(bounds, [0, 0, 0, 0], 0.5)).toBeNaN();
  });
});

/** Cumulative totals a test moves forward by hand. */
class Totals {
  buckets = new Float64Array(REQUEST_BUCKETS_S.length + 1);
  errors = 0;
  add(bucket: number, calls: number, errors = 0): void {
    this.buckets[bucket]! += calls;
    this.errors += errors;
  }
  read = (): RequestTotals => ({ buckets: this.buckets.slice(), errors: this.errors });
}

describe('StatusSampler', () => {
  it('records rate, errors and quantiles of each interval from the differences of the totals', async () => {
    const time = new FakeTime();
    const totals = new Totals();
    totals.add(3, 500); // before start: part of the baseline, not of any interval
    const sampler = new StatusSampler({ read: totals.read, clock: time.clock, intervalMs: 1000 });
    sampler.start(time);
    expect(sampler.history().atMs).toEqual([]);

    totals.add(2, 100, 4); // 100 calls in (0.5 ms, 1 ms], 4 of them not OK
    await time.advance(1000);
    await time.advance(1000); // an idle second
    totals.add(5, 30); // 30 calls in (5 ms, 10 ms]
    await time.advance(1000);

    const h = sampler.history();
    expect(h.intervalMs).toBe(1000);
    expect(h.atMs).toEqual([1000, 2000, 3000]);
    expect(h.ratePerS).toEqual([100, 0, 30]);
    expect(h.errorsPerS).toEqual([4, 0, 0]);
    expect(h.p50Ms[0]).toBeCloseTo(0.75, 9);
    expect(h.p50Ms[1]).toBeNull();
    expect(h.p99Ms[2]).toBeCloseTo(5 + 5 * 0.99, 9);
  });

  it('divides by the time that passed, not the nominal interval', async () => {
    const time = new FakeTime();
    const totals = new Totals();
    const sampler = new StatusSampler({ read: totals.read, clock: time.clock });
    sampler.sample();
    await time.advance(2500);
    totals.add(0, 50);
    sampler.sample();
    expect(sampler.history().ratePerS).toEqual([20]);
  });

  it('keeps the newest `capacity` points, oldest first', async () => {
    const time = new FakeTime();
    const totals = new Totals();
    const sampler = new StatusSampler({ read: totals.read, clock: time.clock, capacity: 3 });
    sampler.start(time);
    for (let s = 1; s <= 5; s++) {
      totals.add(0, s);
      await time.advance(1000);
    }
    expect(sampler.history().atMs).toEqual([3000, 4000, 5000]);
    expect(sampler.history().capacity).toBe(3);
    expect(sampler.history().ratePerS).toEqual([3, 4, 5]);
  });

  it('counts a total that went down (a counter reset) as no calls', async () => {
    const time = new FakeTime();
    const totals = new Totals();
    totals.add(1, 40, 2);
    const sampler = new StatusSampler({ read: totals.read, clock: time.clock });
    sampler.start(time);
    totals.buckets.fill(0);
    totals.errors = 0;
    await time.advance(1000);
    expect(sampler.history().ratePerS).toEqual([0]);
    expect(sampler.history().errorsPerS).toEqual([0]);
  });

  it('stop() clears its timer; options are checked', () => {
    const time = new FakeTime();
    const sampler = new StatusSampler({ read: new Totals().read, clock: time.clock });
    sampler.start(time);
    expect(time.pending).toBe(1);
    sampler.stop();
    expect(time.pending).toBe(0);
    const read = new Totals().read;
    expect(() => new StatusSampler({ read, clock: time.clock, capacity: 0 })).toThrow(/capacity/);
    expect(() => new StatusSampler({ read, clock: time.clock, intervalMs: 0 })).toThrow(
      /intervalMs/,
    );
  });
});

describe('readRequestTotals', () => {
  it('sums every thread, operation and outcome; errors are the calls not ok', () => {
    const state = createStateBuffer(2, 16);
    const n = REQUEST_BUCKETS_S.length;
    const put = (thread: number, op: number, outcome: number, bucket: number, calls: number) => {
      const r = metricsRegion(state, thread);
      const base = requestHistOffset(op, outcome);
      r[base + bucket]! += calls;
      r[base + n + 2]! += calls; // count
    };
    put(0, OP.store, OUTCOME_INDEX.get('ok')!, 0, 7);
    put(1, OP.recall, OUTCOME_INDEX.get('ok')!, 0, 3);
    put(1, OP.query, OUTCOME_INDEX.get('upstream_error')!, 4, 2);
    put(0, OP.other, OUTCOME_INDEX.get('ok')!, n, 1); // +Inf
    const t = readRequestTotals(state);
    expect(t.buckets.length).toBe(n + 1);
    expect(t.buckets[0]).toBe(10);
    expect(t.buckets[4]).toBe(2);
    expect(t.buckets[n]).toBe(1);
    expect(t.errors).toBe(2);
  });
});

describe('ringShares', () => {
  it('gives each node the token arcs that end at its vnodes (one vnode each: exact)', () => {
    const ring = buildRing({
      nodes: [
        { id: 'a', address: '127.0.0.1:1' },
        { id: 'b', address: '127.0.0.1:2' },
      ],
      vnodesPerNode: 1,
      replicationFactor: 2,
    });
    // Vnode k of a node has token murmur3(id, seed k); seed 0 is hashKey(id).
    const [ta, tb] = [hashKey('a'), hashKey('b')];
    const [lo, hi] = ta < tb ? ['a', 'b'] : ['b', 'a'];
    const between = Math.abs(ta - tb) / TOKEN_SPACE;
    const shares = ringShares(ring);
    expect(shares.get(hi)).toBeCloseTo(between, 12);
    expect(shares.get(lo)).toBeCloseTo(1 - between, 12);
  });

  it('agrees with where keys land, sums to 1, and leaves joining nodes at 0', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((id, i) => ({
      id,
      address: `127.0.0.1:${i + 1}`,
      zone: `z${i % 2}`,
    }));
    const ring = buildRing({ nodes, vnodesPerNode: 16, replicationFactor: 2, joining: ['n4'] });
    const shares = ringShares(ring);
    expect([...shares.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(shares.get('n4')).toBe(0);
    const landed = new Map<string, number>();
    const keys = 40_000;
    for (let i = 0; i < keys; i++) {
      const p = ring.lookup(`space-${i}`).primary.id;
      landed.set(p, (landed.get(p) ?? 0) + 1);
    }
    // Binomial spread over 40,000 keys is ~0.0025: 0.015 is six of it.
    for (const id of ['n1', 'n2', 'n3']) {
      expect(Math.abs((landed.get(id) ?? 0) / keys - shares.get(id)!)).toBeLessThan(0.015);
    }
    expect(ringShares(ring)).toBe(shares); // cached per ring
  });
});

function tableView(extra: Record<string, unknown> = {}): TableView {
  return {
    epoch: 7,
    revision: 0,
    etcd: null,
    partitioned: false,
    replicationFactor: 2,
    vnodesPerNode: 16,
    localNodeId: null,
    nodes: [
      {
        id: 'n1',
        address: '127.0.0.1:1',
        zone: 'a',
        state: 'up',
        lifecycle: 'active',
        breaker: 'closed',
        slot: 0,
        hintsPending: 3,
        hintBytesPending: 300,
        repairNeeded: false,
        healthLatencyMs: 0.8,
        ...extra,
      },
      {
        id: 'n2',
        address: '127.0.0.1:2',
        zone: 'b',
        state: 'down',
        lifecycle: 'active',
        breaker: 'open',
        slot: 1,
        hintsPending: 0,
        hintBytesPending: 0,
        repairNeeded: true,
        healthLatencyMs: 0,
      },
    ],
    assignments: [],
    pendingAssignments: [],
    streams: [
      {
        kind: 'join',
        subject: 'n2',
        phase: 'copying',
        spacesTotal: 4,
        spacesDone: 1,
        entriesCopied: 10,
        lastError: '',
      },
    ] as unknown as TableView['streams'],
  };
}

const ringOf = (ids: string[]) =>
  buildRing({
    nodes: ids.map((id, i) => ({ id, address: `127.0.0.1:${i + 1}` })),
    vnodesPerNode: 16,
    replicationFactor: 2,
  });

describe('buildStatusSnapshot', () => {
  const history = new StatusSampler({ read: new Totals().read, clock: Date }).history();

  it('carries etcd mode: the revision and etcd as the router sees it; null without', () => {
    const etcd = {
      connected: true,
      lastError: null,
      routerId: 'r1',
      routers: [{ id: 'r1', listen: '127.0.0.1:1', admin: null }],
      driving: false,
    };
    const snap = buildStatusSnapshot(tableView({}), null, history, 0);
    expect(snap.etcd).toBeNull();
    const shared = buildStatusSnapshot({ ...tableView({}), revision: 12, etcd }, null, history, 0);
    expect(shared.etcd).toEqual({ ...etcd, revision: 12 });
  });

  it('carries the table, each node with its ring share, the streams and the history', () => {
    const ring = ringOf(['n1', 'n2']);
    const snap = buildStatusSnapshot(tableView(), ring, history, 1234);
    expect(snap).toMatchObject({ generatedAtMs: 1234, epoch: 7, partitioned: false });
    expect(snap.replicationFactor).toBe(2);
    expect(snap.nodes.map((n) => [n.id, n.state, n.breaker, n.repairNeeded])).toEqual([
      ['n1', 'up', 'closed', false],
      ['n2', 'down', 'open', true],
    ]);
    expect(snap.nodes[0]!.ringShare).toBe(ringShares(ring).get('n1'));
    expect(snap.nodes[0]!.ringShare + snap.nodes[1]!.ringShare).toBeCloseTo(1, 12);
    expect(snap.nodes[0]!.hintsPending).toBe(3);
    expect(snap.streams[0]!.spacesDone).toBe(1);
    expect(snap.history).toBe(history);
    expect(snap.nodes[0]!.healthLatencyMs).toBe(0.8);
  });

  it('shows no health latency for a node not probed yet', () => {
    const snap = buildStatusSnapshot(tableView({ state: 'unknown' }), null, history, 0);
    expect(snap.nodes[0]!.healthLatencyMs).toBeNull();
    expect(snap.nodes[1]!.healthLatencyMs).toBe(0);
    expect(snap.nodes[0]!.ringShare).toBe(0); // no ring published
  });
});

/** The inline script and style of the page. */
function inline(tag: 'script' | 'style'): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(STATUS_PAGE_HTML);
  if (m === null) throw new Error(`no <${tag}>`);
  return m[1]!;
}
const hashOf = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

describe('the status page', () => {
  it('is one document with no outside resource: no src or href but its own', () => {
    expect(STATUS_PAGE_HTML.match(/<script/g)).toHaveLength(1);
    expect(STATUS_PAGE_HTML).not.toMatch(/\bsrc=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(STATUS_PAGE_HTML.match(/href="([^"]*)"/g)).toEqual(['href="data:,"']);
  });

  it('never parses data as HTML: no innerHTML, outerHTML, insertAdjacentHTML, document.write or eval', () => {
    const script = inline('script');
    for (const sink of [
      'innerHTML',
      'outerHTML',
      'insertAdjacentHTML',
      'document.write',
      'eval(',
    ]) {
      expect(script).not.toContain(sink);
    }
    // It compiles (without running it).
    expect(() => new Function(script)).not.toThrow();
  });

  it('allows by CSP exactly its own script and style, fetches to its own origin only', () => {
    expect(STATUS_PAGE_CSP).toContain(`script-src ${hashOf(inline('script'))}`);
    expect(STATUS_PAGE_CSP).toContain(`style-src ${hashOf(inline('style'))}`);
    expect(STATUS_PAGE_CSP).toMatch(/default-src 'none'/);
    expect(STATUS_PAGE_CSP).toMatch(/connect-src 'self'/);
    expect(STATUS_PAGE_CSP).not.toMatch(/unsafe/);
  });
});

function get(
  port: number,
  path: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}${path}`, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('startStatusRoutes', () => {
  it('serves the page and the snapshot, whose history grows with each sample; stop() ends the timer', async () => {
    const time = new FakeTime();
    const state = createStateBuffer(1, 16);
    const ring = ringOf(['n1', 'n2']);
    const status = startStatusRoutes(
      state,
      () => tableView(),
      () => ring,
      time,
      time.clock,
    );
    cleanup.add(() => status.stop());
    const server = await startMetricsServer('127.0.0.1', 0, status.routes);
    cleanup.add(() => server.close());

    const page = await get(server.port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(STATUS_PAGE_CSP);
    expect(page.body).toBe(STATUS_PAGE_HTML);

    const base = requestHistOffset(OP.recall, OUTCOME_INDEX.get('ok')!);
    metricsRegion(state, 0)[base + 1] = 25;
    await time.advance(1000);
    const res = await get(server.port, '/status.json?x=1');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const snap = JSON.parse(res.body);
    expect(snap.epoch).toBe(7);
    expect(snap.nodes.map((n: { id: string }) => n.id)).toEqual(['n1', 'n2']);
    expect(snap.history.ratePerS).toEqual([25]);
    expect(snap.history.p50Ms[0]).toBeCloseTo(0.375, 9); // half of (0.25 ms, 0.5 ms]

    expect(time.pending).toBe(1);
    status.stop();
    expect(time.pending).toBe(0);
  });
});
