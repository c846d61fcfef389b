/**
 * Gray failures end to end: what a node that restarts, hangs, is slow, or holds a hot space
 * costs the clients of router-node, for each router build given, side by side in one run.
 *
 * Per scenario, build and round: a fresh cluster (3 memory nodes of this tree, zones a/b/c,
 * replication factor 3, each with a data directory; one router-node of the build under test,
 * the config below, printed), 24 spaces seeded with 5 memories each, and a load process
 * (gray-load.ts: grpc-js, open loop at a fixed rate, every call logged with its status and
 * RoutingInfo.served_by). The router's /metrics gives the per-node attempts by status, the
 * health verdict and the breaker state and transitions.
 *
 *   restart  Recall + Store load; kill -9 n1, restart it on its port after it is marked down.
 *            From its listening line: marked up, first Recall of its primary spaces it served,
 *            serving them for good (every 250 ms bucket after ≥ 90 % served by it); breaker
 *            openings after it was marked up; its primaries' Recalls served elsewhere; errors.
 *   stop     Recall + Store load; SIGSTOP n1 for 10 s, then SIGCONT. Attempts the router sent
 *            it that failed (by status) from the stop to one attempt timeout after the
 *            continue; client p50/p99, errors and calls over one attempt timeout, sent during
 *            the stop.
 *   slow     Recall load, every node answering BASE ms late (a delay proxy in front of each),
 *            then n1 at 10× BASE: Recall p50/p99 in each phase.
 *   hot      Recall load, one space at 10× the rate of each other: the share of its Recalls
 *            served by each of its replicas (busiest first).
 *
 * Each figure is the median over BENCH_ROUNDS rounds (the builds alternate within a round).
 *
 * Run: pnpm --filter @engram/bench bench:gray
 * Env: BENCH_BASELINE_ROUTER=name=/path/to/router-node/dist/main.js (another build side by
 * side), BENCH_ROUNDS (default 3; --quick 1), BENCH_GRAY_RATE (calls/s, default 400),
 * BENCH_GRAY_SCENARIOS=restart,stop,slow,hot (a subset).
 */
import { BenchReport, QUICK } from '@engram/bench-kit';
import { GrayCluster, nodeFaultsSupported, sleep, wallMs } from './gray-cluster.js';
import type { LoadConfig } from './gray-load.js';
import {
  type CallLog,
  type Figure,
  firstServed,
  formatFigures,
  metricSum,
  OP,
  primariesOf,
  select,
  servedShares,
  servingSince,
  summarize,
} from './gray-stats.js';
import { ROUTER_MAIN } from './harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
/** Calls/s of the load, all ops together. */
const RATE = Number(process.env.BENCH_GRAY_RATE ?? 400);
const SCENARIOS = (process.env.BENCH_GRAY_SCENARIOS ?? 'restart,stop,slow,hot')
  .split(',')
  .filter((s) => s.length > 0);
const NODES = 3;
const SPACES = Array.from({ length: 24 }, (_, i) => `gray/space-${String(i).padStart(2, '0')}`);
const MEMORIES_PER_SPACE = 5;
/** The node every scenario hurts (index into the cluster's nodes). */
const VICTIM = 0;
/** Load before any fault: connections warm, primaries seen (from 1 s in). */
const WARM_MS = 3000;
/** Length of a measured phase (slow: each of the two; hot: the one). */
const PHASE_MS = QUICK ? 4000 : 8000;
const STOP_MS = 10_000;
/** Base latency of every node in the slow scenario, ms; the slow node gets 10×. */
const BASE_LATENCY_MS = 10;
/** Client deadline per call: above the router's own deadline, so the router's error shows. */
const CLIENT_DEADLINE_MS = 12_000;
/** Restart: a bucket is serving when ≥ this share of the node's primaries' Recalls went to it. */
const SERVING_SHARE = 0.9;
const SERVING_BUCKET_MS = 250;
const POLL_MS = 50;

/**
 * The router config every build runs with: today's defaults, written out so the figures can
 * be read against them (and a default that changes later does not change the bench silently).
 * Only keys every build knows: a build refuses a key it does not have.
 */
