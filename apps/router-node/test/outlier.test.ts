import type { MemoryServiceClient } from '@engram/proto';
import { buildRing } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  memoryClient,
  metricValue,
  scrape,
  spawnRouter,
  startSlowNode,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Open-loop load: one Recall every `everyMs`, whatever the earlier ones are doing. */
class OpenLoop {
  readonly calls: Promise<{ startedAt: number; servedBy: string; attempts: number } | null>[] = [];
  /** Every call as it started (whatever became of it). */
  readonly started: { startedAt: number; spaceId: string }[] = [];
  #timer: NodeJS.Timeout;
  #i = 0;
  constructor(clients: readonly MemoryServiceClient[], spaces: readonly string[], everyMs: number) {
    this.#timer = setInterval(() => {
      const i = this.#i++;
      const startedAt = Date.now();
      const spaceId = spaces[i % spaces.length]!;
      this.started.push({ startedAt, spaceId });
      this.calls.push(
        call(
          clients[i % clients.length]!,
          'recall',
          {
            spaceId,
            cue: { text: 'x' },
            limit: 1,
          },
          60_000,
        ).then(
          (r) => ({
            startedAt,
            servedBy: r.routing?.servedBy ?? '',
            attempts: r.routing?.attempts ?? 0,
          }),
          () => null,
        ),
      );
    }, everyMs);
    cleanup.add(() => this.stop());
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  /** Stops and waits for every call started. */
  async settle() {
    this.stop();
    return Promise.all(this.calls);
  }
}

/** Attempts the router sent to `node`, all statuses (counted when each attempt ends). */
async function attemptsTo(metricsPort: number, node: string): Promise<number> {
  return metricValue(
    await scrape(metricsPort),
    'engram_router_upstream_requests_total',
    `node="${node}"`,
  );
}

