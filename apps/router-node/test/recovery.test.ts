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
  Traffic,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/**
 * A long round interval, the defaults' between-rounds intervals (unhealthyIntervalMs 250 ms,
 * healthyEdgeIntervalMs 100 ms): a restarted node is up after its first probe (≤ 250 ms after
 * it listens) and one more (100 ms later), each answered within `timeoutMs` at worst:
 * 250 + 100 + 2 × 1000 = 2,350 ms < one interval, even on a machine too busy to answer probes
 * in a millisecond. Rounds alone would take two intervals (6 s).
 */
const HEALTH = { intervalMs: 3000, timeoutMs: 1000, unhealthyThreshold: 1, healthyThreshold: 2 };

function transitions(metrics: string, node: string, to: string): number {
  return metricValue(
    metrics,
    'engram_router_breaker_transitions_total',
    `node="${node}"`,
    `to="${to}"`,
  );
}

/** Attempts the node answered (OK), over every worker thread. */
function answered(metrics: string, node: string): number {
  return metricValue(
    metrics,
    'engram_router_upstream_requests_total',
    `node="${node}"`,
    'grpc_status="OK"',
  );
}

describe('a node that comes back', () => {
  it('serves its primaries within one probe interval after it listens again, its breaker half-open then closed, never reopened', async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: c.configs, workers: 2, health: HEALTH }),
    );
    const client = memoryClient(cleanup, router.address);
    const adm = adminClient(cleanup, router.adminPort);
    const ring = buildRing({ nodes: c.configs, vnodesPerNode: 256 });
    const target = 'n1';
    const spaces: string[] = [];
    for (let i = 0; spaces.length < 8; i++) {
      if (ring.lookup(`r-${i}`).primary.id === target) spaces.push(`r-${i}`);
    }
    for (const s of spaces) await call(client, 'store', { spaceId: s, memory: { content: s } });
    // Load on the node's primaries: recalls and (replicated) stores, from several loops.
    let k = 0;
    const loops = Array.from(
      { length: 6 },
      () =>
        new Traffic(cleanup, async () => {
          const s = spaces[k++ % spaces.length]!;
          if (k % 4 === 0) await call(client, 'store', { spaceId: s, memory: { content: s } });
          else await call(client, 'recall', { spaceId: s, cue: { text: s } });
        }),
    );
    await eventually(() => loops.every((l) => l.ok > 5));
    await c.kill(target);
    await eventually(
      async () => (await getTable(adm)).nodes.find((n) => n.id === target)?.state === 'down',
      4 * (HEALTH.intervalMs + HEALTH.timeoutMs),
    );
    // The calls in flight when it died opened its breaker (the data plane saw it first).
    await eventually(
      async () => transitions(await scrape(router.metricsPort), target, 'open') >= 1,
    );
    const before = await scrape(router.metricsPort);
    const okBefore = answered(before, target);
    /** What the router saw of the node (for a failure's message): its state, breaker, log. */
    const diagnosis = async (): Promise<string> => {
      const m = await scrape(router.metricsPort);
      const state = (await getTable(adm)).nodes.find((n) => n.id === target)?.state;
      const moves = ['open', 'half_open', 'closed'].map(
        (to) => `${to} ${transitions(m, target, to)}`,
      );
      const attempts = m
        .split('\n')
        .filter(
          (l) =>
            l.startsWith('engram_router_upstream_requests_total') && l.includes(`node="${target}"`),
        );
      const log = router
        .stderr()
        .split('\n')
        .filter((l) => l.includes(`"${target}"`));
      const failures = loops
        .flatMap((l) => l.failures)
        .slice(0, 5)
        .map(String);
      return [
        `state ${state}; breaker transitions: ${moves.join(', ')}`,
        ...attempts,
        ...log.slice(-30),
        ...failures,
      ].join('\n');
    };
    await c.restart(target);
    const listening = Date.now();
    // Serving: calls reach it and it answers them. Its writes return at once; its reads ramp up
    // over health.slowStartMs, so an attempt of any kind that it answered is what counts.
    const servedAt = await eventually(
      async () =>
        answered(await scrape(router.metricsPort), target) > okBefore ? Date.now() : undefined,
      4 * HEALTH.intervalMs,
      20,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await diagnosis()}`);
    });
    expect(servedAt - listening).toBeLessThan(HEALTH.intervalMs);
    // Load goes on: the node keeps serving, and its breaker never reopens.
    const ok = loops.map((l) => l.ok);
    await eventually(() => loops.every((l, i) => l.ok > ok[i]! + 20));
    const after = await scrape(router.metricsPort);
    expect(transitions(after, target, 'open')).toBe(transitions(before, target, 'open'));
    // Marked up: open → half-open (recovered) → closed (its probe call succeeded).
    expect(transitions(after, target, 'half_open')).toBeGreaterThan(
      transitions(before, target, 'half_open'),
    );
    expect(transitions(after, target, 'closed')).toBeGreaterThan(
      transitions(before, target, 'closed'),
    );
    for (const l of loops) await l.stop();
    expect(loops.flatMap((l) => l.failures)).toEqual([]);
  }, 120_000);
});
