/**
 * This build's router-node against another build, side by side in alternating rounds: the CPU
 * per call of the whole process (/proc, all threads) and calls/s at 64 in flight, and the
 * latency one call at a time added to the node's own (p50, the node called directly in the
 * same round), one Recall node behind both (or replicated Stores, BENCH_AB_OP). The proxy
 * bench's three rounds resolve ~10 % on this shared machine; a change worth a few percent
 * needs many short rounds, alternated (A B, B A, ...) so slow moments fall on both, and the
 * median of each. Also reported: in how many rounds this build
 * used less CPU than the other in the round next to it (a sign test: 15 of 20 or more is
 * unlikely by chance, p < 0.05), and the geometric mean of the per-round ratios with its
 * standard error. Each round also runs both at one fixed rate (open loop): the tails, p99 and
 * p999, read the same way.
 *
 * Or this build against HAProxy (BENCH_AB_AGAINST=haproxy: `nbthread` = BENCH_WORKERS, h2 both
 * sides, as in bench:proxy; Recalls only): the proxy bench's single figure per path and run
 * moves ±20 % on this machine, alternating rounds resolve a few percent.
 *
 * Run: BENCH_BASELINE_ROUTER='name=/path/to/other/apps/router-node/dist/main.js' \
 *      pnpm --filter @engram/bench bench:ab          (needs h2load)
 *      BENCH_AB_AGAINST=haproxy pnpm --filter @engram/bench bench:ab   (needs haproxy too)
 * Env: BENCH_SETTLE (calls each build gets once first, default 100000), BENCH_AB_ROUNDS
 * (rounds per build, default 20), BENCH_AB_CALLS (calls at 64 in flight per round, default
 * 50000), BENCH_AB_SEQ (sequential calls per round, default 2000),
 * BENCH_AB_OP (recall, the default, or store: replicated Stores to three nodes, replication
 * factor 3, W = quorum, the node's own latency that of a Store sent to one of them directly),
 * BENCH_BASELINE_NODE_FLAGS (the other build's node flags), BENCH_WORKERS (default 1),
 * BENCH_AB_RATE (calls/s of each round's fixed-rate run, p99 and p999 compared; default half of
 * the node's own throughput, measured first; 0 = none), BENCH_AB_RATE_SECONDS (default 3).
 */
import { join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import {
  baselineRouter,
  CLK_TCK,
  children,
  cpuTicks,
  dir,
  h2load,
  h2loadAvailable,
  median,
  ROUTER_NODE_FLAGS,
  settle,
  startHaproxy,
  startRecallNode,
  startRouterNode,
  startZonedNodes,
  storeBody,
  WARMUP_CALLS,
} from './harness.js';

const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? (QUICK ? 2 : 20));
const CALLS = Number(process.env.BENCH_AB_CALLS ?? (QUICK ? 3000 : 50_000));
const SEQ = Number(process.env.BENCH_AB_SEQ ?? (QUICK ? 200 : 2000));
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
/** Seconds of each round's fixed-rate run (its rate: BENCH_AB_RATE, see `main`). */
const AB_RATE_SECONDS = Number(process.env.BENCH_AB_RATE_SECONDS ?? (QUICK ? 1 : 3));
const OP = process.env.BENCH_AB_OP ?? 'recall';

interface Setup {
  /** The node called directly (the latency the routers add to). */
  readonly nodeAddress: string;
  readonly config: (side: number) => Record<string, unknown>;
  readonly body: string;
  readonly method: 'Recall' | 'Store';
}

/** One node holding 10 memories of the recalled space. */
async function recallSetup(): Promise<Setup> {
  const { nodeAddress, body } = await startRecallNode();
  const nodes = [{ id: 'n1', address: nodeAddress, zone: 'a' }];
  return { nodeAddress, config: () => ({ nodes }), body, method: 'Recall' };
}

/** Three in-memory nodes in three zones, every Store sent to all (as bench:replication). */
async function storeSetup(): Promise<Setup> {
  const { configs } = await startZonedNodes(['a', 'b', 'c']);
  const body = storeBody('ab/store');
  return {
    nodeAddress: String(configs[0]!.address),
    // Each router keeps its hints in a directory of its own.
    config: (side) => ({
      nodes: configs,
      replicationFactor: 3,
      dataDir: join(dir, `ab-router-${side}`),
    }),
    body,
    method: 'Store',
  };
}

