import type { SpaceDigest } from '@engram/proto';
import { buildRing, hashKey, type NodeInfo } from '@engram/ring';
import { describe, expect, it } from 'vitest';
import type { TableView } from '../src/internal/admin.js';
import { HealthMonitor, type Probe, type ProbeTarget } from '../src/internal/health-monitor.js';
import { type DigestOf, locateSpace, validateSpaceId } from '../src/internal/locate.js';
import { FakeTime } from './fake-time.js';

const NODES: NodeInfo[] = ['a', 'b', 'c', 'd'].map((id, i) => ({
  id,
  address: `127.0.0.1:${7001 + i}`,
  zone: `z${i % 2}`,
}));

function view(extra: Partial<TableView> = {}): TableView {
  return {
    epoch: 9,
    revision: 0,
    etcd: null,
    partitioned: false,
    replicationFactor: 3,
    vnodesPerNode: 64,
    localNodeId: null,
    nodes: NODES.map((n, slot) => ({
      id: n.id,
      address: n.address,
      zone: n.zone!,
      state: n.id === 'c' ? 'down' : 'up',
      lifecycle: 'active',
      breaker: 'closed',
      slot,
      hintsPending: 0,
      hintBytesPending: 0,
      repairNeeded: false,
      healthLatencyMs: 1,
    })),
    assignments: [],
    pendingAssignments: [],
    streams: [],
    ...extra,
  };
}

/** Digests by node id; a node listed in `down` rejects as an unreachable node would. */
function digests(held: Record<string, number>, down: string[] = []) {
  const asked: string[] = [];
  const digestOf: DigestOf = async (node, spaceId): Promise<SpaceDigest | undefined> => {
    asked.push(`${node.id}@${node.address}`);
    if (down.includes(node.id)) throw new Error(`14 UNAVAILABLE: ${node.id} refused`);
    const memories = held[node.id] ?? 0;
    return memories === 0
      ? undefined
      : { spaceId, memories, tombstones: 1, digest: `d${memories}` };
  };
  return { digestOf, asked };
}

/** A space id whose current placement satisfies `pick` on `ring`. */
function spaceWhere(
  ring: ReturnType<typeof buildRing>,
  pick: (current: string[], future: string[]) => boolean,
) {
  for (let i = 0; i < 10_000; i++) {
    const id = `space-${i}`;
    const c = ring.lookup(id);
    const f = ring.lookupFuture(id);
    const ids = (p: typeof c) => [p.primary.id, ...p.replicas.map((r) => r.id)];
    if (pick(ids(c), ids(f))) return id;
  }
  throw new Error('no such space in 10 000 tries');
}

