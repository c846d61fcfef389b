/**
 * What V8's own profiler hides: `perf record` of router-node's data-plane thread under load,
 * with the JIT's code map (`--perf-basic-prof`), so that the stubs and builtins an optimized
 * function calls (inline caches, `Map` lookups, typed-array creation, Node's C++ glue, the
 * kernel) show as themselves instead of as the function's self time (`bench:profile`, from
 * `--cpu-prof`, folds them in). One router-node (`--workers 1`) before one memory node, 64
 * Recalls in flight from h2load.
 *
 * The code map is appended to as V8 compiles and moves code, so an address may be listed
 * several times: each sample is resolved to the newest entry covering it (perf itself takes
 * an older one and names many samples after long-gone bootstrap code).
 *
 * Prints, over the data thread's samples: the share per DSO (JIT code, Node's binary, kernel,
 * libc), the share of a few families (inline-cache stubs called from optimized code, `Map`
 * and `Set` builtins and rehashes, Node's timer lists, typed-array creation), the leaf
 * functions with the most samples, and which JavaScript functions call the inline-cache stubs.
 *
 * Run: pnpm --filter @engram/bench bench:perf (needs h2load and perf: apt-get install -y
 * linux-perf; as root, or with kernel.perf_event_paranoid ≤ 1)
 * Env: BENCH_PERF_CALLS (default 60000), BENCH_SETTLE, BENCH_WARMUP, BENCH_PERF_TOP (leaves
 * listed, 40).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import {
  dir,
  h2load,
  h2loadAvailable,
  ROUTER_NODE_FLAGS,
  SETTLE_CALLS,
  settle,
  startRecallNode,
  startRouterNode,
  WARMUP_CALLS,
} from './harness.js';

const CALLS = Number(process.env.BENCH_PERF_CALLS ?? (QUICK ? 5000 : 60_000));
const TOP = Number(process.env.BENCH_PERF_TOP ?? 40);
/** The data-plane thread's name (router-node names its workers so). */
const THREAD = 'engram-data-0';

/** Families of leaf symbols worth a line of their own. */
const FAMILIES: readonly (readonly [string, RegExp])[] = [
  [
    'inline-cache stubs (generic property loads and stores)',
    /^Builtins_(Keyed)?(Load|Store)(Global)?IC(_\w+)?$|ICTrampoline/,
  ],
  ['Map and Set builtins, rehashes', /OrderedHash|^Builtins_(Map|Set)Prototype/],
  ['typed-array creation and copies', /^Builtins_(CreateTypedArray|TypedArrayPrototype)|memmove/],
  ['Atomics builtins', /^Builtins_Atomics/],
  ['clock reads', /clock_gettime|FastPerformanceNow|CurrentTimeValue/],
];
const IC_STUB = FAMILIES[0]![1];

interface MapEntry {
  start: number;
  end: number;
  name: string;
}

/** The JIT code map, in the order V8 wrote it (a later entry replaces an earlier one). */
function readCodeMap(file: string): MapEntry[] {
  const out: MapEntry[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m === null) continue;
    const start = Number.parseInt(m[1]!, 16);
    out.push({ start, end: start + Number.parseInt(m[2]!, 16), name: m[3]! });
  }
  return out;
}

/** Resolves JIT addresses to the newest map entry covering them (cached per address). */
function resolver(entries: readonly MapEntry[]): (address: number) => string | undefined {
  const cache = new Map<number, string | undefined>();
  return (address) => {
    if (cache.has(address)) return cache.get(address);
    let name: string | undefined;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      if (address >= e.start && address < e.end) {
        name = e.name;
        break;
      }
    }
    cache.set(address, name);
    return name;
  };
}

