/**
 * Many routers, one truth (etcd mode): how long an admin change on router A takes to be what
 * router C routes by, what an admin change costs with etcd against without, and what etcd
 * itself costs per conditioned transaction. Real processes on 127.0.0.1, ports picked free:
 * one etcd member (Debian's etcd-server), 3 memory nodes (this tree's, zones a/b/c), 3
 * router-nodes in etcd mode sharing one prefix (A, B, C) and one router-node without etcd
 * (file mode, the baseline), every router `workers: 1` with a `dataDir`.
 *
 * Routers run `router.replicateWrites: false`: without data movement a pin applies at the
 * revision it is written at. (With it, the pin first waits for the driver to stream the
 * space, and the time measured would be that of data movement, not of the shared state.)
 *
 *   convergence (table)    CHANGES AssignSpace calls on A, each pinning a new space to the
 *                          next node (n1, n2, n3, …): from sending the call until C's GetTable
 *                          (polled back to back from the same instant) shows a revision ≥ the
 *                          change's. Resolution: one GetTable round trip (printed).
 *   convergence (routing)  ROUTED more AssignSpace calls on A, each moving a space off the node
 *                          C routes it to now: from sending the call until a Store on C (sent
 *                          back to back) answers with RoutingInfo.served_by = the new primary.
 *   admin latency          the AssignSpace round trip on A (the convergence calls) against
 *                          the same change on the file-mode router, interleaved call by call.
 *   etcd alone             TXNS conditioned transactions (`if mod == last then put else get`,
 *                          etcd3, the client router-node uses) back to back from this process.
 *
 * After each change every etcd-mode router is waited for (untimed) before the next one, so
 * changes never overlap. WARMUP changes (and transactions) first, not counted.
 *
 * Run: pnpm --filter @engram/bench bench:etcd   (under `flock /tmp/engram-bench.lock`)
 * Each figure: per round its p50/p99/max (printed), then the median over BENCH_ROUNDS rounds
 * (default 3; --quick 1) on the same cluster.
 * Env: BENCH_ETCD_CHANGES (default 100; --quick 30), BENCH_ETCD_ROUTED (25; 10),
 * BENCH_ETCD_TXNS (200; 50), BENCH_ETCD_DATADIR=0 (routers without a dataDir).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import { EtcdServer, etcdVersion } from '@engram/etcd-server';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import { etcdClient } from '@engram/router/etcd';
import { RouterAdminClient } from '@engram/router-node';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { median, percentile } from './gray-stats.js';
import { dir, NODE_MAIN, type Spawned, spawnJson, startRouterNode } from './harness.js';

const CHANGES = Number(process.env.BENCH_ETCD_CHANGES ?? (QUICK ? 30 : 100));
const ROUTED = Number(process.env.BENCH_ETCD_ROUTED ?? (QUICK ? 10 : 25));
const TXNS = Number(process.env.BENCH_ETCD_TXNS ?? (QUICK ? 50 : 200));
/** Rounds on the same cluster; each figure is the median over them. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
/**
 * Every router keeps its state in a `dataDir` (file mode: the state file, fsynced per change;
 * etcd mode: the copy of the placement it can start from with etcd down). 0: none, to see
 * what that fsync costs (file mode then keeps admin changes in memory only).
 */
const DATA_DIR = process.env.BENCH_ETCD_DATADIR !== '0';
const WARMUP = 5;
const NODES = 3;
/** A change not seen on C by then is counted as missed (and the run goes on). */
const CONVERGE_CAP_MS = 10_000;
/** Deadline of one admin call, GetTable or Store from the bench. */
const CALL_DEADLINE_MS = 10_000;
/** Routers up: every node's first probes passed, every router registered. */
const READY_MS = 60_000;
const PREFIX = '/bench/engram/router/';

const ROUTER_CONFIG = Object.freeze({
  workers: 1,
  replicationFactor: 3,
  router: { replicateWrites: false },
  health: { intervalMs: 1000, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 2 },
  // Defaults written out, so a default that changes later does not change the bench silently.
  etcdDefaults: { leaseTtlMs: 10_000, requestTimeoutMs: 2000 },
});

const now = () => performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface TableReply {
  revision: number | string;
  nodes: { id: string; state: string }[];
  etcd: { connected: boolean; routers: { id: string }[] } | null;
}

