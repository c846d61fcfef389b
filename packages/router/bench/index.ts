/**
 * @engram/router benchmarks, one run, printed as tables:
 *  1. decision latency, ns/op p50/p99 per strategy (breaker state and table epoch included),
 *     next to the ring's own lookups as baselines; over a Ring and over a shared TableReader;
 *     plus a heap check (bytes per decision: the result object and its replicas array).
 *  2. execute overhead: router.recall vs a direct grpc-js call to the same memory node (a child
 *     process), per-call p50/p99 sequentially and with 64 calls in flight, interleaved rounds.
 *  3. retries per failed request during a total outage, with and without the retry budget.
 */

import { BenchReport, benchTime, QUICK, tinybenchRows } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import { RetryBudget } from '@engram/retry';
import { buildRing, type NodeInfo, TableReader, TableWriter } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { Bench } from 'tinybench';
import { Router } from '../src/index.js';
import { refusedAddress, spawnNode } from '../test/helpers.js';

/** Which sections to run: BENCH_SECTIONS=1,3 (default all). */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? '1,2,3').split(','));
const BATCH = 16; // decisions per measured iteration: one alone is below the timer's resolution
const SPACES = 1024;
let sink: unknown;
const report = new BenchReport('router');

// ---------------------------------------------------------------- 1. decisions
if (SECTIONS.has('1')) {
  const nodes: NodeInfo[] = Array.from({ length: 12 }, (_, i) => ({
    id: `node-${i}`,
    address: `10.0.0.${i + 1}:7000`,
    zone: `z${i % 3}`,
  }));
  const ring = buildRing({ nodes, replicationFactor: 3 });
  const writer = new TableWriter({ maxNodes: 64, maxTokens: 1 << 18 });
  writer.publish(ring);
  const reader = new TableReader(writer.buffer);
  const spaceIds = Array.from({ length: SPACES }, (_, i) => `space-${i}`);
  const out = new Uint16Array(8);

  function routers(table: typeof ring | TableReader) {
    return {
      plain: new Router({ table, options: { storeFallback: false } }),
      local: new Router({ table, localNodeId: 'node-3' }),
    };
  }

  for (const [tableName, table] of [
    ['Ring', ring],
    ['TableReader (shared)', reader],
  ] as const) {
    const { plain, local } = routers(table);
    // Let "local" hold every space so LocalOnly never throws: consolidation of the spaces node-3 holds.
    const localSpaces = spaceIds.filter((s) => {
      const p = table.lookup(s);
      return p.primary.id === 'node-3' || p.replicas.some((n) => n.id === 'node-3');
    });
    const single = spaceIds.map((s) => [s]);
    const bench = new Bench({ time: benchTime(1000, 200), warmupTime: benchTime(200, 50) });
    let k = 0;
    bench
      .add('baseline: table.lookupInto (ring math only)', () => {
        for (let i = 0; i < BATCH; i++) sink = table.lookupInto(spaceIds[k++ & (SPACES - 1)]!, out);
      })
      .add('baseline: table.lookup (allocating Placement)', () => {
        for (let i = 0; i < BATCH; i++) sink = table.lookup(spaceIds[k++ & (SPACES - 1)]!);
      })
      .add('Primary (routeStore, storeFallback off)', () => {
        for (let i = 0; i < BATCH; i++) sink = plain.routeStore(spaceIds[k++ & (SPACES - 1)]!);
      })
      .add('PrimaryWithFallback (routeRecall)', () => {
        for (let i = 0; i < BATCH; i++) sink = plain.routeRecall(spaceIds[k++ & (SPACES - 1)]!);
      })
      .add('LocalOnly (routeConsolidation)', () => {
        for (let i = 0; i < BATCH; i++)
          sink = local.routeConsolidation(localSpaces[k++ % localSpaces.length]!);
      })
      .add('ScatterGather (routeDistributedQuery, 1 space)', () => {
        for (let i = 0; i < BATCH; i++)
          sink = plain.routeDistributedQuery(single[k++ & (SPACES - 1)]!);
      });
    await bench.run();
    report.table({
      title: `1. Decision over a ${tableName} (12 nodes, RF 3, 8192 vnodes/node), batches of ${BATCH} (p99 = of per-batch means)`,
      unit: 'ns/op',
      baseline: 'baseline: table.lookupInto (ring math only)',
      rows: tinybenchRows(bench, BATCH),
    });
  }

  {
    // Heap per decision: what the result costs (object + replicas array), nothing else.
    const { plain } = routers(ring);
    const OPS = QUICK ? 200_000 : 1_000_000;
    for (let i = 0; i < OPS; i++) sink = plain.routeRecall(spaceIds[i & (SPACES - 1)]!);
    const held: unknown[] = new Array(OPS);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < OPS; i++) held[i] = plain.routeRecall(spaceIds[i & (SPACES - 1)]!);
    const after = process.memoryUsage().heapUsed;
    report.note(
      `heap retained per routeRecall decision (result kept alive): ${((after - before) / OPS).toFixed(1)} B`,
    );
    sink = held;
  }
}