function short(name: string): string {
  return name.replace(/file:\/\/\/.*?\/(packages|apps)\//, '$1/');
}

function top(counts: Map<string, number>, total: number, n: number): string[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `  ${((100 * v) / total).toFixed(2).padStart(6)}%  ${k}`);
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  if (spawnSync('perf', ['--version']).status !== 0) {
    console.log('perf not available: skipped (apt-get install -y linux-perf)');
    return;
  }
  const { node, nodeAddress, body } = await startRecallNode();
  const router = await startRouterNode(
    { nodes: [{ id: 'n1', address: nodeAddress, zone: 'a' }], workers: 1 },
    // --perf-basic-prof turns on V8's code log too, a file per isolate in the working
    // directory (bench/): sent to a temporary file that is deleted instead.
    [...ROUTER_NODE_FLAGS, '--perf-basic-prof', '--no-logfile-per-isolate', '--logfile=+'],
  );
  const pid = router.child.pid!;
  const url = `http://${String(router.first.address)}/engram.v1.MemoryService/Recall`;
  settle([url], body);
  h2load(url, WARMUP_CALLS, 4, 16, body);
  const data = join(dir, 'perf.data');
  const perf = spawn(
    'perf',
    ['record', '-q', '-e', 'cpu-clock', '-F', '4000', '-g', '-p', String(pid), '-o', data],
    { stdio: 'inherit' },
  );
  await new Promise((r) => setTimeout(r, 500)); // perf attached
  const load = h2load(url, CALLS, 4, 16, body);
  perf.kill('SIGINT');
  await new Promise((r) => perf.once('exit', r));
  const script = spawnSync('perf', ['script', '-i', data, '--comm', THREAD, '-F', 'ip,sym,dso'], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const mapFile = `/tmp/perf-${pid}.map`;
  const resolve = resolver(existsSync(mapFile) ? readCodeMap(mapFile) : []);
  rmSync(mapFile, { force: true }); // Node leaves it behind; one per run adds up in /tmp
  router.child.kill('SIGTERM');
  node.child.kill('SIGTERM');

  const dsos = new Map<string, number>();
  const families = new Map<string, number>();
  const leaves = new Map<string, number>();
  const icCallers = new Map<string, number>();
  let total = 0;
  for (const sample of script.stdout.split('\n\n')) {
    const frames = sample
      .split('\n')
      .map((l) => /^\s*([0-9a-f]+) (.*) \((.*)\)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => {
        const dso = m[3]!.startsWith('/tmp/perf-') ? '[JIT code]' : m[3]!;
        const name = dso === '[JIT code]' ? (resolve(Number.parseInt(m[1]!, 16)) ?? m[2]!) : m[2]!;
        return { name: short(name), dso };
      });
    if (frames.length === 0) continue;
    total++;
    const leaf = frames[0]!;
    dsos.set(leaf.dso, (dsos.get(leaf.dso) ?? 0) + 1);
    leaves.set(leaf.name, (leaves.get(leaf.name) ?? 0) + 1);
    for (const [family, re] of FAMILIES) {
      if (re.test(leaf.name)) families.set(family, (families.get(family) ?? 0) + 1);
    }
    if (IC_STUB.test(leaf.name) && frames.length > 1) {
      const caller = frames[1]!.name;
      icCallers.set(caller, (icCallers.get(caller) ?? 0) + 1);
    }
  }
  rmSync(data, { force: true });

  report.note(
    `router-node --workers 1, ${CALLS} Recalls at 64 in flight after ${SETTLE_CALLS + WARMUP_CALLS} warm-up calls: ${Math.round(load.rps)} calls/s, ${load.errors} errors; ${total} samples of ${THREAD} (4 kHz) = ${((total * 250) / CALLS).toFixed(1)} µs per call`,
  );
  if (total === 0) {
    report.note('no samples of the data thread: is perf allowed (kernel.perf_event_paranoid)?');
    report.write();
    return;
  }
  report.note('\nBy where the sampled instruction was:');
  for (const line of top(dsos, total, 8)) report.note(line);
  report.note('\nFamilies (leaf symbols):');
  for (const [family] of FAMILIES) {
    const n = families.get(family) ?? 0;
    report.note(`  ${((100 * n) / total).toFixed(2).padStart(6)}%  ${family}`);
  }
  report.note(`\nTop ${TOP} leaf functions:`);
  for (const line of top(leaves, total, TOP)) report.note(line);
  report.note('\nWho calls the inline-cache stubs (the frame above the stub):');
  for (const line of top(icCallers, total, 15)) report.note(line);
  report.write();
}

const report = new BenchReport('perf');
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
