import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allocateClusterTokens,
  allocateTokens,
  buildRing,
  DEFAULT_TOKENS_PER_NODE,
  InvalidArgumentError,
  MAX_TOKEN,
  MAX_TOKENS_PER_NODE,
  type NodeInfo,
  type Ring,
} from '../src/index.js';
import { TokenAllocator } from '../src/internal/allocator.js';
import { ids } from './reference.js';

const RING = 2 ** 32;

function members(count: number, zones = 3): NodeInfo[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `n-${String(i).padStart(4, '0')}`,
    address: `127.0.0.1:${7000 + i}`,
    zone: `zone-${i % zones}`,
  }));
}

type Holder = NodeInfo & { readonly tokens: readonly number[] };

function withTokens(nodes: readonly NodeInfo[], tokensPerNode: number, rf = 3): Holder[] {
  const allocated = allocateClusterTokens(nodes, { tokensPerNode, replicationFactor: rf });
  return nodes.map((node, i) => ({ ...node, tokens: allocated[i]!.tokens }));
}

/** Exact owned load per node index: hash space each node holds a replica of. */
function owned(ring: Ring): Float64Array {
  const loads = new Float64Array(ring.nodes.length);
  const { tokens, rows, tokenCount } = ring.arrays;
  const stride = ring.replicationFactor;
  for (let i = 0; i < tokenCount; i++) {
    const length =
      i === 0 ? tokens[0]! + RING - tokens[tokenCount - 1]! : tokens[i]! - tokens[i - 1]!;
    for (let r = 0; r < stride; r++) loads[rows[i * stride + r]!]! += length;
  }
  return loads;
}

function invalid(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('expected InvalidArgumentError');
}

describe('allocateTokens', () => {
  const cluster = withTokens(members(12), 8);
  const newcomer = { id: 'newcomer', zone: 'zone-1' };

  it('gives the joining node tokensPerNode distinct sorted tokens no other node holds', () => {
    const tokens = allocateTokens(cluster, newcomer, { tokensPerNode: 8 });
    expect(tokens).toHaveLength(8);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(8);
    const held = new Set(cluster.flatMap((n) => n.tokens));
    for (const token of tokens) {
      expect(Number.isInteger(token) && token >= 0 && token <= MAX_TOKEN).toBe(true);
      expect(held.has(token)).toBe(false);
    }
    expect(allocateTokens(cluster, newcomer)).toHaveLength(DEFAULT_TOKENS_PER_NODE);
  });

  it('is deterministic and does not depend on the order of the existing nodes', () => {
    const a = allocateTokens(cluster, newcomer, { tokensPerNode: 8 });
    const b = allocateTokens([...cluster].reverse(), newcomer, { tokensPerNode: 8 });
    expect(b).toEqual(a);
    expect(allocateClusterTokens(members(20), { tokensPerNode: 4 })).toEqual(
      allocateClusterTokens(members(20), { tokensPerNode: 4 }),
    );
  });

  it('gives the tokens of the same join in allocateClusterTokens', () => {
    const nodes = members(16);
    const whole = allocateClusterTokens(nodes, { tokensPerNode: 6 });
    const before = nodes.slice(0, 15).map((n, i) => ({ ...n, tokens: whole[i]!.tokens }));
    expect(allocateTokens(before, nodes[15]!, { tokensPerNode: 6 })).toEqual(whole[15]!.tokens);
  });

  it('places a first node, and the first node of a new zone, with evenly spaced tokens', () => {
    const first = allocateTokens([], { id: 'a' }, { tokensPerNode: 4 });
    const gaps = first.slice(1).map((t, i) => t - first[i]!);
    for (const gap of gaps) expect(Math.abs(gap - RING / 4)).toBeLessThanOrEqual(1);
    const second = allocateTokens(
      [{ id: 'a', tokens: first }],
      { id: 'b', zone: 'z' },
      {
        tokensPerNode: 4,
      },
    );
    expect(second.some((t) => first.includes(t))).toBe(false);
  });
});