describe('outlier detection', () => {
  it('ejects a node that accepts calls and never answers (SIGSTOP) before any attempt to it times out, and no later call reaches it', {
    timeout: 120_000,
  }, async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    // SIGCONT before the cluster's SIGTERM (registered later, so it runs first).
    cleanup.add(() => c.resume('n1'));
    // Probes and attempt timeouts too slow to be what finds the frozen node in this test:
    // a probe fails only after health.timeoutMs, and unhealthyThreshold of them mark it
    // down; an attempt to it fails only after attemptTimeoutMs. The detector's stall rule
    // (outlier.stallMs, checked every outlier.intervalMs) needs neither.
    const health = {
      intervalMs: 1000,
      timeoutMs: 30_000,
      unhealthyThreshold: 3,
      healthyThreshold: 1,
    };
    const attemptTimeoutMs = 30_000;
    // No window ends during the test (windowMs far longer), so the stall threshold is stallMs
    // itself (not latencyFactor × a peers' p99 this machine's speed would set).
    const outlier = { stallMs: 500, intervalMs: 100, baseEjectionMs: 120_000, windowMs: 600_000 };
    // What the config gives: the first tick after the first call to the frozen node starts the
    // stall (at most intervalMs later), the tick stallMs after it ejects (intervalMs more at
    // most); times 4 for a busy machine (late timers, scrapes polled every 50 ms).
    const ejectionBoundMs = 4 * (outlier.stallMs + 2 * outlier.intervalMs);
    expect(ejectionBoundMs).toBeLessThan(attemptTimeoutMs / 4);
    // Replication factor 2 of 3 nodes: some spaces are not on n1 at all, so calls that can
    // reach it are told apart from those that cannot.
    const replicationFactor = 2;
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: c.configs,
        workers: 2,
        vnodesPerNode: 64,
        replicationFactor,
        health,
        router: { attemptTimeoutMs, deadlineMs: 60_000 },
        outlier,
      }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    await eventually(async () => (await getTable(adm)).nodes.every((n) => n.state === 'up'));
    // Spaces whose primary is n1, and others (the router walks the same ring).
    const ring = buildRing({ nodes: c.configs, vnodesPerNode: 64, replicationFactor });
    const holders = (s: string) => {
      const p = ring.lookup(s);
      return [p.primary, ...p.replicas].map((n) => n.id);
    };
    const all = Array.from({ length: 400 }, (_, i) => `hang/${i}`);
    const onN1 = all.filter((s) => ring.lookup(s).primary.id === 'n1').slice(0, 20);
    const elsewhere = all.filter((s) => !holders(s).includes('n1')).slice(0, 20);
    expect(onN1).toHaveLength(20);
    expect(elsewhere).toHaveLength(20);
    // Several client connections, so both data-plane threads carry calls.
    const clients = [0, 1, 2, 3].map(() => memoryClient(cleanup, router.address, true));
    const warm = new OpenLoop(clients, [...onN1, ...elsewhere], 10);
    await eventually(async () => (await attemptsTo(router.metricsPort, 'n1')) >= 50, 30_000);
    await warm.settle();
    const before = await attemptsTo(router.metricsPort, 'n1');

    c.pause('n1');
    const frozenAt = Date.now();
    const load = new OpenLoop(clients, [...onN1, ...elsewhere], 20);
    // Ejected while every attempt sent to it is still waiting (none can end before
    // attemptTimeoutMs): no attempt to n1 has ended since it froze.
    const ejectedAt = await eventually(async () => {
      const text = await scrape(router.metricsPort);
      return metricValue(text, 'engram_router_node_ejected', 'node="n1"') === 1
        ? Date.now()
        : false;
    }, 2 * ejectionBoundMs).catch((err: unknown) => {
      // What the detector did instead, for the failure message.
      const lines = router
        .stderr()
        .split('\n')
        .filter((l) => l.includes('"event":"outlier-'));
      throw new Error(`${String(err)}; outlier log: ${lines.join('\n')}`);
    });
    expect(ejectedAt - frozenAt).toBeLessThan(ejectionBoundMs);
    const text = await scrape(router.metricsPort);
    expect(metricValue(text, 'engram_router_upstream_requests_total', 'node="n1"')).toBe(before);
    expect(
      metricValue(text, 'engram_router_outlier_ejections_total', 'node="n1"', 'reason="stalled"'),
    ).toBe(1);
    // Health has not marked it down (that is no faster than unhealthyThreshold × timeoutMs).
    expect((await getTable(adm)).nodes.find((n) => n.id === 'n1')?.state).toBe('up');
    // More calls to its spaces: served by its replicas, without trying it.
    await new Promise((r) => setTimeout(r, 20 * outlier.intervalMs));
    load.stop();
    c.resume('n1'); // its held attempts end now (answered late), so every call settles
    const results = await load.settle();
    const after = results.filter((r) => r !== null && r.startedAt > ejectedAt);
    expect(after.length).toBeGreaterThan(20);
    for (const r of after) {
      expect(r!.servedBy).not.toBe('n1');
      expect(r!.attempts).toBe(1);
    }
    // Only calls that could reach n1 (its spaces), started before the ejection, reached it:
    // one attempt each at most (held until it resumed, no retry within attemptTimeoutMs).
    const reached = load.started.filter(
      (x) => x.startedAt <= ejectedAt && holders(x.spaceId).includes('n1'),
    ).length;
    const total = (await attemptsTo(router.metricsPort, 'n1')) - before;
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(reached);
    expect(results.every((r) => r !== null)).toBe(true);
  });

  it('ejects a node answering far slower than its peers (latency), and reads move to the others', {
    timeout: 120_000,
  }, async () => {
    const fast1 = await startSlowNode(cleanup, 'f1', 0);
    const fast2 = await startSlowNode(cleanup, 'f2', 0);
    const slow = await startSlowNode(cleanup, 's', 100);
    const nodes = [
      { id: 'f1', address: fast1.address, zone: 'a' },
      { id: 'f2', address: fast2.address, zone: 'b' },
      { id: 's', address: slow.address, zone: 'a' },
    ];
    const outlier = {
      windowMs: 1000,
      minRequests: 20,
      latencyFactor: 5,
      latencyFloorMs: 5,
      baseEjectionMs: 120_000,
    };
    // Placement-order reads: the detector is what this test is about, and least-request
    // reads (if the default changes) would move the slow node's reads to its replicas after a few
    // answers, leaving it too few attempts in a window to be judged.
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes,
        workers: 2,
        vnodesPerNode: 64,
        outlier,
        router: { readBalancing: 'placement' },
      }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    await eventually(async () => (await getTable(adm)).nodes.every((n) => n.state === 'up'));
    const ring = buildRing({ nodes, vnodesPerNode: 64 });
    const spaces = Array.from({ length: 60 }, (_, i) => `slow/${i}`);
    const onSlow = spaces.filter((s) => ring.lookup(s).primary.id === 's');
    expect(onSlow.length).toBeGreaterThan(5);
    const clients = [0, 1, 2, 3].map(() => memoryClient(cleanup, router.address, true));
    const load = new OpenLoop(clients, spaces, 5);
    // Each node gets ~minRequests per window within a few windows of load.
    await eventually(
      async () =>
        metricValue(
          await scrape(router.metricsPort),
          'engram_router_outlier_ejections_total',
          'node="s"',
          'reason="latency"',
        ) === 1,
      20 * outlier.windowMs,
    );
    const text = await scrape(router.metricsPort);
    expect(metricValue(text, 'engram_router_node_ejected', 'node="s"')).toBe(1);
    expect(metricValue(text, 'engram_router_node_ejected', 'node="f1"')).toBe(0);
    expect(metricValue(text, 'engram_router_outlier_ejections_total', 'node="f1"')).toBe(0);
    expect(metricValue(text, 'engram_router_outlier_ejections_total', 'node="f2"')).toBe(0);
    // Reads of its spaces now go to their replicas (the slow node is tried only if they fail).
    const r = await call(clients[0]!, 'recall', { spaceId: onSlow[0]!, cue: { text: 'x' } });
    expect(r.routing?.servedBy).not.toBe('s');
    expect(r.routing?.attempts).toBe(1);
    await load.settle();
    expect(router.stderr()).toMatch(/"event":"outlier-eject".*"node":"s".*"reason":"latency"/);
  });
});
