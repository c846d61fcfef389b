/**
 * Table scale (issue "No lifetime slot limit"), one run:
 *  1. shared memory by maxNodes: state buffer, breakers, lag table, placement table;
 *  2. build + publish of a 100- and a 1000-node table (tinybench medians);
 *  3. the control plane's event-loop delay (perf_hooks monitorEventLoopDelay) while tables of
 *     1000 nodes are rebuilt and published: on the main thread (today) against the same work
 *     in a worker thread (the main thread only posts and awaits): the most an off-thread build
 *     can take off the control plane.
 * Run: pnpm --filter @engram/router-node bench:scale
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { benchTime, QUICK } from '@engram/bench-kit';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { allocateClusterTokens, buildRing, TableWriter } from '@engram/ring';
import { LAG_BUCKETS, LagTable } from '@engram/router';
import { Bench } from 'tinybench';
import {
  TABLE_BYTES_PER_TOKEN,
  TABLE_MAX_REPLICATION_FACTOR,
} from '../src/internal/config-caps.js';
import { NODE_WORDS, SLOT_METRIC_WORDS, stateByteLength } from '../src/internal/layout.js';

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

function tableOptions(nodes: number, vnodes: number) {
  return {
    maxNodes: nodes,
    maxTokens: nodes * vnodes,
    maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
    maxBlobBytes: 2 * 1024 * 1024,
  };
}

function nodesOf(count: number, from = 0) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return {
      id: `node-${i}`,
      address: `127.0.0.1:${10_000 + i}`,
      zone: `z${i % 3}`,
    };
  });
}

// 1. Shared memory.
console.log('\n1. Shared memory by maxNodes (4 data-plane threads)');
console.log('maxNodes  vnodes  state buffer  breakers   lag table  placement table  total');
for (const [n, v] of [
  [64, 8192],
  [256, 8192],
  [1024, 256],
  [1024, 4096],
] as const) {
  const state = stateByteLength(4, n);
  const breakers = BreakerTable.byteLength(n, { trip: new ConsecutiveFailures(5) });
  const lag = (new LagTable({ slots: n, shared: true }).buffer as SharedArrayBuffer).byteLength;
  const table = new TableWriter(tableOptions(n, v)).buffer.byteLength;
  console.log(
    `${String(n).padStart(8)}  ${String(v).padStart(6)}  ${MiB(state).padStart(12)}  ${MiB(breakers).padStart(9)}  ${MiB(lag).padStart(9)}  ${MiB(table).padStart(15)}  ${MiB(state + breakers + lag + table)}`,
  );
}
console.log(
  `per node: ${NODE_WORDS * 4} B of node words + ${SLOT_METRIC_WORDS * 8} B per thread of metrics, ${BreakerTable.byteLength(2, { trip: new ConsecutiveFailures(5) }) - BreakerTable.byteLength(1, { trip: new ConsecutiveFailures(5) })} B of breaker, ${LAG_BUCKETS * 4} B of lag row, vnodesPerNode x ${TABLE_BYTES_PER_TOKEN} B of table`,
);

// 2. Build + publish.
console.log('\n2. Build + publish (ms, tinybench median)');
const bench = new Bench({ time: benchTime(3000, 600), iterations: 5, warmupIterations: 1 });
for (const [n, v] of [
  [100, 256],
  [1000, 256],
  [100, 8192],
] as const) {
  const nodes = nodesOf(n + 1);
  const writer = new TableWriter(tableOptions(n + 1, v));
  let k = 0;
  bench.add(`build ${n} nodes x ${v}`, () => {
    // One node replaced each time: a new ring, as a membership change makes.
    const list = nodes.filter((_, i) => i !== k % (n + 1));
    k++;
    buildRing({ nodes: list, replicationFactor: 3, vnodesPerNode: v });
  });
  const ring = buildRing({ nodes: nodes.slice(0, n), replicationFactor: 3, vnodesPerNode: v });
  bench.add(`publish ${n} nodes x ${v}`, () => {
    writer.publish(ring, {});
  });
}
await bench.run();
for (const task of bench.tasks) {
  const r = task.result as { latency?: { p50?: number }; median?: number } | undefined;
  const median = r?.latency?.p50 ?? r?.median;
  console.log(`${task.name.padEnd(26)} ${median === undefined ? '?' : median.toFixed(1)} ms`);
}

// 3. Event-loop delay during 1000-node rebuilds.
const REBUILDS = QUICK ? 5 : 20;
const N = 1000;
const V = 256;

interface Delay {
  p50: number;
  p99: number;
  max: number;
  ms: number;
}

/** Runs `work` REBUILDS times, a 20 ms gap between (a membership change now and then). */
async function measure(work: (i: number) => Promise<void> | void): Promise<Delay> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  // A timer that keeps the loop turning, as the control plane's probes and admin calls do.
  const tick = setInterval(() => {}, 1);
  h.enable();
  const t0 = performance.now();
  for (let i = 0; i < REBUILDS; i++) {
    await work(i);
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = performance.now() - t0;
  h.disable();
  clearInterval(tick);
  return {
    p50: h.percentile(50) / 1e6,
    p99: h.percentile(99) / 1e6,
    max: h.max / 1e6,
    ms,
  };
}

