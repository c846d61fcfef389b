import { callMemory, MemoryServiceClient, type RoutingInfo } from '@engram/proto';
import { buildRing } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { RouterNodeConfig } from './internal/config.js';
import { type RouterNode, startRouterNode } from './internal/router-node.js';

const SPACE = 'demo/alice';

function line(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function fmt(r: RoutingInfo | null | undefined): string {
  if (r == null) return '(no routing info)';
  const acks = r.asked > 0 ? ` acknowledged=${r.acknowledged}/${r.asked}` : '';
  return `served_by=${r.servedBy} fallback=${r.fallback} strategy=${r.strategy}${acks}${r.degraded ? ' DEGRADED' : ''}`;
}

function tableLine(router: RouterNode): string {
  const t = router.table();
  return `epoch ${t.epoch}${t.partitioned ? ' PARTITIONED' : ''}: ${t.nodes
    .map((n) => `${n.id}(zone ${n.zone}) ${n.state} ${n.lifecycle}`)
    .join(' | ')}`;
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

async function store(client: MemoryServiceClient, spaceId: string, content: string) {
  return callMemory(
    client,
    'store',
    { spaceId, memory: { content } },
    { deadline: Date.now() + 5000 },
  );
}

async function recall(client: MemoryServiceClient, spaceId: string, text: string) {
  return callMemory(
    client,
    'recall',
    { spaceId, cue: { text }, limit: 10 },
    { deadline: Date.now() + 5000 },
  );
}

/**
 * The README's demo: a router over a local 3-node cluster, replicating every store; kills the
 * space's primary and shows recalls answered by a replica *with the data*, writes during the
 * outage kept as hints and replayed when the primary is back, then a fourth node joining with
 * its spaces streamed to it before it serves. Returns the process exit code.
 */
export async function runDemo(config: RouterNodeConfig, log: Logger): Promise<number> {
  line('== Engram router-node demo ==');
  // No load balancer in front of the demo: no drain window when it stops.
  const router = await startRouterNode({ ...config, nodes: [], shutdownDrainMs: 0 }, log, {
    localCluster: true,
  });
  const client = new MemoryServiceClient(router.address, grpc.credentials.createInsecure());
  const cluster = router.localCluster!;
  const problems: string[] = [];
  const node = (id: string) => router.table().nodes.find((n) => n.id === id);
  try {
    line(
      `router listening on ${router.address} (${router.workers} data-plane worker thread${router.workers === 1 ? '' : 's'})`,
    );
    line(
      `local cluster: ${router
        .table()
        .nodes.map((n) => `${n.id}@${n.address} zone ${n.zone}`)
        .join(', ')}`,
    );
    line(`table: ${tableLine(router)}`);
    line();
    line(`-- store three memories in space "${SPACE}": each goes to all 3 replicas`);
    const ids: string[] = [];
    for (const content of ['met Bob at the lake', 'Bob likes sailing', 'lunch with Carol']) {
      const res = await store(client, SPACE, content);
      ids.push(res.memoryId);
      line(`  store "${content}" -> id ${res.memoryId.slice(0, 8)}…  ${fmt(res.routing)}`);
    }
    const placed = buildRing({
      nodes: router.table().nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone })),
      vnodesPerNode: config.vnodesPerNode,
      replicationFactor: config.replicationFactor,
    }).lookup(SPACE);
    const primary = placed.primary.id;
    line(
      `  placement: primary ${primary}, replicas ${placed.replicas.map((n) => n.id).join(', ')}`,
    );
    line();
    line(`-- kill the primary ${primary} (SIGKILL) and recall "Bob" 10 times right away`);
    await cluster.kill(primary);
    let withData = 0;
    for (let i = 0; i < 10; i++) {
      try {
        const r = await recall(client, SPACE, 'Bob');
        if (r.memories.length === 2) withData++;
        line(`  recall #${i + 1}: ${r.memories.length} memories  ${fmt(r.routing)}`);
      } catch (err) {
        problems.push(`recall #${i + 1} failed`);
        line(`  recall #${i + 1}: FAILED ${(err as Error).message}`);
      }
    }
    line(`  ${withData}/10 recalls answered with both "Bob" memories, by a replica`);
    if (withData !== 10) problems.push('recalls after the kill lacked data');
    const markedDown = await waitFor(() => node(primary)?.state === 'down', 10_000);
    line(`  health checks: ${primary} ${markedDown ? 'marked down' : 'NOT marked down in 10 s'}`);
    line();
    line('-- store two more while the primary is down: acknowledged by 2 of 3, a hint kept for it');
    for (const content of ['Bob sails on Sundays', 'Carol visits Bob']) {
      const res = await store(client, SPACE, content);
      ids.push(res.memoryId);
      line(`  store "${content}"  ${fmt(res.routing)}`);
    }
    await waitFor(() => (node(primary)?.hintsPending ?? 0) >= 2, 5_000);
    line(`  hints pending for ${primary}: ${node(primary)?.hintsPending}`);
    line();
    line(`-- restart ${primary}: marked up, its hints replayed, then it serves again`);
    await cluster.restart(primary);
    const caughtUp = await waitFor(
      () => node(primary)?.state === 'up' && node(primary)?.hintsPending === 0,
      15_000,
    );
    line(`  ${primary}: ${node(primary)?.state}, hints pending ${node(primary)?.hintsPending}`);
    const back = await recall(client, SPACE, 'Bob');
    line(`  recall "Bob": ${back.memories.length} memories  ${fmt(back.routing)}`);
    if (!caughtUp || back.memories.length !== 4) problems.push('the primary did not catch up');
    line();
    line('-- a fourth node joins: the spaces it will own are streamed to it first');
    const spaces = Array.from({ length: 12 }, (_, i) => `demo/space-${i}`);
    for (const s of spaces) await store(client, s, `a memory of ${s}`);
    const n4 = await cluster.add('n4', 'b');
    router.reloadMembership([...cluster.configs.slice(0, 3), n4.config]);
    line(`  n4 added: ${node('n4')?.lifecycle} (gets writes, serves no reads yet)`);
    const joined = await waitFor(() => node('n4')?.lifecycle === 'active', 30_000);
    const copied = router.table().streams;
    line(`  n4: ${node('n4')?.lifecycle}${copied.length > 0 ? ` (still streaming)` : ''}`);
    const owned = buildRing({
      nodes: cluster.configs,
      vnodesPerNode: config.vnodesPerNode,
      replicationFactor: config.replicationFactor,
    });
    const direct = new MemoryServiceClient(n4.config.address, grpc.credentials.createInsecure());
    let complete = 0;
    let held = 0;
    try {
      for (const s of spaces) {
        const p = owned.lookup(s);
        if (![p.primary.id, ...p.replicas.map((r) => r.id)].includes('n4')) continue;
        held++;
        const r = await recall(direct, s, '');
        if (r.memories.length === 1) complete++;
      }
    } finally {
      direct.close();
    }
    line(`  n4 holds ${complete} of the ${held} demo spaces it now owns, complete`);
    if (!joined || complete !== held) problems.push('n4 did not get its spaces');
    line();
    line('== summary ==');
    line(
      `  ${withData}/10 recalls after killing ${primary} came back with the data (from a replica)`,
    );
    line(
      `  writes during the outage reached ${primary} by hints; it then served all 4 "Bob" memories`,
    );
    line(`  n4 joined with ${held} spaces streamed to it before serving reads`);
    for (const p of problems) line(`  PROBLEM: ${p}`);
  } catch (err) {
    line(`demo failed: ${(err as Error).stack ?? String(err)}`);
    problems.push('error');
  } finally {
    client.close();
    await router.close();
    line('stopped the router and the local cluster');
  }
  return problems.length === 0 ? 0 : 1;
}