interface Router {
  readonly name: string;
  readonly spawned: Spawned;
  readonly admin: grpc.Client;
  readonly data: MemoryServiceClient;
}

function adminCall<T>(client: grpc.Client, method: string, request: object = {}): Promise<T> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => void>)[method]!;
  return new Promise((resolve, reject) => {
    fn.call(
      client,
      request,
      { deadline: Date.now() + CALL_DEADLINE_MS },
      (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)),
    );
  });
}

const getTable = (r: Router) => adminCall<TableReply>(r.admin, 'GetTable');

async function startRouter(name: string, nodes: object[], etcd: object | null): Promise<Router> {
  const { etcdDefaults, ...config } = ROUTER_CONFIG;
  const spawned = await startRouterNode({
    ...config,
    admin: { host: '127.0.0.1', port: 0 },
    ...(DATA_DIR ? { dataDir: join(dir, `router-${name}`) } : {}),
    nodes,
    ...(etcd !== null ? { etcd: { ...etcdDefaults, ...etcd } } : {}),
  });
  const admin = new RouterAdminClient(
    `127.0.0.1:${Number(spawned.first.adminPort)}`,
    grpc.credentials.createInsecure(),
  );
  const data = new MemoryServiceClient(
    String(spawned.first.address),
    grpc.credentials.createInsecure(),
  );
  return { name, spawned, admin, data };
}

