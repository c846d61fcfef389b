import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { ConnectionFailedError, ConnectionPool } from '@engram/pool';
import { RetryBudget } from '@engram/retry';
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

  it('does not count a call the pool failed without reaching the node against its breaker', async () => {
    const breakers = new BreakerTable({ capacity: 4, trip: new ConsecutiveFailures(1) });
    const r = new Router({
      table: RING,
      breakers,
      budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    });
    const notTried = new ConnectionFailedError('a', NODES[0]!.address, new Error('backoff'), false);
    for (let i = 0; i < 5; i++) {
      const { routing } = await r.execute(r.routeRecall('s'), async (ctx) => {
        if (ctx.node.id === 'a') throw notTried;
        return 'ok';
      });
      expect(routing).toMatchObject({ servedBy: 'b', fallback: true });
    }
    expect(breakers.state(RING.nodeSlot(RING.nodeIndex('a')))).toBe('closed');
    // A failure that did reach the node still counts (threshold 1: open at once).
    const refused = new ConnectionFailedError('a', NODES[0]!.address, new Error('refused'));
    await r.execute(r.routeRecall('s'), async (ctx) => {
      if (ctx.node.id === 'a') throw refused;
      return 'ok';
    });
    expect(breakers.state(RING.nodeSlot(RING.nodeIndex('a')))).toBe('open');
    await r.close();
  });
});
