import { buildRing } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  digestOn,
  eventually,
  getTable,
  idsOn,
  memoryClient,
  metricValue,
  scrape,
  spawnRouter,
  tempDir,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/**
 * Settings of these tests. The deadline is short because a membership change waits one
 * deadline (writes decided on the old table finish) before streaming; the attempt timeout
 * bounds a write to a stopped node. A node back from a kill is tried through its half-open
 * breaker: on a machine busy enough that the one probe call outlasts the 500 ms attempt
 * timeout, the breaker opens again for `breakerTimeoutMs`; 1 s (not the 30 s default) keeps
 * the next try inside the waits below, which are about data, not breaker timing.
 */
const MOVING = {
  deadlineMs: 2000,
  attemptTimeoutMs: 500,
  retryBaseDelayMs: 20,
  breakerTimeoutMs: 1000,
};

async function cluster(count: number): Promise<LocalCluster> {
  const c = await LocalCluster.start(count, 2);
  cleanup.add(() => c.stop());
  return c;
}

/** Three nodes and a router in front of them (MOVING settings, `extra` on top), with clients. */
async function routed(extra: Record<string, unknown> = {}) {
  const c = await cluster(3);
  const router = await spawnRouter(
    cleanup,
    testConfig({
      nodes: c.configs,
      workers: 1,
      ...extra,
      router: { ...MOVING, ...(extra.router as object) },
    }),
  );
  const client = memoryClient(cleanup, router.address);
  const adm = adminClient(cleanup, router.adminPort);
  return { c, router, client, adm };
}

function placement(nodes: LocalCluster['configs'], spaceId: string): string[] {
  const p = buildRing({ nodes, vnodesPerNode: 256 }).lookup(spaceId);
  return [p.primary.id, ...p.replicas.map((r) => r.id)];
}

