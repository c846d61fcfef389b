import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { buildRing, type NodeInfo, TableReader, TableWriter } from '@engram/ring';
import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  type NodeState,
  type NodeStates,
  Router,
  type RoutingStrategy,
} from '../src/index.js';
import { ringOf } from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
  { id: 'c', address: '127.0.0.1:1003' },
  { id: 'd', address: '127.0.0.1:1004' },
];
const ASSIGN = [
  { spaceId: 's1', primary: 'a', replicas: ['b', 'c'] },
  { spaceId: 's2', primary: 'd', replicas: ['c', 'b'] },
];

function router(init: Partial<ConstructorParameters<typeof Router>[0]> = {}): Router {
  return new Router({ table: ringOf(NODES, ASSIGN), ...init });
}

function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return undefined;
}

describe('routing decisions', () => {
  it('stores are Replicated by default: the whole placement, no pending owners', () => {
    const d = router().routeStore('s1');
    expect(d.strategy).toBe('Replicated');
    expect(d.placement.map((n) => n.id)).toEqual(['a', 'b', 'c']);
    expect(d.pending).toEqual([]);
  });

  it('the seed mode (replicateWrites off): stores are Primary, with replicas in placement order for store fall-back', () => {
    const d = router({ options: { replicateWrites: false } }).routeStore('s1');
    expect(d.primary.id).toBe('a');
    expect(d.replicas.map((n) => n.id)).toEqual(['b', 'c']);
    expect(d.strategy).toBe('Primary');
    expect(d.operation).toBe('store');
    expect(d.spaceId).toBe('s1');
  });

  it('stores carry no replicas when storeFallback is off', () => {
    const d = router({ options: { storeFallback: false, replicateWrites: false } }).routeStore(
      's1',
    );
    expect(d.strategy).toBe('Primary');
    expect(d.replicas).toEqual([]);
  });

  it('recalls follow replicaFallback', () => {
    expect(
      router()
        .routeRecall('s2')
        .replicas.map((n) => n.id),
    ).toEqual(['c', 'b']);
    const off = router({ options: { replicaFallback: false } }).routeRecall('s2');
    expect(off.strategy).toBe('Primary');
    expect(off.replicas).toEqual([]);
  });

  it('agrees with the ring for spaces without an explicit assignment', () => {
    const ring = ringOf(NODES);
    const r = new Router({ table: ring });
    for (let i = 0; i < 50; i++) {
      const placement = ring.lookup(`space-${i}`);
      const d = r.routeRecall(`space-${i}`);
      expect(d.primary).toBe(placement.primary);
      expect(d.replicas).toEqual(placement.replicas);
    }
  });

  it('moves replicas with an open breaker last, keeping the others in order', () => {
    const r = router({ options: { breakerThreshold: 1 } });
    // Open b's breaker: slot assigned on first sight, one failure trips it.
    const slot = r.slotOf(NODES[1]!);
    r.breakers.onFailure(slot, r.breakers.tryAcquire(slot));
    expect(r.breakers.state(slot)).toBe('open');
    expect(r.routeRecall('s1').replicas.map((n) => n.id)).toEqual(['c', 'b']);
    expect(r.routeRecall('s1').primary.id).toBe('a');
  });

  it('uses the shared breaker table at table.nodeSlot(index)', () => {
    const breakers = new BreakerTable({ capacity: 8 });
    const r = router({ breakers });
    const ring = r.table;
    expect(r.slotOf(NODES[2]!)).toBe(ring.nodeSlot(ring.nodeIndex('c')));
  });

  it('while partitioned, routes LocalOnly to the local node when it is primary or replica', () => {
    let partitioned = true;
    const r = router({ localNodeId: 'c', partition: { isPartitioned: () => partitioned } });
    for (const op of ['routeStore', 'routeRecall'] as const) {
      const d = r[op]('s1');
      expect(d.strategy).toBe('LocalOnly');
      expect(d.primary.id).toBe('c');
      expect(d.replicas).toEqual([]);
    }
    partitioned = false;
    expect(r.routeRecall('s1').strategy).toBe('PrimaryWithFallback');
  });

  it('while partitioned, a space the local node does not hold is NoLocalData', () => {
    const r = router({ localNodeId: 'a', partition: { isPartitioned: () => true } });
    expect(codeOf(() => r.routeStore('s2'))).toBe('NoLocalData');
    expect(codeOf(() => r.routeDistributedQuery(['s1', 's2']))).toBe('NoLocalData');
    expect(r.routeDistributedQuery(['s1'])[0]!.strategy).toBe('LocalOnly');
  });

  it('while partitioned without a localNodeId, reachable replicas serve (degraded); none up: NoLocalData', () => {
    const down = new Set<string>();
    const r = router({
      partition: { isPartitioned: () => true },
      nodeStates: { stateOf: (n) => (down.has(n.id) ? 'down' : 'up') },
    });
    expect(r.routeRecall('s1')).toMatchObject({ degraded: true, primary: { id: 'a' } });
    expect(r.routeConsolidation('s1')).toMatchObject({ degraded: true, primary: { id: 'a' } });
    for (const id of ['a', 'b', 'c']) down.add(id);
    expect(codeOf(() => r.routeRecall('s1'))).toBe('NoLocalData');
    expect(codeOf(() => r.routeConsolidation('s1'))).toBe('NoLocalData');
    expect(codeOf(() => r.routeStore('s1'))).toBe('NoLocalData');
  });

  it('consolidation is always LocalOnly: the local node, NoLocalData, or the primary without a local node', () => {
    expect(router({ localNodeId: 'b' }).routeConsolidation('s1').primary.id).toBe('b');
    expect(router({ localNodeId: 'b' }).routeConsolidation('s1').strategy).toBe('LocalOnly');
    expect(codeOf(() => router({ localNodeId: 'a' }).routeConsolidation('s2'))).toBe('NoLocalData');
    expect(codeOf(() => router({ localNodeId: 'zz' }).routeConsolidation('s1'))).toBe(
      'NoLocalData',
    );
    const d = router().routeConsolidation('s2');
    expect(d.primary.id).toBe('d');
    expect(d.replicas).toEqual([]);
    expect(d.strategy).toBe('LocalOnly');
  });

  it('distributed queries get one ScatterGather decision per space', () => {
    const ds = router().routeDistributedQuery(['s1', 's2']);
    expect(ds.map((d) => [d.primary.id, d.strategy])).toEqual([
      ['a', 'ScatterGather'],
      ['d', 'ScatterGather'],
    ]);
  });

  it('rejects empty, oversize and non-string space ids with InvalidArgument naming the field', () => {
    const r = router({ options: { maxSpaceIdLength: 8 } });
    for (const bad of ['', 'x'.repeat(9), 42 as unknown as string]) {
      let error: unknown;
      try {
        r.routeRecall(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).field).toBe('spaceId');
      expect((error as InvalidArgumentError).value).toBe(bad);
    }
    expect(codeOf(() => r.routeDistributedQuery(['ok', '']))).toBe('InvalidArgument');
    expect(r.routeRecall('x'.repeat(8)).spaceId).toHaveLength(8);
  });

  it('validates options at construction, naming the field and the value', () => {
    const table = ringOf(NODES);
    const cases: [Record<string, unknown>, string][] = [
      [{ maxRetries: -1 }, 'options.maxRetries'],
      [{ maxRetries: 1.5 }, 'options.maxRetries'],
      [{ deadlineMs: 0 }, 'options.deadlineMs'],
      [{ retryBaseDelayMs: Number.NaN }, 'options.retryBaseDelayMs'],
      [{ retryBaseDelayMs: 500, retryMaxDelayMs: 100 }, 'options.retryMaxDelayMs'],
      [{ replicaFallback: 'yes' }, 'options.replicaFallback'],
      [{ hedge: { percentile: 1.5 } }, 'options.hedge.percentile'],
      [{ maxSpaceIdLength: 5000 }, 'options.maxSpaceIdLength'],
      [{ retryJitter: 'sometimes' }, 'options.retryJitter'],
      // Replicas would each give the memory an id of their own.
      [{ assignMemoryIds: false }, 'options.assignMemoryIds'],
    ];
    for (const [options, field] of cases) {
      let error: unknown;
      try {
        new Router({ table, options });
      } catch (e) {
        error = e;
      }
      expect(error, field).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).field).toBe(field);
    }
  });

  it('reports the table epoch and NoAssignment before any table is published', () => {
    const writer = new TableWriter({ maxNodes: 8, maxTokens: 1024 });
    const reader = new TableReader(writer.buffer);
    const r = new Router({ table: reader });
    expect(codeOf(() => r.routeRecall('s1'))).toBe('NoAssignment');
    writer.publish(buildRing({ nodes: NODES, vnodesPerNode: 16 }));
    writer.publish(buildRing({ nodes: NODES.slice(0, 3), vnodesPerNode: 16 }));
    const d = r.routeRecall('s1');
    expect(d.epoch).toBe(2);
    expect(NODES.slice(0, 3).map((n) => n.id)).toContain(d.primary.id);
  });

  it('reports each decision to onDecision with its strategy', () => {
    const seen: [string, RoutingStrategy][] = [];
    const r = router({
      hooks: { onDecision: (op, strategy, ns) => (ns >= 0 ? seen.push([op, strategy]) : 0) },
    });
    r.routeStore('s1');
    r.routeConsolidation('s1');
    r.routeDistributedQuery(['s2']);
    expect(seen).toEqual([
      ['store', 'Replicated'],
      ['consolidate', 'LocalOnly'],
      ['query', 'ScatterGather'],
    ]);
  });
});

