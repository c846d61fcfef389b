/**
 * Where router-node's CPU goes per forwarded call: one router-node (`--workers 1` unless
 * BENCH_WORKERS) before one memory node, 64 Recalls in flight from h2load, node's `--cpu-prof`
 * on every thread. After a warm-up, the measured window's samples are summed per thread: busy
 * time per call, by category (our packages, Node's internals, native code such as the socket
 * writes, GC) and the functions with the most self time. The `.cpuprofile` files stay in
 * `bench/results/profile/` (open them in Chrome DevTools' Performance panel for a flame
 * graph). CPU per thread comes from /proc as in the proxy bench; the profiler's own thread
 * (`v8:ProfEvntProc`) is reported apart, since the measurement adds it.
 *
 * BENCH_PROFILE_OP=store profiles replicated Stores instead: three memory nodes, replication
 * factor 3, `writeConsistency` quorum (the defaults), each Store sent to all three.
 *
 * Run: pnpm --filter @engram/bench bench:profile (needs h2load)
 * Env: BENCH_PROFILE_CALLS (default 60000), BENCH_SETTLE, BENCH_WARMUP, BENCH_WORKERS (default
 * 1), BENCH_PROFILE_TOP (functions listed per thread, default 25), BENCH_PROFILE_OP (recall, the
 * default, or store).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import {
  cpuPerThread,
  dir,
  h2load,
  h2loadAvailable,
  ROUTER_NODE_FLAGS,
  SETTLE_CALLS,
  type Spawned,
  settle,
  startRecallNode,
  startRouterNode,
  startZonedNodes,
  storeBody,
  threadTicks,
  WARMUP_CALLS,
} from './harness.js';

const CALLS = Number(process.env.BENCH_PROFILE_CALLS ?? (QUICK ? 5000 : 60_000));
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? 25);
const OP = process.env.BENCH_PROFILE_OP ?? 'recall';
const OUT = new URL('./results/profile/', import.meta.url).pathname;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a function's self time counts: our packages by name, Node's internals, native, GC. */
function category(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : 'native (syscalls, builtins)';
  if (url.startsWith('node:')) return "Node's internals";
  const ours = /\/(packages|apps)\/([^/]+)\//.exec(url);
  if (ours !== null) return ours[1] === 'apps' ? ours[2]! : `@engram/${ours[2]}`;
  return 'dependencies';
}

function short(url: string): string {
  return url.replace(/^.*\/(packages|apps)\//, '$1/').replace(/^file:\/\//, '');
}

/** Self time (µs) per category and per function within [fromUs, toUs] of the profile's clock. */
function aggregate(p: CpuProfile, fromUs: number, toUs: number) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    // A sample stands for the time until the next one.
    const dur = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
    if (t < fromUs || t > toUs) continue;
    const { functionName, url, lineNumber } = byId.get(p.samples[i]!)!.callFrame;
    if (functionName === '(idle)') continue;
    busy += dur;
    const c = category(url, functionName);
    categories.set(c, (categories.get(c) ?? 0) + dur);
    const key = `${functionName || '(anonymous)'} ${url === '' ? '' : `${short(url)}:${lineNumber + 1}`}`;
    functions.set(key, (functions.get(key) ?? 0) + dur);
  }
  return { busy, categories, functions };
}

interface Setup {
  nodes: Spawned[];
  config: Record<string, unknown>;
  body: string;
  method: 'Recall' | 'Store';
}

/** One node holding 10 memories of the recalled space. */
async function recallSetup(): Promise<Setup> {
  const { node, nodeAddress, body } = await startRecallNode();
  return {
    nodes: [node],
    config: { nodes: [{ id: 'n1', address: nodeAddress, zone: 'a' }] },
    body,
    method: 'Recall',
  };
}

/** Three in-memory nodes in three zones (as bench:replication), every Store sent to all. */
async function storeSetup(): Promise<Setup> {
  const { nodes, configs } = await startZonedNodes(['a', 'b', 'c']);
  const body = storeBody('profile/store');
  const config = {
    nodes: configs,
    replicationFactor: 3,
    dataDir: join(dir, 'profile-router'),
  };
  return { nodes, config, body, method: 'Store' };
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  if (OP !== 'recall' && OP !== 'store')
    throw new Error(`BENCH_PROFILE_OP: recall or store, not ${OP}`);
  const { nodes, config, body, method } = OP === 'store' ? await storeSetup() : await recallSetup();
  const router = await startRouterNode({ ...config, workers: WORKERS }, [
    ...ROUTER_NODE_FLAGS,
    '--cpu-prof',
    `--cpu-prof-dir=${OUT}`,
  ]);
  const pid = router.child.pid!;
  const url = `http://${String(router.first.address)}/engram.v1.MemoryService/${method}`;
  settle([url], body);
  h2load(url, WARMUP_CALLS, 4, 16, body);
  const before = threadTicks(pid);
  // CLOCK_MONOTONIC, the clock of the profiles' timestamps (µs).
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const load = h2load(url, CALLS, 4, 16, body);
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const after = threadTicks(pid);
  const exited = new Promise((r) => router.child.once('exit', r));
  router.child.kill('SIGTERM'); // the profiles are written as each thread ends
  await exited;
  for (const node of nodes) node.child.kill('SIGTERM');

  report.note(
    `router-node --workers ${WORKERS}, ${CALLS} ${method}s${OP === 'store' ? ' (replication factor 3, W = quorum)' : ''} at 64 in flight (4 conns x 16 streams) after ${SETTLE_CALLS + WARMUP_CALLS} warm-up calls: ${Math.round(load.rps)} calls/s, p50 ${load.p50Ms.toFixed(2)} ms, ${load.errors} errors; profiles in ${OUT}`,
  );
  report.note(`CPU per call by thread (/proc): ${cpuPerThread(before, after, CALLS)}`);
  for (const file of readdirSync(OUT).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(OUT, file), 'utf8')) as CpuProfile;
    const { busy, categories, functions } = aggregate(profile, fromUs, toUs);
    if (busy === 0) continue;
    const pct = (us: number) => `${((100 * us) / busy).toFixed(1)}%`;
    report.note(
      `\n${file}: busy ${(busy / 1000).toFixed(0)} ms in the window = ${(busy / CALLS).toFixed(2)} µs per call (profiler's clock)`,
    );
    for (const [c, us] of [...categories].sort((a, b) => b[1] - a[1])) {
      report.note(`  ${pct(us).padStart(6)}  ${c}`);
    }
    report.note(`  top ${TOP} functions by self time:`);
    for (const [f, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      report.note(`  ${pct(us).padStart(6)}  ${(us / CALLS).toFixed(2).padStart(6)} µs/call  ${f}`);
    }
  }
  report.write();
}

const report = new BenchReport('profile');
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
