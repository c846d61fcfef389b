import { describe, expect, it } from 'vitest';
import {
  buildRing,
  InvalidArgumentError,
  NODE_ROLES,
  type PlacementTable,
  type RingOptions,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { makeNodes } from './reference.js';

const spaces = Array.from({ length: 300 }, (_, i) => `space-${i}`);
const nodes = makeNodes(6, 3);
const small = { maxNodes: 64, maxTokens: 8192, maxReplicationFactor: 5, maxBlobBytes: 64 * 1024 };

function published(ring: Parameters<TableWriter['publish']>[0]): TableReader {
  const writer = new TableWriter(small);
  writer.publish(ring);
  const reader = new TableReader(writer.buffer);
  reader.refresh();
  return reader;
}

function ids(
  table: PlacementTable,
  kind: 'lookupInto' | 'futureInto' | 'pendingInto',
  key: string,
) {
  const out = new Uint16Array(table.maxPlacementSize);
  const count = table[kind](key, out);
  return Array.from(out.subarray(0, count), (i) => table.nodes[i]!.id);
}

describe('a ring with no change in progress', () => {
  const plain = buildRing({ nodes, vnodesPerNode: 32 });
  const empty = buildRing({
    nodes,
    vnodesPerNode: 32,
    joining: [],
    leaving: [],
    pendingAssignments: [],
  });

  it.each([
    ['Ring', plain],
    ['TableReader', published(plain)],
  ])('%s: nothing is pending and the future is the current placement', (_, table) => {
    expect(table.pending).toBe(false);
    const out = new Uint16Array(8).fill(99);
    for (const space of spaces) {
      expect(table.pendingInto(space, out)).toBe(0);
      expect(ids(table, 'futureInto', space)).toEqual(ids(table, 'lookupInto', space));
      expect(table.lookupFuture(space)).toEqual(table.lookup(space));
    }
    expect(Array.from(out)).toEqual(Array(8).fill(99)); // nothing written
    expect(table.nodes.map((_, i) => table.nodeRole(i))).toEqual(Array(6).fill('normal'));
    expect(table.nodeRole(6)).toBeUndefined();
  });

  it('pendingInto answers 0 before hashing anything (the write path pays one branch)', () => {
    // A non-string would make hashKey throw: it is never reached.
    expect(plain.pendingInto(42 as never, new Uint16Array(3))).toBe(0);
    expect(published(plain).pendingInto(42 as never, new Uint16Array(3))).toBe(0);
  });

  it('empty change lists give exactly the tokens, owners and rows of the plain ring', () => {
    expect(empty.pending).toBe(false);
    expect(empty.arrays.tokens).toEqual(plain.arrays.tokens);
    expect(empty.arrays.owners).toEqual(plain.arrays.owners);
    expect(empty.arrays.rows).toEqual(plain.arrays.rows);
    expect(empty.maxPlacementSize).toBe(plain.maxPlacementSize);
  });
});

describe('a node joining', () => {
  const ring = buildRing({ nodes, vnodesPerNode: 32, joining: ['node-5'] });
  const joiner = ring.nodeIndex('node-5');

  it('owns tokens but is never taken by the current placement', () => {
    expect(ring.tokenCount).toBe(6 * 32);
    expect(ring.arrays.owners.filter((owner) => owner === joiner)).toHaveLength(32);
    expect(ring.arrays.rows.includes(joiner)).toBe(false);
    expect(ring.nodeRole(joiner)).toBe(NODE_ROLES.joining);
    expect(ring.joining).toEqual(['node-5']);
    expect(ring.leaving).toEqual([]);
  });

  it('is a pending write target exactly for the spaces it will hold', () => {
    let pendingSpaces = 0;
    for (const space of spaces) {
      const future = ids(ring, 'futureInto', space);
      const pending = ids(ring, 'pendingInto', space);
      expect(pending).toEqual(future.includes('node-5') ? ['node-5'] : []);
      if (pending.length > 0) pendingSpaces++;
    }
    // One node of six with RF 3 joins about half of the placements.
    expect(pendingSpaces).toBeGreaterThan(50);
  });

  it('writes no more pending nodes than `out` holds and still counts them all', () => {
    const twoJoin = buildRing({ nodes, vnodesPerNode: 32, joining: ['node-4', 'node-5'] });
    const space = spaces.find((s) => ids(twoJoin, 'pendingInto', s).length === 2)!;
    const out = new Uint16Array(1);
    expect(twoJoin.pendingInto(space, out)).toBe(2);
    expect(twoJoin.nodes[out[0]!]!.id).toBe(ids(twoJoin, 'pendingInto', space)[0]);
  });

  it('sizes placements for the future too when the current ring is smaller', () => {
    const growing = buildRing({
      nodes: makeNodes(2, 2),
      vnodesPerNode: 8,
      replicationFactor: 3,
      joining: ['node-1'],
    });
    expect(growing.replicationFactor).toBe(1);
    expect(growing.maxPlacementSize).toBe(2);
    for (const space of spaces.slice(0, 20)) {
      expect(ids(growing, 'lookupInto', space)).toEqual(['node-0']);
      expect(new Set(ids(growing, 'futureInto', space))).toEqual(new Set(['node-0', 'node-1']));
      expect(ids(growing, 'pendingInto', space)).toEqual(['node-1']);
    }
  });
});

describe('pins moving', () => {
  const base = { nodes, vnodesPerNode: 32 };
  const ringOf = (options: Partial<RingOptions>) => buildRing({ ...base, ...options });

  it('from one pin to another: the new nodes are pending, the old pin serves', () => {
    const ring = ringOf({
      assignments: [{ spaceId: 'vip', primary: 'node-0', replicas: ['node-1'] }],
      pendingAssignments: [{ spaceId: 'vip', primary: 'node-2', replicas: ['node-0'] }],
    });
    expect(ring.pending).toBe(true);
    expect(ids(ring, 'lookupInto', 'vip')).toEqual(['node-0', 'node-1']);
    expect(ids(ring, 'futureInto', 'vip')).toEqual(['node-2', 'node-0']);
    expect(ids(ring, 'pendingInto', 'vip')).toEqual(['node-2']);
    // Other spaces are not moving.
    for (const space of spaces) expect(ids(ring, 'pendingInto', space)).toEqual([]);
  });

  it('from the ring to a pin, and from a pin back to the ring (primary: null)', () => {
    const plain = ringOf({});
    const ringPlacement = ids(plain, 'lookupInto', 'space-7');
    const elsewhere = nodes.map((n) => n.id).filter((id) => !ringPlacement.includes(id));
    const toPin = ringOf({
      pendingAssignments: [{ spaceId: 'space-7', primary: elsewhere[0]!, replicas: [] }],
    });
    expect(ids(toPin, 'lookupInto', 'space-7')).toEqual(ringPlacement);
    expect(ids(toPin, 'pendingInto', 'space-7')).toEqual([elsewhere[0]]);

    const toRing = ringOf({
      assignments: [{ spaceId: 'space-7', primary: elsewhere[0]!, replicas: [] }],
      pendingAssignments: [{ spaceId: 'space-7', primary: null }],
    });
    expect(ids(toRing, 'lookupInto', 'space-7')).toEqual([elsewhere[0]]);
    expect(ids(toRing, 'futureInto', 'space-7')).toEqual(ringPlacement);
    expect(ids(toRing, 'pendingInto', 'space-7')).toEqual(ringPlacement);
    expect(toRing.pendingAssignments).toEqual([{ spaceId: 'space-7', primary: null }]);
    expect(published(toRing).lookupFuture('space-7')).toEqual(plain.lookup('space-7'));
  });

  it('a pin on a leaving node moves with a pending pin', () => {
    const ring = ringOf({
      leaving: ['node-1'],
      assignments: [{ spaceId: 'vip', primary: 'node-0', replicas: ['node-1'] }],
      pendingAssignments: [{ spaceId: 'vip', primary: 'node-0', replicas: ['node-2'] }],
    });
    expect(ids(ring, 'lookupInto', 'vip')).toEqual(['node-0', 'node-1']);
    expect(ids(ring, 'pendingInto', 'vip')).toEqual(['node-2']);
  });
});

describe('change validation', () => {
  function invalid(options: Partial<RingOptions>): InvalidArgumentError {
    try {
      buildRing({ nodes, vnodesPerNode: 4, ...options } as RingOptions);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      return error as InvalidArgumentError;
    }
    throw new Error('expected InvalidArgumentError');
  }
  const all = nodes.map((n) => n.id);

  it.each([
    [{ joining: 'node-1' }, 'joining'],
    [{ joining: ['ghost'] }, 'joining[0]'],
    [{ joining: ['node-1', 7] }, 'joining[1]'],
    [{ joining: ['node-1', 'node-1'] }, 'joining[1]'],
    [{ leaving: ['node-2', 'node-2'] }, 'leaving[1]'],
    [{ leaving: [null] }, 'leaving[0]'],
    [{ joining: ['node-1'], leaving: ['node-3', 'node-1'] }, 'leaving[1]'],
    [{ joining: all }, 'joining'],
    [{ leaving: all }, 'leaving'],
    [
      { joining: ['node-0'], assignments: [{ spaceId: 's', primary: 'node-0', replicas: [] }] },
      'assignments[0].primary',
    ],
    [
      {
        joining: ['node-2'],
        assignments: [{ spaceId: 's', primary: 'node-0', replicas: ['node-1', 'node-2'] }],
      },
      'assignments[0].replicas[1]',
    ],
    [
      {
        leaving: ['node-1'],
        assignments: [{ spaceId: 's', primary: 'node-0', replicas: ['node-1'] }],
      },
      'assignments[0].replicas[0]',
    ],
    [{ pendingAssignments: {} }, 'pendingAssignments'],
    [
      { pendingAssignments: [{ spaceId: '', primary: 'node-0', replicas: [] }] },
      'pendingAssignments[0].spaceId',
    ],
    [
      { pendingAssignments: [{ spaceId: 's', primary: 'ghost', replicas: [] }] },
      'pendingAssignments[0].primary',
    ],
    [
      { pendingAssignments: [{ spaceId: 's', primary: 'node-0', replicas: ['node-0'] }] },
      'pendingAssignments[0].replicas[0]',
    ],
    [
      {
        pendingAssignments: [
          { spaceId: 's', primary: 'node-0', replicas: [] },
          { spaceId: 's', primary: 'node-1', replicas: [] },
        ],
      },
      'pendingAssignments[1].spaceId',
    ],
    [
      {
        leaving: ['node-3'],
        pendingAssignments: [{ spaceId: 's', primary: 'node-3', replicas: [] }],
      },
      'pendingAssignments[0].primary',
    ],
    [
      {
        leaving: ['node-3'],
        pendingAssignments: [{ spaceId: 's', primary: 'node-0', replicas: ['node-3'] }],
      },
      'pendingAssignments[0].replicas[0]',
    ],
    [{ pendingAssignments: [{ spaceId: 's', primary: null }] }, 'pendingAssignments[0].primary'],
    [
      {
        assignments: [{ spaceId: 's', primary: 'node-0', replicas: [] }],
        pendingAssignments: [{ spaceId: 's', primary: null, replicas: ['node-1'] }],
      },
      'pendingAssignments[0].replicas',
    ],
    [{ assignments: [{ spaceId: 's', primary: null, replicas: [] }] }, 'assignments[0].primary'],
  ])('rejects %j naming %s', (options, field) => {
    const error = invalid(options as Partial<RingOptions>);
    expect(error).toMatchObject({ code: 'InvalidArgument', field });
    expect(error.message).toContain(field);
  });

  it('says why a change would leave no placement', () => {
    expect(invalid({ joining: all }).message).toContain('current placement');
    expect(invalid({ leaving: all }).message).toContain('future placement');
  });

  it('accepts a full replacement: every old node leaving, every new one joining', () => {
    const ring = buildRing({
      nodes,
      vnodesPerNode: 4,
      joining: ['node-0', 'node-1', 'node-2'],
      leaving: ['node-3', 'node-4', 'node-5'],
    });
    for (const space of spaces.slice(0, 30)) {
      const current = ids(ring, 'lookupInto', space);
      const pending = ids(ring, 'pendingInto', space);
      expect(current.every((id) => ['node-3', 'node-4', 'node-5'].includes(id))).toBe(true);
      expect(pending).toEqual(ids(ring, 'futureInto', space));
    }
  });
});
