/**
 * End-to-end proxy benchmark, one run, side by side against the same memory node:
 *   direct · router-node (--workers 1 and one per core) · HAProxy (nbthread 1 and one per
 *   core, h2 both sides) · nginx grpc_pass · router-node's wire without its routing
 *   (h2-passthrough.mjs: @engram/h2 both sides, no table, breaker, retry or metrics) · a
 *   Node.js TCP relay (the floor of any Node proxy: bytes moved, nothing parsed; node-relay.mjs)
 * Load comes from h2load (nghttp2-client), a separate process, POSTing a serialized
 * Recall gRPC frame. Per path: sequential (1 connection, 1 stream) p50/p99, and 64 in flight
 * (4 connections × 16 streams) p50/p99 + throughput; p50/p99/p999 at a fixed rate; proxy CPU
 * per call from /proc/<pid>/stat (utime+stime of the whole process, every thread, over the
 * 64-in-flight run), router-node's split by thread; GC pauses of the data-plane threads from
 * router-node's own /metrics (perf_hooks 'gc' entries). Ratios divide by HAProxy nbthread 1.
 *
 * Every target is measured BENCH_ROUNDS times, round by round (one target under load at a
 * time, the order rotated each round), and each figure is the median over the rounds; the
 * calls/s spread (min–max) shows how noisy the machine was.
 *
 * Run: pnpm --filter @engram/bench bench   (needs h2load; haproxy and nginx optional)
 * Env: BENCH_SEQ (default 3000 calls), BENCH_CONC (default 30000 calls), BENCH_ROUNDS
 * (default 3), BENCH_SETTLE (calls each path gets once before the first round, default
 * 100000), BENCH_RATE (calls/s of the fixed-rate run; default half of direct's
 * throughput, measured first; 0 = skip), BENCH_RATE_SECONDS (default 5),
 * BENCH_VARIANTS=part,part (only router variants whose name has one, the A/B extras
 * included), BENCH_BASELINE_ROUTER=name=/path/to/router-node/dist/main.js (another build of
 * router-node measured side by side, e.g. an older commit; BENCH_BASELINE_NODE_FLAGS its node
 * flags, default none). Router-node runs as its bin starts it: node --single-threaded-gc.
 */
import { availableParallelism } from 'node:os';
import { BenchReport } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import {
  baselineRouter,
  CONC_CALLS,
  children,
  DEFAULT_PHASES,
  h2load,
  h2loadAvailable,
  measure,
  medianRow,
  type Phases,
  printRows,
  RATE,
  ROUNDS,
  ROUTER_MAIN,
  ROUTER_NODE_FLAGS,
  type Row,
  SEQ_CALLS,
  type Spawned,
  settle,
  startH2Passthrough,
  startHaproxy,
  startNginx,
  startNodeRelay,
  startRecallNode,
  startRouterNode,
  type Target,
  WARMUP_CALLS,
} from './harness.js';

function startRouter(
  nodeAddress: string,
  extra: Record<string, unknown>,
  execArgv: string[] = [],
  main: string = ROUTER_MAIN,
): Promise<Spawned> {
  return startRouterNode(
    { nodes: [{ id: 'n1', address: nodeAddress, zone: 'a' }], ...extra },
    execArgv,
    main,
  );
}