const ROUTER_CONFIG = Object.freeze({
  workers: 1,
  replicationFactor: 3,
  router: {
    attemptTimeoutMs: 2000,
    deadlineMs: 10_000,
    maxRetries: 3,
    breakerThreshold: 5,
    breakerTimeoutMs: 30_000,
    readConsistency: 'one',
    writeConsistency: 'quorum',
  },
  health: { intervalMs: 1000, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 2 },
});
const H = ROUTER_CONFIG.health;
const R = ROUTER_CONFIG.router;
/** Kill → restart: marked down by then (unhealthyThreshold failed probes), with a probe to spare. */
const DOWN_MS = H.intervalMs * (H.unhealthyThreshold + 1) + H.timeoutMs + 1000;
/** Restart: measured until the node has been up with a closed breaker this long… */
const SETTLE_MS = 5000;
/** …or this long after it listens (a breaker that reopened stays open breakerTimeoutMs). */
const RESTART_CAP_MS = R.breakerTimeoutMs + H.intervalMs * H.healthyThreshold + SETTLE_MS + 2000;

interface Build {
  readonly name: string;
  readonly main: string;
}

function builds(): Build[] {
  const out: Build[] = [];
  const baseline = process.env.BENCH_BASELINE_ROUTER;
  if (baseline !== undefined && baseline !== '') {
    const at = baseline.indexOf('=');
    if (at <= 0)
      throw new Error('BENCH_BASELINE_ROUTER must be name=/path/to/router-node/dist/main.js');
    out.push({ name: baseline.slice(0, at), main: baseline.slice(at + 1) });
  }
  out.push({ name: 'current', main: ROUTER_MAIN });
  return out;
}

/** One scenario's figures for one build and round, by figure name (NaN: not measured). */
type Figures = Map<string, number>;

/** A scenario's figures and the call log they came from. */
interface Outcome {
  readonly figures: Figures;
  readonly log: CallLog;
}

const nodeIds = Array.from({ length: NODES }, (_, i) => `n${i + 1}`);
const victimId = nodeIds[VICTIM]!;

function loadConfig(address: string, plan: LoadConfig['plan'], seed: number): LoadConfig {
  return {
    address,
    rate: RATE,
    spaces: SPACES,
    nodeIds,
    plan,
    deadlineMs: CLIENT_DEADLINE_MS,
    seed,
  };
}

/** Every space read alike, and Stores at a tenth of the Recalls. */
const MIXED_PLAN = SPACES.flatMap((_, space) => [
  { op: OP.recall, space, weight: 10 },
  { op: OP.store, space, weight: 1 },
]);
const RECALL_PLAN = SPACES.map((_, space) => ({ op: OP.recall, space, weight: 1 }));
/** Space 0 read at 10× the rate of each other space. */
const HOT_PLAN = SPACES.map((_, space) => ({ op: OP.recall, space, weight: space === 0 ? 10 : 1 }));

/** The spaces `node` was primary of during the warm-up (no fault yet). */
function primarySpaces(log: CallLog, t0: number, node: number): Set<number> {
  const warm = select(log, { from: t0 + 1000, to: t0 + WARM_MS, op: OP.recall });
  const out = new Set<number>();
  for (const [space, primary] of primariesOf(log, warm)) if (primary === node) out.add(space);
  return out;
}

function upOf(m: Map<string, number>, id: string): number {
  return m.get(`engram_router_node_up{node="${id}"}`) ?? Number.NaN;
}
function breakerOf(m: Map<string, number>, id: string): number {
  return m.get(`engram_router_breaker_state{node="${id}"}`) ?? Number.NaN;
}
function opensOf(m: Map<string, number>, id: string): number {
  return m.get(`engram_router_breaker_transitions_total{node="${id}",to="open"}`) ?? 0;
}

