import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRing, type NodeInfo } from '../src/index.js';
import { clusterArb, keysArb, nodeArb } from './arbitraries.js';
import { ids, referencePlacement } from './reference.js';

describe('ring properties', () => {
  it('matches the naive reference on random clusters, zones and unicode keys', () => {
    fc.assert(
      fc.property(
        clusterArb,
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 24 }),
        keysArb,
        (nodes, rf, vnodes, keys) => {
          const ring = buildRing({ nodes, replicationFactor: rf, vnodesPerNode: vnodes });
          for (const key of keys) {
            expect(ids(ring.lookup(key))).toEqual(referencePlacement(nodes, vnodes, rf, key));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('is deterministic: same input gives the same placement in any order', () => {
    fc.assert(
      fc.property(clusterArb, keysArb, fc.integer({ min: 0, max: 1000 }), (nodes, keys, rot) => {
        const a = buildRing({ nodes, vnodesPerNode: 8 });
        const rotated = nodes.map((_, i) => nodes[(i + rot) % nodes.length]!);
        const b = buildRing({ nodes: rotated, vnodesPerNode: 8 });
        for (const key of keys) expect(b.lookup(key)).toEqual(a.lookup(key));
      }),
      { numRuns: 100 },
    );
  });

  it('replicas are distinct and repeat a zone only when zones run out', () => {
    fc.assert(
      fc.property(clusterArb, fc.integer({ min: 1, max: 6 }), keysArb, (nodes, rf, keys) => {
        const ring = buildRing({ nodes, replicationFactor: rf, vnodesPerNode: 8 });
        const zoneCount = new Set(nodes.map((n) => n.zone ?? '')).size;
        for (const key of keys) {
          const placement = ring.lookup(key);
          const all = [placement.primary, ...placement.replicas];
          expect(all.length).toBe(Math.min(rf, nodes.length));
          expect(new Set(all.map((n) => n.id)).size).toBe(all.length);
          const zones = new Set(all.map((n) => n.zone ?? ''));
          expect(zones.size).toBe(Math.min(all.length, zoneCount));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('adding a node moves primaries only to it, and changes only placements it joins', () => {
    fc.assert(
      fc.property(clusterArb, nodeArb, keysArb, (nodes, extra, keys) => {
        fc.pre(!nodes.some((n) => n.id === extra.id));
        const added: NodeInfo = {
          id: extra.id,
          address: '127.0.0.1:6999',
          ...(extra.zone === undefined ? {} : { zone: extra.zone }),
        };
        const before = buildRing({ nodes, vnodesPerNode: 8 });
        const after = buildRing({ nodes: [...nodes, added], vnodesPerNode: 8 });
        for (const key of keys) {
          const was = ids(before.lookup(key));
          const now = ids(after.lookup(key));
          if (now[0] !== was[0]) expect(now[0]).toBe(added.id);
          if (!now.includes(added.id) && was.length === now.length) expect(now).toEqual(was);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('removing a node changes only the placements that included it', () => {
    fc.assert(
      fc.property(clusterArb, fc.integer({ min: 0, max: 100 }), keysArb, (nodes, pick, keys) => {
        fc.pre(nodes.length >= 2);
        const gone = nodes[pick % nodes.length]!;
        const before = buildRing({ nodes, vnodesPerNode: 8 });
        const after = buildRing({ nodes: nodes.filter((n) => n !== gone), vnodesPerNode: 8 });
        for (const key of keys) {
          const was = ids(before.lookup(key));
          if (!was.includes(gone.id)) expect(ids(after.lookup(key))).toEqual(was);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('adding one node to N moves close to 1/(N+1) of primaries', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `space-${i}-${(i * 2654435761) >>> 0}`);
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 40 }), fc.nat(), (count, salt) => {
        const nodes = Array.from({ length: count }, (_, i) => ({
          id: `n${salt}-${i}`,
          address: `127.0.0.1:${7000 + i}`,
        }));
        const before = buildRing({ nodes, vnodesPerNode: 256, replicationFactor: 1 });
        const after = buildRing({
          nodes: [...nodes, { id: `n${salt}-new`, address: '127.0.0.1:6999' }],
          vnodesPerNode: 256,
          replicationFactor: 1,
        });
        let moved = 0;
        for (const key of keys)
          if (before.lookup(key).primary.id !== after.lookup(key).primary.id) moved++;
        const ratio = moved / (keys.length / (count + 1));
        // 256 vnodes: the new node's share has ~6 % spread; sampling adds at most ~7 %.
        expect(ratio).toBeGreaterThan(0.65);
        expect(ratio).toBeLessThan(1.35);
      }),
      { numRuns: 12 },
    );
  });
});
