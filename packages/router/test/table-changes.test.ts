import type { MemoryNode } from '@engram/memory-node';
import { ConnectionPool } from '@engram/pool';
import { buildRing, type NodeInfo, TableReader, TableWriter } from '@engram/ring';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../src/index.js';
import { infoOf, startNodes } from './helpers.js';

let nodes: MemoryNode[] = [];
let infos: NodeInfo[] = [];

beforeAll(async () => {
  nodes = await startNodes(2, 'tc');
  infos = nodes.map(infoOf);
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

function sharedTable(initial: readonly NodeInfo[]) {
  const writer = new TableWriter({ maxNodes: 16, maxTokens: 1 << 14 });
  writer.publish(buildRing({ nodes: initial, vnodesPerNode: 64 }));
  return { writer, reader: new TableReader(writer.buffer) };
}

async function recallAll(router: Router, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await router.recall({ spaceId: `s${i}`, cue: { text: 'x' } });
}

describe('table changes', () => {
  it("closes a departed node's connections in the router's own pool", async () => {
    const { writer, reader } = sharedTable(infos);
    const router = new Router({ table: reader });
    try {
      await recallAll(router, 30);
      expect(router.pool.nodeIds().sort()).toEqual(['tc1', 'tc2']);
      writer.publish(buildRing({ nodes: [infos[0]!], vnodesPerNode: 64 }));
      await recallAll(router, 5);
      expect(router.pool.nodeIds()).toEqual(['tc1']);
    } finally {
      await router.close();
    }
  });

  it('never removes nodes from a pool the caller passed in', async () => {
    const { writer, reader } = sharedTable(infos);
    const pool = new ConnectionPool();
    const router = new Router({ table: reader, pool });
    try {
      await recallAll(router, 30);
      writer.publish(buildRing({ nodes: [infos[0]!], vnodesPerNode: 64 }));
      await recallAll(router, 5);
      expect(pool.nodeIds().sort()).toEqual(['tc1', 'tc2']);
    } finally {
      await router.close();
      await pool.close();
    }
  });

  it('frees the private breaker slots of departed nodes, reset before reuse', () => {
    const fake = (id: string): NodeInfo => ({ id, address: `127.0.0.1:${1000 + id.length}` });
    const { writer, reader } = sharedTable([fake('a'), fake('bb')]);
    const router = new Router({ table: reader, options: { breakerCapacity: 2 } });
    router.routeRecall('x');
    const a = reader.nodes[reader.nodeIndex('a')]!;
    const slotA = router.slotOf(a);
    expect(slotA).toBeGreaterThanOrEqual(0);
    router.breakers.onFailure(slotA, router.breakers.tryAcquire(slotA));
    for (let i = 0; i < 10; i++)
      router.breakers.onFailure(slotA, router.breakers.tryAcquire(slotA));
    expect(router.breakers.state(slotA)).toBe('open');
    // a and bb leave, ccc and dddd join: with capacity 2 both must still get a breaker.
    writer.publish(buildRing({ nodes: [fake('ccc'), fake('dddd')], vnodesPerNode: 64 }));
    router.routeRecall('x');
    const slots = reader.nodes.map((n) => router.slotOf(n));
    expect(slots.every((s) => s >= 0)).toBe(true);
    expect(new Set(slots).size).toBe(2);
    for (const s of slots) expect(router.breakers.state(s)).toBe('closed');
    void router.close();
  });
});