// ---------------------------------------------------------------- 2. execute overhead
if (SECTIONS.has('2')) {
  {
    // The router's own CPU per operation, without the network: execute over a call that
    // resolves at once, next to the same call awaited directly.
    const local = buildRing({ nodes: [{ id: 'x', address: '127.0.0.1:1' }], vnodesPerNode: 16 });
    const r = new Router({ table: local });
    const decision = r.routeRecall('bench');
    const value = Promise.resolve(1);
    const instant = () => value;
    const bench = new Bench({ time: benchTime(1500, 300), warmupTime: benchTime(300, 50) });
    bench
      .add('baseline: await call()', async () => {
        sink = await instant();
      })
      .add('router.execute(decision, call)', async () => {
        sink = await r.execute(decision, instant);
      })
      .add('router.execute(routeRecall(id), call)', async () => {
        sink = await r.execute(r.routeRecall('bench'), instant);
      });
    await bench.run();
    // 64 operations in flight at once, as a loaded router has them: their attempt timers share
    // native timers (DueTimers), which one at a time they cannot.
    const AT_ONCE = 64;
    const many = Array.from({ length: AT_ONCE }, () => 0);
    const parallel = new Bench({ time: benchTime(1500, 300), warmupTime: benchTime(300, 50) });
    parallel
      .add(`baseline: ${AT_ONCE} × call() at once`, async () => {
        sink = (await Promise.all(many.map(instant))).length;
      })
      .add(`${AT_ONCE} × router.execute(decision, call) at once`, async () => {
        sink = (await Promise.all(many.map(() => r.execute(decision, instant)))).length;
      });
    await parallel.run();
    report.table({
      title: '2a. Execute machinery per operation, no network (one at a time; 64 at once)',
      unit: 'µs/op',
      baseline: 'baseline: await call()',
      rows: [...tinybenchRows(bench, 1, 1e3), ...tinybenchRows(parallel, AT_ONCE, 1e3)],
    });
  }
  const child = await spawnNode('bench-node');
  const target: NodeInfo = { id: child.id, address: child.address };
  const oneNode = buildRing({ nodes: [target], replicationFactor: 1, vnodesPerNode: 16 });
  const router = new Router({ table: oneNode });
  const direct = new MemoryServiceClient(child.address, grpc.credentials.createInsecure());
  const request = { spaceId: 'bench', cue: { text: 'hello world' }, limit: 5 };
  for (let i = 0; i < 20; i++) {
    await router.store({
      spaceId: 'bench',
      memory: { content: `hello world ${i}`, confidence: 0.5 },
    });
  }
  const directCall = () => callMemory(direct, 'recall', request, { deadline: Date.now() + 10_000 });
  const routerCall = () => router.recall(request);

  function percentile(sorted: Float64Array, p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  }

  async function sequential(fn: () => Promise<unknown>, n: number, into: number[]): Promise<void> {
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await fn();
      into.push(Number(process.hrtime.bigint() - t) / 1e3);
    }
  }

  async function inFlight(
    fn: () => Promise<unknown>,
    n: number,
    concurrency: number,
    into: number[],
  ) {
    let left = n;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left-- > 0) {
          const t = process.hrtime.bigint();
          await fn();
          into.push(Number(process.hrtime.bigint() - t) / 1e3);
        }
      }),
    );
    return Number(process.hrtime.bigint() - started) / 1e9;
  }

  const ROUNDS = QUICK ? 1 : 8;
  const SEQ_CALLS = QUICK ? 300 : 1000;
  const CONC_CALLS = QUICK ? 2000 : 5000;
  // A third client: grpc-js straight over the router's own pooled channel (same channel
  // options), to separate the pool's channel settings from the router's machinery.
  const slot = router.pool.addNode(target.id, target.address);
  const pooled = router.pool.acquireClient(slot);
  const recallDef = MemoryServiceDefinition.Recall;
  const pooledCall = () =>
    new Promise((resolve, reject) => {
      pooled.makeUnaryRequest(
        recallDef.path,
        recallDef.requestSerialize as (v: unknown) => Buffer,
        recallDef.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (error, response) => (error === null ? resolve(response) : reject(error)),
      );
    });
  const CLIENTS = {
    direct: ['direct grpc-js (callMemory, own channel)', directCall],
    pooled: ['direct grpc-js over the pool channel', pooledCall],
    router: ['router.recall', routerCall],
  } as const;
  type Who = keyof typeof CLIENTS;
  const WHO: Who[] = ['direct', 'pooled', 'router'];
  const seq: Record<Who, number[]> = { direct: [], pooled: [], router: [] };
  const conc: Record<Who, number[]> = { direct: [], pooled: [], router: [] };
  const concSeconds: Record<Who, number> = { direct: 0, pooled: 0, router: 0 };
  for (const who of WHO) await sequential(CLIENTS[who][1], 500, []); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, rotating who goes first, so machine noise hits all alike.
    const order = WHO.map((_, i) => WHO[(i + round) % WHO.length]!);
    for (const who of order) {
      const fn = CLIENTS[who][1];
      await sequential(fn, SEQ_CALLS, seq[who]);
      concSeconds[who] += await inFlight(fn, CONC_CALLS, 64, conc[who]);
    }
  }
  for (const [mode, data] of [
    ['sequential', seq],
    ['64 in flight', conc],
  ] as const) {
    report.table({
      title: `2. Recall to one memory node (child process), ${mode}, ${data.direct.length} calls per client`,
      unit: 'µs/call',
      baseline: CLIENTS.direct[0],
      rows: WHO.map((who) => {
        const sorted = Float64Array.from(data[who]).sort();
        return {
          name: CLIENTS[who][0],
          median: percentile(sorted, 0.5),
          p99: percentile(sorted, 0.99),
        };
      }),
    });
  }
  report.table({
    title: '2. Recall throughput, 64 in flight (one figure over all rounds: no p99)',
    unit: 'calls/s',
    baseline: CLIENTS.direct[0],
    higherIsBetter: true,
    rows: WHO.map((who) => ({
      name: CLIENTS[who][0],
      median: (CONC_CALLS * ROUNDS) / concSeconds[who],
      p99: Number.NaN,
    })),
  });
  direct.close();
  await router.close();
  await child.stop();
}

