import type { MemoryNode } from '@engram/memory-node';
import { ConnectionPool } from '@engram/pool';
import { RetryBudget } from '@engram/retry';
import type { NodeInfo, PlacementTable } from '@engram/ring';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Router, type RouterInit } from '../src/index.js';
import { infoOf, refusedAddress, ringOf, startNodes } from './helpers.js';

let nodes: MemoryNode[] = [];
let infos: NodeInfo[] = [];
const routers: Router[] = [];

beforeAll(async () => {
  nodes = await startNodes(3);
  infos = nodes.map(infoOf);
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

function router(init: Partial<RouterInit> & { table: RouterInit['table'] }): Router {
  const r = new Router({
    budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    ...init,
  });
  routers.push(r);
  return r;
}

const memory = (content: string) => ({ content, embedding: [1, 0, 0], confidence: 0.9 });

describe('router over a real 3-node cluster', () => {
  it('stores to the primary and recalls from it (the seed mode: replicateWrites off)', async () => {
    const r = router({
      table: ringOf(infos, [{ spaceId: 'alpha', primary: 'n2', replicas: ['n3', 'n1'] }]),
      options: { replicateWrites: false },
    });
    const stored = await r.store({ spaceId: 'alpha', memory: memory('the sky is blue') });
    expect(stored.memoryId).not.toBe('');
    expect(stored.routing).toEqual({
      servedBy: 'n2',
      attempts: 1,
      fallback: false,
      strategy: 'Primary',
      tableEpoch: 0,
      acknowledged: 0,
      asked: 0,
      degraded: false,
    });
    const recalled = await r.recall({
      spaceId: 'alpha',
      cue: { text: 'sky', embedding: [1, 0, 0] },
      limit: 5,
    });
    expect(recalled.routing).toMatchObject({ servedBy: 'n2', attempts: 1, fallback: false });
    expect(recalled.memories.map((m) => m.memory?.id)).toContain(stored.memoryId);
  });

  it('gives memories without an id a UUID before the first attempt, so retries overwrite, not duplicate', async () => {
    const table = ringOf(infos, [{ spaceId: 'ids', primary: 'n1', replicas: ['n2'] }]);
    const r = router({ table });
    const stored = await r.store({ spaceId: 'ids', memory: memory('with a router id') });
    expect(stored.memoryId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    // Storing the same id again replaces it (what a retry after a lost answer does).
    await r.store({
      spaceId: 'ids',
      memory: { ...memory('with a router id'), id: stored.memoryId },
    });
    const recalled = await r.recall({ spaceId: 'ids', cue: { text: 'router id' } });
    expect(recalled.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
    // Ids from the nodes: only without replicated writes (each replica would pick its own).
    const nodeIds = router({ table, options: { assignMemoryIds: false, replicateWrites: false } });
    const byNode = await nodeIds.store({ spaceId: 'ids', memory: memory('node id') });
    expect(byNode.memoryId.startsWith('n1-')).toBe(true);
  });

  it('routes every space to its ring primary (many spaces, all three nodes used)', async () => {
    const table = ringOf(infos);
    const r = router({ table });
    const served = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const spaceId = `space-${i}`;
      const stored = await r.store({ spaceId, memory: memory(`memory ${i}`) });
      expect(stored.routing?.servedBy).toBe(table.lookup(spaceId).primary.id);
      served.add(stored.routing!.servedBy);
      const recalled = await r.recall({ spaceId, cue: { text: `memory ${i}` } });
      expect(recalled.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
    }
    expect(served.size).toBe(3);
  });

  it('recalls with fall-back when the primary is unreachable', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const table = ringOf(
      [...infos, dead],
      [{ spaceId: 'beta', primary: 'dead', replicas: ['n1', 'n2'] }],
    );
    const r = router({ table });
    const recalled = await r.recall({ spaceId: 'beta', cue: { text: 'x' } });
    expect(recalled.routing).toMatchObject({ servedBy: 'n1', attempts: 2, fallback: true });
  });

  it('falls back to the first healthy replica for a store when the primary fails, and says so (seed mode)', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const table = ringOf(
      [...infos, dead],
      [{ spaceId: 'gamma', primary: 'dead', replicas: ['n3', 'n1'] }],
    );
    const r = router({ table, options: { replicateWrites: false } });
    const stored = await r.store({
      spaceId: 'gamma',
      memory: memory('written while the primary is down'),
    });
    expect(stored.routing).toMatchObject({ servedBy: 'n3', fallback: true, strategy: 'Primary' });
    // With storeFallback off the store fails instead.
    const strict = router({
      table,
      options: { storeFallback: false, replicateWrites: false, maxRetries: 1, retryBaseDelayMs: 1 },
    });
    await expect(strict.store({ spaceId: 'gamma', memory: memory('no') })).rejects.toMatchObject({
      code: 'ConnectionFailed',
      attempts: 2,
    });
  });

  it('answers an unreachable primary from a replica at the first fail-over, without backoff (defaults)', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const table = ringOf(
      [...infos, dead],
      [{ spaceId: 'delta', primary: 'dead', replicas: ['n2', 'n3'] }],
    );
    const events: string[] = [];
    const r = router({
      table,
      hooks: {
        onAttempt: (_op, node, outcome, _ms, error) =>
          events.push(
            `${node.id} ${outcome}${(error as { code?: unknown } | undefined)?.code === 'AttemptTimeout' ? ' timeout' : ''}`,
          ),
        onRetry: (_op, node, _n, delayMs) => events.push(`retry ${node.id} after ${delayMs}`),
      },
    });
    const started = performance.now();
    const recalled = await r.recall({ spaceId: 'delta', cue: { text: 'x' } });
    expect(recalled.routing).toMatchObject({ servedBy: 'n2', attempts: 2, fallback: true });
    // "Answered within 2 s" by mechanism: the refused primary failed fast (no attempt timeout
    // waited out) and the replica was tried at once (no backoff sleep), then served.
    expect(events).toEqual(['dead error', 'retry n2 after 0', 'n2 ok']);
    // Generous bound only: finished before the 10 s default deadline.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('routes LocalOnly during a partition: the local copy serves, other spaces are NoLocalData', async () => {
    let partitioned = false;
    const table = ringOf(infos, [
      { spaceId: 'local', primary: 'n1', replicas: ['n3'] },
      { spaceId: 'remote', primary: 'n1', replicas: ['n2'] },
    ]);
    const r = router({ table, localNodeId: 'n3', partition: { isPartitioned: () => partitioned } });
    await r.store({ spaceId: 'local', memory: memory('before the partition') });
    partitioned = true;
    const recalled = await r.recall({ spaceId: 'local', cue: { text: 'partition' } });
    expect(recalled.routing).toMatchObject({
      servedBy: 'n3',
      strategy: 'LocalOnly',
      fallback: false,
    });
    await expect(r.recall({ spaceId: 'remote', cue: { text: 'x' } })).rejects.toMatchObject({
      code: 'NoLocalData',
    });
  });

  it('consolidates on one node', async () => {
    const table = ringOf(infos, [{ spaceId: 'dups', primary: 'n2', replicas: ['n1'] }]);
    const r = router({ table, localNodeId: 'n2' });
    await r.store({ spaceId: 'dups', memory: memory('same') });
    await r.store({ spaceId: 'dups', memory: memory('same') });
    const result = await r.consolidate({ spaceId: 'dups', similarityThreshold: 0.9 });
    expect(result.routing).toMatchObject({ servedBy: 'n2', strategy: 'LocalOnly' });
    expect(result.memoriesBefore).toBe(2);
    expect(result.memoriesAfter).toBe(1);
  });

  it('query scatter-gathers: one dead space returns the others results and one error', async () => {
    const deadA = { id: 'deadA', address: await refusedAddress() };
    const deadB = { id: 'deadB', address: await refusedAddress() };
    const table = ringOf(
      [...infos, deadA, deadB],
      [
        { spaceId: 'q1', primary: 'n1', replicas: ['n2'] },
        { spaceId: 'q2', primary: 'n2', replicas: ['n3'] },
        { spaceId: 'q3', primary: 'deadA', replicas: ['deadB'] },
      ],
    );
    const r = router({ table, options: { maxRetries: 1, retryBaseDelayMs: 1 } });
    await r.store({ spaceId: 'q1', memory: memory('one') });
    await r.store({ spaceId: 'q2', memory: memory('two') });
    const response = await r.query({
      spaceIds: ['q1', 'q2', 'q3'],
      cue: { text: 'one two' },
      limit: 5,
    });
    expect(response.results.map((s) => s.spaceId).sort()).toEqual(['q1', 'q2']);
    expect(response.results.every((s) => s.memories.length === 1)).toBe(true);
    expect(response.errors).toHaveLength(1);
    expect(response.errors[0]).toMatchObject({ spaceId: 'q3', code: 14 });
    expect(response.errors[0]!.message).toMatch(/^AllReplicasFailed/);
    expect(response.routing).toMatchObject({ strategy: 'ScatterGather' });
    expect(response.routing!.servedBy.split(',').sort()).toEqual(['n1', 'n2']);
  });

  it('query reports a space without a route (partitioned, not local) as that space s error', async () => {
    let partitioned = false;
    const table = ringOf(infos, [
      { spaceId: 'mine', primary: 'n1', replicas: ['n2'] },
      { spaceId: 'theirs', primary: 'n3', replicas: ['n2'] },
    ]);
    const r = router({ table, localNodeId: 'n1', partition: { isPartitioned: () => partitioned } });
    await r.store({ spaceId: 'mine', memory: memory('kept locally') });
    partitioned = true;
    const response = await r.query({ spaceIds: ['mine', 'theirs', 'mine'], cue: { text: 'kept' } });
    expect(response.results.map((s) => s.spaceId)).toEqual(['mine']);
    expect(response.errors).toEqual([
      { spaceId: 'theirs', code: 14, message: expect.stringMatching(/^NoLocalData/) },
    ]);
    await expect(r.query({ spaceIds: ['ok', ''] })).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
  });

  it('reports its own pool s connections to onPoolConnection', async () => {
    const events: string[] = [];
    const r = router({
      table: ringOf(infos, [{ spaceId: 'pooled', primary: 'n3', replicas: [] }]),
      hooks: {
        onPoolConnection: (nodeId, type, kind, open) =>
          events.push(`${nodeId} ${type} ${kind} ${open}`),
      },
    });
    await r.recall({ spaceId: 'pooled', cue: { text: 'x' } });
    await r.close();
    expect(events).toEqual(['n3 open channel 1', 'n3 close channel 0']);
  });

  it('breaker prevents cascade: after the threshold the dead primary is no longer called', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const table = ringOf([...infos, dead], [{ spaceId: 'eps', primary: 'dead', replicas: ['n1'] }]);
    const attempted: string[] = [];
    const r = router({
      table,
      options: { breakerThreshold: 3 },
      hooks: { onAttempt: (_op, node, outcome) => attempted.push(`${node.id}:${outcome}`) },
    });
    for (let i = 0; i < 3; i++) await r.recall({ spaceId: 'eps', cue: { text: 'x' } });
    expect(attempted.filter((a) => a === 'dead:error')).toHaveLength(3);
    attempted.length = 0;
    for (let i = 0; i < 5; i++) {
      const recalled = await r.recall({ spaceId: 'eps', cue: { text: 'x' } });
      expect(recalled.routing).toMatchObject({ servedBy: 'n1', attempts: 1 });
    }
    // The dead primary is refused by its breaker (no call made), the replica serves.
    expect(attempted).toEqual(Array(5).fill(['dead:rejected', 'n1:ok']).flat());
  });

  it('treats a node address the pool rejects as InvalidEndpoint and fails over', async () => {
    const base = ringOf(infos, [{ spaceId: 'ie', primary: 'n1', replicas: ['n2'] }]);
    const broken = base.nodes.map((n) => (n.id === 'n1' ? { ...n, address: 'not an address' } : n));
    // A hand-made PlacementTable (e.g. a custom control plane) that carries a bad address.
    const table: PlacementTable = {
      epoch: 0,
      nodes: broken,
      replicationFactor: base.replicationFactor,
      maxPlacementSize: base.maxPlacementSize,
      lookup: (s) => base.lookup(s),
      lookupInto: (s, out) => base.lookupInto(s, out),
      nodeIndex: (id) => base.nodeIndex(id),
      nodeSlot: (i) => base.nodeSlot(i),
      pending: base.pending,
      futureInto: (s, out) => base.futureInto(s, out),
      pendingInto: (s, out) => base.pendingInto(s, out),
      lookupFuture: (s) => base.lookupFuture(s),
      nodeRole: (i) => base.nodeRole(i),
    };
    const r = router({ table });
    const recalled = await r.recall({ spaceId: 'ie', cue: { text: 'x' } });
    expect(recalled.routing).toMatchObject({ servedBy: 'n2', fallback: true });
    const strict = router({ table, options: { replicaFallback: false, maxRetries: 0 } });
    await expect(strict.recall({ spaceId: 'ie', cue: { text: 'x' } })).rejects.toMatchObject({
      code: 'InvalidEndpoint',
      nodeId: 'n1',
    });
  });

  it('gives a node error (INVALID_ARGUMENT) back without fall-back', async () => {
    const table = ringOf(infos, [{ spaceId: 'bad', primary: 'n1', replicas: ['n2'] }]);
    const r = router({ table });
    await expect(
      r.store({ spaceId: 'bad', memory: { content: 'x', confidence: 7 } }),
    ).rejects.toMatchObject({ code: 3 });
  });

  it('uses the pool round robin across a node s channels', async () => {
    const pool = new ConnectionPool({ channelsPerNode: 3 });
    try {
      const r = router({ table: ringOf(infos), pool });
      const slot = pool.addNode('n1', nodes[0]!.address);
      const seen = [0, 1, 2, 3, 4, 5].map(() => pool.acquireChannel(slot));
      expect(new Set(seen).size).toBe(3);
      expect(seen.slice(3)).toEqual(seen.slice(0, 3));
      // The router's calls go through that same pool.
      const stored = await r.store({ spaceId: 'rr', memory: memory('x') });
      expect(stored.routing?.servedBy).toBeDefined();
      expect(pool.channelCount).toBeGreaterThanOrEqual(3);
    } finally {
      await pool.close();
    }
  });
});
