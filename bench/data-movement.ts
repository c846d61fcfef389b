import { join } from 'node:path';
import { BenchReport, QUICK } from '@engram/bench-kit';
import {
  callReplica,
  type Memory,
  MemoryServiceDefinition,
  ReplicaServiceClient,
} from '@engram/proto';
import { RouterAdminClient } from '@engram/router-node';
import * as grpc from '@grpc/grpc-js';
import {
  dir,
  frameFile,
  h2load,
  h2loadAvailable,
  NODE_MAIN,
  type Spawned,
  spawnJson,
  startRouterNode,
} from './harness.js';

const HINTS = Number(process.env.BENCH_HINTS ?? (QUICK ? 1000 : 20_000));
const JOIN_MEMORIES = Number(process.env.BENCH_JOIN_MEMORIES ?? (QUICK ? 10_000 : 100_000));
const FENCE_MS = 3 * 1000; // 3 s, --quick only
const JOIN_SPACES = Number(process.env.BENCH_JOIN_SPACES ?? (QUICK ? 100 : 1000));
const APPLY_BATCH = 500;

interface NodeProc {
  id: string;
  zone: string;
  address: string;
  port: number;
  proc: Spawned;
  args: string[];
}

async function startNode(id: string, zone: string, port = 0, dataDir?: string) {
  const args = [NODE_MAIN, '--id', id, '--zone', zone, '--port', String(port)];
  if (dataDir !== undefined) args.push('--data-dir', dataDir);
  const proc = await spawnJson(args);
  const address = String(proc.first.address);
  return { id, zone, address, port: Number(address.split(':')[1]), proc, args } as NodeProc;
}

function startRouter(nodes: NodeProc[], extra: Record<string, unknown>): Promise<Spawned> {
  return startRouterNode({
    admin: { host: '127.0.0.1', port: 0 },
    nodes: nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone })),
    replicationFactor: 3,
    workers: 1,
    dataDir: join(dir, `router-data-${Math.random().toString(36).slice(2)}`),
    health: { intervalMs: 200, timeoutMs: 1000 },
    ...extra,
  });
}

