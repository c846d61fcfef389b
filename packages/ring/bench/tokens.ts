// @engram/ring benchmarks for explicit tokens: the token allocator's balance and movement
// against the random (hashed-vnode) ring in the same run, at 100 and 1000 nodes in 3 zones,
// replication factor 3; table size and build + publish time at 1000 nodes; lookup cost at
// 1000 nodes against 100. `pnpm bench:tokens` from this package (after `pnpm build`: lookups
// run in a worker on dist/).
//
// Definitions (exact, computed from the ring's arrays, no key sampling):
// - owned load of a node: the hash space (fraction of 2^32) for which it is among the RF
//   replicas; the mean is RF / nodes. Balance = max / mean.
// - movement adding a node: the replica space that changes hands, i.e. the sum over nodes of
//   what each gains (owned after - owned before, where positive); with both schemes only the
//   new node gains. Ideal = the new node's fair share, RF × 2^32 / (nodes + 1): the least
//   that must move for it to hold its share. Reported as moved / ideal.
import { Worker } from 'node:worker_threads';
import { BenchReport, benchTime, QUICK } from '@engram/bench-kit';
import {
  allocateClusterTokens,
  allocateTokens,
  buildRing,
  DEFAULT_VNODES_PER_NODE,
  type NodeInfo,
  type Ring,
  TableWriter,
} from '../src/index.js';
import { randomSpaceIds } from './keys.js';

const report = new BenchReport('ring-tokens');
const RF = 3;
const RING = 2 ** 32;
const KEYS = Number(process.env.RING_BENCH_KEYS ?? (QUICK ? 100_000 : 1_000_000));
const BATCH = 1000;
const TIME_MS = Number(process.env.RING_BENCH_TIME_MS ?? benchTime(1500, 300));
const SIZES = QUICK ? [100] : [100, 1000];
const TOKEN_COUNTS = QUICK ? [16, 64] : [16, 64, 128, 256];
const BUILD_RUNS = QUICK ? 1 : 5;

const nodesOf = (count: number): NodeInfo[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `node-${String(i).padStart(4, '0')}`,
    address: `10.0.${i >> 8}.${i & 255}:7000`,
    zone: `zone-${i % 3}`,
  }));
const newcomer: NodeInfo = { id: 'node-new', address: '10.9.9.9:7000', zone: 'zone-1' };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Owned load per node id. */
function owned(ring: Ring): Map<string, number> {
  const loads = new Float64Array(ring.nodes.length);
  const { tokens, rows, tokenCount } = ring.arrays;
  const stride = ring.replicationFactor;
  for (let i = 0; i < tokenCount; i++) {
    const length =
      i === 0 ? tokens[0]! + RING - tokens[tokenCount - 1]! : tokens[i]! - tokens[i - 1]!;
    for (let r = 0; r < stride; r++) loads[rows[i * stride + r]!]! += length;
  }
  return new Map(ring.nodes.map((node, i) => [node.id, loads[i]!]));
}

/** How far the busiest node is over the mean, in % (max/mean - 1). */
function overMean(ring: Ring): number {
  const loads = owned(ring);
  const mean = (ring.replicationFactor * RING) / ring.nodes.length;
  return (Math.max(...loads.values()) / mean - 1) * 100;
}

function movedOverIdeal(before: Ring, after: Ring): number {
  const was = owned(before);
  let moved = 0;
  for (const [id, load] of owned(after)) moved += Math.max(0, load - (was.get(id) ?? 0));
  return moved / ((after.replicationFactor * RING) / after.nodes.length);
}

// ---------------------------------------------------------------- balance and movement
const balanceRows: Array<{ name: string; median: number; p99: number }> = [];
const allocationRows: Array<{ name: string; median: number; p99: number }> = [];
const allocated = new Map<string, NodeInfo[]>(); // `${nodes}/${tokens}` → nodes with tokens
for (const count of SIZES) {
  const nodes = nodesOf(count);
  for (const tokensPerNode of TOKEN_COUNTS) {
    const t0 = performance.now();
    const tokens = allocateClusterTokens(nodes, { tokensPerNode, replicationFactor: RF });
    const clusterMs = performance.now() - t0;
    const members = nodes.map((node, i) => ({ ...node, tokens: tokens[i]!.tokens }));
    allocated.set(`${count}/${tokensPerNode}`, members);
    const t1 = performance.now();
    const joined = allocateTokens(members, newcomer, { tokensPerNode, replicationFactor: RF });
    const joinMs = performance.now() - t1;
    const before = buildRing({ nodes: members, replicationFactor: RF });
    const after = buildRing({
      nodes: [...members, { ...newcomer, tokens: joined }],
      replicationFactor: RF,
    });
    balanceRows.push({
      name: `${count} nodes: allocator, ${tokensPerNode} tokens`,
      median: overMean(before),
      p99: movedOverIdeal(before, after),
    });
    allocationRows.push({
      name: `${count} nodes, ${tokensPerNode} tokens: whole cluster (${count} joins) / one more join`,
      median: clusterMs,
      p99: joinMs,
    });
  }
  for (const vnodes of [...TOKEN_COUNTS, DEFAULT_VNODES_PER_NODE]) {
    const before = buildRing({ nodes, vnodesPerNode: vnodes, replicationFactor: RF });
    const after = buildRing({
      nodes: [...nodes, newcomer],
      vnodesPerNode: vnodes,
      replicationFactor: RF,
    });
    balanceRows.push({
      name: `${count} nodes: random, ${vnodes} vnodes${vnodes === DEFAULT_VNODES_PER_NODE ? ' (default)' : ''}`,
      median: overMean(before),
      p99: movedOverIdeal(before, after),
    });
  }
}
const BALANCE_BASELINE = `${SIZES.at(-1)} nodes: random, ${DEFAULT_VNODES_PER_NODE} vnodes (default)`;
report.table({
  title: `Owned load, 3 zones, RF ${RF} (targets: busiest ≤ 5 % over the mean, i.e. max/mean ≤ 1.05; moved/ideal adding one node ≤ 1.1)`,
  unit: '',
  columns: ['busiest over mean %', 'moved/ideal'],
  baseline: BALANCE_BASELINE,
  rows: balanceRows,
});
report.table({
  title: 'Allocation time (allocateClusterTokens; allocateTokens for one more node)',
  unit: 'ms',
  columns: ['cluster', 'one join'],
  baseline: allocationRows[0]!.name,
  rows: allocationRows,
});

