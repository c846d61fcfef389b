import { describe, expect, it } from 'vitest';
import {
  buildRing,
  DEFAULT_VNODES_PER_NODE,
  InvalidArgumentError,
  MAX_REPLICATION_FACTOR,
  type NodeInfo,
} from '../src/index.js';
import { ids, makeNodes, referencePlacement } from './reference.js';

function invalid(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('expected InvalidArgumentError');
}

const spaces = Array.from({ length: 300 }, (_, i) => `space-${i}`);

describe('buildRing placement', () => {
  it('agrees with the naive reference walk for every space', () => {
    const nodes = makeNodes(7, 3);
    const ring = buildRing({ nodes, vnodesPerNode: 32, replicationFactor: 3 });
    for (const space of spaces) {
      expect(ids(ring.lookup(space))).toEqual(referencePlacement(nodes, 32, 3, space));
    }
  });

  it('places the primary and distinct replicas in distinct zones while zones remain', () => {
    const ring = buildRing({ nodes: makeNodes(9, 3), vnodesPerNode: 64, replicationFactor: 3 });
    for (const space of spaces) {
      const placement = ring.lookup(space);
      const all = [placement.primary, ...placement.replicas];
      expect(new Set(all.map((n) => n.id)).size).toBe(3);
      expect(new Set(all.map((n) => n.zone)).size).toBe(3);
    }
  });

  it('reuses a zone only once every zone is used', () => {
    const ring = buildRing({ nodes: makeNodes(8, 2), vnodesPerNode: 64, replicationFactor: 3 });
    for (const space of spaces) {
      const placement = ring.lookup(space);
      const zones = [placement.primary, ...placement.replicas].map((n) => n.zone);
      expect(new Set(zones.slice(0, 2)).size).toBe(2);
    }
  });

  it('does not depend on the order nodes are given in', () => {
    const nodes = makeNodes(12, 3);
    const a = buildRing({ nodes, vnodesPerNode: 16 });
    const b = buildRing({ nodes: [...nodes].reverse(), vnodesPerNode: 16 });
    expect(a.nodes).toEqual(b.nodes);
    for (const space of spaces) expect(b.lookup(space)).toEqual(a.lookup(space));
  });

  it('places every space on all nodes when the replication factor exceeds the node count', () => {
    const ring = buildRing({ nodes: makeNodes(2, 2), vnodesPerNode: 8, replicationFactor: 3 });
    expect(ring.replicationFactor).toBe(2);
    expect(ring.configuredReplicationFactor).toBe(3);
    for (const space of spaces.slice(0, 20)) {
      expect(new Set(ids(ring.lookup(space)))).toEqual(new Set(['node-0', 'node-1']));
    }
  });

  it('uses the default vnodes and replication factor', () => {
    const ring = buildRing({ nodes: makeNodes(3, 3) });
    expect(ring.vnodesPerNode).toBe(DEFAULT_VNODES_PER_NODE);
    expect(ring.tokenCount).toBe(3 * DEFAULT_VNODES_PER_NODE);
    expect(ring.replicationFactor).toBe(3);
  });

  it('answers lookupInto with node indexes without allocating a result', () => {
    const ring = buildRing({ nodes: makeNodes(5, 5), vnodesPerNode: 16 });
    const out = new Uint16Array(ring.maxPlacementSize);
    for (const space of spaces) {
      const count = ring.lookupInto(space, out);
      expect(count).toBe(3);
      expect(Array.from(out.subarray(0, count), (i) => ring.nodes[i]!.id)).toEqual(
        ids(ring.lookup(space)),
      );
    }
  });

  it('writes no more than the out array holds and still reports the full count', () => {
    const ring = buildRing({ nodes: makeNodes(5, 5), vnodesPerNode: 16 });
    const out = new Uint16Array(1);
    expect(ring.lookupInto('space-1', out)).toBe(3);
    expect(ring.nodes[out[0]!]!.id).toBe(ring.lookup('space-1').primary.id);
  });
});

