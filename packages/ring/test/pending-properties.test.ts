// Membership changes against rings built from the memberships they stand for: the current
// placement is the ring without the joining nodes, the future one the ring without the
// leaving nodes, pending the difference; pins likewise; a shared table answers the same.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildRing,
  type NodeInfo,
  type PendingAssignment,
  type PlacementTable,
  type Ring,
  type SpaceAssignment,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { clusterArb, keysArb } from './arbitraries.js';

const OUT = new Uint16Array(32);
type Kind = 'lookupInto' | 'futureInto' | 'pendingInto';

// Node ids a table answers for `key`, in order.
function answer(table: PlacementTable, kind: Kind, key: string): string[] {
  const count = table[kind](key, OUT);
  return Array.from(OUT.subarray(0, count), (index) => table.nodes[index]!.id);
}

function expectedPending(current: string[], future: string[]): string[] {
  return future.filter((id) => !current.includes(id));
}

const NORMAL = 0;
const JOINING = 1;
const LEAVING = 2;

// A cluster with a role per node, never all joining nor all leaving.
function changeArb(roles: readonly number[]) {
  return fc
    .tuple(clusterArb, fc.array(fc.constantFrom(...roles), { minLength: 12, maxLength: 12 }))
    .map(([nodes, picks]) => ({
      nodes,
      joining: nodes.filter((_, i) => picks[i] === JOINING),
      leaving: nodes.filter((_, i) => picks[i] === LEAVING),
    }))
    .filter(
      ({ nodes, joining, leaving }) =>
        joining.length < nodes.length && leaving.length < nodes.length,
    );
}

const without = (nodes: NodeInfo[], gone: NodeInfo[]) => nodes.filter((n) => !gone.includes(n));
const idList = (nodes: NodeInfo[]) => nodes.map((n) => n.id);
const rfArb = fc.integer({ min: 1, max: 4 });
const vnodesArb = fc.integer({ min: 1, max: 8 });

// Checks the three placements of `ring` for every key against the expected rings.
function checkAgainst(ring: Ring, current: Ring, future: Ring, keys: readonly string[]) {
  for (const key of keys) {
    const now = answer(ring, 'lookupInto', key);
    const next = answer(ring, 'futureInto', key);
    expect(now).toEqual(answer(current, 'lookupInto', key));
    expect(next).toEqual(answer(future, 'lookupInto', key));
    expect(answer(ring, 'pendingInto', key)).toEqual(expectedPending(now, next));
    expect(ring.lookupFuture(key)).toEqual(future.lookup(key));
  }
}

