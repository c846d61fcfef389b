import type { MemoryNode } from '@engram/memory-node';
import { ConnectionPool } from '@engram/pool';
import { buildRing, type NodeInfo } from '@engram/ring';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../src/index.js';
import { infoOf, startNodes } from './helpers.js';

let nodes: MemoryNode[] = [];
let infos: NodeInfo[] = [];

beforeAll(async () => {
  nodes = await startNodes(2, 'pm');
  infos = nodes.map(infoOf);
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

describe('pool membership', () => {
  it('keeps reaching a node its shared pool removed and re-added (node restarted)', async () => {
    const pool = new ConnectionPool();
    const router = new Router({
      table: buildRing({ nodes: infos, replicationFactor: 1, vnodesPerNode: 16 }),
      pool,
    });
    try {
      const primary = router.routeRecall('space-x').primary;
      await router.recall({ spaceId: 'space-x', cue: { text: 'x' } });
      await pool.removeNode(primary.id);
      pool.addNode(primary.id, primary.address);
      const again = await router.recall({ spaceId: 'space-x', cue: { text: 'x' } });
      expect(again.routing?.servedBy).toBe(primary.id);
      // Removed and not re-added by its owner: the router registers it again on use.
      await pool.removeNode(primary.id);
      const third = await router.recall({ spaceId: 'space-x', cue: { text: 'x' } });
      expect(third.routing?.servedBy).toBe(primary.id);
    } finally {
      await router.close();
      await pool.close();
    }
  });
});
