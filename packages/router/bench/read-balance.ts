/**
 * Load-aware reads, two sections, printed as tables:
 *  1. what the choice costs: routeRecall ns/op with readBalancing 'placement' and
 *     'least-request' (idle, and with attempts in flight so the second choice is drawn), with
 *     node states with and without slow start's `warmth`; next to a baseline build of
 *     @engram/router when BASELINE_ROUTER names one (its dist/index.js), in the same run.
 *  2. what it does: a simulated cluster (12 nodes, RF 3, 48 spaces, one of them read 10× as
 *     often as each other one; each node one server, exponential service time, Poisson
 *     arrivals, on virtual time through the real Router.execute) with each readBalancing: the
 *     hot space's reads per replica, its primary's utilisation, and read latency percentiles.
 *
 *   npx tsx bench/read-balance.ts
 *   BASELINE_ROUTER=/path/to/main/packages/router/dist/index.js npx tsx bench/read-balance.ts
 */
import { BenchReport, benchTime, QUICK, tinybenchRows } from '@engram/bench-kit';
import { seededRandom } from '@engram/common';
import { buildRing, type NodeInfo, TableReader, TableWriter } from '@engram/ring';
import { Bench } from 'tinybench';
import { NodeState, type NodeStates, Router } from '../src/index.js';

const report = new BenchReport('router-read-balance');
const BATCH = 16;
let sink: unknown;

// ---------------------------------------------------------------- 1. decision cost
{
  const nodes: NodeInfo[] = Array.from({ length: 12 }, (_, i) => ({
    id: `node-${i}`,
    address: `10.0.0.${i + 1}:7000`,
    zone: `z${i % 3}`,
  }));
  const writer = new TableWriter({ maxNodes: 64, maxTokens: 1 << 18 });
  writer.publish(buildRing({ nodes, replicationFactor: 3 }));
  const table = new TableReader(writer.buffer);
  const SPACES = 1024;
  const spaceIds = Array.from({ length: SPACES }, (_, i) => `space-${i}`);
  // Node states as router-node keeps them: words in shared memory, read with Atomics.load.
  const words = new Int32Array(new SharedArrayBuffer(2 * 256 * 4));
  const upOnly: NodeStates = {
    stateOf: (_n, slot) => (Atomics.load(words, slot) === 0 ? NodeState.Up : NodeState.Down),
  };
  const withWarmth: NodeStates = {
    stateOf: upOnly.stateOf,
    warmth: (_n, slot) => (Atomics.load(words, 256 + slot) === 0 ? 1 : 0.5),
  };
  const ours = (options: object, nodeStates?: NodeStates) =>
    new Router({ table, options, ...(nodeStates ? { nodeStates } : {}) });
  const placement = ours({ readBalancing: 'placement' });
  const idle = ours({});
  const loaded = ours({});
  // Every node with 3-6 attempts in flight: most reads draw the second choice and compare.
  for (let slot = 0; slot < nodes.length; slot++) {
    for (let k = 0; k < 3 + (slot % 4); k++) loaded.outstanding.start(slot);
  }
  const statesOurs = ours({}, withWarmth);
  const rows: [string, Router | { routeRecall(id: string): unknown }][] = [];
  const baselinePath = process.env.BASELINE_ROUTER;
  if (baselinePath !== undefined) {
    const base = (await import(baselinePath)) as { Router: new (init: object) => Router };
    rows.push(['baseline (main): routeRecall', new base.Router({ table })]);
    rows.push([
      'baseline (main): routeRecall, node states',
      new base.Router({ table, nodeStates: upOnly }),
    ]);
  }
  rows.push(
    ["ours: routeRecall, 'placement'", placement],
    ["ours: routeRecall, 'least-request', idle", idle],
    ["ours: routeRecall, 'least-request', 3-6 in flight per node", loaded],
    ["ours: routeRecall, 'least-request', node states + warmth", statesOurs],
  );
  const bench = new Bench({ time: benchTime(1500, 200), warmupTime: benchTime(300, 50) });
  let k = 0;
  for (const [name, router] of rows) {
    bench.add(name, () => {
      for (let i = 0; i < BATCH; i++) sink = router.routeRecall(spaceIds[k++ & (SPACES - 1)]!);
    });
  }
  await bench.run();
  report.table({
    title: `1. routeRecall over a shared TableReader (12 nodes, RF 3), batches of ${BATCH}`,
    unit: 'ns/op',
    baseline: rows[0]![0],
    rows: tinybenchRows(bench, BATCH),
  });
}

