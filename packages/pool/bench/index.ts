/**
 * @engram/pool benchmarks, one run, printed as tables:
 *  1. cached acquisition ns/op: the pool's slot and id paths next to two baselines
 *     (a Map lookup + array modulo, and the seed's lock-and-await shape as an async lookup);
 *     plus a check that 1e7 acquisitions allocate nothing.
 *  2. memory per 100 remote nodes for 1, 2 and 4 connections per node, grpc-js channels and
 *     raw HTTP/2 sessions, each measured in fresh child processes (median of 3) against 100
 *     grpc-js servers running in another child process.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BenchReport, benchTime, QUICK, tinybenchRows } from '@engram/bench-kit';
import type * as grpc from '@grpc/grpc-js';
import { Bench } from 'tinybench';
import { ConnectionPool } from '../src/index.js';
import { healthCheck, startHealthServer } from '../test/helpers.js';

const report = new BenchReport('pool');
const NODES = 16;
const BATCH = 1000; // acquisitions per measured iteration: a single one is below timer resolution
const MEMORY_NODES = 100;

// ---------------------------------------------------------------- 1. acquisition
const server = await startHealthServer();
const pool = new ConnectionPool();
const ids = Array.from({ length: NODES }, (_, i) => `node-${i}`);
for (const id of ids) pool.addNode(id, server.address);
await Promise.all(ids.map((id) => pool.connect(id)));
await Promise.all(ids.map((id) => pool.connect(id, 'session')));
await Promise.all(ids.map((id) => healthCheck(pool.acquireClient(id))));

// Baseline A: what one writes first — Map<id, Channel[]> and a global counter modulo length.
const naive = new Map<string, grpc.Channel[]>();
for (const id of ids)
  naive.set(
    id,
    Array.from({ length: 4 }, () => pool.acquireChannel(id)),
  );
let counter = 0;
const naiveAcquire = (id: string): grpc.Channel => {
  const list = naive.get(id)!;
  return list[counter++ % list.length]!;
};
// Baseline B: the seed's shape (`pool.read().await.get(node)`): an async lookup per call.
const asyncAcquire = async (id: string): Promise<grpc.Channel> => naiveAcquire(id);

let sink: unknown;
const bench = new Bench({ time: benchTime(1500, 300), warmupTime: benchTime(300, 50) });
bench
  .add('baseline: Map.get + array[i++ % n]', () => {
    for (let i = 0; i < BATCH; i++) sink = naiveAcquire(ids[i & (NODES - 1)]!);
  })
  .add('baseline: async lookup (seed lock+await shape)', async () => {
    for (let i = 0; i < BATCH; i++) sink = await asyncAcquire(ids[i & (NODES - 1)]!);
  })
  .add('pool.acquireChannel(slot)', () => {
    for (let i = 0; i < BATCH; i++) sink = pool.acquireChannel(i & (NODES - 1));
  })
  .add('pool.acquireChannel(id)', () => {
    for (let i = 0; i < BATCH; i++) sink = pool.acquireChannel(ids[i & (NODES - 1)]!);
  })
  .add('pool.acquireClient(slot)', () => {
    for (let i = 0; i < BATCH; i++) sink = pool.acquireClient(i & (NODES - 1));
  })
  .add('pool.acquireSession(slot)', () => {
    for (let i = 0; i < BATCH; i++) sink = pool.acquireSession(i & (NODES - 1));
  });
await bench.run();

report.table({
  title: `Cached acquisition, ${NODES} nodes x 4 connections, batches of ${BATCH} (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: 'baseline: Map.get + array[i++ % n]',
  rows: tinybenchRows(bench, BATCH),
});

// Allocation check: with GC observed, 1e7 slot acquisitions should trigger no collection
// and leave the heap where it was.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
let gcs = 0;
const observer = new PerformanceObserver((list) => {
  gcs += list.getEntries().length;
});
const OPS = QUICK ? 1_000_000 : 10_000_000;
const allocation: Array<{ name: string; median: number; p99: number }> = [];
for (const [name, op] of [
  ['pool.acquireChannel(slot)', (i: number) => pool.acquireChannel(i & (NODES - 1))],
  ['pool.acquireClient(slot)', (i: number) => pool.acquireClient(i & (NODES - 1))],
  ['pool.acquireSession(slot)', (i: number) => pool.acquireSession(i & (NODES - 1))],
  ['baseline: async lookup', (i: number) => asyncAcquire(ids[i & (NODES - 1)]!)],
] as const) {
  for (let i = 0; i < 1_000_000; i++) sink = op(i); // warm-up: JIT code is not per-op
  gc();
  observer.observe({ entryTypes: ['gc'] });
  gcs = 0;
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < OPS; i++) sink = op(i);
  const after = process.memoryUsage().heapUsed;
  // GC entries are delivered asynchronously, some time after the collection.
  await new Promise((r) => setTimeout(r, 200));
  observer.disconnect();
  allocation.push({ name, median: (after - before) / OPS, p99: gcs });
}
report.table({
  title: `Allocation on the hot path (${OPS.toLocaleString('en-US')} acquisitions after a 1e6 warm-up)`,
  unit: '',
  columns: ['heap delta B/op', 'GCs'],
  baseline: 'baseline: async lookup',
  rows: allocation,
});
void sink;
await pool.close();
await server.close();

// ---------------------------------------------------------------- 2. memory per 100 nodes
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const servers = spawn(
  process.execPath,
  ['--import', 'tsx', here('./servers.ts'), String(MEMORY_NODES)],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
  },
);
const [portsLine] = (await once(servers.stdout!, 'data')) as [Buffer];
const ports = portsLine.toString().trim();

interface MemoryResult {
  kind: string;
  channels: number;
  nodes: number;
  connections: number;
  heapUsed: number;
  external: number;
  rss: number;
}
const RUNS = QUICK ? 1 : 3; // fresh process each; the table shows the median run (by heap+external)
const runChild = async (kind: string, channels: number): Promise<MemoryResult> => {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', here('./memory.ts'), kind, String(channels), ports],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await once(child, 'exit');
  return JSON.parse(out.trim()) as MemoryResult;
};
const results: MemoryResult[] = [];
for (const kind of ['channel', 'session', 'h2']) {
  for (const channels of QUICK ? [1, 4] : [1, 2, 4]) {
    const runs: MemoryResult[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await runChild(kind, channels));
    runs.sort((a, b) => a.heapUsed + a.external - (b.heapUsed + b.external));
    results.push(runs[Math.floor(RUNS / 2)]!);
  }
}
servers.stdin!.end();
await once(servers, 'exit');

const mb = (bytes: number, nodes: number) => Number(((bytes / 2 ** 20) * (100 / nodes)).toFixed(2));
const KIND = {
  channel: 'grpc-js channels',
  session: 'raw http2 sessions',
  h2: '@engram/h2 connections',
} as Record<string, string>;
const memoryRows = results.map((r) => ({
  name: `${KIND[r.kind] ?? r.kind}, ${r.channels} per node (${r.connections} open)`,
  median: mb(r.heapUsed + r.external, r.nodes),
  p99: mb(r.rss, r.nodes),
}));
// Baseline: one grpc-js channel per node, what a grpc-js client holds without a pool.
report.table({
  title: `Memory per 100 remote nodes (${MEMORY_NODES} grpc-js servers in another process; median of ${RUNS} fresh processes)`,
  unit: 'MB/100 nodes',
  columns: ['heap+external', 'RSS'],
  baseline: memoryRows[0]!.name,
  rows: memoryRows,
});
report.write();
