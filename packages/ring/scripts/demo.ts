// Prints where sample memory spaces live on a sample cluster, read back through a shared
// table the way router threads read it. `pnpm --filter @engram/ring demo`. Kept out of src/ so
// it is not built into dist/ and published, where nothing could reach it.
import { buildRing, type NodeInfo, TableReader, TableWriter } from '../src/index.js';

const nodes: NodeInfo[] = [
  { id: 'node-a1', address: '127.0.0.1:7101', zone: 'zone-a' },
  { id: 'node-a2', address: '127.0.0.1:7102', zone: 'zone-a' },
  { id: 'node-b1', address: '127.0.0.1:7201', zone: 'zone-b' },
  { id: 'node-b2', address: '127.0.0.1:7202', zone: 'zone-b' },
  { id: 'node-c1', address: '127.0.0.1:7301', zone: 'zone-c' },
];
const spaces = [
  'alice/episodic',
  'alice/semantic',
  'bob/episodic',
  'team-42/shared',
  'sensor-7f3a',
];

const started = performance.now();
const ring = buildRing({
  nodes,
  replicationFactor: 3,
  assignments: [{ spaceId: 'team-42/shared', primary: 'node-c1', replicas: ['node-a1'] }],
});
const writer = new TableWriter({ maxNodes: 16, maxTokens: ring.tokenCount });
const epoch = writer.publish(ring);
const reader = new TableReader(writer.buffer);
const builtMs = performance.now() - started;

console.log(
  `Ring: ${ring.nodes.length} nodes in 3 zones, ${ring.vnodesPerNode} vnodes each, replication factor ${ring.replicationFactor}; ` +
    `built and published as epoch ${epoch} in ${builtMs.toFixed(0)} ms\n`,
);
const pad = (s: string, n: number) => s.padEnd(n);
console.log(`${pad('space', 18)}${pad('primary', 22)}replicas`);
for (const space of spaces) {
  const { primary, replicas } = reader.lookup(space);
  const where = (n: NodeInfo) => `${n.id} (${n.zone})`;
  const note = ring.assignmentMap.has(space) ? '   ← explicit assignment' : '';
  console.log(
    `${pad(space, 18)}${pad(where(primary), 22)}${replicas.map(where).join(', ')}${note}`,
  );
}

const counts = new Map<string, number>();
const out = new Uint16Array(reader.maxPlacementSize);
const SAMPLE = 100_000;
const t0 = performance.now();
for (let i = 0; i < SAMPLE; i++) {
  reader.lookupInto(`space-${i}`, out);
  const id = reader.nodes[out[0]!]!.id;
  counts.set(id, (counts.get(id) ?? 0) + 1);
}
const ns = ((performance.now() - t0) * 1e6) / SAMPLE;
console.log(
  `\nPrimaries of ${SAMPLE.toLocaleString()} spaces (${ns.toFixed(0)} ns per lookup, first run, not a benchmark):`,
);
for (const node of reader.nodes) {
  const share = (counts.get(node.id) ?? 0) / SAMPLE;
  console.log(
    `  ${pad(node.id, 10)}${(share * 100).toFixed(1).padStart(5)} %  ${'█'.repeat(Math.round(share * 100))}`,
  );
}