// ---------------------------------------------------------------- 2. simulated hot space
{
  const NODES = 12;
  const SPACES = 48;
  const HOT_WEIGHT = 10; // the hot space is read 10× as often as each other space
  const SERVICE_MS = 1; // mean service time of one read at a node (exponential)
  const UTILISATION = 0.35; // mean over the nodes
  const CALLS = QUICK ? 20_000 : 100_000;
  const nodes: NodeInfo[] = Array.from({ length: NODES }, (_, i) => ({
    id: `n${i}`,
    address: `10.0.0.${i + 1}:7000`,
    zone: `z${i % 3}`,
  }));
  const ring = buildRing({ nodes, replicationFactor: 3, vnodesPerNode: 256 });
  const spaces = Array.from({ length: SPACES }, (_, i) => `space-${i}`);
  const HOT = spaces[0]!;
  const hotPlacement = ring.lookup(HOT);
  const hotIds = [hotPlacement.primary.id, ...hotPlacement.replicas.map((n) => n.id)];
  const totalWeight = SPACES - 1 + HOT_WEIGHT;
  const ratePerMs = (UTILISATION * NODES) / SERVICE_MS;

  async function simulate(options: { readBalancing: string; readBalancingThreshold?: number }) {
    const random = seededRandom(42);
    const exp = (mean: number) => -Math.log(1 - random()) * mean;
    let now = 0;
    const clock = { now: () => now };
    const router = new Router({
      table: ring,
      clock,
      random: seededRandom(7),
      options: { ...options, attemptTimeoutMs: Number.POSITIVE_INFINITY } as object,
    });
    // Events on virtual time: a binary heap would be faster; a sorted insert is fine here.
    const events: { at: number; run: () => void }[] = [];
    const schedule = (at: number, run: () => void) => {
      let lo = 0;
      let hi = events.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (events[mid]!.at <= at) lo = mid + 1;
        else hi = mid;
      }
      events.splice(lo, 0, { at, run });
    };
    // One server per node: a read waits for the node's previous ones (FIFO).
    const freeAt = new Map<string, number>(nodes.map((n) => [n.id, 0]));
    const busy = new Map<string, number>(nodes.map((n) => [n.id, 0]));
    const hotServed = new Map<string, number>(hotIds.map((id) => [id, 0]));
    const latencies: number[] = [];
    const hotLatencies: number[] = [];
    let done = 0;
    const call = (node: NodeInfo) => {
      const service = exp(SERVICE_MS);
      const start = Math.max(now, freeAt.get(node.id)!);
      freeAt.set(node.id, start + service);
      busy.set(node.id, busy.get(node.id)! + service);
      return new Promise<string>((resolve) => schedule(start + service, () => resolve(node.id)));
    };
    let arrivals = 0;
    const arrive = () => {
      arrivals++;
      if (arrivals < CALLS) schedule(now + exp(1 / ratePerMs), arrive);
      const pick = random() * totalWeight;
      const space = pick < HOT_WEIGHT ? HOT : spaces[1 + Math.floor(pick - HOT_WEIGHT)]!;
      const started = now;
      void router
        .execute(router.routeRecall(space), (ctx) => call(ctx.node))
        .then(({ value }) => {
          const ms = now - started;
          latencies.push(ms);
          if (space === HOT) {
            hotLatencies.push(ms);
            hotServed.set(value, hotServed.get(value)! + 1);
          }
          done++;
        });
    };
    schedule(0, arrive);
    while (events.length > 0) {
      const event = events.shift()!;
      now = event.at;
      event.run();
      // Let the executions' promise chains run before the next event (virtual time stands).
      await new Promise((resolve) => setImmediate(resolve));
    }
    await router.close();
    const hotTotal = hotLatencies.length;
    const q = (a: number[], p: number) => {
      const s = [...a].sort((x, y) => x - y);
      return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
    };
    return {
      done,
      spread: hotIds.map((id) => hotServed.get(id)! / hotTotal),
      primaryUtilisation: busy.get(hotIds[0]!)! / now,
      maxUtilisation: Math.max(...[...busy.values()].map((b) => b / now)),
      hotP50: q(hotLatencies, 0.5),
      hotP99: q(hotLatencies, 0.99),
      allP99: q(latencies, 0.99),
    };
  }

  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const results = [];
  const modes = [
    ['placement', { readBalancing: 'placement' }],
    ['least-request, threshold 2 (default)', { readBalancing: 'least-request' }],
    ['least-request, threshold 1', { readBalancing: 'least-request', readBalancingThreshold: 1 }],
    ['least-request, threshold 0', { readBalancing: 'least-request', readBalancingThreshold: 0 }],
  ] as const;
  for (const [name, options] of modes) {
    const r = await simulate(options);
    results.push({
      name,
      values: {
        'hot reads: primary': pct(r.spread[0]!),
        'replica 1': pct(r.spread[1]!),
        'replica 2': pct(r.spread[2]!),
        'hot primary busy': pct(r.primaryUtilisation),
        'busiest node': pct(r.maxUtilisation),
        'hot p50 ms': r.hotP50.toFixed(2),
        'hot p99 ms': r.hotP99.toFixed(2),
        'all p99 ms': r.allP99.toFixed(2),
      },
    });
    sink = r.done;
  }
  report.note(
    `2. Simulated: ${NODES} nodes, RF 3, ${SPACES} spaces, one read ${HOT_WEIGHT}× as often as each other; ` +
      `one server per node, exponential service (mean ${SERVICE_MS} ms), Poisson arrivals at ` +
      `${pct(UTILISATION)} mean utilisation; ${CALLS} reads on virtual time through Router.execute.`,
  );
  for (const r of results) {
    report.note(
      `  ${r.name.padEnd(36)} ${Object.entries(r.values)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  }
}

report.write();
void sink;
