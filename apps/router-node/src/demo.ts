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
  return `served_by=${r.servedBy} attempts=${r.attempts} fallback=${r.fallback} strategy=${r.strategy} epoch=${r.tableEpoch}`;
}

function tableLine(router: RouterNode): string {
  const t = router.table();
  return `epoch ${t.epoch}${t.partitioned ? ' PARTITIONED' : ''}: ${t.nodes
    .map((n) => `${n.id}(zone ${n.zone}) ${n.state}, breaker ${n.breaker}`)
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

/**
 * The README's demo: a router over a local 3-node cluster, stores and recalls through it,
 * kills the space's primary and shows recalls succeeding by fallback and the breaker opening.
 * Returns the process exit code.
 */
export async function runDemo(config: RouterNodeConfig, log: Logger): Promise<number> {
  line('== Engram router-node demo ==');
  const router = await startRouterNode({ ...config, nodes: [] }, log);
  const client = new MemoryServiceClient(router.address, grpc.credentials.createInsecure());
  let failures = 0;
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
    line(`-- store three memories in space "${SPACE}" through the router`);
    const deadline = () => Date.now() + 5000;
    let primary = '';
    const stored: Array<{ id: string; content: string }> = [];
    for (const content of ['met Bob at the lake', 'Bob likes sailing', 'lunch with Carol']) {
      const res = await callMemory(
        client,
        'store',
        { spaceId: SPACE, memory: { content } },
        { deadline: deadline() },
      );
      primary = res.routing?.servedBy ?? primary;
      stored.push({ id: res.memoryId, content });
      line(`  store "${content}" -> id ${res.memoryId.slice(0, 8)}…  ${fmt(res.routing)}`);
    }
    // Copying a primary's writes to its replicas is the memory cluster's replication, not the
    // router's job, and the reference nodes do not do it: stand in for it, so a fallback
    // recall shows the data a replicated cluster would have.
    const nodes = router.table().nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone }));
    const placement = buildRing({
      nodes,
      vnodesPerNode: config.vnodesPerNode,
      replicationFactor: config.replicationFactor,
    }).lookup(SPACE);
    const replicas = placement.replicas.map((n) => n.id);
    line(
      `-- placement of "${SPACE}": primary ${placement.primary.id}, replicas ${replicas.join(', ')}; ` +
        "copy the memories to the replicas directly (replication is the cluster's job, not the router's)",
    );
    for (const replica of placement.replicas) {
      const direct = new MemoryServiceClient(replica.address, grpc.credentials.createInsecure());
      try {
        for (const memory of stored) {
          await callMemory(direct, 'store', { spaceId: SPACE, memory }, { deadline: deadline() });
        }
      } finally {
        direct.close();
      }
    }
    line();
    line('-- recall "Bob"');
    const first = await callMemory(
      client,
      'recall',
      { spaceId: SPACE, cue: { text: 'Bob' }, limit: 3 },
      { deadline: deadline() },
    );
    for (const m of first.memories) line(`  ${m.score.toFixed(2)}  ${m.memory?.content}`);
    line(`  ${fmt(first.routing)}`);
    line();
    line(`-- kill the primary of "${SPACE}": ${primary} (SIGKILL)`);
    await router.localCluster!.kill(primary);
    line('-- recall 10 times right away');
    let fallbacks = 0;
    for (let i = 0; i < 10; i++) {
      try {
        const r = await callMemory(
          client,
          'recall',
          { spaceId: SPACE, cue: { text: 'Bob' }, limit: 3 },
          { deadline: deadline() },
        );
        if (r.routing?.fallback) fallbacks++;
        const top = r.memories[0]?.memory?.content;
        line(
          `  recall #${i + 1}: ok, ${r.memories.length} memories${top ? ` ("${top}"…)` : ''}  ${fmt(r.routing)}`,
        );
      } catch (err) {
        failures++;
        line(`  recall #${i + 1}: FAILED ${(err as Error).message}`);
      }
    }
    const breaker = router.table().nodes.find((n) => n.id === primary)?.breaker;
    line(`  breaker for ${primary}: ${breaker}`);
    line();
    line(`-- wait for the health checks to mark ${primary} down`);
    const down = await waitFor(
      () => router.table().nodes.find((n) => n.id === primary)?.state === 'down',
      10_000,
    );
    line(`  ${down ? 'marked down' : 'NOT marked down in 10 s'}; table: ${tableLine(router)}`);
    const after = await callMemory(
      client,
      'recall',
      { spaceId: SPACE, cue: { text: 'Bob' }, limit: 3 },
      { deadline: deadline() },
    );
    line(`  recall after mark-down: ${fmt(after.routing)}`);
    line();
    line('== summary ==');
    line(`  stores and recalls went through the router; primary ${primary} was killed`);
    line(`  ${10 - failures}/10 recalls succeeded after the kill, ${fallbacks} by fallback`);
    line(
      `  breaker for ${primary} after the burst: ${breaker}; health check: ${down ? 'down' : 'still up'}`,
    );
    if (failures > 0 || !down) failures = Math.max(failures, 1);
  } catch (err) {
    line(`demo failed: ${(err as Error).stack ?? String(err)}`);
    failures++;
  } finally {
    client.close();
    await router.close();
    line('stopped the router and the local cluster');
  }
  return failures === 0 ? 0 : 1;
}