describe('locateSpace (Locate core)', () => {
  it('answers the token, the ring placement in order, and what each node holds; an unreachable node says why', async () => {
    const ring = buildRing({ nodes: NODES, vnodesPerNode: 64, replicationFactor: 3 });
    const space = 'team/notes';
    const p = ring.lookup(space);
    const order = [p.primary.id, ...p.replicas.map((r) => r.id)];
    const [first, second, third] = order as [string, string, string];
    const { digestOf, asked } = digests({ [first]: 4, [second]: 2 }, [third]);
    const loc = await locateSpace(space, view(), ring, digestOf);
    expect(loc.spaceId).toBe(space);
    expect(loc.token).toBe(hashKey(space));
    expect(loc.epoch).toBe(9);
    expect(loc.placement).toBe('ring');
    expect(loc.pendingAssignment).toBeNull();
    expect(loc.nodes.map((n) => [n.id, n.role])).toEqual([
      [first, 'primary'],
      [second, 'replica'],
      [third, 'replica'],
    ]);
    expect(asked.sort()).toEqual(
      order.map((id) => `${id}@${NODES.find((n) => n.id === id)!.address}`).sort(),
    );
    const [n1, n2, n3] = loc.nodes;
    expect(n1).toMatchObject({
      reachable: true,
      holdsData: true,
      memories: 4,
      tombstones: 1,
      digest: 'd4',
      error: '',
    });
    expect(n2).toMatchObject({ reachable: true, holdsData: true, memories: 2 });
    expect(n3).toMatchObject({ reachable: false, holdsData: false, memories: 0, digest: '' });
    expect(n3!.error).toContain('UNAVAILABLE');
    // States come from the table view.
    for (const n of loc.nodes) {
      expect([n.state, n.breaker, n.zone]).toEqual([
        n.id === 'c' ? 'down' : 'up',
        'closed',
        n.zone,
      ]);
      expect(n.zone).toBe(NODES.find((x) => x.id === n.id)!.zone);
    }
    expect(loc.nodes.every((n) => !n.outgoing)).toBe(true);
  });

  it('a node that holds nothing of the space answers holdsData false, reachable', async () => {
    const ring = buildRing({ nodes: NODES, vnodesPerNode: 64 });
    const loc = await locateSpace('empty', view(), ring, digests({}).digestOf);
    expect(loc.nodes.every((n) => n.reachable && !n.holdsData && n.memories === 0)).toBe(true);
  });

  it('a pinned space says so; its pin and a pending pin are reported', async () => {
    const pin = { spaceId: 'pinned/space', primary: 'd', replicas: ['a'] };
    const ring = buildRing({ nodes: NODES, vnodesPerNode: 64, assignments: [pin] });
    const pending = { spaceId: 'pinned/space', primary: 'b', replicas: ['c'] };
    const loc = await locateSpace(
      'pinned/space',
      view({ assignments: [pin], pendingAssignments: [pending] }),
      ring,
      digests({}).digestOf,
    );
    expect(loc.placement).toBe('pinned');
    expect(loc.nodes.map((n) => [n.id, n.role])).toEqual([
      ['d', 'primary'],
      ['a', 'replica'],
    ]);
    expect(loc.pendingAssignment).toEqual(pending);
  });

  it('a joining node about to own the space is listed as incoming; a leaving one as outgoing', async () => {
    const joining = buildRing({ nodes: NODES, vnodesPerNode: 64, joining: ['d'] });
    const space = spaceWhere(joining, (c, f) => f.includes('d') && !c.includes('d'));
    const loc = await locateSpace(space, view(), joining, digests({ d: 1 }).digestOf);
    const d = loc.nodes.find((n) => n.id === 'd');
    expect(d).toMatchObject({ role: 'incoming', holdsData: true });
    expect(loc.nodes.at(-1)?.id).toBe('d');
    expect(loc.nodes.filter((n) => n.outgoing).length).toBe(1);

    const leaving = buildRing({ nodes: NODES, vnodesPerNode: 64, leaving: ['a'] });
    const left = spaceWhere(leaving, (c) => c.includes('a'));
    const loc2 = await locateSpace(left, view(), leaving, digests({}).digestOf);
    expect(loc2.nodes.find((n) => n.id === 'a')?.outgoing).toBe(true);
    expect(loc2.nodes.filter((n) => n.role === 'incoming').length).toBe(1);
  });

  it('an empty, oversized or non-string space id is refused naming spaceId, before any node is asked', async () => {
    const ring = buildRing({ nodes: NODES, vnodesPerNode: 64 });
    for (const bad of ['', 'x'.repeat(1025), 42, undefined]) {
      const { digestOf, asked } = digests({});
      await expect(locateSpace(bad, view(), ring, digestOf)).rejects.toMatchObject({
        code: 'InvalidArgument',
        field: 'spaceId',
      });
      expect(asked).toEqual([]);
    }
    expect(validateSpaceId('x'.repeat(1024))).toHaveLength(1024);
  });
});

/** A probe the test answers by hand. */
class HandProbe implements Probe {
  readonly waiting = new Map<string, (ok: boolean) => void>();
  check(target: ProbeTarget): Promise<boolean> {
    return new Promise((resolve) => this.waiting.set(target.id, resolve));
  }
  forget(): void {}
}

describe('HealthMonitor probe round trip', () => {
  it('is the time from a probe sent to its result; a timed-out probe counts its timeout; none before the first', async () => {
    const time = new FakeTime();
    const probe = new HandProbe();
    const monitor = new HealthMonitor({
      intervalMs: 1000,
      timeoutMs: 300,
      healthyThreshold: 1,
      unhealthyThreshold: 1,
      timers: time,
      probe,
      now: () => time.now(),
      current: () => 'up',
      onVerdict: () => {},
    });
    monitor.watch({ id: 'a', address: '127.0.0.1:1' });
    expect(monitor.latencyMs('a')).toBeUndefined();
    void monitor.start();
    await time.advance(40);
    probe.waiting.get('a')!(true);
    await time.advance(0);
    expect(monitor.latencyMs('a')).toBe(40);
    // The next round's probe never answers: it fails at its timeout, which is its round trip.
    await time.advance(1000 - 40 + 300);
    expect(monitor.latencyMs('a')).toBe(300);
    monitor.unwatch('a');
    expect(monitor.latencyMs('a')).toBeUndefined();
    monitor.stop();
  });
});
