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
 * Env: BENCH_ETCD_CHANGES (default 100; --quick 30), BENCH_ETCD_ROUTED (25; 10),
 * BENCH_ETCD_TXNS (200; 50), BENCH_ETCD_DATADIR=0 (routers without a dataDir).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchReport, QUICK } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import { RouterAdminClient } from '@engram/router-node';
import * as grpc from '@grpc/grpc-js';
import { startEtcd } from './etcd-launch.js';
import { percentile } from './gray-stats.js';
import { dir, NODE_MAIN, type Spawned, spawnJson, startRouterNode } from './harness.js';

const CHANGES = Number(process.env.BENCH_ETCD_CHANGES ?? (QUICK ? 30 : 100));
const ROUTED = Number(process.env.BENCH_ETCD_ROUTED ?? (QUICK ? 10 : 25));
const TXNS = Number(process.env.BENCH_ETCD_TXNS ?? (QUICK ? 50 : 200));
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
async function etcdTxns(endpoint: string, count: number): Promise<number[]> {
  // etcd3 is router-node's dependency: loaded from there, typed by what is used here.
  const require = createRequire(fileURLToPath(import.meta.resolve('@engram/router-node')));
  const { Etcd3 } = require('etcd3') as { Etcd3: new (o: object) => EtcdClient };
  const client = new Etcd3({ hosts: [`http://${endpoint}`] });
  try {
    const key = `${PREFIX}bench-txn`;
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

interface EtcdTxn {
  then(...ops: unknown[]): EtcdTxn;
  else(...ops: unknown[]): EtcdTxn;
  commit(): Promise<{ succeeded: boolean; header: { revision: string } }>;
}
interface EtcdClient {
  if(key: string, column: 'Mod' | 'Create', cmp: '==', value: number): EtcdTxn;
  put(key: string): { value(v: string): unknown };
  get(key: string): unknown;
  close(): void;
}

async function main(): Promise<void> {
  const report = new BenchReport('etcd-convergence');
  const etcd = await startEtcd();
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
      `${etcd.version}, 1 member; ${NODES} memory nodes; routers A, B, C in etcd mode (prefix ${PREFIX}) and one in file mode; ${DATA_DIR ? 'every router with a dataDir' : 'no dataDir (BENCH_ETCD_DATADIR=0)'}; config ${JSON.stringify(ROUTER_CONFIG)}`,
    );
    report.note(
      `${CHANGES} changes timed by C's GetTable, ${ROUTED} by a Store on C, ${TXNS} raw etcd transactions; ${WARMUP} warm-up changes first`,
    );
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
      const spaceId = `bench/table-${i + WARMUP}`;
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
      const spaceId = `bench/routed-${i}`;
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

    const txns = await etcdTxns(etcd.endpoint, TXNS);

    const byTable = stats(tableRuns.map((r) => r.convergeMs));
    const byRoute = stats(routedRuns.map((r) => r.convergeMs));
    const tableProbe = stats(tableRuns.flatMap((r) => r.probeMs));
    const routeProbe = stats(routedRuns.flatMap((r) => r.probeMs));
    const etcdRtt = stats(tableRuns.map((r) => r.rttMs));
    const fileStats = stats(fileRtt);
    const txnStats = stats(txns);
    const missed = tableRuns.length - byTable.n + (routedRuns.length - byRoute.n);

    report.table({
      title: `Convergence: AssignSpace sent on router A → router C routes by it (${CHANGES} + ${ROUTED} changes)`,
      unit: 'ms',
      baseline: 'C’s GetTable shows the change’s revision',
      rows: [
        { name: 'C’s GetTable shows the change’s revision', median: byTable.p50, p99: byTable.p99 },
        { name: 'a Store on C served by the new primary', median: byRoute.p50, p99: byRoute.p99 },
        {
          name: 'probe: one GetTable on C (resolution)',
          median: tableProbe.p50,
          p99: tableProbe.p99,
        },
        { name: 'probe: one Store on C (resolution)', median: routeProbe.p50, p99: routeProbe.p99 },
      ],
    });
    report.note(
      `max: ${ms(byTable.max)} ms by GetTable (n=${byTable.n}), ${ms(byRoute.max)} ms by Store (n=${byRoute.n}); missed (not within ${CONVERGE_CAP_MS} ms): ${missed}`,
    );
    const p99 = Math.max(byTable.p99, byRoute.p99);
    report.note(
      `target p99 < 1000 ms over ${CHANGES} changes: ${missed === 0 && p99 < 1000 ? 'met' : 'NOT met'} (p99 ${ms(p99)} ms)`,
    );
    const late = tableRuns
      .map((r, i) => ({ i, ms: r.convergeMs, rtt: r.rttMs, probes: r.probes }))
      .filter((r) => !(r.ms <= byTable.p50 * 5))
      .map((r) => `#${r.i} ${ms(r.ms)} ms (A's reply ${ms(r.rtt)} ms, ${r.probes} probes)`);
    if (late.length > 0) report.note(`changes over 5× the median: ${late.join('; ')}`);

    report.table({
      title: 'Admin change latency: the AssignSpace round trip, and etcd alone',
      unit: 'ms',
      baseline: 'file mode: one router, no etcd',
      rows: [
        { name: 'file mode: one router, no etcd', median: fileStats.p50, p99: fileStats.p99 },
        { name: 'etcd mode: router A', median: etcdRtt.p50, p99: etcdRtt.p99 },
        {
          name: 'etcd alone: one conditioned txn (etcd3)',
          median: txnStats.p50,
          p99: txnStats.p99,
        },
      ],
    });
    report.note(
      `max: file mode ${ms(fileStats.max)} ms, etcd mode ${ms(etcdRtt.max)} ms, txn ${ms(txnStats.max)} ms (n=${fileStats.n}/${etcdRtt.n}/${txnStats.n})`,
    );
    report.write();
  } finally {
    for (const r of all) {
      r.admin.close();
      r.data.close();
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
