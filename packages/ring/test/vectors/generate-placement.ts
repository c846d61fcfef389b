// Regenerates test/vectors/placement.json from this implementation. The placement scheme
// is a wire contract: run this only for a deliberate, announced change of scheme, and
// check the result against the naive reference (test/reference.ts) as the tests do.
//   npx tsx test/vectors/generate-placement.ts
import { writeFileSync } from 'node:fs';
import { buildRing, hashKey, type NodeInfo, type SpaceAssignment } from '../../src/index.js';
import { murmur3x86_32 } from '../../src/internal/murmur3.js';

const spaces = [
  'space-0001',
  'space-0002',
  'user:42/memories',
  'tenant-7f3a9c/episodic',
  'a',
  '',
  'é',
  '中文记忆空间',
  'space-😀-𝄞',
  ...Array.from({ length: 31 }, (_, i) => `space-${(i * 7919) % 10007}`),
];

interface Case {
  name: string;
  nodes: NodeInfo[];
  vnodesPerNode?: number;
  replicationFactor: number;
  assignments?: SpaceAssignment[];
}
const cases: Case[] = [
  {
    name: 'five nodes in three zones, default vnodes, replication factor 3',
    nodes: [
      { id: 'node-a1', address: '10.0.0.1:7000', zone: 'zone-a' },
      { id: 'node-a2', address: '10.0.0.2:7000', zone: 'zone-a' },
      { id: 'node-b1', address: '10.0.1.1:7000', zone: 'zone-b' },
      { id: 'node-b2', address: '10.0.1.2:7000', zone: 'zone-b' },
      { id: 'node-c1', address: '10.0.2.1:7000', zone: 'zone-c' },
    ],
    replicationFactor: 3,
  },
  {
    name: 'four unzoned nodes, 4 vnodes, replication factor 2, one assignment',
    nodes: [
      { id: 'n1', address: 'mem-1:7000' },
      { id: 'n2', address: 'mem-2:7000' },
      { id: 'n3', address: 'mem-3:7000' },
      { id: 'n4', address: 'mem-4:7000' },
    ],
    vnodesPerNode: 4,
    replicationFactor: 2,
    assignments: [{ spaceId: 'space-0002', primary: 'n4', replicas: ['n1', 'n3'] }],
  },
];

const utf8 = new TextEncoder();
const out = {
  description:
    'Placement golden vectors. token(node, k) = MurmurHash3_x86_32(utf8(node.id), seed k); a key starts at the first vnode token >= hashKey(key) (wrapping); lap 1 takes untaken nodes whose zone is unused unless every zone is used, lap 2 takes any untaken node. Ties between equal tokens go to the smaller node id by code point.',
  cases: cases.map((c) => {
    const ring = buildRing(c);
    return {
      ...c,
      vnodesPerNode: ring.vnodesPerNode,
      firstTokens: Object.fromEntries(
        c.nodes.map((n) => {
          const bytes = utf8.encode(n.id);
          return [n.id, [0, 1, 2, 3].map((k) => murmur3x86_32(bytes, bytes.length, k))];
        }),
      ),
      placements: spaces
        .filter((s) => s !== '')
        .map((spaceId) => {
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
writeFileSync(new URL('./placement.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
