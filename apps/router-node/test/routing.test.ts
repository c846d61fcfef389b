import { HealthClient } from '@engram/proto';
import { buildRing } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  callWithTrailers,
  eventually,
  getTable,
  memoryClient,
  metricValue,
  scrape,
  spawnRouter,
  type TableReply,
  TEST_DOWN_WINDOW_MS,
  Traffic,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function cluster(count = 3): Promise<LocalCluster> {
  const c = await LocalCluster.start(count, 2);
  cleanup.add(() => c.stop());
  return c;
}

function primaryOf(c: LocalCluster, spaceId: string, vnodes = 256): string {
  return buildRing({ nodes: c.configs, vnodesPerNode: vnodes }).lookup(spaceId).primary.id;
}

function placementOf(c: LocalCluster, spaceId: string, vnodes = 256): string[] {
  const p = buildRing({ nodes: c.configs, vnodesPerNode: vnodes }).lookup(spaceId);
  return [p.primary.id, ...p.replicas.map((r) => r.id)];
}

describe('router-node end to end', () => {
  it('replicates stores to every replica, recalls from the placement primary, and reports both in field 15 and trailers', async () => {
    const c = await cluster();
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 2 }));
    const client = memoryClient(cleanup, router.address);
    for (const space of ['alice/episodic', 'bob/semantic', 'carol', 'dave/x']) {
      const placement = placementOf(c, space);
      const stored = await call(client, 'store', {
        spaceId: space,
        memory: { content: `hi ${space}` },
      });
      // Replicated: the answer after a quorum (2 of 3), from the first replica in placement
      // order that acknowledged by then.
      expect(stored.routing?.strategy).toBe('Replicated');
      expect(stored.routing?.asked).toBe(3);
      expect(stored.routing?.acknowledged).toBeGreaterThanOrEqual(2);
      expect(placement).toContain(stored.routing?.servedBy);
      expect(stored.routing?.tableEpoch).toBeGreaterThanOrEqual(1);
      // The memory really lives on every replica, one id: ask each node directly.
      for (const id of placement) {
        const direct = memoryClient(cleanup, c.node(id).config.address);
        const there = await eventually(async () => {
          const r = await call(direct, 'recall', { spaceId: space, cue: { text: space } });
          return r.memories.length === 1 ? r : undefined;
        });
        expect(there.memories[0]?.memory?.id).toBe(stored.memoryId);
      }
      // Every replica has it: the placement primary serves the recall.
      const recalled = await call(client, 'recall', {
        spaceId: space,
        cue: { text: space },
        limit: 5,
      });
      expect(recalled.routing?.servedBy).toBe(placement[0]);
      expect(recalled.routing?.strategy).toBe('PrimaryWithFallback');
      expect(recalled.routing?.fallback).toBe(false);
      expect(recalled.memories.map((m) => m.memory?.content)).toEqual([`hi ${space}`]);
    }
    const { response, trailers } = await callWithTrailers(client, 'alice/episodic');
    expect(trailers.get('x-engram-served-by')).toEqual([response.routing?.servedBy]);
    expect(trailers.get('x-engram-attempts')).toEqual(['1']);
    expect(trailers.get('x-engram-fallback')).toEqual(['false']);
    expect(Number(trailers.get('x-engram-epoch')[0])).toBe(response.routing?.tableEpoch);
  });

  it('answers bad requests with gRPC errors, scatter-gathers Query, and serves health', async () => {
    const c = await cluster();
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 1 }));
    const client = memoryClient(cleanup, router.address);
    const err = await call(client, 'recall', { spaceId: '', cue: { text: 'x' } }).catch((e) => e);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.metadata.get('x-engram-error')).toEqual(['InvalidArgument']);
    await call(client, 'store', { spaceId: 's1', memory: { content: 'one' } });
    await call(client, 'store', { spaceId: 's2', memory: { content: 'two' } });
    const q = await call(client, 'query', {
      spaceIds: ['s1', 's2', 's3'],
      cue: { text: 'one two' },
    });
    expect(q.routing?.strategy).toBe('ScatterGather');
    const bySpace = Object.fromEntries(q.results.map((r) => [r.spaceId, r.memories.length]));
    expect(bySpace.s1).toBe(1);
    expect(bySpace.s2).toBe(1);
    const health = await new Promise<unknown>((resolve, reject) => {
      const h = new HealthClient(router.address, grpc.credentials.createInsecure());
      cleanup.add(() => h.close());
      h.check({ service: '' }, (e: unknown, r: unknown) => (e ? reject(e) : resolve(r)));
    });
    expect(health).toEqual({ status: 'SERVING' });
  });

  it('keeps recalls succeeding when the primary is killed, marks it down in its window, and back up', async () => {
    const c = await cluster();
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 2 }));
    const client = memoryClient(cleanup, router.address);
    const adm = adminClient(cleanup, router.adminPort);
    const space = 'steady/space';
    const primary = primaryOf(c, space);
    await call(client, 'store', { spaceId: space, memory: { content: 'x' } });

    const servedBy = new Set<string>();
    const traffic = new Traffic(cleanup, async () => {
      const r = await call(client, 'recall', { spaceId: space, cue: { text: 'x' } }, 3000);
      servedBy.add(r.routing?.servedBy ?? '?');
    });
    await eventually(() => traffic.ok > 20);
    const killedAt = Date.now();
    await c.kill(primary);
    const downAt = await eventually(
      async () => {
        const t = await getTable(adm);
        return t.nodes.find((n) => n.id === primary)?.state === 'down' ? Date.now() : undefined;
      },
      5000,
      10,
    );
    const okAtKill = traffic.ok;
    await eventually(() => traffic.ok > okAtKill + 20);
    // Within the window the health settings give (TEST_DOWN_WINDOW_MS, from TEST_HEALTH).
    expect(downAt - killedAt).toBeLessThan(TEST_DOWN_WINDOW_MS);
    const replicas = buildRing({ nodes: c.configs, vnodesPerNode: 256 })
      .lookup(space)
      .replicas.map((n) => n.id);
    expect([...servedBy].filter((id) => id !== primary).every((id) => replicas.includes(id))).toBe(
      true,
    );

    await c.restart(primary);
    await eventually(async () => {
      const t = await getTable(adm);
      return t.nodes.find((n) => n.id === primary)?.state === 'up';
    });
    const back = await eventually(async () => {
      const r = await call(client, 'recall', { spaceId: space, cue: { text: 'x' } });
      return r.routing?.servedBy === primary && r.routing.fallback === false ? r : undefined;
    });
    expect(back.routing?.servedBy).toBe(primary);
    await traffic.stop();
    expect(traffic.failures).toEqual([]);
    expect(traffic.failed).toBe(0);
  });

  it('routes LocalOnly while a majority is down, and NoLocalData for spaces the local node lacks', async () => {
    const c = await cluster();
    const ring = buildRing({ nodes: c.configs, vnodesPerNode: 256, replicationFactor: 2 });
    const local = 'n1';
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: c.configs, workers: 2, localNodeId: local, replicationFactor: 2 }),
    );
    const client = memoryClient(cleanup, router.address);
    const adm = adminClient(cleanup, router.adminPort);
    let held = '';
    let notHeld = '';
    for (let i = 0; (held === '' || notHeld === '') && i < 1000; i++) {
      const p = ring.lookup(`space-${i}`);
      const ids = [p.primary.id, ...p.replicas.map((r) => r.id)];
      if (ids.includes(local) && held === '') held = `space-${i}`;
      if (!ids.includes(local) && notHeld === '') notHeld = `space-${i}`;
    }
    await c.kill('n2');
    await c.kill('n3');
    await eventually(async () => (await getTable(adm)).partitioned);
    const r = await call(client, 'recall', { spaceId: held, cue: { text: 'x' } });
    expect(r.routing?.strategy).toBe('LocalOnly');
    expect(r.routing?.servedBy).toBe(local);
    const err = await call(client, 'recall', { spaceId: notHeld, cue: { text: 'x' } }).catch(
      (e) => e,
    );
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.metadata.get('x-engram-error')).toEqual(['NoLocalData']);
    const m = await scrape(router.metricsPort);
    expect(metricValue(m, 'engram_router_partitioned')).toBe(1);
  });

  it('applies AssignSpace on the next call in every worker, and rejects bad admin requests without changes (no data movement)', async () => {
    const c = await cluster();
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: c.configs, workers: 2, router: { replicateWrites: false } }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    const space = 'pinned/space';
    const target = c.configs.map((n) => n.id).find((id) => id !== primaryOf(c, space))!;
    const before = await getTable(adm);
    const bad: [string, Record<string, unknown>, number][] = [
      [
        'AssignSpace',
        { spaceId: space, primary: 'nope', replicas: [] },
        grpc.status.INVALID_ARGUMENT,
      ],
      ['AssignSpace', { spaceId: '', primary: 'n1' }, grpc.status.INVALID_ARGUMENT],
      [
        'AssignSpace',
        { spaceId: space, primary: 'n1', replicas: ['n1'] },
        grpc.status.INVALID_ARGUMENT,
      ],
      ['AddNode', { id: 'n9', address: 'not an address' }, grpc.status.INVALID_ARGUMENT],
      ['AddNode', { id: 'n1', address: '127.0.0.1:1' }, grpc.status.ALREADY_EXISTS],
      ['RemoveNode', { id: 'ghost' }, grpc.status.NOT_FOUND],
      ['DrainNode', { id: 'ghost' }, grpc.status.NOT_FOUND],
    ];
    for (const [method, req, code] of bad) {
      const e = await admin(adm, method, req).catch((x) => x);
      expect(e.code, `${method} ${JSON.stringify(req)}`).toBe(code);
      expect(e.details.length).toBeGreaterThan(0);
    }
    // Unchanged, but for each node's last probe round trip (a measurement, not table state).
    const probeTimesAside = (t: TableReply) => ({
      ...t,
      nodes: t.nodes.map(({ healthLatencyMs: _, ...n }) => n),
    });
    expect(probeTimesAside(await getTable(adm))).toEqual(probeTimesAside(before));

    const changed = await admin<{ epoch: number }>(adm, 'AssignSpace', {
      spaceId: space,
      primary: target,
      replicas: [],
    });
    expect(changed.epoch).toBe(before.epoch + 1);
    // Fresh connections land on both workers (the kernel spreads accepts over them).
    for (let i = 0; i < 12; i++) {
      const client = memoryClient(cleanup, router.address, true);
      const r = await call(client, 'recall', { spaceId: space, cue: { text: 'x' } });
      expect(r.routing?.servedBy).toBe(target);
      expect(r.routing?.tableEpoch).toBe(changed.epoch);
    }
    const t = await getTable(adm);
    expect(t.assignments).toEqual([{ spaceId: space, primary: target, replicas: [] }]);
  });

  it('exposes /metrics that count calls across workers', async () => {
    const c = await cluster();
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 2 }));
    const calls = 40;
    const clients = Array.from({ length: 8 }, () => memoryClient(cleanup, router.address, true));
    await Promise.all(
      Array.from({ length: calls }, (_, i) =>
        call(clients[i % clients.length]!, 'recall', { spaceId: `m${i}`, cue: { text: 'x' } }),
      ),
    );
    await call(clients[0]!, 'store', { spaceId: 'm0', memory: { content: 'x' } });
    const text = await scrape(router.metricsPort);
    expect(
      metricValue(
        text,
        'engram_router_request_duration_seconds_count',
        'operation="recall"',
        'outcome="ok"',
      ),
    ).toBe(calls);
    expect(
      metricValue(
        text,
        'engram_router_request_duration_seconds_count',
        'operation="store"',
        'outcome="ok"',
      ),
    ).toBe(1);
    expect(metricValue(text, 'engram_router_decision_duration_seconds_count')).toBe(calls + 1);
    expect(metricValue(text, 'engram_router_table_epoch')).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'engram_router_breaker_state')).toBe(0);
    expect(metricValue(text, 'engram_router_workers')).toBe(2);
    expect(metricValue(text, 'engram_router_pool_channels')).toBeGreaterThanOrEqual(3);
    expect(text).toContain('# TYPE engram_router_retries_total counter');
  });
});