interface Side {
  readonly name: string;
  /** Where its calls go (the method's URL). */
  readonly url: string;
  /** The processes whose CPU is its own. */
  readonly pids: () => number[];
  readonly cpu: number[];
  readonly rps: number[];
  /** Sequential p50 minus the node's own in the same round, µs. */
  readonly added: number[];
  /** p99 and p999 of each round's fixed-rate run, ms. */
  readonly rateP99: number[];
  readonly rateP999: number[];
}

/**
 * This build against the other over paired rounds: the geometric mean of the per-round ratios
 * with its standard error (of the log ratios, scaled back), and in how many rounds it was lower.
 */
function pairedReading(self: readonly number[], base: readonly number[]): string {
  if ([...self, ...base].some((v) => !(v > 0))) return 'no ratio (a round read 0 or less)';
  const logs = self.map((v, i) => Math.log(v / base[i]!));
  const n = logs.length;
  const mean = logs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const ratio = Math.exp(mean);
  const lower = logs.filter((l) => l < 0).length;
  return `${ratio.toFixed(3)}x ± ${((ratio * sd) / Math.sqrt(n)).toFixed(3)} (geometric mean of ${n} paired rounds ± 1 s.e.; this build lower in ${lower})`;
}

/**
 * This build minus the other over paired rounds, for a figure that may read 0 or less in a
 * round (an added latency near the noise): the mean difference ± its standard error.
 */
