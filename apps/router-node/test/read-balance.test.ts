import { buildRing } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
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

const UPSTREAM = 'engram_router_upstream_requests_total';
const SPACE = 'hot/space';
/** Each Recall waits this long at the node: concurrent reads overlap at the router. */
const NODE_DELAY_MS = 20;
const VNODES = 256;
/** Attempts in flight a primary may have beyond another replica (the router's default). */
const THRESHOLD = 2;

/** Attempts the router sent to each node so far, once the scrape has counted `total`. */
async function attempts(metricsPort: number, ids: readonly string[], total: number) {
  return eventually(async () => {
    const text = await scrape(metricsPort);
    const counts = ids.map((id) => metricValue(text, UPSTREAM, `node="${id}"`));
    return counts.reduce((a, b) => a + b, 0) === total ? counts : undefined;
  });
}

/**
 * Three nodes that answer Recall after NODE_DELAY_MS, a router over them with `router`
 * settings, every node up; `ids`: the placement of SPACE, primary first.
 */
async function slowCluster(names: string[], workers: number, router: Record<string, unknown>) {
  const nodes: { id: string; address: string; zone: string }[] = [];
  for (const id of names) {
    const node = await startSlowNode(cleanup, id, NODE_DELAY_MS);
    nodes.push({ id, address: node.address, zone: '' });
  }
  const placement = buildRing({ nodes, vnodesPerNode: VNODES }).lookup(SPACE);
  const ids = [placement.primary.id, ...placement.replicas.map((n) => n.id)];
  const process = await spawnRouter(
    cleanup,
    testConfig({ nodes, workers, vnodesPerNode: VNODES, router }),
  );
  const adm = adminClient(cleanup, process.adminPort);
  await eventually(async () => (await getTable(adm)).nodes.every((n) => n.state === 'up'));
  return { ids, router: process };
}

describe('least-request reads (router-node)', () => {
  it('a hot space read at high concurrency is spread over its replicas; at concurrency 1 the primary answers all', async () => {
    const { ids, router } = await slowCluster(['h1', 'h2', 'h3'], 2, {
      readBalancing: 'least-request',
      readBalancingThreshold: THRESHOLD,
    });

    // Concurrency 1: nothing is in flight when a read is decided, so placement order holds.
    const SEQUENTIAL = 20;
    const client = memoryClient(cleanup, router.address);
    for (let i = 0; i < SEQUENTIAL; i++) {
      const r = await call(client, 'recall', { spaceId: SPACE, cue: { text: 'x' } });
      expect(r.routing?.servedBy).toBe(ids[0]);
      expect(r.routing?.fallback).toBe(false);
    }
    expect(await attempts(router.metricsPort, ids, SEQUENTIAL)).toEqual([SEQUENTIAL, 0, 0]);

    // Concurrency 32 over 4 connections (so both data-plane threads): every thread has far more
    // reads of the space in flight than the threshold, and the replicas take their share.
    const LOOPS = 32;
    const ROUNDS = 5;
    const clients = Array.from({ length: 4 }, () => memoryClient(cleanup, router.address, true));
    const served = new Map<string, number>();
    await Promise.all(
      Array.from({ length: LOOPS }, async (_, loop) => {
        for (let i = 0; i < ROUNDS; i++) {
          const r = await call(clients[loop % clients.length]!, 'recall', {
            spaceId: SPACE,
            cue: { text: 'x' },
          });
          const by = r.routing?.servedBy ?? '?';
          served.set(by, (served.get(by) ?? 0) + 1);
        }
      }),
    );
    const total = LOOPS * ROUNDS;
    const after = await attempts(router.metricsPort, ids, SEQUENTIAL + total);
    const concurrent = after.map((n, i) => n - (i === 0 ? SEQUENTIAL : 0));
    // Every read was one attempt, on a node of the placement; the replies agree with /metrics.
    expect(concurrent.reduce((a, b) => a + b, 0)).toBe(total);
    expect(ids.map((id) => served.get(id) ?? 0)).toEqual(concurrent);
    // Spread: each replica took a real share (with 16 reads in flight per thread, a primary
    // `THRESHOLD` ahead of each replica leaves each ~30 %), the primary still the most.
    for (const n of concurrent.slice(1)) expect(n).toBeGreaterThan(total * 0.1);
    expect(concurrent[0]).toBeLessThan(total * 0.8);
  });

  it("readBalancing 'placement' keeps every read of a hot space on its primary", async () => {
    const { ids, router } = await slowCluster(['p1', 'p2', 'p3'], 1, {
      readBalancing: 'placement',
    });
    const client = memoryClient(cleanup, router.address);
    const total = 64;
    await Promise.all(
      Array.from({ length: total }, () =>
        call(client, 'recall', { spaceId: SPACE, cue: { text: 'x' } }),
      ),
    );
    expect(await attempts(router.metricsPort, ids, total)).toEqual([total, 0, 0]);
  });
});