/** Polls until `check` passes on every router; throws past `timeoutMs`. */
async function waitAll(
  routers: readonly Router[],
  check: (t: TableReply) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const until = now() + timeoutMs;
  for (;;) {
    const tables = await Promise.all(routers.map(getTable));
    if (tables.every(check)) return;
    if (now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function assignSpace(r: Router, spaceId: string, primary: string) {
  return adminCall<{ epoch: number; revision: number | string }>(r.admin, 'AssignSpace', {
    spaceId,
    primary,
    replicas: [],
  });
}

/** One Store on `r`: the node RoutingInfo names. */
async function servedBy(r: Router, spaceId: string): Promise<string> {
  const res = await callMemory(
    r.data,
    'store',
    { spaceId, memory: { content: 'etcd bench', confidence: 0.5 } },
    { deadline: Date.now() + CALL_DEADLINE_MS },
  );
  return res.routing?.servedBy ?? '';
}

interface Timed {
  /** Send → reply of the admin call on A, ms. */
  readonly rttMs: number;
  /** Send → C routes by it, ms (NaN: not within CONVERGE_CAP_MS). */
  readonly convergeMs: number;
  /** Probes of C sent meanwhile (GetTable or Store). */
  readonly probes: number;
  /** Their round trips, ms. */
  readonly probeMs: number[];
}

/**
 * Sends `change` on A and, from the same instant, probes C back to back until `seen` says a
 * probe's answer shows it (given the change's reply, known only once A answers).
 */
async function timeChange<P>(
  change: () => Promise<{ revision: number | string }>,
  probe: () => Promise<P>,
  seen: (p: P, revision: number) => boolean,
): Promise<Timed> {
  const t0 = now();
  let revision = Number.NaN;
  let rttMs = Number.NaN;
  const sent = change().then((res) => {
    rttMs = now() - t0;
    revision = Number(res.revision);
  });
  const probeMs: number[] = [];
  // Answers that came before A's reply: judged once the revision is known.
  const early: { at: number; p: P }[] = [];
  let convergeMs = Number.NaN;
  let failed: unknown = null;
  sent.catch((err: unknown) => {
    failed = err;
  });
  while (now() - t0 < CONVERGE_CAP_MS && failed === null) {
    const s = now();
    const p = await probe();
    const at = now();
    probeMs.push(at - s);
    if (Number.isNaN(revision)) {
      early.push({ at, p });
      continue;
    }
    const hit = [...early, { at, p }].find((e) => seen(e.p, revision));
    if (hit !== undefined) {
      convergeMs = hit.at - t0;
      break;
    }
    early.length = 0;
  }
  await sent;
  return { rttMs, convergeMs, probes: probeMs.length, probeMs };
}

/** p50/p99/max of `values` (NaNs left out), sorted once. */
function stats(values: readonly number[]): { p50: number; p99: number; max: number; n: number } {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return {
    p50: percentile(v, 0.5),
    p99: percentile(v, 0.99),
    max: v.length === 0 ? Number.NaN : v[v.length - 1]!,
    n: v.length,
  };
}

const ms = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(1));

/** The raw cost of etcd: conditioned transactions back to back with the etcd3 client. */
async function etcdTxns(endpoint: string, count: number, round: number): Promise<number[]> {
  // The client as router-node sets it up (@engram/router/etcd).
  const client = etcdClient({ endpoints: [endpoint] });
  try {
    const key = `${PREFIX}bench-txn-${round}`;
    const put = await client.if(key, 'Create', '==', 0).then(client.put(key).value('0')).commit();
    let rev = Number(put.header.revision);
    const out: number[] = [];
    for (let i = -WARMUP * 4; i < count; i++) {
      const t0 = now();
      const res = await client
        .if(key, 'Mod', '==', rev)
        .then(client.put(key).value(String(i)))
        .else(client.get(key))
        .commit();
      const took = now() - t0;
      if (!res.succeeded) throw new Error(`etcd txn ${i} not applied at revision ${rev}`);
      rev = Number(res.header.revision);
      if (i >= 0) out.push(took);
    }
    return out;
  } finally {
    client.close();
  }
}

/**
 * The same conditioned transaction over grpc-js directly, with etcd's own protos (the copy the
 * etcd3 package ships, loaded at run time): what a client of our own would cost, for the
 * README's choice of client.
 */
async function rawTxns(endpoint: string, count: number, round: number): Promise<number[]> {
  const etcd3Dir = dirname(createRequire(import.meta.url).resolve('etcd3/package.json'));
  // etcd3's own loader options; enums as numbers (CompareTarget CREATE = 1, MOD = 2; EQUAL = 0).
  const def = loadSync(join(etcd3Dir, 'proto', 'rpc.proto'), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    etcdserverpb: { KV: grpc.ServiceClientConstructor };
  };
  const kv = new pkg.etcdserverpb.KV(endpoint, grpc.credentials.createInsecure());
  const txn = (req: object) =>
    new Promise<{ succeeded: boolean; header: { revision: string } }>((resolve, reject) =>
      (
        kv as unknown as Record<
          string,
          (r: object, cb: (e: Error | null, v: never) => void) => void
        >
      ).Txn!.call(kv, req, (e, v) => (e ? reject(e) : resolve(v))),
    );
  const key = Buffer.from(`${PREFIX}bench-raw-${round}`);
  try {
    const put = await txn({
      compare: [{ key, target: 1, result: 0, create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from('0') } }],
    });
    let rev = put.header.revision;
    const out: number[] = [];
    for (let i = -WARMUP * 4; i < count; i++) {
      const t0 = now();
      const res = await txn({
        compare: [{ key, target: 2, result: 0, mod_revision: rev }],
        success: [{ request_put: { key, value: Buffer.from(String(i)) } }],
        failure: [{ request_range: { key } }],
      });
      const took = now() - t0;
      if (!res.succeeded) throw new Error(`raw txn ${i} not applied at revision ${rev}`);
      rev = res.header.revision;
      if (i >= 0) out.push(took);
    }
    return out;
  } finally {
    kv.close();
  }
}

/** Names of the figures, as the tables print them. */
const F = Object.freeze({
  table: 'C’s GetTable shows the change’s revision',
  routed: 'a Store on C served by the new primary',
  tableProbe: 'probe: one GetTable on C (resolution)',
  routedProbe: 'probe: one Store on C (resolution)',
  fileRtt: 'file mode: one router, no etcd',
  etcdRtt: 'etcd mode: router A',
  txn: 'etcd alone: one conditioned txn (etcd3)',
  rawTxn: 'the same txn, grpc-js over etcd’s protos',
} as const);

/** Short names for the per-round lines. */
const FIGURES = [
  { name: F.table, short: 'C table' },
  { name: F.routed, short: 'C routes' },
  { name: F.tableProbe, short: 'GetTable' },
  { name: F.routedProbe, short: 'Store' },
  { name: F.fileRtt, short: 'admin file' },
  { name: F.etcdRtt, short: 'admin etcd' },
  { name: F.txn, short: 'txn' },
  { name: F.rawTxn, short: 'raw txn' },
] as const;

interface Cluster {
  readonly a: Router;
  readonly c: Router;
  readonly file: Router;
  readonly etcdRouters: readonly Router[];
  readonly ids: readonly string[];
  readonly endpoint: string;
}

interface RoundFigures {
  readonly figures: Map<string, ReturnType<typeof stats>>;
  /** Changes C did not show within CONVERGE_CAP_MS. */
  readonly missed: number;
  /** Changes that took over 5× the round's median to reach C, and A's reply to them. */
  readonly outliers: string[];
}

/** One round: CHANGES timed by C's table (and the file-mode baseline), ROUTED by C's data plane, TXNS. */
async function measureRound(k: Cluster, round: number): Promise<RoundFigures> {
  const { a, c, file, etcdRouters, ids } = k;
  const settle = async (revision: number) =>
    waitAll(
      etcdRouters,
      (t) => Number(t.revision) >= revision,
      CONVERGE_CAP_MS * 2,
      `revision ${revision} everywhere`,
    );
  // Convergence by C's table, and the admin round trip with and without etcd, interleaved.
  const tableRuns: Timed[] = [];
  const fileRtt: number[] = [];
  for (let i = -WARMUP; i < CHANGES; i++) {
    const spaceId = `bench/r${round}/table-${i + WARMUP}`;
    const primary = ids[(i + WARMUP) % ids.length]!;
    const run = await timeChange(
      () => assignSpace(a, spaceId, primary),
      () => getTable(c),
      (t, revision) => Number(t.revision) >= revision,
    );
    await settle(Number((await getTable(a)).revision));
    const t0 = now();
    await assignSpace(file, spaceId, primary);
    const rtt = now() - t0;
    if (i < 0) continue;
    tableRuns.push(run);
    fileRtt.push(rtt);
  }
  // Convergence by what C's data plane does: a Store's served_by.
  const routedRuns: Timed[] = [];
  for (let i = 0; i < ROUTED; i++) {
    const spaceId = `bench/r${round}/routed-${i}`;
    const before = await servedBy(c, spaceId);
    const primary = ids[(ids.indexOf(before) + 1) % ids.length]!;
    const run = await timeChange(
      () => assignSpace(a, spaceId, primary),
      () => servedBy(c, spaceId),
      (served) => served === primary,
    );
    routedRuns.push(run);
    await settle(Number((await getTable(a)).revision));
  }
  const txns = await etcdTxns(k.endpoint, TXNS, round);
  const raw = await rawTxns(k.endpoint, TXNS, round);
  const figures = new Map([
    [F.table, stats(tableRuns.map((r) => r.convergeMs))],
    [F.routed, stats(routedRuns.map((r) => r.convergeMs))],
    [F.tableProbe, stats(tableRuns.flatMap((r) => r.probeMs))],
    [F.routedProbe, stats(routedRuns.flatMap((r) => r.probeMs))],
    [F.fileRtt, stats(fileRtt)],
    [F.etcdRtt, stats(tableRuns.map((r) => r.rttMs))],
    [F.txn, stats(txns)],
    [F.rawTxn, stats(raw)],
  ]);
  const outliers: string[] = [];
  for (const [what, runs] of [
    ['table', tableRuns],
    ['routed', routedRuns],
  ] as const) {
    const m = stats(runs.map((r) => r.convergeMs)).p50;
    runs.forEach((r, i) => {
      if (!(r.convergeMs <= m * 5))
        outliers.push(
          `${what} #${i} ${ms(r.convergeMs)} ms (A's reply ${ms(r.rttMs)} ms, ${r.probes} probes, slowest ${ms(Math.max(...r.probeMs))} ms)`,
        );
    });
  }
  const missed =
    tableRuns.filter((r) => Number.isNaN(r.convergeMs)).length +
    routedRuns.filter((r) => Number.isNaN(r.convergeMs)).length;
  return { figures, missed, outliers };
}

async function main(): Promise<void> {
  const report = new BenchReport('etcd-convergence');
  const etcd = await EtcdServer.start();
  const nodes: { id: string; zone: string; address: string }[] = [];
  for (let i = 0; i < NODES; i++) {
    const id = `n${i + 1}`;
    const zone = String.fromCharCode(97 + (i % 3));
    const s = await spawnJson([NODE_MAIN, '--id', id, '--zone', zone, '--log-level', 'warn']);
    nodes.push({ id, zone, address: `127.0.0.1:${Number(s.first.port)}` });
  }
  const ids = nodes.map((n) => n.id);
  const etcdRouters: Router[] = [];
  for (const name of ['A', 'B', 'C']) {
    etcdRouters.push(
      await startRouter(name, nodes, {
        endpoints: [etcd.endpoint],
        prefix: PREFIX,
        routerId: name,
      }),
    );
  }
  const [a, , c] = etcdRouters as [Router, Router, Router];
  const file = await startRouter('file', nodes, null);
  const all = [...etcdRouters, file];
  try {
    await waitAll(
      all,
      (t) =>
        t.nodes.every((n) => n.state === 'up') &&
        (t.etcd === null || t.etcd.routers.length === etcdRouters.length),
      READY_MS,
      'routers ready',
    );
    report.note(
      `${etcdVersion()}, 1 member; ${NODES} memory nodes; routers A, B, C in etcd mode (prefix ${PREFIX}) and one in file mode; ${DATA_DIR ? 'every router with a dataDir' : 'no dataDir (BENCH_ETCD_DATADIR=0)'}; config ${JSON.stringify(ROUTER_CONFIG)}`,
    );
    report.note(
      `per round: ${CHANGES} changes timed by C's GetTable, ${ROUTED} by a Store on C, ${TXNS} raw etcd transactions; ${WARMUP} warm-up changes first; ${ROUNDS} round(s)`,
    );
    const cluster: Cluster = { a, c, file, etcdRouters, ids, endpoint: etcd.endpoint };
    const rounds: RoundFigures[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const started = now();
      const r = await measureRound(cluster, round);
      rounds.push(r);
      const line = FIGURES.map((f) => {
        const x = r.figures.get(f.name)!;
        return `${f.short} ${ms(x.p50)}/${ms(x.p99)}/${ms(x.max)}`;
      }).join(', ');
      report.note(
        `round ${round + 1}/${ROUNDS} (${((now() - started) / 1000).toFixed(0)} s), p50/p99/max ms: ${line}${r.missed > 0 ? `; MISSED ${r.missed}` : ''}`,
      );
      if (r.outliers.length > 0)
        report.note(`  over 5× the round's median: ${r.outliers.join('; ')}`);
    }
    const row = (name: string) => {
      const per = rounds.map((r) => r.figures.get(name)!);
      return {
        name,
        median: median(per.map((x) => x.p50)),
        p99: median(per.map((x) => x.p99)),
      };
    };
    const range = (name: string) => {
      const per = rounds.map((r) => r.figures.get(name)!);
      const p99s = per.map((x) => x.p99);
      return `${FIGURES.find((f) => f.name === name)!.short}: p99 ${ms(Math.min(...p99s))}–${ms(Math.max(...p99s))}, max ${ms(Math.max(...per.map((x) => x.max)))}`;
    };
    const tableP99 = rounds.map((r) => r.figures.get(F.table)!.p99);
    const missed = rounds.reduce((n, r) => n + r.missed, 0);
    report.table({
      title: `Convergence: AssignSpace sent on router A → router C routes by it (medians over ${ROUNDS} round(s) of ${CHANGES} + ${ROUTED} changes)`,
      unit: 'ms',
      baseline: F.table,
      rows: [row(F.table), row(F.routed), row(F.tableProbe), row(F.routedProbe)],
    });
    report.note(
      `over the rounds: ${[F.table, F.routed, F.tableProbe, F.routedProbe].map(range).join('; ')}; missed (not within ${CONVERGE_CAP_MS} ms): ${missed}`,
    );
    report.note(
      `target p99 < 1000 ms over ${CHANGES} changes (C's table): ${missed === 0 && Math.max(...tableP99) < 1000 ? 'met' : 'NOT met'} in every round (p99 ${tableP99.map(ms).join(', ')} ms)`,
    );
    report.table({
      title: `Admin change latency: the AssignSpace round trip, and etcd alone (medians over ${ROUNDS} round(s))`,
      unit: 'ms',
      baseline: F.fileRtt,
      rows: [row(F.fileRtt), row(F.etcdRtt), row(F.txn), row(F.rawTxn)],
    });
    report.note(
      `over the rounds: ${[F.fileRtt, F.etcdRtt, F.txn, F.rawTxn].map(range).join('; ')}`,
    );
    report.write();
  } finally {
    for (const r of all) {
      r.admin.close();
      r.data.close();
    }
    await etcd.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
