/**
 * Many routers, one truth: a demo of etcd mode on this machine. Starts Debian's etcd (installed
 * with apt when missing) and a local 3-node memory cluster, then two routers sharing one
 * placement through etcd:
 *   1. both seed/follow the same placement, at the same revision, and see each other;
 *   2. a pin set on router A is what router B routes by, at the revision A's change got;
 *   3. etcd killed: both keep routing on the last table, admin changes are refused
 *      (UNAVAILABLE); etcd back: both catch up and changes go through again.
 * Everything on 127.0.0.1, stopped at the end. Run (after a build): pnpm --filter
 * @engram/router-node demo:etcd
 */
import { EtcdServer } from '@engram/etcd-server';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { RouterNode, RouterNodeConfig } from '../src/index.js';

// The build, at run time (its data-plane threads load dist/internal/worker.js); typed from the
// sources, so type-checking this script needs no build.
const DIST = new URL('../dist/index.js', import.meta.url).href;
const { CONFIG_DEFAULTS, LocalCluster, RouterAdminClient, startRouterNode } = (await import(
  DIST
)) as typeof import('../src/index.js');

const line = (text = '') => process.stdout.write(`${text}\n`);
// The routers' own warnings (etcd away, a change refused) would repeat what the demo says.
const log = pino({ level: 'error' }, pino.destination(2));

function view(name: string, r: RouterNode): string {
  const t = r.table();
  const e = t.etcd!;
  return `router ${name}: revision ${t.revision}, etcd ${e.connected ? 'connected' : 'UNREACHABLE'}, routers [${e.routers.map((x) => x.id).join(', ')}]${e.driving ? ', drives data movement' : ''}; pins ${t.assignments.map((a) => `${a.spaceId}→${a.primary}`).join(', ') || 'none'}`;
}

async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('the demo waited too long: is the machine very busy?');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function servedBy(r: RouterNode, spaceId: string): Promise<string> {
  const client = new MemoryServiceClient(r.address, grpc.credentials.createInsecure());
  try {
    const reply = await callMemory(
      client,
      'store',
      { spaceId, memory: { content: 'hello from the demo' } },
      { deadline: Date.now() + 5000 },
    );
    return reply.routing?.servedBy ?? '?';
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const etcd = await EtcdServer.start();
  const cluster = await LocalCluster.start(3, 3);
  const routers: RouterNode[] = [];
  try {
    line(`etcd at ${etcd.endpoint}; memory nodes ${cluster.configs.map((n) => n.id).join(', ')}`);
    for (const id of ['A', 'B']) {
      const config: RouterNodeConfig = {
        ...CONFIG_DEFAULTS,
        listen: { ...CONFIG_DEFAULTS.listen, port: 0 },
        admin: { ...CONFIG_DEFAULTS.admin, port: 0 },
        metrics: { ...CONFIG_DEFAULTS.metrics, enabled: false },
        workers: 1,
        shutdownDrainMs: 0,
        nodes: cluster.configs,
        router: { ...CONFIG_DEFAULTS.router, replicateWrites: false },
        etcd: {
          endpoints: [etcd.endpoint],
          prefix: '/demo/engram/router/',
          routerId: id,
          ca: null,
          cert: null,
          key: null,
          leaseTtlMs: 2000,
          requestTimeoutMs: 1000,
          tokensPerNode: 64,
        },
      };
      routers.push(await startRouterNode(config, log));
    }
    const [a, b] = routers as [RouterNode, RouterNode];
    await until(() => [a, b].every((r) => r.table().etcd!.routers.length === 2));
    line('\n1. Two routers, one placement (tokens allocated per node, kept in etcd):');
    line(`   ${view('A', a)}`);
    line(`   ${view('B', b)}`);

    const target = cluster.configs[2]!.id;
    line(`\n2. AssignSpace demo/pinned → ${target} on router A ...`);
    const revision = await pin(a, 'demo/pinned', target);
    await until(() => b.table().revision >= revision);
    line(`   A's change is revision ${revision}; ${view('B', b)}`);
    line(`   a Store through B is served by ${await servedBy(b, 'demo/pinned')}`);

    line('\n3. etcd killed ...');
    await etcd.kill();
    await until(() => [a, b].every((r) => !r.table().etcd!.connected));
    line(`   ${view('A', a)}`);
    line(`   a Store through B is still served by ${await servedBy(b, 'demo/pinned')}`);
    const refused = await pin(a, 'demo/other', target).catch((err: Error) => err.message);
    line(`   AssignSpace on A: ${String(refused).slice(0, 110)}…`);
    await etcd.restart();
    await until(() => [a, b].every((r) => r.table().etcd!.connected));
    const back = await pin(b, 'demo/pinned', cluster.configs[0]!.id);
    await until(() => a.table().revision >= back);
    line(`   etcd back: B moved the pin at revision ${back}; ${view('A', a)}`);
    line(`   a Store through A is served by ${await servedBy(a, 'demo/pinned')}`);
  } finally {
    for (const r of routers) await r.close();
    await cluster.stop();
    await etcd.stop();
  }
}

/** AssignSpace over RouterAdmin; resolves with the change's revision. */
async function pin(r: RouterNode, spaceId: string, primary: string): Promise<number> {
  const client = new RouterAdminClient(
    `127.0.0.1:${r.adminPort}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    AssignSpace(req: object, cb: (err: Error | null, res: { revision: number }) => void): void;
  };
  try {
    return await new Promise<number>((resolve, reject) =>
      client.AssignSpace({ spaceId, primary, replicas: [] }, (err, res) =>
        err ? reject(err) : resolve(res.revision),
      ),
    );
  } finally {
    client.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