describe('explicit assignments', () => {
  const nodes = makeNodes(5, 3);

  it('override the ring for their space only', () => {
    const plain = buildRing({ nodes, vnodesPerNode: 16 });
    const ring = buildRing({
      nodes,
      vnodesPerNode: 16,
      assignments: [{ spaceId: 'space-7', primary: 'node-4', replicas: ['node-0'] }],
    });
    expect(ids(ring.lookup('space-7'))).toEqual(['node-4', 'node-0']);
    expect(ring.maxPlacementSize).toBe(3);
    for (const space of spaces.filter((s) => s !== 'space-7')) {
      expect(ring.lookup(space)).toEqual(plain.lookup(space));
    }
    expect(ring.assignments).toEqual([
      { spaceId: 'space-7', primary: 'node-4', replicas: ['node-0'] },
    ]);
  });

  it('may be wider than the ring replication factor', () => {
    const ring = buildRing({
      nodes,
      vnodesPerNode: 4,
      replicationFactor: 1,
      assignments: [{ spaceId: 's', primary: 'node-1', replicas: ['node-2', 'node-3', 'node-4'] }],
    });
    expect(ring.maxPlacementSize).toBe(4);
    const out = new Uint16Array(ring.maxPlacementSize);
    expect(ring.lookupInto('s', out)).toBe(4);
  });

  it.each([
    [{ spaceId: 's', primary: 'nope', replicas: [] }, 'assignments[0].primary'],
    [{ spaceId: 's', primary: 'node-1', replicas: ['ghost'] }, 'assignments[0].replicas[0]'],
    [{ spaceId: 's', primary: 'node-1', replicas: ['node-1'] }, 'assignments[0].replicas[0]'],
    [
      { spaceId: 's', primary: 'node-1', replicas: ['node-2', 'node-2'] },
      'assignments[0].replicas[1]',
    ],
    [{ spaceId: '', primary: 'node-1', replicas: [] }, 'assignments[0].spaceId'],
    [{ spaceId: 's', primary: 'node-1', replicas: 'node-2' }, 'assignments[0].replicas'],
  ])('rejects %j naming %s', (assignment, field) => {
    const error = invalid(() =>
      buildRing({ nodes, assignments: [assignment as never], vnodesPerNode: 4 }),
    );
    expect(error.code).toBe('InvalidArgument');
    expect(error.field).toBe(field);
  });

  it('rejects a space assigned twice', () => {
    const a = { spaceId: 's', primary: 'node-1', replicas: [] };
    expect(invalid(() => buildRing({ nodes, assignments: [a, a], vnodesPerNode: 4 })).field).toBe(
      'assignments[1].spaceId',
    );
  });
});

describe('buildRing input validation', () => {
  const good: NodeInfo = { id: 'a', address: '127.0.0.1:7000' };

  it.each([
    [{ nodes: [] }, 'nodes'],
    [{ nodes: 'a,b' }, 'nodes'],
    [{ nodes: [null] }, 'nodes[0]'],
    [{ nodes: [{ id: '', address: '127.0.0.1:1' }] }, 'nodes[0].id'],
    [{ nodes: [{ id: 7, address: '127.0.0.1:1' }] }, 'nodes[0].id'],
    [{ nodes: [good, { ...good }] }, 'nodes[1].id'],
    [{ nodes: [{ id: 'a', address: 'localhost' }] }, 'nodes[0].address'],
    [{ nodes: [{ id: 'a', address: 'localhost:0' }] }, 'nodes[0].address'],
    [{ nodes: [{ id: 'a', address: 'localhost:65536' }] }, 'nodes[0].address'],
    [{ nodes: [{ id: 'a', address: 'local host:80' }] }, 'nodes[0].address'],
    [{ nodes: [{ id: 'a', address: '::1:80' }] }, 'nodes[0].address'],
    [{ nodes: [{ id: 'a', address: ':80' }] }, 'nodes[0].address'],
    [{ nodes: [{ ...good, zone: 3 }] }, 'nodes[0].zone'],
    [{ nodes: [good], replicationFactor: 0 }, 'replicationFactor'],
    [{ nodes: [good], replicationFactor: 1.5 }, 'replicationFactor'],
    [{ nodes: [good], replicationFactor: MAX_REPLICATION_FACTOR + 1 }, 'replicationFactor'],
    [{ nodes: [good], vnodesPerNode: 0 }, 'vnodesPerNode'],
    [{ nodes: [good], vnodesPerNode: Number.NaN }, 'vnodesPerNode'],
    [{ nodes: [good], vnodesPerNode: 65_537 }, 'vnodesPerNode'],
    [{ nodes: [good], assignments: {} }, 'assignments'],
  ])('rejects %j with a typed error naming %s', (options, field) => {
    const error = invalid(() => buildRing(options as never));
    expect(error).toMatchObject({ code: 'InvalidArgument', field });
    expect(error.message).toContain(field);
  });

  it('accepts hostnames, IPv4 and bracketed IPv6 addresses', () => {
    const ring = buildRing({
      nodes: [
        { id: 'a', address: 'memory-1.engram.svc.cluster.local:7000' },
        { id: 'b', address: '10.1.2.3:65535' },
        { id: 'c', address: '[::1]:7000' },
        { id: 'd', address: '[fe80::1%eth0]:1' },
      ],
      vnodesPerNode: 2,
    });
    expect(ring.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('rejects rings over the token limit before allocating them', () => {
    const error = invalid(() => buildRing({ nodes: makeNodes(300), vnodesPerNode: 65_536 }));
    expect(error.field).toBe('vnodesPerNode');
  });
});
