// @engram/ring benchmarks: lookup cost, balance, movement and build time, ours beside the
// npm `hashring` package (ketama, md5) in one run; the cost of membership changes
// (pendingInto, futureInto) beside ordinary lookups. `pnpm bench` from this package.
// RING_BENCH_BASELINE=/abs/path/to/another/build/packages/ring/dist/index.js also times that
// build's lookups in the same run (e.g. the commit before a change; never committed).
import { Worker } from 'node:worker_threads';
import HashRing from 'hashring';
import { Bench, type Task } from 'tinybench';
import {
  buildRing,
  DEFAULT_VNODES_PER_NODE,
  type NodeInfo,
  type Ring,
  TableWriter,
} from '../src/index.js';
import { randomSpaceIds } from './keys.js';

const NODES = 100;
const KEYS = Number(process.env.RING_BENCH_KEYS ?? 1_000_000);
const BATCH = 1000;
const TIME_MS = Number(process.env.RING_BENCH_TIME_MS ?? 1500);

const nodesOf = (count: number, prefix = 'node'): NodeInfo[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    address: `10.0.${i >> 8}.${i & 255}:7000`,
    zone: `zone-${i % 3}`,
  }));

const keys = randomSpaceIds(KEYS);
const nodes = nodesOf(NODES);
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const rows: Array<Record<string, string>> = [];

// ---------------------------------------------------------------- lookup ns/op
const ring = buildRing({ nodes });
const writer = new TableWriter({ maxTokens: ring.tokenCount, maxNodes: NODES });
writer.publish(ring);
const hashring = new HashRing(nodes.map((n) => n.address));

interface Timing {
  name: string;
  p50: number;
  mean: number;
}
const OURS = new URL('../dist/index.js', import.meta.url).href;
const BASELINE = process.env.RING_BENCH_BASELINE;
type RingModule = typeof import('../src/index.js');

/** Times `tasks` in a worker thread over `buffer`, reading it with `module`'s TableReader. */
function inWorker(module: string, buffer: SharedArrayBuffer, tasks: string[]): Promise<Timing[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./lookup-worker.mjs', import.meta.url), {
      workerData: { module, buffer, keys, batch: BATCH, time: TIME_MS, tasks },
    });
    worker.once('message', (m: { results: Timing[] }) => {
      void worker.terminate();
      resolve(m.results);
    });
    worker.once('error', reject);
  });
}

const workerResult = (await inWorker(OURS, writer.buffer, ['lookupInto']))[0]!;

let cursor = 0;
let sink = 0;
const out = new Uint16Array(ring.maxPlacementSize);
const bench = new Bench({ time: TIME_MS, warmupTime: 200 });
bench
  .add('Ring.lookupInto (main thread)', () => {
    for (let i = 0; i < BATCH; i++) {
      sink += ring.lookupInto(keys[cursor]!, out);
      cursor = cursor + 1 === KEYS ? 0 : cursor + 1;
    }
  })
  .add('hashring.get (primary only)', () => {
    for (let i = 0; i < BATCH; i++) {
      sink += hashring.get(keys[cursor]!).length;
      cursor = cursor + 1 === KEYS ? 0 : cursor + 1;
    }
  })
  .add('hashring.range (3 nodes)', () => {
    for (let i = 0; i < BATCH; i++) {
      sink += hashring.range(keys[cursor]!, 3).length;
      cursor = cursor + 1 === KEYS ? 0 : cursor + 1;
    }
  });
