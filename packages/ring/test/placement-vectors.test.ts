import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildRing,
  hashKey,
  type NodeInfo,
  type SpaceAssignment,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { murmur3x86_32 } from '../src/internal/murmur3.js';
import { ids, referencePlacement } from './reference.js';

interface VectorCase {
  name: string;
  nodes: NodeInfo[];
  vnodesPerNode: number;
  replicationFactor: number;
  assignments?: SpaceAssignment[];
  firstTokens: Record<string, number[]>;
  placements: Array<{ spaceId: string; token: number; primary: string; replicas: string[] }>;
}
const { cases } = JSON.parse(
  readFileSync(new URL('./vectors/placement.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[] };

describe('placement golden vectors', () => {
  it('cover at least two clusters and many spaces', () => {
    expect(cases.length).toBeGreaterThanOrEqual(2);
    for (const c of cases) expect(c.placements.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of cases) {
    describe(c.name, () => {
      const ring = buildRing(c);

      it('vnode tokens are murmur3 of the node id with the vnode number as seed', () => {
        for (const [id, tokens] of Object.entries(c.firstTokens)) {
          const bytes = new TextEncoder().encode(id);
          expect(tokens.map((_, k) => murmur3x86_32(bytes, bytes.length, k))).toEqual(tokens);
        }
      });

      it('the ring, a shared table and the naive reference all give the vectors', () => {
        const writer = new TableWriter({ maxTokens: ring.tokenCount });
        writer.publish(ring);
        const reader = new TableReader(writer.buffer);
        const assigned = new Set((c.assignments ?? []).map((a) => a.spaceId));
        for (const v of c.placements) {
          expect(hashKey(v.spaceId)).toBe(v.token);
          const want = [v.primary, ...v.replicas];
          expect(ids(ring.lookup(v.spaceId))).toEqual(want);
          expect(ids(reader.lookup(v.spaceId))).toEqual(want);
          if (!assigned.has(v.spaceId)) {
            expect(
              referencePlacement(c.nodes, c.vnodesPerNode, c.replicationFactor, v.spaceId),
            ).toEqual(want);
          }
        }
      });
    });
  }
});

interface TokenVectorCase {
  name: string;
  nodes: NodeInfo[];
  replicationFactor: number;
  assignments?: SpaceAssignment[];
  placements: Array<{ spaceId: string; token: number; primary: string; replicas: string[] }>;
}
const tokenCases = (
  JSON.parse(readFileSync(new URL('./vectors/placement-tokens.json', import.meta.url), 'utf8')) as {
    cases: TokenVectorCase[];
  }
).cases;

describe('placement golden vectors, explicit tokens', () => {
  it('cover zoned, zone-reusing and unzoned clusters with many spaces', () => {
    expect(tokenCases.length).toBeGreaterThanOrEqual(3);
    for (const c of tokenCases) expect(c.placements.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of tokenCases) {
    describe(c.name, () => {
      const ring = buildRing(c);

      it('every node gives its tokens, and the ring holds exactly those', () => {
        const given = c.nodes.flatMap((n) => n.tokens ?? []);
        expect(c.nodes.every((n) => (n.tokens?.length ?? 0) > 0)).toBe(true);
        expect(Array.from(ring.arrays.tokens)).toEqual(given.sort((a, b) => a - b));
      });

      it('the ring, a shared table and the naive reference all give the vectors', () => {
        const writer = new TableWriter({ maxTokens: ring.tokenCount });
        writer.publish(ring);
        const reader = new TableReader(writer.buffer);
        const assigned = new Set((c.assignments ?? []).map((a) => a.spaceId));
        for (const v of c.placements) {
          expect(hashKey(v.spaceId)).toBe(v.token);
          const want = [v.primary, ...v.replicas];
          expect(ids(ring.lookup(v.spaceId))).toEqual(want);
          expect(ids(reader.lookup(v.spaceId))).toEqual(want);
          if (!assigned.has(v.spaceId)) {
            expect(referencePlacement(c.nodes, 0, c.replicationFactor, v.spaceId)).toEqual(want);
          }
        }
      });
    });
  }
});
