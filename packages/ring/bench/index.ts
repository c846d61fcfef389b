// @engram/ring benchmarks: lookup cost, balance, movement and build time, ours beside the
// npm `hashring` package (ketama, md5) in one run; the cost of membership changes
// (pendingInto, futureInto) beside ordinary lookups. `pnpm bench` from this package.
// RING_BENCH_BASELINE=/abs/path/to/another/build/packages/ring/dist/index.js also times that
// build's lookups in the same run (e.g. the commit before a change; never committed).
import { Worker } from 'node:worker_threads';
import { BenchReport, benchTime, QUICK } from '@engram/bench-kit';
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

const report = new BenchReport('ring');
const NODES = 100;
const KEYS = Number(process.env.RING_BENCH_KEYS ?? (QUICK ? 100_000 : 1_000_000));
const BATCH = 1000;
const TIME_MS = Number(process.env.RING_BENCH_TIME_MS ?? benchTime(1500, 300));

const nodesOf = (count: number, prefix = 'node'): NodeInfo[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    address: `10.0.${i >> 8}.${i & 255}:7000`,
    zone: `zone-${i % 3}`,
  }));

const keys = randomSpaceIds(KEYS);
const nodes = nodesOf(NODES);
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const balanceRows: Array<{ name: string; median: number; p99: number }> = [];

// ---------------------------------------------------------------- lookup ns/op
const ring = buildRing({ nodes });
const writer = new TableWriter({ maxTokens: ring.tokenCount, maxNodes: NODES });
writer.publish(ring);
const hashring = new HashRing(nodes.map((n) => n.address));

interface Timing {
  name: string;
  p50: number;
  mean: number;
  p99: number;
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
const lookupRows = [
  { ...workerResult, name: 'ours: TableReader.lookupInto in a worker (primary + 2 replicas)' },
  ...bench.tasks.map((t) => ({
    ...latency(t),
    name: `${t.name.startsWith('Ring') ? 'ours' : 'baseline'}: ${t.name}`,
  })),
];
report.table({
  title: `Lookup, ${NODES} nodes, ${KEYS.toLocaleString('en-US')} random 16–36 byte space ids, batches of ${BATCH} (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: 'baseline: hashring.range (3 nodes)',
  rows: lookupRows.map((r) => ({ name: r.name, median: perOp(r.p50!), p99: perOp(r.p99!) })),
});

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
  balanceRows.push({
    name: `ours, ${vnodes} vnodes${vnodes === DEFAULT_VNODES_PER_NODE ? ' (default)' : ''}`,
    median: maxOverMean(primaryCounts(idOf(r)), NODES),
    p99: ownedShareMaxOverMean(r),
  });
}
const HASHRING = 'hashring (40 vnodes × 4, md5)';
balanceRows.push({
  name: HASHRING,
  median: maxOverMean(
    primaryCounts((k) => hashring.get(k)),
    NODES,
  ),
  p99: Number.NaN,
});
report.table({
  title: `Balance, ${NODES} nodes, ${KEYS.toLocaleString('en-US')} keys (max/mean; target ≤ 1.05 for the default)`,
  unit: '',
  columns: ['primaries max/mean', 'token share max/mean'],
  baseline: HASHRING,
  rows: balanceRows,
});

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
report.table({
  title: `Movement adding node ${NODES + 1} (ideal ${Math.round(ideal)} of ${KEYS} keys; target moved/ideal ≤ 1.1)`,
  unit: '',
  columns: ['moved/ideal', 'moved to an old node'],
  baseline: 'hashring',
  rows: [
    { name: 'ours (default vnodes)', median: moved / ideal, p99: movedElsewhere },
    { name: 'hashring', median: hrMoved / ideal, p99: Number.NaN },
  ],
});

// ---------------------------------------------------------------- membership change
// Worker-thread TableReader costs, like for like: the same 100-node ring (plain), then the
// same ring with node 101 joining or node 0 leaving. With RING_BENCH_BASELINE, the other
// build's lookupInto over its own table of the plain ring, in the same run.
const changeRows: Array<{ name: string; median: number; p99: number }> = [];
const addChange = (table: string, timings: Timing[]) => {
  for (const t of timings) {
    changeRows.push({ name: `${table}: ${t.name}`, median: perOp(t.p50), p99: perOp(t.p99) });
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
report.table({
  title: `Membership change: TableReader in a worker, ${NODES} nodes, default vnodes, RF 3`,
  unit: 'ns/op',
  baseline: 'plain, this build: lookupInto',
  rows: changeRows,
});

// ---------------------------------------------------------------- build + publish
const buildRows: Array<{ name: string; median: number; p99: number }> = [];
const BUILD_RUNS = QUICK ? 1 : 3;
const builds: Array<[string, RingModule]> = [['this build', await import(OURS)]];
if (BASELINE !== undefined) builds.push(['baseline build', await import(BASELINE)]);
for (const count of QUICK ? [100] : [100, 1000]) {
  const members = nodesOf(count, 'n');
  for (const [label, build] of builds) {
    const buildMs: number[] = [];
    const publishMs: number[] = [];
    const tokenWriter = new build.TableWriter({
      maxNodes: count,
      maxTokens: count * DEFAULT_VNODES_PER_NODE,
    });
    for (let run = 0; run < BUILD_RUNS; run++) {
      const t0 = performance.now();
      const built = build.buildRing({ nodes: members });
      const t1 = performance.now();
      tokenWriter.publish(built);
      publishMs.push(performance.now() - t1);
      buildMs.push(t1 - t0);
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    buildRows.push({
      name: `${label}, ${count} nodes (${(count * DEFAULT_VNODES_PER_NODE).toLocaleString('en-US')} tokens, ${fmt(tokenWriter.buffer.byteLength / 2 ** 20, 1)} MB table)`,
      median: median(buildMs),
      p99: median(publishMs),
    });
  }
}
report.table({
  title: `Build + publish, default vnodes, replication factor 3 (median of ${BUILD_RUNS})`,
  unit: 'ms',
  columns: ['build', 'publish'],
  baseline: buildRows[0]!.name,
  rows: buildRows,
});
report.write();
if (sink === 0.5) console.log(sink); // keep the work observable