describe('target order with node states', () => {
  const states = (map: Record<string, NodeState>): NodeStates => ({
    stateOf: (node) => map[node.id] ?? 'up',
  });

  it('tries up nodes first, down nodes last, and leaves draining nodes out', () => {
    const r = router({ nodeStates: states({ a: 'down', b: 'draining' }) });
    const d = r.routeRecall('s1');
    expect([d.primary.id, ...d.replicas.map((n) => n.id)]).toEqual(['c', 'a']);
    // The placement itself is unchanged: a reply from c is a fall-back.
    expect(d.placement.map((n) => n.id)).toEqual(['a', 'b', 'c']);
  });

  it('keeps placement order when no node is up (health checks lag; a call may still succeed)', () => {
    const r = router({ nodeStates: states({ a: 'down', b: 'draining', c: 'down' }) });
    const d = r.routeRecall('s1');
    expect([d.primary.id, ...d.replicas.map((n) => n.id)]).toEqual(['a', 'b', 'c']);
  });

  it('moves up replicas with an open breaker behind the others; the primary keeps its place', () => {
    const breakers = new BreakerTable({ capacity: 8, trip: new ConsecutiveFailures(1) });
    const reader = sharedReader();
    const r = new Router({ table: reader, breakers });
    const b = reader.nodeSlot(reader.nodeIndex('b'));
    breakers.onFailure(b, breakers.tryAcquire(b));
    const a = reader.nodeSlot(reader.nodeIndex('a'));
    breakers.onFailure(a, breakers.tryAcquire(a));
    const d = r.routeRecall('s1');
    expect([d.primary.id, ...d.replicas.map((n) => n.id)]).toEqual(['a', 'c', 'b']);
  });

  it('tries an ejected node after the other up nodes (the primary too), before down ones, and still as reachable', () => {
    const ejected = new Set<string>(['a']);
    const map: Record<string, NodeState> = { c: 'down' };
    const withEjection: NodeStates = {
      stateOf: (node) => map[node.id] ?? 'up',
      isEjected: (node) => ejected.has(node.id),
    };
    const r = router({ nodeStates: withEjection });
    const order = () => {
      const d = r.routeRecall('s1');
      return [d.primary.id, ...d.replicas.map((n) => n.id)];
    };
    expect(order()).toEqual(['b', 'a', 'c']);
    // Writes keep their placement: the whole of it, ejected or not.
    expect(r.routeStore('s1').placement.map((n) => n.id)).toEqual(['a', 'b', 'c']);
    // Partitioned, with the ejected node the only one up: it serves, rather than NoLocalData.
    const p = router({ nodeStates: withEjection, partition: { isPartitioned: () => true } });
    map.b = 'down';
    const d = p.routeRecall('s1');
    expect(d).toMatchObject({ degraded: true, primary: { id: 'a' } });
    expect(p.routeConsolidation('s1').primary.id).toBe('a');
  });

  it('gives the only target without fall-back, whatever its state', () => {
    const r = router({
      nodeStates: states({ a: 'draining' }),
      options: { storeFallback: false, replicateWrites: false },
    });
    const d = r.routeStore('s1');
    expect(d.primary.id).toBe('a');
    expect(d.replicas).toEqual([]);
  });

  it('reports fallback for a reply from any node but the placement primary', async () => {
    const r = router({ nodeStates: states({ a: 'down' }) });
    const d = r.routeRecall('s1');
    const { routing } = await r.execute(d, async (ctx) => ctx.node.id);
    expect(routing).toMatchObject({ servedBy: 'b', fallback: true, attempts: 1 });
    await r.close();
  });
});

function sharedReader(): TableReader {
  const writer = new TableWriter({ maxNodes: 8, maxTokens: 64, maxReplicationFactor: 3 });
  writer.publish(buildRing({ nodes: NODES, vnodesPerNode: 16, assignments: ASSIGN }));
  return new TableReader(writer.buffer);
}