describe('data follows placement (router-node, real processes)', () => {
  it('a replica answers with the data after kill -9 of the primary; outage writes reach it by hints', async () => {
    const { c, router, client, adm } = await routed();
    const space = 'kept/space';
    const [primary] = placement(c.configs, space);
    const before: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await call(client, 'store', { spaceId: space, memory: { content: `before ${i}` } });
      before.push(r.memoryId);
    }
    // A Store is answered once a quorum acknowledged it; the last replica's write may still be
    // in flight. The primary is killed once it holds every write, so the outage's hints are
    // exactly the writes made during it.
    await eventually(async () => {
      const held = await idsOn(cleanup, c.node(primary!).config.address, space);
      return before.every((id) => held.has(id));
    });
    await c.kill(primary!);
    const recalled = await call(client, 'recall', { spaceId: space, cue: { text: '' }, limit: 50 });
    expect(recalled.routing?.fallback).toBe(true);
    expect(recalled.memories.map((m) => m.memory?.id).sort()).toEqual([...before].sort());

    const during: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await call(client, 'store', { spaceId: space, memory: { content: `during ${i}` } });
      expect(r.routing).toMatchObject({ acknowledged: 2, asked: 3, degraded: true });
      during.push(r.memoryId);
    }
    await eventually(async () => {
      const t = (await getTable(adm)) as unknown as {
        nodes: { id: string; hintsPending: number }[];
      };
      const pending = Number(t.nodes.find((n) => n.id === primary)?.hintsPending);
      // Thrown, not false: a timeout then reports what the table said last.
      if (pending !== 4) throw new Error(`hints pending ${pending}: ${JSON.stringify(t.nodes)}`);
      return true;
    });
    const node = `node="${primary}"`;
    const outage = await scrape(router.metricsPort);
    expect(metricValue(outage, 'engram_router_hints_pending', node)).toBe(4);
    expect(metricValue(outage, 'engram_router_hints_stored_total', node)).toBe(4);
    expect(metricValue(outage, 'engram_router_hint_bytes_pending', node)).toBeGreaterThan(0);
    const writes = 'engram_router_replicated_writes_total';
    expect(metricValue(outage, writes, 'result="full"')).toBe(6);
    expect(metricValue(outage, writes, 'result="degraded"')).toBe(4);
    await c.restart(primary!);
    // Replayed once the node is up; the node then holds every write.
    await eventually(async () => {
      const held = await idsOn(cleanup, c.node(primary!).config.address, space);
      return [...before, ...during].every((id) => held.has(id));
    }, 20_000);
    let last: unknown;
    const back = await eventually(async () => {
      const r = await call(client, 'recall', { spaceId: space, cue: { text: '' }, limit: 50 });
      last = { routing: r.routing, table: (await getTable(adm)).nodes };
      return r.routing?.servedBy === primary ? r : undefined;
    }).catch((e: Error) => {
      // What kept reads off the primary (health, hints, lag), for a failure report.
      throw new Error(`${e.message}; last: ${JSON.stringify(last)}`);
    });
    expect(back.memories).toHaveLength(10);
    const after = await scrape(router.metricsPort);
    expect(metricValue(after, 'engram_router_hints_pending', node)).toBe(0);
    expect(metricValue(after, 'engram_router_hint_bytes_pending', node)).toBe(0);
    expect(metricValue(after, 'engram_router_hints_replayed_total', node)).toBe(4);
    expect(metricValue(after, 'engram_router_hints_dropped_total', node)).toBe(0);
  });

  it('majority loss: the survivor serves every recall (degraded); a quorum write is refused, typed', async () => {
    const { c, client, adm } = await routed();
    const spaces = Array.from({ length: 12 }, (_, i) => `loss/${i}`);
    for (const s of spaces) await call(client, 'store', { spaceId: s, memory: { content: s } });
    await c.kill('n1');
    await c.kill('n2');
    await eventually(async () => (await getTable(adm)).partitioned);
    for (const s of spaces) {
      const r = await call(client, 'recall', { spaceId: s, cue: { text: '' } });
      expect(r.routing).toMatchObject({ servedBy: 'n3', degraded: true });
      expect(r.memories.map((m) => m.memory?.content)).toEqual([s]);
    }
    const err = (await call(client, 'store', {
      spaceId: spaces[0]!,
      memory: { content: 'x' },
    }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.metadata.get('x-engram-error')).toEqual(['InsufficientReplicas']);
    expect(err.details).toBe(
      'InsufficientReplicas: 1 of 3 replicas acknowledged the write, 2 required; ' +
        'it may exist on the replicas that took it',
    );
  });

  it('a node added under traffic gets its spaces streamed before it serves a read; a drained node hands its spaces over before it goes', async () => {
    const { c, router, client, adm } = await routed({ workers: 2, dataDir: tempDir(cleanup) });
    const acked = new Map<string, string[]>();
    const spaces = Array.from({ length: 40 }, (_, i) => `grow/${i}`);
    for (const s of spaces) acked.set(s, []);
    let n = 0;
    const storeOne = async () => {
      const s = spaces[n++ % spaces.length]!;
      const r = await call(client, 'store', { spaceId: s, memory: { content: `m${n}` } });
      acked.get(s)!.push(r.memoryId);
    };
    for (let i = 0; i < 120; i++) await storeOne();
    const n4 = await c.add('n4', 'b');
    await admin(adm, 'AddNode', { id: 'n4', address: n4.config.address, zone: 'b' });
    // Writes keep coming while n4 joins.
    let joined = false;
    const writer = (async () => {
      while (!joined) await storeOne();
    })();
    const table = await eventually(async () => {
      const t = (await getTable(adm)) as unknown as {
        nodes: { id: string; lifecycle: string }[];
        streams: unknown[];
      };
      return t.nodes.find((x) => x.id === 'n4')?.lifecycle === 'active' ? t : undefined;
    }, 30_000);
    expect(table.streams).toEqual([]);
    joined = true;
    await writer;
    const gains = spaces.filter((s) => placement([...c.configs], s).includes('n4'));
    const m = await scrape(router.metricsPort);
    expect(metricValue(m, 'engram_router_transitions_completed_total')).toBe(1);
    expect(metricValue(m, 'engram_router_streamed_spaces_total')).toBe(gains.length);
    expect(metricValue(m, 'engram_router_streamed_entries_total')).toBeGreaterThan(0);
    expect(metricValue(m, 'engram_router_stream_spaces_done')).toBe(0); // no change in progress
    // Every space n4 now holds is complete on it: every write acknowledged so far.
    const all = [...c.configs];
    let checked = 0;
    for (const s of spaces) {
      if (!placement(all, s).includes('n4')) continue;
      const held = await idsOn(cleanup, n4.config.address, s);
      for (const id of acked.get(s)!) expect(held.has(id), `${s} ${id} on n4`).toBe(true);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);

    await admin(adm, 'DrainNode', { id: 'n1' });
    await eventually(async () => {
      const t = (await getTable(adm)) as unknown as { nodes: { id: string; lifecycle: string }[] };
      return t.nodes.find((x) => x.id === 'n1')?.lifecycle === 'drained';
    }, 30_000);
    await c.kill('n1');
    const remaining = all.filter((x) => x.id !== 'n1');
    for (const s of spaces) {
      for (const id of placement(remaining, s)) {
        const held = await idsOn(cleanup, c.node(id).config.address, s);
        for (const m of acked.get(s)!) expect(held.has(m), `${s} ${m} on ${id}`).toBe(true);
      }
      const r = await call(client, 'recall', { spaceId: s, cue: { text: '' }, limit: 100 });
      expect(r.memories.length).toBe(acked.get(s)!.length);
    }
  });

  it('RepairSpace gives every replica what one was written behind the router; Consolidate leaves the replicas equal', async () => {
    const { c, router, client, adm } = await routed();
    const space = 'agree/space';
    const owners = placement(c.configs, space);
    const near = [
      [1, 0, 0],
      [0.99, 0.01, 0],
      [0.98, 0.02, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
    for (const [i, embedding] of near.entries()) {
      await call(client, 'store', { spaceId: space, memory: { content: `m${i}`, embedding } });
    }
    // A write straight to the last replica: the others never see it.
    const last = c.node(owners[2]!).config.address;
    const direct = memoryClient(cleanup, last);
    await call(direct, 'store', {
      spaceId: space,
      memory: { id: 'behind', content: 'behind', embedding: [0, 0.7, 0.7], version: 1 },
    });
    const digests = () =>
      Promise.all(owners.map((id) => digestOn(cleanup, c.node(id).config.address, space)));
    expect(new Set(await digests()).size).toBe(2);
    const repaired = await admin<{ spaces: number; differed: number; applied: string }>(
      adm,
      'RepairSpace',
      { spaceId: space },
    );
    expect(repaired).toMatchObject({ spaces: 1, differed: 1, unreachable: [] });
    expect(Number(repaired.applied)).toBe(2);
    expect(new Set(await digests()).size).toBe(1);
    for (const id of owners) {
      expect((await idsOn(cleanup, c.node(id).config.address, space)).get('behind')).toBe(1);
    }

    const consolidated = await call(client, 'consolidate', {
      spaceId: space,
      similarityThreshold: 0.95,
    });
    expect(consolidated).toMatchObject({ memoriesBefore: 6, memoriesAfter: 4 });
    // The merges are on every replica (same survivors, same tombstones, same versions).
    const after = await digests();
    expect(new Set(after).size).toBe(1);
    expect(after[0]).toMatch(/^4:2:/);
    const again = await admin<{ differed: number }>(adm, 'RepairSpace', { spaceId: space });
    expect(again.differed).toBe(0);

    // A replica down during a consolidation: the answer stands (the primary consolidated),
    // degraded; the replica is marked for a repair and gets the merges once it is back.
    for (const embedding of [
      [0, 0.1, 0.99],
      [0, 0.11, 0.99],
    ]) {
      await call(client, 'store', { spaceId: space, memory: { content: 'pair', embedding } });
    }
    await c.kill(owners[2]!);
    const partly = await call(client, 'consolidate', { spaceId: space, similarityThreshold: 0.95 });
    expect(partly.routing).toMatchObject({ servedBy: owners[0], degraded: true });
    expect(partly.memoriesAfter).toBeLessThan(partly.memoriesBefore);
    const needed = `node="${owners[2]}"`;
    expect(
      metricValue(await scrape(router.metricsPort), 'engram_router_repair_needed', needed),
    ).toBe(1);
    await c.restart(owners[2]!);
    await eventually(async () => new Set(await digests()).size === 1, 20_000);
    await eventually(
      async () =>
        metricValue(await scrape(router.metricsPort), 'engram_router_repair_needed', needed) === 0,
    );
  });

  it('readConsistency quorum: Recall and Query merge two replicas, and the replicas are read-repaired', async () => {
    const { c, router, client } = await routed({ router: { readConsistency: 'quorum' } });
    const space = 'quorum/space';
    const owners = placement(c.configs, space);
    const stored = await call(client, 'store', {
      spaceId: space,
      memory: { content: 'everywhere' },
    });
    // Written behind the router to the second replica only: one read of the primary misses it.
    await call(memoryClient(cleanup, c.node(owners[1]!).config.address), 'store', {
      spaceId: space,
      memory: { id: 'second-only', content: 'second only', version: 1 },
    });
    const recalled = await call(client, 'recall', { spaceId: space, cue: { text: '' }, limit: 10 });
    expect(recalled.memories.map((m) => m.memory?.id).sort()).toEqual(
      [stored.memoryId, 'second-only'].sort(),
    );
    // Both replicas asked are named (the first in placement order first).
    expect(recalled.routing).toMatchObject({ servedBy: `${owners[0]},${owners[1]}` });
    const queried = await call(client, 'query', {
      spaceIds: [space],
      cue: { text: '' },
      limit: 10,
    });
    expect(queried.results[0]?.memories.map((m) => m.memory?.id).sort()).toEqual(
      [stored.memoryId, 'second-only'].sort(),
    );
    const digests = () =>
      Promise.all(owners.map((id) => digestOn(cleanup, c.node(id).config.address, space)));
    await eventually(async () => new Set(await digests()).size === 1);
    expect(
      metricValue(await scrape(router.metricsPort), 'engram_router_read_repairs_total'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('a join interrupted by a router restart resumes from its persisted progress', async () => {
    const c = await cluster(3);
    const dataDir = tempDir(cleanup);
    const slow = { ...MOVING, deadlineMs: 4000 };
    const config = testConfig({ nodes: c.configs, workers: 1, dataDir, router: slow });
    const first = await spawnRouter(cleanup, config);
    const client = memoryClient(cleanup, first.address);
    const stored = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const s = `resume/${i}`;
      stored.set(s, (await call(client, 'store', { spaceId: s, memory: { content: s } })).memoryId);
    }
    const n4 = await c.add('n4', 'b');
    // The operator adds n4 to the file and reloads; the router dies while n4 is joining.
    const withN4 = { ...config, nodes: [...c.configs] };
    const { writeFileSync } = await import('node:fs');
    writeFileSync(first.configFile, JSON.stringify(withN4));
    first.child.kill('SIGHUP');
    const adm = adminClient(cleanup, first.adminPort);
    await eventually(async () => {
      const t = (await getTable(adm)) as unknown as { nodes: { id: string; lifecycle: string }[] };
      return t.nodes.find((x) => x.id === 'n4')?.lifecycle === 'joining';
    });
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await spawnRouter(cleanup, withN4, [], first.configFile);
    const adm2 = adminClient(cleanup, second.adminPort);
    const t = (await getTable(adm2)) as unknown as { nodes: { id: string; lifecycle: string }[] };
    expect(t.nodes.find((x) => x.id === 'n4')?.lifecycle).toBe('joining');
    await eventually(async () => {
      const now = (await getTable(adm2)) as unknown as {
        nodes: { id: string; lifecycle: string }[];
      };
      return now.nodes.find((x) => x.id === 'n4')?.lifecycle === 'active';
    }, 30_000);
    for (const [s, id] of stored) {
      if (!placement(c.configs, s).includes('n4')) continue;
      expect((await idsOn(cleanup, n4.config.address, s)).has(id)).toBe(true);
    }
  });
});