async function metric(port: number, name: string, label = ''): Promise<number> {
  const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const text = await scrape().catch(scrape);
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (label !== '' && !line.includes(label)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function until(check: () => Promise<boolean>, what: string, limitMs = 600_000) {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now();
}

function storeFrameFile(spaceId: string): string {
  return frameFile(
    `store-${spaceId.replace(/\W/g, '_')}.bin`,
    MemoryServiceDefinition.Store.requestSerialize({
      spaceId,
      memory: { content: 'a memory of about forty bytes, stored', confidence: 0.5 },
    }),
  );
}

async function hintReplay(replayPerSecond: number | null): Promise<string> {
  const nodes = [
    await startNode('n1', 'a'),
    await startNode('n2', 'b'),
    await startNode('n3', 'c'),
  ];
  const extra = replayPerSecond === null ? {} : { hints: { replayPerSecond } };
  const router = await startRouter(nodes, extra);
  const metricsPort = Number(router.first.metricsPort);
  const n3 = nodes[2]!;
  n3.proc.child.kill('SIGKILL');
  await until(
    async () => (await metric(metricsPort, 'engram_router_node_up', 'node="n3"')) === 0,
    'n3 marked down',
  );
  const space = `hints/${replayPerSecond ?? 'default'}`;
  const load = h2load(
    `http://${String(router.first.address)}/engram.v1.MemoryService/Store`,
    HINTS,
    4,
    16,
    storeFrameFile(space),
  );
  if (load.errors > 0) throw new Error(`${load.errors} stores failed`);
  await until(
    async () => (await metric(metricsPort, 'engram_router_hints_pending', 'node="n3"')) === HINTS,
    'every hint stored',
  );
  const bytes = await metric(metricsPort, 'engram_router_hint_bytes_pending', 'node="n3"');
  const restarted = await startNode('n3', 'c', n3.port);
  const up = await until(
    async () => (await metric(metricsPort, 'engram_router_node_up', 'node="n3"')) === 1,
    'n3 marked up',
  );
  const done = await until(
    async () => (await metric(metricsPort, 'engram_router_hints_pending', 'node="n3"')) === 0,
    'hints replayed',
  );
  const replayed = await metric(metricsPort, 'engram_router_hints_replayed_total', 'node="n3"');
  const seconds = (done - up) / 1000;
  for (const p of [router, restarted.proc, nodes[0]!.proc, nodes[1]!.proc]) p.child.kill();
  return (
    `hints.replayPerSecond ${replayPerSecond ?? '1000 (default)'}: ${replayed} hints ` +
    `(${(bytes / 1024 / 1024).toFixed(1)} MiB, stored at ${Math.round(load.rps)} writes/s) ` +
    `replayed in ${seconds.toFixed(2)} s after n3 was marked up = ${Math.round(replayed / seconds)} hints/s`
  );
}

function memoryOf(spaceIndex: number, i: number): Memory {
  return {
    id: `m-${spaceIndex.toString(36)}-${i.toString(36)}-${'x'.repeat(20)}`,
    content: `memory ${i} of space ${spaceIndex}, about sixty bytes of content text`,
    embedding: [],
    confidence: 0.5,
    createdAtMs: 1_764_000_000_000 + i,
    version: 1_764_000_000_000_000 + i,
  };
}

async function seed(nodes: NodeProc[]): Promise<void> {
  const perSpace = Math.ceil(JOIN_MEMORIES / JOIN_SPACES);
  const clients = nodes.map(
    (n) => new ReplicaServiceClient(n.address, grpc.credentials.createInsecure()),
  );
  let written = 0;
  for (let s = 0; s < JOIN_SPACES && written < JOIN_MEMORIES; s++) {
    const count = Math.min(perSpace, JOIN_MEMORIES - written);
    for (let from = 0; from < count; from += APPLY_BATCH) {
      const memories = Array.from({ length: Math.min(APPLY_BATCH, count - from) }, (_, k) =>
        memoryOf(s, from + k),
      );
      await Promise.all(
        clients.map((c) =>
          callReplica(c, 'applyEntries', { spaceId: `join/${s}`, memories, tombstones: [] }),
        ),
      );
    }
    written += count;
  }
  for (const c of clients) c.close();
}

function admin<T>(client: grpc.Client, method: string, request: object): Promise<T> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => void>)[method]!;
  return new Promise((resolve, reject) =>
    fn.call(client, request, (err: grpc.ServiceError | null, res: T) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

interface Table {
  nodes: { id: string; lifecycle: string }[];
  streams: { phase: string; spacesTotal: number; entriesCopied: string }[];
}

async function joinNode(concurrency: number): Promise<string> {
  const nodes = [
    await startNode('n1', 'a', 0, join(dir, `join-${concurrency}-n1`)),
    await startNode('n2', 'b', 0, join(dir, `join-${concurrency}-n2`)),
    await startNode('n3', 'c', 0, join(dir, `join-${concurrency}-n3`)),
  ];
  const seeded = performance.now();
  await seed(nodes);
  const seedSeconds = (performance.now() - seeded) / 1000;
  // --quick shortens the fence (one router.deadlineMs) that AddNode → active waits out.
  const router = await startRouter(nodes, {
    streaming: { concurrency },
    ...(QUICK ? { router: { deadlineMs: FENCE_MS } } : {}),
  });
  const metricsPort = Number(router.first.metricsPort);
  const adm = new RouterAdminClient(
    `127.0.0.1:${String(router.first.adminPort)}`,
    grpc.credentials.createInsecure(),
  );
  const n4 = await startNode('n4', 'a', 0, join(dir, `join-${concurrency}-n4`));
  const started = performance.now();
  await admin(adm, 'AddNode', { id: 'n4', address: n4.address, zone: 'a' });
  let streamingFrom = 0;
  let spaces = 0;
  const active = await until(async () => {
    const t = await admin<Table>(adm, 'GetTable', {});
    const s = t.streams[0];
    if (s !== undefined && s.phase === 'streaming' && streamingFrom === 0) {
      streamingFrom = performance.now();
      spaces = s.spacesTotal;
    }
    return t.nodes.find((n) => n.id === 'n4')?.lifecycle === 'active';
  }, 'n4 active');
  const entries = await metric(metricsPort, 'engram_router_streamed_entries_total');
  const streamed = (active - streamingFrom) / 1000;
  adm.close();
  for (const p of [router, n4.proc, ...nodes.map((n) => n.proc)]) p.child.kill();
  return (
    `streaming.concurrency ${concurrency}${concurrency === 4 ? ' (default)' : ''}: ` +
    `${JOIN_MEMORIES} memories in ${JOIN_SPACES} spaces (seeded in ${seedSeconds.toFixed(1)} s); ` +
    `n4 gained ${spaces} spaces, ${entries} memories streamed in ${streamed.toFixed(2)} s = ` +
    `${Math.round(entries / streamed)} memories/s; AddNode → active ${((active - started) / 1000).toFixed(2)} s ` +
    `(includes the fence of one router.deadlineMs, ${QUICK ? `${FENCE_MS / 1000} s in --quick` : '10 s by default'}, and listing)`
  );
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  const lines: string[] = [];
  lines.push(await hintReplay(null));
  lines.push(await hintReplay(1_000_000));
  lines.push(await joinNode(4));
  lines.push(await joinNode(16));
  // Scenario lines, not a table: each is its own measure with no shared baseline.
  report.note('\nData movement:');
  for (const l of lines) report.note(`- ${l}`);
  report.write();
}

const report = new BenchReport('data-movement');
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
