import { ConnectionPool } from '@engram/pool';
import { buildRing, type NodeInfo, TableReader, TableWriter } from '@engram/ring';
import { describe, expect, it, vi } from 'vitest';
import { type NodeState, Router } from '../src/index.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
];
const RING = buildRing({
  nodes: NODES,
  vnodesPerNode: 8,
  assignments: [{ spaceId: 's', primary: 'a', replicas: ['b'] }],
});

describe('a node coming back', () => {
  it('gets its pooled connections replaced at once when its state goes back to up', async () => {
    const writer = new TableWriter({ maxNodes: 4, maxTokens: 64, maxReplicationFactor: 3 });
    writer.publish(RING);
    const pool = new ConnectionPool();
    const reconnect = vi.spyOn(pool, 'reconnectNow');
    const states = new Map<string, NodeState>([['a', 'down']]);
    const r = new Router({
      table: new TableReader(writer.buffer),
      pool,
      managePool: true,
      nodeStates: { stateOf: (node) => states.get(node.id) ?? 'up' },
    });
    r.routeRecall('s');
    expect(reconnect).not.toHaveBeenCalled();
    states.set('a', 'up');
    writer.publish(RING); // a health verdict is published as a new epoch
    r.routeRecall('s');
    expect(reconnect.mock.calls).toEqual([['a']]);
    writer.publish(RING);
    r.routeRecall('s');
    expect(reconnect).toHaveBeenCalledTimes(1);
    await r.close();
    await pool.close();
  });
});
