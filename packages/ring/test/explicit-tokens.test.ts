import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildRing,
  InvalidArgumentError,
  MAX_TOKEN,
  MAX_TOKENS_PER_NODE,
  type NodeInfo,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { clusterArb, keysArb } from './arbitraries.js';
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

/** `count` nodes in three zones, node i holding tokens i, i + count, i + 2·count, … scaled. */
function withTokens(count: number, perNode: number): NodeInfo[] {
  const step = Math.floor(2 ** 32 / (count * perNode));
  return makeNodes(count).map((node, i) => ({
    ...node,
    tokens: Array.from({ length: perNode }, (_, k) => (k * count + i) * step),
  }));
}

const spaces = Array.from({ length: 300 }, (_, i) => `space-${i}`);

describe('buildRing with explicit tokens', () => {
  it('uses exactly the given tokens: the naive reference walk over them agrees', () => {
    const nodes = withTokens(9, 5);
    const ring = buildRing({ nodes, replicationFactor: 3 });
    expect(ring.tokenCount).toBe(45);
    expect(ring.vnodesPerNode).toBe(0);
    expect(Array.from(ring.arrays.tokens)).toEqual(
      nodes.flatMap((n) => n.tokens!).sort((a, b) => a - b),
    );
    for (const space of spaces) {
      expect(ids(ring.lookup(space))).toEqual(referencePlacement(nodes, 0, 3, space));
    }
  });

  it('matches the naive reference on random clusters with random distinct tokens', () => {
    fc.assert(
      fc.property(
        clusterArb,
        fc.integer({ min: 1, max: 5 }),
        fc.uniqueArray(fc.integer({ min: 0, max: MAX_TOKEN }), {
          minLength: 12,
          maxLength: 12 * 6,
        }),
        keysArb,
        (cluster, rf, pool, keys) => {
          const perNode = Math.max(1, Math.floor(pool.length / cluster.length));
          const nodes = cluster.map((node, i) => ({
            ...node,
            tokens: pool.slice(i * perNode, (i + 1) * perNode),
          }));
          const ring = buildRing({ nodes, replicationFactor: rf });
          for (const key of keys) {
            expect(ids(ring.lookup(key))).toEqual(referencePlacement(nodes, 0, rf, key));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a shared table answers as the ring and reports no hashed vnodes', () => {
    const ring = buildRing({ nodes: withTokens(12, 16), joining: ['node-3'] });
    const writer = new TableWriter();
    writer.publish(ring);
    const reader = new TableReader(writer.buffer);
    expect(reader.vnodesPerNode).toBe(0);
    for (const space of spaces) {
      expect(ids(reader.lookup(space))).toEqual(ids(ring.lookup(space)));
      expect(ids(reader.lookupFuture(space))).toEqual(ids(ring.lookupFuture(space)));
    }
  });

  it('places a joining node the same way: current without it, future with it', () => {
    const nodes = withTokens(10, 8);
    const joining = buildRing({ nodes, joining: ['node-9'] });
    const without = buildRing({ nodes: nodes.slice(0, 9) });
    const after = buildRing({ nodes });
    for (const space of spaces) {
      expect(ids(joining.lookup(space))).toEqual(ids(without.lookup(space)));
      expect(ids(joining.lookupFuture(space))).toEqual(ids(after.lookup(space)));
    }
  });

  it('depends on the node set only, not the order given', () => {
    const nodes = withTokens(8, 4);
    const a = buildRing({ nodes });
    const b = buildRing({ nodes: [...nodes].reverse() });
    for (const space of spaces) expect(b.lookup(space)).toEqual(a.lookup(space));
  });

  it('keeps the tokens out of the nodes it reports (they are placement input)', () => {
    const ring = buildRing({ nodes: withTokens(3, 2) });
    expect(ring.nodes[0]).toEqual({ id: 'node-0', address: '127.0.0.1:7000', zone: 'zone-0' });
  });
});

describe('explicit token validation', () => {
  const a = { id: 'a', address: '127.0.0.1:7000', tokens: [1, 2] };
  const b = { id: 'b', address: '127.0.0.1:7001', tokens: [3, 4] };

  it.each([
    [
      'a node without tokens beside one with',
      [a, { id: 'b', address: '127.0.0.1:7001' }],
      'nodes[1].tokens',
      undefined,
    ],
    ['tokens not an array', [a, { ...b, tokens: 5 }], 'nodes[1].tokens', 5],
    ['an empty list', [a, { ...b, tokens: [] }], 'nodes[1].tokens', 0],
    ['a non-integer', [a, { ...b, tokens: [3, 4.5] }], 'nodes[1].tokens[1]', 4.5],
    ['a negative token', [a, { ...b, tokens: [-1] }], 'nodes[1].tokens[0]', -1],
    ['a token past 2^32 - 1', [a, { ...b, tokens: [2 ** 32] }], 'nodes[1].tokens[0]', 2 ** 32],
    ['a string', [a, { ...b, tokens: ['3'] }], 'nodes[1].tokens[0]', '3'],
    ['a token held by another node', [a, { ...b, tokens: [4, 2] }], 'nodes[1].tokens[1]', 2],
    ['a token held twice by one node', [a, { ...b, tokens: [3, 9, 3] }], 'nodes[1].tokens[2]', 3],
    [
      'too many tokens',
      [a, { ...b, tokens: Array.from({ length: MAX_TOKENS_PER_NODE + 1 }, (_, i) => i + 10) }],
      'nodes[1].tokens',
      MAX_TOKENS_PER_NODE + 1,
    ],
  ])('refuses %s, naming the field and value', (_, nodes, field, value) => {
    const error = invalid(() => buildRing({ nodes: nodes as never }));
    expect(error).toMatchObject({ code: 'InvalidArgument', field, value });
    expect(error.message).toContain(field);
  });

  it('names the input position of a duplicate even when ids sort differently', () => {
    const z = { id: 'z', address: '127.0.0.1:7002', tokens: [7, 8] };
    const error = invalid(() => buildRing({ nodes: [z, a, { ...b, tokens: [8] }] }));
    expect(error).toMatchObject({ field: 'nodes[2].tokens[0]', value: 8 });
    expect(error.message).toContain('nodes[0]');
  });

  it('refuses vnodesPerNode beside explicit tokens', () => {
    const error = invalid(() => buildRing({ nodes: [a, b], vnodesPerNode: 16 }));
    expect(error).toMatchObject({ field: 'vnodesPerNode', value: 16 });
  });

  it('accepts the extreme tokens 0 and 2^32 - 1', () => {
    const ring = buildRing({
      nodes: [
        { ...a, tokens: [0] },
        { ...b, tokens: [MAX_TOKEN] },
      ],
    });
    expect(ring.tokenCount).toBe(2);
    expect(ring.lookup('x').replicas).toHaveLength(1);
  });
});

describe('hashed tokens are unchanged', () => {
  it('a ring without explicit tokens still reports its vnodes', () => {
    expect(buildRing({ nodes: makeNodes(3), vnodesPerNode: 4 }).vnodesPerNode).toBe(4);
  });
});