// ---------------------------------------------------------------- table size and build time
const buildRows: Array<{ name: string; median: number; p99: number }> = [];
const sizeRows: Array<{ name: string; median: number; p99: number }> = [];
const writers = new Map<string, TableWriter>();
const COUNT = SIZES.at(-1)!;
const variants: Array<[string, () => Ring]> = [
  ...TOKEN_COUNTS.map((t): [string, () => Ring] => [
    `${COUNT} nodes, allocator, ${t} tokens`,
    () => buildRing({ nodes: allocated.get(`${COUNT}/${t}`)!, replicationFactor: RF }),
  ]),
  [
    `${COUNT} nodes, random, ${DEFAULT_VNODES_PER_NODE} vnodes (default)`,
    () => buildRing({ nodes: nodesOf(COUNT), replicationFactor: RF }),
  ],
];
for (const [name, build] of variants) {
  const buildMs: number[] = [];
  const publishMs: number[] = [];
  let writer: TableWriter | undefined;
  for (let run = 0; run < BUILD_RUNS; run++) {
    const t0 = performance.now();
    const ring = build();
    const t1 = performance.now();
    // Capacity exactly this table (growth room would double it): its bytes are the table's.
    writer ??= new TableWriter({
      maxNodes: ring.nodes.length,
      maxTokens: ring.tokenCount,
      maxReplicationFactor: ring.maxPlacementSize,
    });
    writer.publish(ring);
    publishMs.push(performance.now() - t1);
    buildMs.push(t1 - t0);
  }
  writers.set(name, writer!);
  buildRows.push({ name, median: median(buildMs), p99: median(publishMs) });
  sizeRows.push({ name, median: writer!.buffer.byteLength / 2 ** 20, p99: Number.NaN });
}
const BUILD_BASELINE = variants.at(-1)![0];
report.table({
  title: `Build + publish (median of ${BUILD_RUNS}; targets: table ≤ 16 MB, build + publish < 200 ms)`,
  unit: 'ms',
  columns: ['build', 'publish'],
  baseline: BUILD_BASELINE,
  rows: buildRows,
});
report.table({
  title: 'Shared table size (TableWriter buffer sized to the table, two halves)',
  unit: 'MiB',
  columns: ['size', '-'],
  baseline: BUILD_BASELINE,
  rows: sizeRows,
});

// ---------------------------------------------------------------- lookups
interface Timing {
  name: string;
  p50: number;
  p99: number;
}
const OURS = new URL('../dist/index.js', import.meta.url).href;
const keys = randomSpaceIds(KEYS);
function inWorker(buffer: SharedArrayBuffer): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./lookup-worker.mjs', import.meta.url), {
      workerData: {
        module: OURS,
        buffer,
        keys,
        batch: BATCH,
        time: TIME_MS,
        tasks: ['lookupInto'],
      },
    });
    worker.once('message', (m: { results: Timing[] }) => {
      void worker.terminate();
      resolve(m.results[0]!);
    });
    worker.once('error', reject);
  });
}
const LOOKUP_TOKENS = 64;
const lookupTables: Array<[string, SharedArrayBuffer]> = [];
for (const count of SIZES) {
  const ring = buildRing({
    nodes: allocated.get(`${count}/${LOOKUP_TOKENS}`)!,
    replicationFactor: RF,
  });
  const writer = new TableWriter({ maxNodes: count, maxTokens: ring.tokenCount });
  writer.publish(ring);
  lookupTables.push([`${count} nodes, allocator, ${LOOKUP_TOKENS} tokens`, writer.buffer]);
}
for (const count of SIZES) {
  const name = `${count} nodes, random, ${DEFAULT_VNODES_PER_NODE} vnodes (default)`;
  let buffer = writers.get(name)?.buffer;
  if (buffer === undefined) {
    const ring = buildRing({ nodes: nodesOf(count), replicationFactor: RF });
    const writer = new TableWriter({ maxNodes: count, maxTokens: ring.tokenCount });
    writer.publish(ring);
    buffer = writer.buffer;
  }
  lookupTables.push([name, buffer]);
}
const lookupRows: Array<{ name: string; median: number; p99: number }> = [];
for (const [name, buffer] of lookupTables) {
  const timing = await inWorker(buffer);
  lookupRows.push({
    name,
    median: (timing.p50 * 1e6) / BATCH,
    p99: (timing.p99 * 1e6) / BATCH,
  });
}
report.table({
  title: `TableReader.lookupInto in a worker (primary + 2 replicas), ${KEYS.toLocaleString('en-US')} random space ids, batches of ${BATCH} (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: `${SIZES[0]} nodes, random, ${DEFAULT_VNODES_PER_NODE} vnodes (default)`,
  rows: lookupRows,
});
report.write();