const all = nodesOf(N + 1);
const without = (i: number) => all.filter((_, k) => k !== i % (N + 1));

const mainWriter = new TableWriter(tableOptions(N + 1, V));
const onMain = await measure((i) => {
  mainWriter.publish(buildRing({ nodes: without(i), replicationFactor: 3, vnodesPerNode: V }), {});
});

// etcd mode's ring: the allocator's tokens (64 a node, etcd.tokensPerNode's default), stored
// with each node, so a rebuild is a sort of the stored tokens, not 256 hashes a node.
const T = 64;
const allocated = allocateClusterTokens(all, { tokensPerNode: T, replicationFactor: 3 });
const withTokens = all.map((n, k) => ({ ...n, tokens: allocated[k]!.tokens }));
const tokenWriter = new TableWriter(tableOptions(N + 1, T));
const tokensOnMain = await measure((i) => {
  const nodes = withTokens.filter((_, k) => k !== i % (N + 1));
  tokenWriter.publish(buildRing({ nodes, replicationFactor: 3 }), {});
});

// The same build and publish in a worker thread that owns the writer: what moving the ring
// build off the control plane's thread could save at most.
const worker = new Worker(
  `const { parentPort, workerData } = require('node:worker_threads');
   import('@engram/ring').then(({ buildRing, TableWriter }) => {
     const writer = new TableWriter(workerData.options);
     parentPort.on('message', (nodes) => {
       writer.publish(buildRing({ nodes, replicationFactor: 3, vnodesPerNode: workerData.vnodes }), {});
       parentPort.postMessage(writer.epoch);
     });
     parentPort.postMessage(0);
   });`,
  { eval: true, workerData: { options: tableOptions(N + 1, V), vnodes: V } },
);
await new Promise((r) => worker.once('message', r));
const offThread = await measure(
  (i) =>
    new Promise<void>((resolve) => {
      worker.once('message', () => resolve());
      worker.postMessage(without(i));
    }),
);
await worker.terminate();

console.log(
  `\n3. Control-plane event-loop delay, ${REBUILDS} rebuilds + publishes of ${N} nodes x ${V} vnodes`,
);
console.log('                       p50 ms   p99 ms   max ms   wall ms');
for (const [name, d] of [
  ['build on main thread', onMain],
  ['build in a worker', offThread],
  [`${T} tokens, main thread`, tokensOnMain],
] as const) {
  console.log(
    `${name.padEnd(22)} ${d.p50.toFixed(1).padStart(6)}   ${d.p99.toFixed(1).padStart(6)}   ${d.max.toFixed(1).padStart(6)}   ${d.ms.toFixed(0).padStart(7)}`,
  );
}
