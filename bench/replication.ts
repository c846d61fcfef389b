import { join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import {
  baselineRouter,
  dir,
  frameFile,
  h2loadAvailable,
  measure,
  medianRow,
  type Phases,
  printRows,
  ROUNDS,
  ROUTER_NODE_FLAGS,
  type Row,
  type Spawned,
  startHaproxy,
  startRouterNode,
  startZonedNodes,
  storeBody,
  type Target,
  WARMUP_CALLS,
} from './harness.js';

const report = new BenchReport('replication');
const CALLS = QUICK ? 200 : 2000;
const STORE_PHASES: Phases = {
  warmup: WARMUP_CALLS,
  seq: CALLS,
  conc: Number(process.env.BENCH_STORE_CONC ?? (QUICK ? 2000 : 20_000)),
  rate: Number(process.env.BENCH_STORE_RATE ?? 3000),
};
const RECALL_PHASES: Phases = {
  warmup: WARMUP_CALLS,
  seq: CALLS,
  conc: QUICK ? 2000 : 20_000,
  rate: 3000,
};

function startRouter(
  nodes: { id: string; address: string; zone: string }[],
  extra: Record<string, unknown>,
  execArgv: readonly string[] = ROUTER_NODE_FLAGS,
  main?: string,
): Promise<Spawned> {
  return startRouterNode(
    {
      nodes,
      replicationFactor: 3,
      workers: 1,
      dataDir: join(dir, `router-data-${Math.random().toString(36).slice(2)}`),
      ...extra,
    },
    execArgv,
    main,
  );
}

/** Runs every target BENCH_ROUNDS times, one under load at a time, order rotated. */
async function rounds(targets: Target[], bodies: string[], phases: Phases): Promise<Row[]> {
  const runs: Row[][] = targets.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      runs[i]!.push(await measure(targets[i]!, bodies[i]!, phases));
      process.stderr.write(`round ${round + 1}/${ROUNDS}: measured ${targets[i]!.name}\n`);
    }
  }
  return runs.map(medianRow);
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  const { configs: nodes } = await startZonedNodes(['a', 'b', 'c']);
  const url = (address: string, method: string) =>
    `http://${address}/engram.v1.MemoryService/${method}`;

  // Store: each target its own space (placement: all 3 nodes, RF 3 on 3 nodes).
  const storeVariants: [string, Record<string, unknown>][] = [
    ['router-node primary-only (replicateWrites false)', { router: { replicateWrites: false } }],
    ['router-node W=one', { router: { writeConsistency: 'one' } }],
    ['router-node W=quorum (default)', { router: { writeConsistency: 'quorum' } }],
    ['router-node W=all', { router: { writeConsistency: 'all' } }],
  ];
  const storeTargets: Target[] = [
    { name: 'direct (one node)', url: url(nodes[0]!.address, 'Store'), pids: () => [] },
  ];
  const storeBodies = [storeBody('store/direct')];
  const routers: Spawned[] = [];
  for (const [name, extra] of storeVariants) {
    const r = await startRouter(nodes, extra);
    routers.push(r);
    storeTargets.push({
      name,
      url: url(String(r.first.address), 'Store'),
      pids: () => [r.child.pid!],
      metricsPort: Number(r.first.metricsPort),
    });
    storeBodies.push(storeBody(`store/${name}`));
  }
  const baseline = baselineRouter();
  if (baseline !== undefined) {
    const r = await startRouter(nodes, {}, baseline.flags, baseline.main);
    storeTargets.push({
      name: `${baseline.name} W=quorum`,
      url: url(String(r.first.address), 'Store'),
      pids: () => [r.child.pid!],
      metricsPort: Number(r.first.metricsPort),
    });
    storeBodies.push(storeBody(`store/${baseline.name}`));
    routers.push(r);
  }
  // The anchor: HAProxy forwarding the same Store to one node (what a proxy without
  // replication costs); router-node's replicated write is read against it.
  const haproxy = await startHaproxy([nodes[0]!.address], 1);
  if (haproxy !== null) {
    storeTargets.push({
      name: 'haproxy nbthread 1 (one node)',
      url: url(`127.0.0.1:${haproxy.port}`, 'Store'),
      pids: haproxy.pids,
    });
    storeBodies.push(storeBody('store/haproxy'));
  } else console.log('haproxy not available: skipped (apt-get install -y haproxy)');
  const storeRows = await rounds(storeTargets, storeBodies, STORE_PHASES);

  // Recall over a space with 10 memories on every replica (stored through a replicating router).
  const quorum = await startRouter(nodes, { router: { readConsistency: 'quorum' } });
  const one = routers[2]!; // W=quorum, readConsistency one (both defaults)
  const client = new MemoryServiceClient(
    String(one.first.address),
    grpc.credentials.createInsecure(),
  );
  for (let i = 0; i < 10; i++) {
    await callMemory(client, 'store', {
      spaceId: 'recall/bench',
      memory: { content: `hello world memory ${i}` },
    });
  }
  client.close();
  await new Promise((r) => setTimeout(r, 200)); // replicas past the quorum land
  const recallBody = frameFile(
    'recall.bin',
    MemoryServiceDefinition.Recall.requestSerialize({
      spaceId: 'recall/bench',
      cue: { text: 'hello' },
      limit: 5,
    }),
  );
  const recallTargets: Target[] = [
    { name: 'direct (one node)', url: url(nodes[0]!.address, 'Recall'), pids: () => [] },
    {
      name: 'router-node readConsistency one (default)',
      url: url(String(one.first.address), 'Recall'),
      pids: () => [one.child.pid!],
      metricsPort: Number(one.first.metricsPort),
    },
    {
      name: 'router-node readConsistency quorum',
      url: url(String(quorum.first.address), 'Recall'),
      pids: () => [quorum.child.pid!],
      metricsPort: Number(quorum.first.metricsPort),
    },
  ];
  const recallRows = await rounds(
    recallTargets,
    recallTargets.map(() => recallBody),
    RECALL_PHASES,
  );

  const reference = (rows: Row[], prefix: string) => rows.find((r) => r.path.startsWith(prefix))!;
  report.note(
    `\nStore through router-node, 3 in-memory nodes, RF 3, --workers 1; ${STORE_PHASES.seq} sequential, ${STORE_PHASES.conc} at 64 in flight, ${STORE_PHASES.rate}/s fixed rate; medians of ${ROUNDS} rounds`,
  );
  printRows(report, storeRows, STORE_PHASES, {
    direct: storeRows[0]!,
    reference: reference(storeRows, 'router-node primary-only'),
  });
  const cpu = (prefix: string) => reference(storeRows, prefix).cpuUsPerCall ?? Number.NaN;
  const base = cpu('router-node primary-only');
  for (const w of ['one', 'quorum', 'all']) {
    const c = cpu(`router-node W=${w}`);
    // RF 3: a replicated write sends to 3 nodes where primary-only sends to 1.
    report.note(
      `extra router CPU per replicated write, W=${w}: ${(c - base).toFixed(1)} µs (${c.toFixed(1)} vs ${base.toFixed(1)} µs primary-only, ${(c / base).toFixed(2)}×), ${((c - base) / 2).toFixed(1)} µs per extra upstream send`,
    );
  }
  if (haproxy !== null) {
    const h = cpu('haproxy');
    report.note(
      `HAProxy forwarding the Store to one node: ${h.toFixed(1)} µs per call; router-node W=quorum (3 sends) ${(cpu('router-node W=quorum') / h).toFixed(2)}×, primary-only (1 send) ${(base / h).toFixed(2)}× of it`,
    );
  }
  report.note(
    `\nRecall through router-node (same nodes), ${RECALL_PHASES.seq} sequential, ${RECALL_PHASES.conc} at 64 in flight, ${RECALL_PHASES.rate}/s fixed rate; medians of ${ROUNDS} rounds`,
  );
  printRows(report, recallRows, RECALL_PHASES, {
    direct: recallRows[0]!,
    reference: recallRows[1]!,
  });
  report.write();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