function pairedDifference(self: readonly number[], base: readonly number[], unit: string): string {
  const d = self.map((v, i) => v - base[i]!);
  const n = d.length;
  const mean = d.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const lower = d.filter((x) => x < 0).length;
  return `${mean >= 0 ? '+' : ''}${mean.toFixed(1)} ${unit} ± ${(sd / Math.sqrt(n)).toFixed(1)} (mean difference of ${n} paired rounds ± 1 s.e.; this build lower in ${lower})`;
}

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  const againstHaproxy = process.env.BENCH_AB_AGAINST === 'haproxy';
  const other = againstHaproxy ? undefined : baselineRouter();
  if (!againstHaproxy && other === undefined) {
    report.note(
      'BENCH_BASELINE_ROUTER is not set (name=/path/to/dist/main.js), nor BENCH_AB_AGAINST=haproxy: nothing to compare',
    );
    report.write();
    return;
  }
  if (OP !== 'recall' && OP !== 'store') throw new Error(`BENCH_AB_OP: recall or store, not ${OP}`);
  if (againstHaproxy && OP !== 'recall') {
    throw new Error('BENCH_AB_AGAINST=haproxy compares Recalls (HAProxy forwards to one node)');
  }
  const { nodeAddress, config, body, method } =
    OP === 'store' ? await storeSetup() : await recallSetup();
  const path = `/engram.v1.MemoryService/${method}`;
  const routerSide = async (
    name: string,
    cfg: Record<string, unknown>,
    flags: readonly string[],
    main?: string,
  ): Promise<Side> => {
    const router = await startRouterNode({ ...cfg, workers: WORKERS }, flags, main);
    return {
      name,
      url: `http://${String(router.first.address)}${path}`,
      pids: () => [router.child.pid!],
      cpu: [],
      rps: [],
      added: [],
      rateP99: [],
      rateP999: [],
    };
  };
  let otherSide: Side;
  if (other !== undefined) {
    otherSide = await routerSide(other.name, config(1), other.flags, other.main);
  } else {
    // HAProxy with as many threads as router-node has data threads, h2 both sides (as in
    // bench:proxy).
    const haproxy = await startHaproxy([nodeAddress], WORKERS);
    if (haproxy === null) {
      report.note('haproxy is not installed: nothing to compare (apt-get install -y haproxy)');
      report.write();
      return;
    }
    otherSide = {
      name: `haproxy nbthread ${WORKERS}`,
      url: `http://127.0.0.1:${haproxy.port}${path}`,
      pids: haproxy.pids,
      cpu: [],
      rps: [],
      added: [],
      rateP99: [],
      rateP999: [],
    };
  }
  const sides: Side[] = [await routerSide('this build', config(0), ROUTER_NODE_FLAGS), otherSide];
  settle(
    sides.map((s) => s.url),
    body,
  );
  for (const s of sides) h2load(s.url, WARMUP_CALLS, 4, 16, body);
  const direct = `http://${nodeAddress}/engram.v1.MemoryService/${method}`;
  // The fixed rate: BENCH_AB_RATE (0 = none), or half of what the node serves directly, as
  // bench:proxy picks it.
  const rate =
    process.env.BENCH_AB_RATE !== undefined
      ? Number(process.env.BENCH_AB_RATE)
      : Math.max(1000, Math.round(h2load(direct, CALLS, 4, 16, body).rps / 2 / 500) * 500);
  for (let round = 0; round < ROUNDS; round++) {
    // A B, then B A: a slow stretch of the machine falls on both.
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    const own = h2load(direct, SEQ, 1, 1, body).p50Ms;
    for (const s of order) {
      s.added.push((h2load(s.url, SEQ, 1, 1, body).p50Ms - own) * 1000);
    }
    for (const s of order) {
      const pids = s.pids();
      const before = cpuTicks(pids);
      const load = h2load(s.url, CALLS, 4, 16, body);
      const ticks = cpuTicks(s.pids()) - before;
      if (load.errors > 0) throw new Error(`${s.name}: ${load.errors} failed calls`);
      s.cpu.push(((ticks / CLK_TCK) * 1e6) / CALLS);
      s.rps.push(load.rps);
    }
    if (rate > 0) {
      // The same offered load for both (open loop, as bench:proxy's fixed rate): tails compare
      // like for like, a round's pair in the same stretch of the machine.
      for (const s of order) {
        const fixed = h2load(s.url, rate * AB_RATE_SECONDS, 4, 16, body, Math.ceil(rate / 4));
        if (fixed.errors > 0) throw new Error(`${s.name}: ${fixed.errors} failed calls`);
        s.rateP99.push(fixed.p99Ms);
        s.rateP999.push(fixed.p999Ms);
      }
    }
  }
  const [self, base] = sides as [Side, Side];
  let lower = 0;
  for (let i = 0; i < ROUNDS; i++) if (self.cpu[i]! < base.cpu[i]!) lower++;
  report.table({
    title: `Router CPU per call, whole process, ${ROUNDS} alternating rounds of ${CALLS} ${method}s at 64 in flight (median, p90 of the rounds)`,
    unit: 'µs/call',
    baseline: base.name,
    columns: ['median', 'p90'],
    rows: sides.map((s) => ({ name: s.name, median: median(s.cpu), p99: quantile(s.cpu, 0.9) })),
  });
  report.table({
    title: 'Calls/s at 64 in flight (median, p10 of the rounds)',
    unit: 'calls/s',
    baseline: base.name,
    higherIsBetter: true,
    columns: ['median', 'p10'],
    rows: sides.map((s) => ({ name: s.name, median: median(s.rps), p99: quantile(s.rps, 0.1) })),
  });
  report.table({
    title: `Added latency one call at a time, ${SEQ} sequential ${method}s a round (median, p90 of the rounds' p50 minus the node's own)`,
    unit: 'µs/call',
    baseline: base.name,
    columns: ['median', 'p90'],
    rows: sides.map((s) => ({
      name: s.name,
      median: median(s.added),
      p99: quantile(s.added, 0.9),
    })),
  });
  if (rate > 0) {
    for (const [label, values] of [
      ['p99', (x: Side) => x.rateP99],
      ['p999', (x: Side) => x.rateP999],
    ] as const) {
      report.table({
        title: `${label} at a fixed ${rate} ${method}s/s (${AB_RATE_SECONDS} s a round; median, p90 of the rounds)`,
        unit: 'ms/call',
        baseline: base.name,
        columns: ['median', 'p90'],
        rows: sides.map((x) => ({
          name: x.name,
          median: median(values(x)),
          p99: quantile(values(x), 0.9),
        })),
      });
      report.note(
        `fixed-rate ${label}: ${pairedReading(values(self), values(base))} (per round: ${values(
          self,
        )
          .map((v) => v.toFixed(2))
          .join(' ')} vs ${values(base)
          .map((v) => v.toFixed(2))
          .join(' ')} ms)`,
      );
    }
  }
  report.note(`CPU per call: ${pairedReading(self.cpu, base.cpu)}`);
  report.note(`calls/s at 64 in flight: ${pairedReading(self.rps, base.rps)}`);
  report.note(`added sequential p50: ${pairedDifference(self.added, base.added, 'µs')}`);
  report.note(
    `this build used less CPU than ${base.name} in ${lower} of ${ROUNDS} rounds side by side` +
      ` (per round: ${self.cpu.map((v) => v.toFixed(1)).join(' ')} vs ${base.cpu.map((v) => v.toFixed(1)).join(' ')} µs/call)`,
  );
  report.write();
}

const report = new BenchReport('ab');
main().then(
  () => {
    for (const c of children) c.kill('SIGTERM');
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    for (const c of children) c.kill('SIGTERM');
    process.exit(1);
  },
);