await bench.run();
const perOp = (ms: number) => (ms * 1e6) / BATCH;
function latency(task: Task | undefined) {
  const result = task?.result;
  if (result === undefined || !('latency' in result))
    throw new Error(`${task?.name} did not complete`);
  return result.latency;
}
const hashringRange = latency(bench.tasks[2]);
const lookupRows = [
  {
    name: 'ours: TableReader.lookupInto in a worker (primary + 2 replicas)',
    p50: workerResult.p50,
    mean: workerResult.mean,
  },
  ...bench.tasks.map((t) => ({
    name: `${t.name.startsWith('Ring') ? 'ours' : 'baseline'}: ${t.name}`,
    p50: latency(t).p50,
    mean: latency(t).mean,
  })),
];
console.log(
  `\nLookup, ${NODES} nodes, ${KEYS.toLocaleString()} random 16–36 byte space ids (ns per lookup, batches of ${BATCH})`,
);
console.table(
  lookupRows.map((r) => ({
    task: r.name,
    'median ns/op': fmt(perOp(r.p50)),
    'mean ns/op': fmt(perOp(r.mean)),
    'hashring.range ÷ this': fmt(hashringRange.mean / r.mean, 2),
  })),
);

// ---------------------------------------------------------------- balance
function primaryCounts(lookup: (key: string) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const key of keys) {
    const id = lookup(key);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
function maxOverMean(counts: Map<string, number>, nodeCount: number): number {
  return Math.max(...counts.values()) / (KEYS / nodeCount);
}
function ownedShareMaxOverMean(r: Ring): number {
  // Exact share of the token space each node is primary for (no key sampling noise).
  const share = new Float64Array(r.nodes.length);
  const { tokens, rows: placement, tokenCount } = r.arrays;
  for (let i = 0; i < tokenCount; i++) {
    const previous = i === 0 ? tokens[tokenCount - 1]! - 2 ** 32 : tokens[i - 1]!;
    share[placement[i * r.replicationFactor]!]! += tokens[i]! - previous;
  }
  return Math.max(...share) / (2 ** 32 / r.nodes.length);
}
const idOf = (r: Ring) => (key: string) => r.lookup(key).primary.id;
for (const vnodes of [256, 1024, 4096, 8192, DEFAULT_VNODES_PER_NODE, 16_384].filter(
  (v, i, a) => a.indexOf(v) === i,
)) {
  const r = vnodes === DEFAULT_VNODES_PER_NODE ? ring : buildRing({ nodes, vnodesPerNode: vnodes });
  rows.push({
    ring: `ours, ${vnodes} vnodes${vnodes === DEFAULT_VNODES_PER_NODE ? ' (default)' : ''}`,
    'max/mean primaries (1M keys)': fmt(maxOverMean(primaryCounts(idOf(r)), NODES), 3),
    'max/mean owned token share': fmt(ownedShareMaxOverMean(r), 3),
  });
}
rows.push({
  ring: 'hashring (40 vnodes × 4, md5)',
  'max/mean primaries (1M keys)': fmt(
    maxOverMean(
      primaryCounts((k) => hashring.get(k)),
      NODES,
    ),
    3,
  ),
  'max/mean owned token share': 'n/a',
});
console.log(`\nBalance, ${NODES} nodes (target ≤ 1.05 for the default)`);
console.table(rows);

// ---------------------------------------------------------------- movement on add
const grown = buildRing({
  nodes: [...nodes, { id: 'node-new', address: '10.9.9.9:7000', zone: 'zone-1' }],
});
let moved = 0;
let movedElsewhere = 0;
for (const key of keys) {
  const before = ring.lookup(key).primary.id;
  const after = grown.lookup(key).primary.id;
  if (before !== after) {
    moved++;
    if (after !== 'node-new') movedElsewhere++;
  }
}
const hashringGrown = new HashRing(nodes.map((n) => n.address));
hashringGrown.add('10.9.9.9:7000');
let hrMoved = 0;
for (const key of keys) if (hashring.get(key) !== hashringGrown.get(key)) hrMoved++;
const ideal = KEYS / (NODES + 1);
console.log(
  `\nMovement adding node ${NODES + 1} (ideal ${Math.round(ideal)} of ${KEYS}; target moved/ideal ≤ 1.1)`,
);
console.table([
  {
    ring: 'ours (default vnodes)',
    moved,
    'moved/ideal': fmt(moved / ideal, 3),
    'moved to an old node': movedElsewhere,
  },
  {
    ring: 'hashring',
    moved: hrMoved,
    'moved/ideal': fmt(hrMoved / ideal, 3),
    'moved to an old node': 'n/a',
  },
]);

// ---------------------------------------------------------------- membership change
// Worker-thread TableReader costs, like for like: the same 100-node ring (plain), then the
// same ring with node 101 joining or node 0 leaving. With RING_BENCH_BASELINE, the other
// build's lookupInto over its own table of the plain ring, in the same run.
const changeRows: Array<Record<string, string>> = [];
const addChange = (table: string, timings: Timing[]) => {
  for (const t of timings) {
    changeRows.push({
      table,
      task: t.name,
      'median ns/op': fmt(perOp(t.p50)),
      'mean ns/op': fmt(perOp(t.mean)),
    });
  }
};
if (BASELINE !== undefined) {
  const base = (await import(BASELINE)) as RingModule;
  const baseRing = base.buildRing({ nodes });
  const baseWriter = new base.TableWriter({ maxTokens: baseRing.tokenCount, maxNodes: NODES });
  baseWriter.publish(baseRing);
  addChange('plain, baseline build', await inWorker(BASELINE, baseWriter.buffer, ['lookupInto']));
}
addChange(
  'plain, this build',
  await inWorker(OURS, writer.buffer, ['lookupInto', 'pendingInto', 'lookupInto + pendingInto']),
);
const newcomer = { id: 'node-new', address: '10.9.9.9:7000', zone: 'zone-1' };
for (const [label, options] of [
  ['node 101 joining', { nodes: [...nodes, newcomer], joining: [newcomer.id] }],
  ['node-0 leaving', { nodes, leaving: ['node-0'] }],
] as const) {
  const changing = buildRing(options);
  const changeWriter = new TableWriter({ maxTokens: changing.tokenCount, maxNodes: NODES + 1 });
  changeWriter.publish(changing);
  let pendingKeys = 0;
  const extra = new Uint16Array(changing.maxPlacementSize);
  for (let i = 0; i < 100_000; i++) if (changing.pendingInto(keys[i]!, extra) > 0) pendingKeys++;
  addChange(
    `${label} (${fmt(pendingKeys / 1000, 1)} % of keys have a pending node)`,
    await inWorker(OURS, changeWriter.buffer, [
      'lookupInto',
      'pendingInto',
      'lookupInto + pendingInto',
      'futureInto',
    ]),
  );
}
console.log(
  `\nMembership change: TableReader in a worker, ${NODES} nodes, default vnodes, RF 3 (ns per call)`,
);
console.table(changeRows);

// ---------------------------------------------------------------- build + publish
const buildRows: Array<Record<string, string>> = [];
const builds: Array<[string, RingModule]> = [['this build', await import(OURS)]];
if (BASELINE !== undefined) builds.push(['baseline build', await import(BASELINE)]);
for (const count of [100, 1000]) {
  const members = nodesOf(count, 'n');
  for (const [label, build] of builds) {
    const buildMs: number[] = [];
    const publishMs: number[] = [];
    const tokenWriter = new build.TableWriter({
      maxNodes: count,
      maxTokens: count * DEFAULT_VNODES_PER_NODE,
    });
    for (let run = 0; run < 3; run++) {
      const t0 = performance.now();
      const built = build.buildRing({ nodes: members });
      const t1 = performance.now();
      tokenWriter.publish(built);
      publishMs.push(performance.now() - t1);
      buildMs.push(t1 - t0);
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    buildRows.push({
      build: label,
      nodes: String(count),
      tokens: (count * DEFAULT_VNODES_PER_NODE).toLocaleString(),
      'build ms (median of 3)': fmt(median(buildMs), 0),
      'publish ms (median of 3)': fmt(median(publishMs), 1),
      'shared table MB (2 halves)': fmt(tokenWriter.buffer.byteLength / 2 ** 20, 1),
    });
  }
}
console.log('\nBuild + publish, default vnodes, replication factor 3');
console.table(buildRows);
if (sink === 0.5) console.log(sink); // keep the work observable
