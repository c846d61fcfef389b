// Regenerates test/vectors/placement-tokens.json: placements of rings whose nodes carry
// explicit tokens (given in the file, so another implementation needs no allocator). A wire
// contract like placement.json: run this only for a deliberate, announced change of scheme,
// and check the result against the naive reference (test/reference.ts) as the tests do.
//   npx tsx test/vectors/generate-placement-tokens.ts
import { writeFileSync } from 'node:fs';
import { buildRing, hashKey, type NodeInfo, type SpaceAssignment } from '../../src/index.js';

const spaces = [
  'space-0001',
  'space-0002',
  'user:42/memories',
  'tenant-7f3a9c/episodic',
  'a',
  'é',
  '中文记忆空间',
  'space-😀-𝄞',
  ...Array.from({ length: 32 }, (_, i) => `space-${(i * 7919) % 10007}`),
];

// Arbitrary distinct tokens from a fixed LCG (the values, not the generator, are the vectors).
let state = 20_241_126;
function nextToken(): number {
  state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
  return state;
}
const tokens = (count: number) => Array.from({ length: count }, nextToken);

interface Case {
  name: string;
  nodes: NodeInfo[];
  replicationFactor: number;
  assignments?: SpaceAssignment[];
}
const cases: Case[] = [
  {
    name: 'six nodes in three zones, 4 explicit tokens each, replication factor 3',
    nodes: [
      { id: 'node-a1', address: '10.0.0.1:7000', zone: 'zone-a', tokens: tokens(4) },
      { id: 'node-a2', address: '10.0.0.2:7000', zone: 'zone-a', tokens: tokens(4) },
      { id: 'node-b1', address: '10.0.1.1:7000', zone: 'zone-b', tokens: tokens(4) },
      { id: 'node-b2', address: '10.0.1.2:7000', zone: 'zone-b', tokens: tokens(4) },
      { id: 'node-c1', address: '10.0.2.1:7000', zone: 'zone-c', tokens: tokens(4) },
      { id: 'node-c2', address: '10.0.2.2:7000', zone: 'zone-c', tokens: tokens(4) },
    ],
    replicationFactor: 3,
  },
  {
    name: 'five nodes in two zones, uneven token counts, replication factor 3 (zones reused)',
    nodes: [
      { id: 'x1', address: 'mem-1:7000', zone: 'x', tokens: tokens(3) },
      { id: 'x2', address: 'mem-2:7000', zone: 'x', tokens: tokens(1) },
      { id: 'x3', address: 'mem-3:7000', zone: 'x', tokens: tokens(5) },
      { id: 'y1', address: 'mem-4:7000', zone: 'y', tokens: tokens(2) },
      { id: 'y2', address: 'mem-5:7000', zone: 'y', tokens: tokens(4) },
    ],
    replicationFactor: 3,
  },
  {
    name: 'four unzoned nodes, tokens at both ends of the ring, replication factor 2, one assignment',
    nodes: [
      { id: 'n1', address: 'mem-1:7000', tokens: [0, ...tokens(2)] },
      { id: 'n2', address: 'mem-2:7000', tokens: [4_294_967_295, ...tokens(2)] },
      { id: 'n3', address: 'mem-3:7000', tokens: tokens(3) },
      { id: 'n4', address: 'mem-4:7000', tokens: tokens(3) },
    ],
    replicationFactor: 2,
    assignments: [{ spaceId: 'space-0002', primary: 'n4', replicas: ['n1', 'n3'] }],
  },
];

const out = {
  description:
    'Placement golden vectors with explicit tokens: each node carries its ring positions (tokens), none held twice. A key starts at the first token >= hashKey(key) (wrapping); lap 1 takes untaken nodes whose zone is unused unless every zone is used, lap 2 takes any untaken node.',
  cases: cases.map((c) => {
    const ring = buildRing(c);
    return {
      ...c,
      placements: spaces.map((spaceId) => {
        const p = ring.lookup(spaceId);
        return {
          spaceId,
          token: hashKey(spaceId),
          primary: p.primary.id,
          replicas: p.replicas.map((r) => r.id),
        };
      }),
    };
  }),
};
writeFileSync(
  new URL('./placement-tokens.json', import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