async function restartScenario(c: GrayCluster, notes: string[]): Promise<Outcome> {
  const t0 = wallMs();
  await c.startLoad(loadConfig(c.routerAddress, MIXED_PLAN, 1));
  await sleep(WARM_MS);
  const tKill = wallMs();
  c.kill(VICTIM);
  await sleep(DOWN_MS);
  const downBefore = upOf(await c.scrape(), victimId) === 0;
  const tListen = await c.restart(VICTIM);
  let tUp = Number.NaN;
  let opensAtUp = 0;
  let lastBad = tListen;
  let opens = 0;
  for (;;) {
    await sleep(POLL_MS);
    const m = await c.scrape();
    const now = wallMs();
    const up = upOf(m, victimId) === 1;
    opens = opensOf(m, victimId);
    if (up && Number.isNaN(tUp)) {
      tUp = now;
      opensAtUp = opens;
    }
    if (!up || breakerOf(m, victimId) !== 0) lastBad = now;
    if (!Number.isNaN(tUp) && now - lastBad >= SETTLE_MS) break;
    if (now - tListen >= RESTART_CAP_MS) break;
  }
  const tEnd = wallMs();
  const log = await c.stopLoad();
  const primaries = primarySpaces(log, t0, VICTIM);
  const after = select(log, { from: tListen, op: OP.recall, spaces: primaries });
  const since = servingSince(log, {
    node: VICTIM,
    indexes: after,
    from: tListen,
    to: tEnd,
    bucketMs: SERVING_BUCKET_MS,
    minShare: SERVING_SHARE,
  });
  const elsewhere = after.filter((i) => log.code[i] === 0 && log.served[i] !== VICTIM).length;
  const failed = summarize(log, select(log, { from: tKill }));
  notes.push(
    `restart: ${primaries.size} primary spaces of ${victimId}; marked down before restart: ${downBefore}; breaker openings after marked up: ${opens - opensAtUp}; errors since kill by code: ${JSON.stringify(Object.fromEntries(failed.byCode))}`,
  );
  const figures: Figures = new Map([
    ['restart: listen → marked up, ms', tUp - tListen],
    [
      'restart: listen → first primary Recall served, ms',
      firstServed(log, after, VICTIM, tListen) - tListen,
    ],
    [
      `restart: listen → serving its primaries (≥${SERVING_SHARE * 100}%/${SERVING_BUCKET_MS} ms), ms`,
      since - tListen,
    ],
    ['restart: breaker openings after marked up', opens - opensAtUp],
    ['restart: its primaries’ Recalls served elsewhere after listen', elsewhere],
    ['restart: failed calls, kill → end', failed.errors],
  ]);
  return { figures, log };
}

const UPSTREAM = 'engram_router_upstream_requests_total';

async function stopScenario(c: GrayCluster, notes: string[]): Promise<Outcome> {
  await c.startLoad(loadConfig(c.routerAddress, MIXED_PLAN, 2));
  await sleep(WARM_MS);
  const m0 = await c.scrape();
  const tStop = wallMs();
  c.stop(VICTIM);
  let tDown = Number.NaN;
  while (wallMs() - tStop < STOP_MS) {
    await sleep(100);
    if (Number.isNaN(tDown) && upOf(await c.scrape(), victimId) === 0) tDown = wallMs();
  }
  const m1 = await c.scrape();
  const tCont = wallMs();
  c.cont(VICTIM);
  // Attempts sent during the stop end by their attempt timeout at the latest.
  await sleep(R.attemptTimeoutMs + 1000);
  const m2 = await c.scrape();
  const log = await c.stopLoad();
  const attempts = (m: Map<string, number>, status?: string) =>
    metricSum(
      m,
      UPSTREAM,
      status === undefined ? { node: victimId } : { node: victimId, grpc_status: status },
    );
  const failedAttempts = attempts(m2) - attempts(m2, 'OK') - (attempts(m0) - attempts(m0, 'OK'));
  const byStatus: Record<string, number> = {};
  for (const key of m2.keys()) {
    const s = /grpc_status="([A-Z_]+)"/.exec(key)?.[1];
    if (!key.startsWith(`${UPSTREAM}{node="${victimId}"`) || s === undefined || s === 'OK')
      continue;
    byStatus[s] = attempts(m2, s) - attempts(m0, s);
  }
  const during = select(log, { from: tStop, to: tCont });
  const s = summarize(log, during);
  const overTimeout = during.filter((i) => log.ms[i]! >= R.attemptTimeoutMs).length;
  notes.push(
    `stop: failed attempts to ${victimId} by status ${JSON.stringify(byStatus)}; OK attempts during the stop ${attempts(m1, 'OK') - attempts(m0, 'OK')}; client errors by code ${JSON.stringify(Object.fromEntries(s.byCode))}; max ${s.maxMs.toFixed(0)} ms`,
  );
  const figures: Figures = new Map([
    ['stop: attempts to the stopped node that failed', failedAttempts],
    ['stop: stop → marked down, ms', tDown - tStop],
    ['stop: client p50 of calls sent during the stop, ms', s.p50Ms],
    ['stop: client p99 of calls sent during the stop, ms', s.p99Ms],
    [`stop: calls ≥ ${R.attemptTimeoutMs} ms (one attempt timeout)`, overTimeout],
    ['stop: client errors during the stop', s.errors],
  ]);
  return { figures, log };
}