async function checkPath(address: string, expectRouting: boolean): Promise<void> {
  const client = new MemoryServiceClient(address, grpc.credentials.createInsecure());
  try {
    const r = await callMemory(
      client,
      'recall',
      { spaceId: 'bench', cue: { text: 'hello' }, limit: 5 },
      { deadline: Date.now() + 5000 },
    );
    if (r.memories.length === 0) throw new Error(`${address}: empty recall`);
    if (expectRouting && r.routing?.strategy !== 'PrimaryWithFallback') {
      throw new Error(`${address}: no router RoutingInfo in reply`);
    }
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  const { nodeAddress, message: msg, body } = await startRecallNode();

  const cores = availableParallelism();
  const directUrl = `http://${nodeAddress}/engram.v1.MemoryService/Recall`;
  const targets: Target[] = [{ name: 'direct', url: directUrl, pids: () => [] }];
  // The default run: one data-plane thread and one per core, each beside HAProxy with as many
  // threads. The rest are kept for A/B runs (BENCH_VARIANTS names them).
  // Each router-node as its bin and scripts start it: node --single-threaded-gc (see the
  // router-node README).
  const variants: [string, Record<string, unknown>, string[], string?][] = [
    ['router-node --workers 1 (default)', { workers: 1 }, [...ROUTER_NODE_FLAGS]],
    [`router-node --workers ${cores}`, { workers: cores }, [...ROUTER_NODE_FLAGS]],
  ];
  const extraVariants: [string, Record<string, unknown>, string[], string?][] = [
    ['router-node --workers 0', { workers: 0 }, [...ROUTER_NODE_FLAGS]],
    [
      'router-node --workers 1, young gen 48 MB',
      { workers: 1, youngGenerationMb: 48 },
      [...ROUTER_NODE_FLAGS],
    ],
    [
      'router-node --workers 1, young gen 192 MB',
      { workers: 1, youngGenerationMb: 192 },
      [...ROUTER_NODE_FLAGS],
    ],
    [
      'router-node --workers 0, semi-space 64 MB',
      { workers: 0 },
      [...ROUTER_NODE_FLAGS, '--max-semi-space-size=64'],
    ],
    // V8's parallel and concurrent GC threads (node without --single-threaded-gc).
    ['router-node --workers 1, node without --single-threaded-gc', { workers: 1 }, []],
  ];

  // BENCH_VARIANTS=a,b keeps only router variants whose name contains one of the parts
  // (the extra ones included).
  const only = process.env.BENCH_VARIANTS?.split(',').filter((v) => v.length > 0);
  if (only !== undefined && only.length > 0) {
    variants.push(...extraVariants);
    for (let i = variants.length - 1; i >= 0; i--) {
      if (!only.some((o) => variants[i]![0].includes(o))) variants.splice(i, 1);
    }
  }
  const baseline = baselineRouter();
  if (baseline !== undefined) {
    // The other build with the first variant's settings.
    const [, extra] = variants[0] ?? ['', { workers: 1 }, []];
    variants.push([baseline.name, extra, baseline.flags, baseline.main]);
  }

  const routers: Spawned[] = [];
  for (const [name, extra, execArgv, main] of variants) {
    const r = await startRouter(nodeAddress, extra, execArgv, main);
    routers.push(r);
    await checkPath(String(r.first.address), true);
    targets.push({
      name,
      url: `http://${String(r.first.address)}/engram.v1.MemoryService/Recall`,
      pids: () => [r.child.pid!],
      metricsPort: Number(r.first.metricsPort),
    });
  }
  for (const threads of [...new Set([1, cores])]) {
    const haproxy = await startHaproxy([nodeAddress], threads);
    if (haproxy === null) {
      console.log('haproxy not available: skipped (apt-get install -y haproxy)');
      break;
    }
    await checkPath(`127.0.0.1:${haproxy.port}`, false);
    targets.push({
      name: `haproxy nbthread ${threads}`,
      url: `http://127.0.0.1:${haproxy.port}/engram.v1.MemoryService/Recall`,
      pids: haproxy.pids,
    });
  }
  const nginx = await startNginx([nodeAddress]);
  if (nginx !== null) {
    await checkPath(`127.0.0.1:${nginx.port}`, false);
    targets.push({
      name: 'nginx grpc_pass',
      url: `http://127.0.0.1:${nginx.port}/engram.v1.MemoryService/Recall`,
      pids: nginx.pids,
    });
  } else {
    console.log('nginx not available: skipped (apt-get install -y nginx)');
  }
  // router-node's wire without its routing: what HTTP/2 both sides costs in @engram/h2, so that
  // router-node's cost splits into the wire (this above the relay) and routing (router-node
  // above this).
  const passthrough = await startH2Passthrough(nodeAddress);
  await checkPath(`127.0.0.1:${passthrough.port}`, false);
  targets.push({
    name: 'h2 passthrough (no routing)',
    url: `http://127.0.0.1:${passthrough.port}/engram.v1.MemoryService/Recall`,
    pids: passthrough.pids,
  });
  // The Node.js floor: a TCP relay moving the same bytes, nothing parsed. router-node's cost
  // above it is its own work; what is left between it and HAProxy, the runtime's.
  const relay = await startNodeRelay(nodeAddress);
  await checkPath(`127.0.0.1:${relay.port}`, false);
  targets.push({
    name: 'node TCP relay (floor)',
    url: `http://127.0.0.1:${relay.port}/engram.v1.MemoryService/Recall`,
    pids: relay.pids,
  });

  // Every path past its JIT warm-up before the first round (SETTLE_CALLS): each round then
  // measures steady state, the first included.
  settle(
    targets.map((t) => t.url),
    body,
  );
  // The fixed rate: BENCH_RATE, or half of what the node serves directly (measured now), so
  // every path has headroom and the tails compare like for like.
  let rate = RATE;
  if (process.env.BENCH_RATE === undefined) {
    h2load(directUrl, WARMUP_CALLS, 4, 16, body);
    const calibration = h2load(directUrl, CONC_CALLS, 4, 16, body);
    rate = Math.max(1000, Math.round(calibration.rps / 2 / 500) * 500);
  }
  const phases: Phases = { ...DEFAULT_PHASES, rate };

  // Only one proxy runs load at a time; the idle ones cost nothing measurable.
  const runs: Row[][] = targets.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      const t = targets[i]!;
      runs[i]!.push(await measure(t, body, phases));
      process.stderr.write(`round ${round + 1}/${ROUNDS}: measured ${t.name}\n`);
    }
  }
  const rows = runs.map(medianRow);
  const direct = rows[0]!;
  const reference =
    rows.find((r) => r.path === 'haproxy nbthread 1') ??
    rows.find((r) => r.path.startsWith('nginx'));
  report.note(
    `\nEnd to end, Recall (${msg.length + 5} B request), ${SEQ_CALLS} sequential calls, ${CONC_CALLS} calls at 64 in flight (4 conns x 16 streams), ${phases.rate} calls/s fixed rate, h2load, ${cores} cores, Node ${process.version}; medians of ${ROUNDS} rounds`,
  );
  printRows(report, rows, phases, { direct, reference });
  report.write();

  for (const c of children) c.kill('SIGTERM');
}

const report = new BenchReport('proxy');
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