describe('allocator bookkeeping', () => {
  it('tracks exactly the owned load the ring computes from the tokens, join after join', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 14 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 8 }),
        (count, zones, rf, tokensPerNode) => {
          const allocator = new TokenAllocator({ tokensPerNode, replicationFactor: rf });
          const nodes: NodeInfo[] = [];
          for (const node of members(count, zones)) {
            const tokens = allocator.join(node.id, node.zone!, tokensPerNode);
            nodes.push({ ...node, tokens });
            const ring = buildRing({ nodes, replicationFactor: rf });
            const exact = owned(ring);
            const tracked = allocator.loads();
            for (let i = 0; i < nodes.length; i++) {
              // Ring indexes are by id; the ids here sort in join order.
              expect(tracked[i]! * RING).toBe(exact[i]);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('balance and movement', () => {
  // Each join takes about 1/T of a donor's load per token, so no node should end more than
  // ~1/T over the mean; equal zones, so the zones themselves add no imbalance.
  for (const tokensPerNode of [8, 16, 64]) {
    it(`60 nodes in 3 zones, RF 3, ${tokensPerNode} tokens: max/mean ≤ 1 + 1/${tokensPerNode}`, () => {
      const nodes = withTokens(members(60), tokensPerNode);
      const loads = owned(buildRing({ nodes }));
      const mean = (3 * RING) / 60;
      expect(Math.max(...loads) / mean).toBeLessThanOrEqual(1 + 1 / tokensPerNode);
      expect(loads.reduce((a, b) => a + b, 0)).toBe(3 * RING);
    });
  }

  it('beats random tokens of the same count by far', () => {
    const nodes = withTokens(members(60), 16);
    const random = buildRing({ nodes: members(60), vnodesPerNode: 16 });
    const mean = (3 * RING) / 60;
    const allocated = Math.max(...owned(buildRing({ nodes }))) / mean;
    expect(Math.max(...owned(random)) / mean - 1).toBeGreaterThan(3 * (allocated - 1));
  });

  it('a joining node takes data only from existing owners, about its share (≤ 1.1 × ideal)', () => {
    const tokensPerNode = 16;
    const nodes = withTokens(members(60), tokensPerNode);
    const newcomer: NodeInfo = {
      id: 'newcomer',
      address: '127.0.0.1:6999',
      zone: 'zone-2',
      tokens: allocateTokens(nodes, { id: 'newcomer', zone: 'zone-2' }, { tokensPerNode }),
    };
    const change = buildRing({ nodes: [...nodes, newcomer], joining: ['newcomer'] });
    const before = buildRing({ nodes });
    for (let i = 0; i < 2000; i++) {
      const space = `space-${i}`;
      const was = ids(change.lookup(space));
      const will = ids(change.lookupFuture(space));
      expect(was).toEqual(ids(before.lookup(space)));
      // Whatever changes, changes to the newcomer: it replaces exactly one node.
      if (will.join() !== was.join()) {
        expect(will).toContain('newcomer');
        expect(was.filter((id) => !will.includes(id))).toHaveLength(1);
      }
    }
    // Moved = replica-space the newcomer now holds (nobody else gains); ideal = its share.
    const after = buildRing({ nodes: [...nodes, newcomer] });
    const moved = owned(after)[after.nodeIndex('newcomer')]!;
    const ideal = (3 * RING) / 61;
    expect(moved / ideal).toBeLessThanOrEqual(1.1);
    expect(moved / ideal).toBeGreaterThanOrEqual(1 - 2 / tokensPerNode);
  });
});

describe('allocator validation', () => {
  const holder = { id: 'a', zone: 'z', tokens: [1, 2] };

  it.each([
    ['tokensPerNode 0', [[holder], { id: 'b' }, { tokensPerNode: 0 }], 'tokensPerNode', 0],
    ['tokensPerNode 1.5', [[holder], { id: 'b' }, { tokensPerNode: 1.5 }], 'tokensPerNode', 1.5],
    [
      'tokensPerNode over the cap',
      [[holder], { id: 'b' }, { tokensPerNode: MAX_TOKENS_PER_NODE + 1 }],
      'tokensPerNode',
      MAX_TOKENS_PER_NODE + 1,
    ],
    [
      'replicationFactor 0',
      [[holder], { id: 'b' }, { replicationFactor: 0 }],
      'replicationFactor',
      0,
    ],
    ['existing not an array', ['a', { id: 'b' }], 'existing', 'a'],
    [
      'an existing node without an id',
      [[{ tokens: [1] }], { id: 'b' }],
      'existing[0].id',
      undefined,
    ],
    [
      'an existing id twice',
      [[holder, { ...holder, tokens: [3] }], { id: 'b' }],
      'existing[1].id',
      'a',
    ],
    ['existing tokens missing', [[{ id: 'a' }], { id: 'b' }], 'existing[0].tokens', undefined],
    [
      'a non-integer token',
      [[{ id: 'a', tokens: [1.5] }], { id: 'b' }],
      'existing[0].tokens[0]',
      1.5,
    ],
    [
      'a token out of range',
      [[{ id: 'a', tokens: [2 ** 32] }], { id: 'b' }],
      'existing[0].tokens[0]',
      2 ** 32,
    ],
    [
      'a token held by two nodes',
      [[holder, { id: 'c', tokens: [5, 2] }], { id: 'b' }],
      'existing[1].tokens[1]',
      2,
    ],
    ['a joining id already a member', [[holder], { id: 'a' }], 'joining.id', 'a'],
    ['a joining zone not a string', [[holder], { id: 'b', zone: 7 }], 'joining.zone', 7],
  ])('refuses %s, naming the field and value', (_, args, field, value) => {
    const [existing, joining, options] = args as [never, never, never];
    const error = invalid(() => allocateTokens(existing, joining, options));
    expect(error).toMatchObject({ code: 'InvalidArgument', field, value });
  });

  it('refuses a cluster with an id twice, naming it', () => {
    const error = invalid(() => allocateClusterTokens([{ id: 'a' }, { id: 'a' }]));
    expect(error).toMatchObject({ field: 'nodes[1].id', value: 'a' });
  });
});