async function slowScenario(c: GrayCluster, notes: string[]): Promise<Outcome> {
  const t0 = wallMs();
  await c.startLoad(loadConfig(c.routerAddress, RECALL_PLAN, 3));
  await sleep(WARM_MS);
  const tA = wallMs();
  await sleep(PHASE_MS);
  const tB = wallMs();
  await c.setLatency(VICTIM, BASE_LATENCY_MS * 10);
  await sleep(PHASE_MS);
  const tEnd = wallMs();
  const log = await c.stopLoad();
  const a = summarize(log, select(log, { from: tA, to: tB }));
  const b = summarize(log, select(log, { from: tB, to: tEnd }));
  const primaries = primarySpaces(log, t0, VICTIM);
  const slowOwn = select(log, { from: tB, to: tEnd, spaces: primaries });
  const share = servedShares(log, slowOwn).get(VICTIM) ?? 0;
  notes.push(
    `slow: errors ${a.errors} / ${b.errors} (all at ${BASE_LATENCY_MS} ms / ${victimId} at ${BASE_LATENCY_MS * 10} ms); ${primaries.size} primary spaces of ${victimId}`,
  );
  const figures: Figures = new Map([
    [`slow: Recall p50, every node ${BASE_LATENCY_MS} ms, ms`, a.p50Ms],
    [`slow: Recall p99, every node ${BASE_LATENCY_MS} ms, ms`, a.p99Ms],
    [`slow: Recall p50, ${victimId} at ${BASE_LATENCY_MS * 10} ms, ms`, b.p50Ms],
    [`slow: Recall p99, ${victimId} at ${BASE_LATENCY_MS * 10} ms, ms`, b.p99Ms],
    [`slow: ${victimId}'s primaries' Recalls it still served, %`, share * 100],
  ]);
  return { figures, log };
}

async function hotScenario(c: GrayCluster, notes: string[]): Promise<Outcome> {
  await c.startLoad(loadConfig(c.routerAddress, HOT_PLAN, 4));
  await sleep(WARM_MS);
  const tA = wallMs();
  await sleep(PHASE_MS);
  const log = await c.stopLoad();
  const hot = select(log, { from: tA, spaces: new Set([0]) });
  const shares = [...servedShares(log, hot)].sort((x, y) => y[1] - x[1]);
  const all = summarize(log, select(log, { from: tA }));
  const h = summarize(log, hot);
  notes.push(
    `hot: ${hot.length} hot-space Recalls, served ${shares.map(([n, s]) => `${nodeIds[n]} ${(s * 100).toFixed(1)}%`).join(', ')}; errors ${all.errors}`,
  );
  const figures: Figures = new Map([
    ['hot: share of hot-space Recalls on its busiest replica, %', (shares[0]?.[1] ?? 0) * 100],
    ['hot: … on the 2nd, %', (shares[1]?.[1] ?? 0) * 100],
    ['hot: … on the 3rd, %', (shares[2]?.[1] ?? 0) * 100],
    ['hot: hot-space Recall p99, ms', h.p99Ms],
    ['hot: all Recalls p99, ms', all.p99Ms],
  ]);
  return { figures, log };
}