// ---------------------------------------------------------------- 3. outage retries
if (SECTIONS.has('3')) {
  const dead = await Promise.all(
    [0, 1, 2].map(async (i) => ({ id: `dead-${i}`, address: await refusedAddress() })),
  );
  const outage = buildRing({ nodes: dead, replicationFactor: 3, vnodesPerNode: 16 });
  const OUTAGE_MS = QUICK ? 1_000 : 3_000;
  const outageRows: Array<{ name: string; median: number; p99: number }> = [];
  const outcomes: string[] = [];
  for (const [name, budget, breakerThreshold] of [
    [
      'no budget (ratio 1, 10k/s reserve), breakers off',
      new RetryBudget({ ratio: 1, minRetriesPerSecond: 10_000 }),
      1_000_000,
    ],
    ['default budget (20 %, 10/s, 10 s), breakers off', new RetryBudget(), 1_000_000],
    ['default budget, default breakers (5 failures, 30 s)', new RetryBudget(), 5],
  ] as const) {
    let attempts = 0;
    const r = new Router({
      table: outage,
      budget,
      options: { breakerThreshold, retryBaseDelayMs: 1, retryMaxDelayMs: 4 },
      hooks: { onAttempt: (_op, _node, outcome) => (outcome === 'rejected' ? 0 : attempts++) },
    });
    let requests = 0;
    let retries = 0;
    const codes = new Map<string, number>();
    const until = Date.now() + OUTAGE_MS;
    // 8 concurrent callers for OUTAGE_MS.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (Date.now() < until) {
          requests++;
          const error = await r
            .recall({ spaceId: `s-${requests}`, cue: { text: 'x' } })
            .catch((e: unknown) => e);
          const code = (error as { code?: string }).code ?? 'ok';
          codes.set(code, (codes.get(code) ?? 0) + 1);
          // Every attempt after a request's first is a retry (fail-overs included).
          retries += Math.max(0, ((error as { attempts?: number }).attempts ?? 0) - 1);
        }
      }),
    );
    await r.close();
    outageRows.push({ name, median: retries / requests, p99: attempts / requests });
    outcomes.push(
      `${name}: ${requests} requests, ${attempts} attempts, ${retries} retries; outcomes ${[...codes].map(([c, n]) => `${c}:${n}`).join(' ')}`,
    );
  }
  // Baseline: the router without a budget or breakers, i.e. plain "retry up to 3 times".
  report.table({
    title: `3. Total outage (3 nodes refusing connections, maxRetries 3, backoff 1-4 ms), 8 callers for ${OUTAGE_MS / 1000} s`,
    unit: '',
    columns: ['retries/request', 'attempts/request'],
    baseline: outageRows[0]!.name,
    rows: outageRows,
  });
  for (const line of outcomes) report.note(line);
}

void sink;
report.write();