describe('membership change properties', () => {
  it('with joining nodes: current is the ring without them, future the ring with them', () => {
    fc.assert(
      fc.property(changeArb([NORMAL, JOINING]), rfArb, vnodesArb, keysArb, (c, rf, v, keys) => {
        fc.pre(c.joining.length > 0);
        const base = { replicationFactor: rf, vnodesPerNode: v };
        const ring = buildRing({ ...base, nodes: c.nodes, joining: idList(c.joining) });
        expect(ring.pending).toBe(true);
        expect(ring.tokenCount).toBe(c.nodes.length * v);
        for (const node of c.joining)
          expect(ring.nodeRole(ring.nodeIndex(node.id))).toBe('joining');
        const current = buildRing({ ...base, nodes: without(c.nodes, c.joining) });
        const future = buildRing({ ...base, nodes: c.nodes });
        expect(ring.replicationFactor).toBe(current.replicationFactor);
        checkAgainst(ring, current, future, keys);
      }),
      { numRuns: 150 },
    );
  });

  it('with leaving nodes: current is the ring with them, future the ring without them', () => {
    fc.assert(
      fc.property(changeArb([NORMAL, LEAVING]), rfArb, vnodesArb, keysArb, (c, rf, v, keys) => {
        fc.pre(c.leaving.length > 0);
        const base = { replicationFactor: rf, vnodesPerNode: v };
        const ring = buildRing({ ...base, nodes: c.nodes, leaving: idList(c.leaving) });
        expect(ring.pending).toBe(true);
        for (const node of c.leaving)
          expect(ring.nodeRole(ring.nodeIndex(node.id))).toBe('leaving');
        const current = buildRing({ ...base, nodes: c.nodes });
        const future = buildRing({ ...base, nodes: without(c.nodes, c.leaving) });
        checkAgainst(ring, current, future, keys);
        // Leaving changes nothing about the current placement: the rows are the plain ring's.
        expect(ring.arrays.rows).toEqual(current.arrays.rows);
      }),
      { numRuns: 150 },
    );
  });

  it('with nodes joining and leaving at once (a replacement)', () => {
    fc.assert(
      fc.property(
        changeArb([NORMAL, JOINING, LEAVING]),
        rfArb,
        vnodesArb,
        keysArb,
        (c, rf, v, keys) => {
          const base = { replicationFactor: rf, vnodesPerNode: v };
          const ring = buildRing({
            ...base,
            nodes: c.nodes,
            joining: idList(c.joining),
            leaving: idList(c.leaving),
          });
          expect(ring.pending).toBe(c.joining.length + c.leaving.length > 0);
          const current = buildRing({ ...base, nodes: without(c.nodes, c.joining) });
          const future = buildRing({ ...base, nodes: without(c.nodes, c.leaving) });
          checkAgainst(ring, current, future, keys);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('pending assignments: the future pins are the current ones with the pending ones in force', () => {
    fc.assert(
      fc.property(pinnedChangeArb(), ({ c, rf, v, assignments, pendingAssignments, keys }) => {
        const base = { replicationFactor: rf, vnodesPerNode: v };
        const ring = buildRing({
          ...base,
          nodes: c.nodes,
          joining: idList(c.joining),
          leaving: idList(c.leaving),
          assignments,
          pendingAssignments,
        });
        const current = buildRing({ ...base, nodes: without(c.nodes, c.joining), assignments });
        const future = buildRing({
          ...base,
          nodes: without(c.nodes, c.leaving),
          assignments: futurePins(assignments, pendingAssignments),
        });
        expect(ring.pending).toBe(
          c.joining.length + c.leaving.length + pendingAssignments.length > 0,
        );
        expect(ring.pendingAssignments).toEqual(pendingAssignments.map(normalised));
        checkAgainst(ring, current, future, keys);
      }),
      { numRuns: 150 },
    );
  });

  it('a TableReader over the published table answers every placement as the Ring does', () => {
    const writer = new TableWriter({
      maxNodes: 12,
      maxTokens: 12 * 8,
      maxReplicationFactor: 5,
      maxBlobBytes: 64 * 1024,
    });
    const reader = new TableReader(writer.buffer);
    fc.assert(
      fc.property(pinnedChangeArb(), ({ c, rf, v, assignments, pendingAssignments, keys }) => {
        const ring = buildRing({
          replicationFactor: rf,
          vnodesPerNode: v,
          nodes: c.nodes,
          joining: idList(c.joining),
          leaving: idList(c.leaving),
          assignments,
          pendingAssignments,
        });
        const epoch = writer.publish(ring);
        expect(reader.refresh()).toBe(true);
        expect(reader.epoch).toBe(epoch);
        expect(reader.pending).toBe(ring.pending);
        expect(reader.maxPlacementSize).toBe(ring.maxPlacementSize);
        expect(ring.nodes.map((_, i) => reader.nodeRole(i))).toEqual(
          ring.nodes.map((_, i) => ring.nodeRole(i)),
        );
        for (const key of keys) {
          for (const kind of ['lookupInto', 'futureInto', 'pendingInto'] as const) {
            expect(answer(reader, kind, key)).toEqual(answer(ring, kind, key));
          }
          expect(reader.lookupFuture(key)).toEqual(ring.lookupFuture(key));
        }
      }),
      { numRuns: 150 },
    );
  });
});

// Where each space is pinned after the change: pending pins replace current ones.
function futurePins(
  assignments: readonly SpaceAssignment[],
  pending: readonly PendingAssignment[],
): SpaceAssignment[] {
  const pins = new Map(assignments.map((a) => [a.spaceId, a]));
  for (const p of pending) {
    if (p.primary === null) pins.delete(p.spaceId);
    else pins.set(p.spaceId, p);
  }
  return [...pins.values()];
}

function normalised(p: PendingAssignment): PendingAssignment {
  return p.primary === null ? { spaceId: p.spaceId, primary: null } : p;
}

// A change with pins that a control plane could ask for: current pins on nodes not joining,
// pending pins on nodes not leaving, and every current pin on a leaving node moved.
// Pinned spaces are among the keys looked up.
function pinnedChangeArb() {
  return fc
    .tuple(changeArb([NORMAL, NORMAL, JOINING, LEAVING]), rfArb, vnodesArb, keysArb, fc.gen())
    .map(([c, rf, v, keys, g]) => {
      const spaces = [...new Set(keys.filter((k) => k.length > 0))].slice(0, 6);
      const pick = (pool: NodeInfo[]): SpaceAssignment['replicas'] => {
        const size = g(fc.integer, { min: 1, max: Math.min(4, pool.length) });
        const order = g(fc.shuffledSubarray, pool, { minLength: size, maxLength: size });
        return order.map((n) => n.id);
      };
      const current = without(c.nodes, c.joining);
      const future = without(c.nodes, c.leaving);
      const assignments: SpaceAssignment[] = [];
      const pendingAssignments: PendingAssignment[] = [];
      for (const spaceId of spaces) {
        // 0 unpinned, 1 pinned, 2 ring to pin, 3 pin to pin, 4 pin to ring
        const shape = g(fc.integer, { min: 0, max: 4 });
        let pinned: SpaceAssignment | undefined;
        if (shape === 1 || shape >= 3) {
          const [primary, ...replicas] = pick(current);
          pinned = { spaceId, primary: primary!, replicas };
          assignments.push(pinned);
        }
        const leavingPinned =
          pinned !== undefined &&
          [pinned.primary, ...pinned.replicas].some((id) => c.leaving.some((n) => n.id === id));
        if (shape === 2 || shape === 3 || (leavingPinned && shape !== 4)) {
          const [primary, ...replicas] = pick(future);
          pendingAssignments.push({ spaceId, primary: primary!, replicas });
        } else if (shape === 4) {
          // Back to the ring; written either way a caller may write it.
          pendingAssignments.push(
            g(fc.boolean)
              ? { spaceId, primary: null }
              : { spaceId, primary: null, replicas: [] as const },
          );
        }
      }
      return { c, rf, v, assignments, pendingAssignments, keys };
    });
}
