import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
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

  it("replaces the node's broken connections before a half-open breaker's probe call, and only then", async () => {
    const writer = new TableWriter({ maxNodes: 4, maxTokens: 64, maxReplicationFactor: 3 });
    writer.publish(RING);
    const table = new TableReader(writer.buffer);
    const pool = new ConnectionPool();
    const reconnect = vi.spyOn(pool, 'reconnectNow');
    const breakers = new BreakerTable({ capacity: 4, trip: new ConsecutiveFailures(1) });
    const r = new Router({ table, pool, managePool: true, breakers });
    const a = NODES[0]!;
    const slot = r.slotOf(a);
    const reached: string[] = [];
    const call = async (ctx: { node: NodeInfo }) => {
      reached.push(ctx.node.id);
      return 'ok';
    };
    const decision = () => r.routeStore('s');
    // Closed: calls go as they are.
    await r.execute(decision(), call);
    expect(reconnect).not.toHaveBeenCalled();
    // Open: refused without a call, nothing dialled.
    breakers.onFailure(slot, breakers.tryAcquire(slot));
    expect(breakers.state(slot)).toBe('open');
    reached.length = 0;
    await expect(r.execute(decision(), call)).rejects.toMatchObject({
      code: 'CircuitBreakerOpen',
    });
    expect(reached).toEqual([]);
    expect(reconnect).not.toHaveBeenCalled();
    // Half-open (marked up elsewhere): its one probe call goes over fresh connections.
    breakers.recovered(slot);
    reached.length = 0;
    await r.execute(decision(), call);
    expect(reached).toEqual(['a']);
    expect(reconnect.mock.calls).toEqual([['a']]);
    expect(breakers.state(slot)).toBe('closed');
    await r.execute(decision(), call);
    expect(reconnect).toHaveBeenCalledTimes(1);
    await r.close();
    await pool.close();
  });

  it('leaves a pool it does not manage alone on a probe call', async () => {
    const writer = new TableWriter({ maxNodes: 4, maxTokens: 64, maxReplicationFactor: 3 });
    writer.publish(RING);
    const pool = new ConnectionPool();
    const reconnect = vi.spyOn(pool, 'reconnectNow');
    const breakers = new BreakerTable({ capacity: 4, trip: new ConsecutiveFailures(1) });
    const r = new Router({ table: new TableReader(writer.buffer), pool, breakers });
    const slot = r.slotOf(NODES[0]!);
    breakers.onFailure(slot, breakers.tryAcquire(slot));
    breakers.recovered(slot);
    await r.execute(r.routeStore('s'), async () => 'ok');
    expect(breakers.state(slot)).toBe('closed');
    expect(reconnect).not.toHaveBeenCalled();
    await r.close();
    await pool.close();
  });
});