const SCENARIO_RUN: Record<string, (c: GrayCluster, notes: string[]) => Promise<Outcome>> = {
  restart: restartScenario,
  stop: stopScenario,
  slow: slowScenario,
  hot: hotScenario,
};

/** Figures that say how noisy a measurement was rather than what the router did. */
const NOISE = 'noise: ';

async function measureOnce(build: Build, scenario: string, notes: string[]): Promise<Figures> {
  const c = await GrayCluster.start({
    nodes: NODES,
    routerMain: build.main,
    routerConfig: ROUTER_CONFIG,
    latencyMs: scenario === 'slow' ? BASE_LATENCY_MS : null,
  });
  try {
    await c.allUp(H.intervalMs * H.healthyThreshold * 10);
    await c.seed(SPACES, MEMORIES_PER_SPACE);
    const before = await c.scrape();
    const { figures, log } = await SCENARIO_RUN[scenario]!(c, notes);
    const after = await c.scrape();
    // Probes of nodes nothing was done to fail only when the machine starves the processes.
    const healthy = nodeIds.filter((id) => id !== victimId);
    const probeFailures = (m: Map<string, number>) =>
      healthy.reduce(
        (n, node) => n + metricSum(m, 'engram_router_health_probe_failures_total', { node }),
        0,
      );
    figures.set(
      `${NOISE}${scenario}: probe failures of the healthy nodes`,
      probeFailures(after) - probeFailures(before),
    );
    figures.set(
      `${NOISE}${scenario}: load sent behind schedule, p99 ms`,
      summarize(log, select(log, {})).lateP99Ms,
    );
    return figures;
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const unknown = SCENARIOS.filter((s) => !(s in SCENARIO_RUN));
  if (unknown.length > 0) throw new Error(`BENCH_GRAY_SCENARIOS: unknown ${unknown.join(', ')}`);
  const report = new BenchReport('gray-failures');
  const list = builds();
  report.note(
    `${NODES} memory nodes (this tree's), RF 3, ${SPACES.length} spaces × ${MEMORIES_PER_SPACE} memories; load ${RATE} calls/s open loop (restart, stop: Recall + Store 10:1; slow, hot: Recall); victim ${victimId}; ${ROUNDS} round(s)`,
  );
  report.note(`router config (every build): ${JSON.stringify(ROUTER_CONFIG)}`);
  report.note(
    `slow node: ${nodeFaultsSupported() ? "the memory node's latency fault (--fault-latency-ms, PUT /faults; data calls only)" : 'a delay proxy in front of each node (this memory node has no latency fault; health replies are delayed too)'}`,
  );
  report.note(`builds: ${list.map((b) => `${b.name} = ${b.main}`).join('; ')}`);
  // figure name → per build → values over rounds
  const figures = new Map<string, number[][]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of SCENARIOS) {
      for (let k = 0; k < list.length; k++) {
        const b = (k + round) % list.length;
        const build = list[b]!;
        const notes: string[] = [];
        const started = Date.now();
        const got = await measureOnce(build, scenario, notes);
        for (const [name, value] of got) {
          const per = figures.get(name) ?? list.map(() => []);
          per[b]!.push(value);
          figures.set(name, per);
        }
        const noise = [...got]
          .filter(([name]) => name.startsWith(NOISE))
          .map(
            ([name, v]) => `${name.slice(name.indexOf(': ', NOISE.length) + 2)} ${v.toFixed(0)}`,
          );
        const line = `round ${round + 1}/${ROUNDS} ${scenario} ${build.name} (${((Date.now() - started) / 1000).toFixed(0)} s): ${notes.join(' | ')} | ${noise.join(', ')}`;
        report.note(line);
      }
    }
  }
  const ordered = [...figures].sort(
    ([a], [b]) => Number(a.startsWith(NOISE)) - Number(b.startsWith(NOISE)),
  );
  const rows: Figure[] = ordered.map(([name, values]) => ({
    name,
    values,
    digits: /ms$|%$/.test(name) ? 1 : 0,
  }));
  report.note(
    `\nMedians over ${ROUNDS} round(s):\n${formatFigures(
      list.map((b) => b.name),
      rows,
    )}`,
  );
  report.write();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
