import type { MemoryNode } from '@engram/memory-node';
import type { NodeInfo, PlacementTable, Ring } from '@engram/ring';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../src/index.js';
import { infoOf, ringOf, startNodes } from './helpers.js';

let nodes: MemoryNode[] = [];
let infos: NodeInfo[] = [];

beforeAll(async () => {
  nodes = await startNodes(2, 'qe');
  infos = nodes.map(infoOf);
});
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

/** A table whose epoch the test moves (as a TableReader's moves when a table is published). */
function movable(ring: Ring): PlacementTable & { epochValue: number } {
  const table = {
    epochValue: 5,
    get epoch() {
      return table.epochValue;
    },
    get nodes() {
      return ring.nodes;
    },
    get maxPlacementSize() {
      return ring.maxPlacementSize;
    },
    lookupInto: (id: string, out: Uint16Array) => ring.lookupInto(id, out),
    nodeIndex: (id: string) => ring.nodeIndex(id),
    nodeSlot: (i: number) => ring.nodeSlot(i),
  };
  return table as unknown as PlacementTable & { epochValue: number };
}

describe('query routing info', () => {
  it("reports the epoch its decisions used, not the table's epoch at the end", async () => {
    const table = movable(ringOf(infos, [], 1));
    const router = new Router({
      table,
      // The table moves on while the query is in flight.
      hooks: {
        onAttempt: () => {
          table.epochValue = 6;
        },
      },
    });
    try {
      const response = await router.query({ spaceIds: ['q1', 'q2'], cue: { text: 'x' } });
      expect(response.errors).toEqual([]);
      expect(response.routing?.tableEpoch).toBe(5);
    } finally {
      await router.close();
    }
  });
});
