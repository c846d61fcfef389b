import { join } from 'node:path';
import { EtcdServer } from '@engram/etcd-server';
import { generateTestCertificates } from '@engram/memory-node/test-support';
import { EtcdPlacement, etcdClient } from '@engram/router/etcd';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  memoryClient,
  metricValue,
  type RouterProcess,
  scrape,
  spawnRouter,
  TEST_HEALTH,
  tempDir,
  testConfig,
} from './helpers.js';

// Many routers, one truth: three router-nodes (with workers) sharing one placement through a
// real etcd on loopback.

interface EtcdTable {
  epoch: number;
  vnodesPerNode: number;
  replicationFactor: number;
  revision: number;
  nodes: { id: string; lifecycle: string; state: string }[];
  assignments: { spaceId: string; primary: string; replicas: string[] }[];
  pendingAssignments: { spaceId: string }[];
  streams: { kind: string; subject: string; phase: string; spacesDone: number }[];
  etcd: {
    connected: boolean;
    lastError: string;
    routerId: string;
    routers: { id: string; listen: string; admin: string }[];
    driving: boolean;
  } | null;
}

/** Lease and request deadlines of these tests: the shortest the config allows, for speed. */
const LEASE_TTL_MS = 2000;
const REQUEST_TIMEOUT_MS = 1000;
/**
 * How long a change may take to reach every router: a watch event is pushed at once, but on a
 * busy 2-core machine three routers and etcd share the CPU; generous, never a speed claim
 * (the convergence figures come from bench/etcd-convergence.ts).
 */
const CONVERGE_MS = 15_000;
/** A dead router's lease expires (TTL), another wins the election, streams and completes. */
const TAKEOVER_MS = 60_000;

const cleanup = new Cleanup();
let etcd: EtcdServer;
let cluster: LocalCluster;

beforeAll(async () => {
  etcd = await EtcdServer.start();
  cleanup.add(() => etcd.stop());
  cluster = await LocalCluster.start(4, 2);
  cleanup.add(() => cluster.stop());
}, 120_000);
afterAll(() => cleanup.run(), 60_000);

let prefixes = 0;

function routerConfig(prefix: string, id: string, extra: Record<string, unknown> = {}) {
  return testConfig({
    nodes: cluster.configs.slice(0, 3),
    workers: 1,
    replicationFactor: 3,
    // Streaming waits this long (the fence) before it starts: short, for quick joins.
    router: { deadlineMs: 2000, attemptTimeoutMs: 1000 },
    etcd: {
      endpoints: [etcd.endpoint],
      prefix,
      routerId: id,
      leaseTtlMs: LEASE_TTL_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    },
    ...extra,
  });
}

async function startRouters(n: number, extra: Record<string, unknown> = {}) {
  const prefix = `/test/${process.pid}/${++prefixes}/`;
  const routers: RouterProcess[] = [];
  for (let i = 1; i <= n; i++) {
    routers.push(await spawnRouter(cleanup, routerConfig(prefix, `r${i}`, extra)));
  }
  const clients = routers.map((r) => adminClient(cleanup, r.adminPort));
  return { prefix, routers, clients };
}

function table(client: grpc.Client): Promise<EtcdTable> {
  return admin<EtcdTable>(client, 'GetTable');
}

function codeOf(err: unknown): number | undefined {
  return (err as grpc.ServiceError | null)?.code;
}

/** Waits until every router's table passes `check`; resolves with the time it took. */
async function converged(
  clients: grpc.Client[],
  check: (t: EtcdTable) => boolean,
  timeoutMs = CONVERGE_MS,
): Promise<EtcdTable[]> {
  return eventually(async () => {
    const tables = await Promise.all(clients.map(table));
    return tables.every(check) ? tables : undefined;
  }, timeoutMs);
}

function lifecycleOf(t: EtcdTable, id: string): string | undefined {
  return t.nodes.find((n) => n.id === id)?.lifecycle;
}

/** Every node up in every router's table (their first probes passed). */
function allUp(t: EtcdTable): boolean {
  return t.nodes.every((n) => n.state === 'up');
}

describe('router-nodes sharing one placement through etcd', () => {
  it('seeds an empty prefix once, registers every router, and elects one driver', async () => {
    const { prefix, routers, clients } = await startRouters(3);
    const tables = await converged(clients, (t) => t.etcd?.routers.length === 3 && allUp(t));
    const revisions = new Set(tables.map((t) => t.revision));
    expect(revisions.size).toBe(1);
    expect([...revisions][0]).toBeGreaterThan(0);
    expect(tables[0]!.etcd!.routers.map((r) => r.id)).toEqual(['r1', 'r2', 'r3']);
    for (const [i, t] of tables.entries()) {
      expect(t.etcd!.connected).toBe(true);
      expect(t.etcd!.routerId).toBe(`r${i + 1}`);
      expect(t.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    }
    // A router whose file says otherwise builds the ring with etcd's settings all the same.
    // (etcd mode defaults to allocated tokens: 64 a node, reported as its vnodes.)
    expect(tables.map((t) => t.vnodesPerNode)).toEqual([64, 64, 64]);
    const odd = await spawnRouter(
      cleanup,
      routerConfig(prefix, 'odd', { vnodesPerNode: 32, replicationFactor: 2 }),
    );
    const oddTable = await table(adminClient(cleanup, odd.adminPort));
    expect([oddTable.vnodesPerNode, oddTable.replicationFactor]).toEqual([64, 3]);
    expect(odd.stderr()).toMatch(/differ from etcd's: etcd's apply/);
    odd.child.kill('SIGTERM');
    await odd.exited;
    // The status page's feed says the same.
    const feed = (await (
      await fetch(`http://127.0.0.1:${routers[1]!.metricsPort}/status.json`)
    ).json()) as { etcd: { revision: number; connected: boolean; routers: unknown[] } };
    expect(feed.etcd).toMatchObject({ revision: [...revisions][0], connected: true });
    expect(feed.etcd.routers).toHaveLength(3);
    const drivers = await eventually(async () => {
      const d = (await Promise.all(clients.map(table))).filter((t) => t.etcd!.driving);
      return d.length === 1 ? d : undefined;
    }, CONVERGE_MS);
    expect(drivers).toHaveLength(1);
  });

  it('applies AssignSpace, AddNode and DrainNode sent to one router on all three', async () => {
    const { prefix, routers, clients } = await startRouters(3);
    await converged(clients, allUp);
    const [a, b, c] = clients as [grpc.Client, grpc.Client, grpc.Client];

    const pin = { spaceId: 'pinned', primary: 'n2', replicas: ['n3'] };
    const assigned = await admin<{ revision: number }>(a, 'AssignSpace', pin);
    expect(assigned.revision).toBeGreaterThan(0);
    // A pin moves data first (pending), then applies: on every router, at the same revision.
    const afterPin = await converged(clients, (t) =>
      t.assignments.some((x) => x.spaceId === 'pinned' && x.primary === 'n2'),
    );
    expect(new Set(afterPin.map((t) => t.revision)).size).toBe(1);
    // Routed by the pin on a router that never got the call.
    const client = memoryClient(cleanup, routers[2]!.address);
    const stored = await call(client, 'store', {
      spaceId: 'pinned',
      memory: { content: 'one truth' },
    });
    expect((stored as { routing: { servedBy: string } }).routing.servedBy).toBe('n2');

    const added = await admin<{ revision: number }>(b, 'AddNode', { ...cluster.configs[3]! });
    expect(added.revision).toBeGreaterThan(assigned.revision);
    await converged(clients, (t) => lifecycleOf(t, 'n4') === 'active');

    await admin(c, 'DrainNode', { id: 'n1' });
    const drained = await converged(clients, (t) => lifecycleOf(t, 'n1') === 'drained');
    expect(new Set(drained.map((t) => t.revision)).size).toBe(1);
    // A client routing in process (library mode) follows the same placement, revision for
    // revision, and places every space where the routers do.
    const placement = await EtcdPlacement.open({ endpoints: [etcd.endpoint], prefix });
    try {
      expect(placement.revision).toBe(drained[0]!.revision);
      for (let i = 0; i < 20; i++) {
        const spaceId = i === 0 ? 'pinned' : `space-${i}`;
        const located = await admin<{ nodes: { id: string; role: string }[] }>(c, 'Locate', {
          spaceId,
        });
        const lib = placement.table.lookup(spaceId);
        expect(located.nodes.filter((n) => n.role !== 'incoming').map((n) => n.id)).toEqual([
          lib.primary.id,
          ...lib.replicas.map((r) => r.id),
        ]);
      }
    } finally {
      await placement.close();
    }
    for (const t of drained) expect(t.etcd!.lastError).toBe('');
  });

  it('seeds a cluster larger than one etcd transaction holds, whole or not at all', async () => {
    const prefix = `/test/${process.pid}/${++prefixes}/`;
    // 200 node keys: more than etcd's 128 operations a transaction. Nothing listens there.
    const nodes = Array.from({ length: 200 }, (_, i) => ({
      id: `big-${i}`,
      address: `127.0.0.1:${20_000 + i}`,
      zone: `z${i % 3}`,
    }));
    const config = (id: string) => ({
      ...routerConfig(prefix, id),
      nodes,
      maxNodes: 256,
      health: { ...TEST_HEALTH, intervalMs: 5000 },
    });
    // Two routers seed at once: one seeds, the other reads what it wrote.
    const [one, two] = await Promise.all([
      spawnRouter(cleanup, config('big-1')),
      spawnRouter(cleanup, config('big-2')),
    ]);
    const tables = await Promise.all(
      [one, two].map((r) => table(adminClient(cleanup, r.adminPort))),
    );
    expect(tables.map((t) => t.nodes.length)).toEqual([200, 200]);
    expect(tables[0]!.revision).toBe(tables[1]!.revision);
    expect(
      [one, two].filter((r) => /was empty: seeded/.test(r.stderr())).map((r) => r.port),
    ).toHaveLength(1);
  });

  it('lets exactly one of two changes checked against the same revision win', async () => {
    const { clients } = await startRouters(3);
    await converged(clients, (t) => t.etcd?.routers.length === 3);
    const [a, b] = clients as [grpc.Client, grpc.Client];
    const { revision } = await table(a);
    await converged(clients, (t) => t.revision === revision);
    const results = await Promise.allSettled([
      admin(a, 'AssignSpace', {
        spaceId: 'contested',
        primary: 'n1',
        replicas: [],
        ifRevision: revision,
      }),
      admin(b, 'AssignSpace', {
        spaceId: 'contested',
        primary: 'n2',
        replicas: [],
        ifRevision: revision,
      }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(codeOf((lost[0] as PromiseRejectedResult).reason)).toBe(grpc.status.ABORTED);
    expect(String((lost[0] as PromiseRejectedResult).reason)).toMatch(/changed in etcd/);
  });

  it('never lets racing changes clobber each other: each wins or is ABORTED, all agree', async () => {
    const { clients } = await startRouters(3);
    await converged(clients, (t) => t.etcd?.routers.length === 3);
    const primaries = ['n1', 'n2', 'n3'];
    const results = await Promise.allSettled(
      Array.from({ length: 9 }, (_, i) =>
        admin<{ revision: number }>(clients[i % 3]!, 'AssignSpace', {
          spaceId: 'raced',
          primary: primaries[i % 3],
          replicas: [],
        }).then((r) => ({ ...r, primary: primaries[i % 3] })),
      ),
    );
    for (const r of results) {
      if (r.status === 'rejected') expect(codeOf(r.reason)).toBe(grpc.status.ABORTED);
    }
    const won = results
      .filter((r) => r.status === 'fulfilled')
      .map((r) => (r as PromiseFulfilledResult<{ revision: number; primary: string }>).value);
    expect(won.length).toBeGreaterThan(0);
    // The last change written is the pin every router ends with.
    const last = won.reduce((x, y) => (y.revision > x.revision ? y : x));
    await converged(
      clients,
      (t) =>
        t.revision >= last.revision &&
        t.assignments.some((x) => x.spaceId === 'raced' && x.primary === last.primary),
    );
  });
});

describe('static stability: etcd away', () => {
  it('keeps routing on the last table and refuses admin changes; catches up when etcd is back', async () => {
    const { routers, clients } = await startRouters(3);
    await converged(clients, (t) => t.etcd?.routers.length === 3 && allUp(t));
    const { revision } = await table(clients[0]!);
    await etcd.kill();
    try {
      await converged(clients, (t) => t.etcd?.connected === false);
      for (const r of routers) {
        expect(metricValue(await scrape(r.metricsPort), 'engram_router_etcd_connected')).toBe(0);
        const client = memoryClient(cleanup, r.address);
        const stored = await call(client, 'store', {
          spaceId: `while-away-${r.port}`,
          memory: { content: 'still routed' },
        });
        expect((stored as { memoryId: string }).memoryId).not.toBe('');
      }
      const refused = await admin(clients[1]!, 'AddNode', { ...cluster.configs[3]! }).catch(
        (e) => e,
      );
      expect(codeOf(refused)).toBe(grpc.status.UNAVAILABLE);
      expect(String(refused)).toMatch(/etcd is unreachable/);
      for (const t of await Promise.all(clients.map(table))) expect(t.revision).toBe(revision);
    } finally {
      await etcd.restart();
    }
    await converged(clients, (t) => t.etcd?.connected === true);
    await admin(clients[1]!, 'AssignSpace', {
      spaceId: 'after-outage',
      primary: 'n3',
      replicas: [],
    });
    await converged(clients, (t) => t.assignments.some((x) => x.spaceId === 'after-outage'));
  });

  it('starts a router from its cached placement while etcd is down, and one without a cache waits', async () => {
    const prefix = `/test/${process.pid}/${++prefixes}/`;
    const dataDir = tempDir(cleanup);
    const configFile = join(tempDir(cleanup), 'router.json');
    const withCache = routerConfig(prefix, 'cached', { dataDir });
    const first = await spawnRouter(cleanup, withCache, [], configFile);
    const firstAdmin = adminClient(cleanup, first.adminPort);
    await admin(firstAdmin, 'AssignSpace', { spaceId: 'kept', primary: 'n3', replicas: [] });
    const before = await eventually(async () => {
      const t = await table(firstAdmin);
      return t.assignments.some((x) => x.spaceId === 'kept') ? t : undefined;
    }, CONVERGE_MS);
    first.child.kill('SIGTERM');
    await first.exited;
    await etcd.kill();
    let waiting: RouterProcess | undefined;
    try {
      // With the cache: up at once, on the cached placement, admin refused.
      const again = await spawnRouter(cleanup, withCache, [], configFile);
      const againAdmin = adminClient(cleanup, again.adminPort);
      const t = await table(againAdmin);
      expect(t.revision).toBe(before.revision);
      expect(t.assignments.some((x) => x.spaceId === 'kept' && x.primary === 'n3')).toBe(true);
      expect(t.etcd!.connected).toBe(false);
      expect(again.stderr()).toMatch(/routing on the placement of revision/);
      const refused = await admin(againAdmin, 'AssignSpace', {
        spaceId: 'x',
        primary: 'n1',
        replicas: [],
      }).catch((e) => e);
      expect(codeOf(refused)).toBe(grpc.status.UNAVAILABLE);
      // Without one: it waits for etcd (says so), and starts once etcd answers.
      let told = '';
      const pending = spawnRouter(cleanup, routerConfig(prefix, 'fresh'), [], undefined, (s) => {
        told += s;
      });
      pending.catch(() => undefined);
      await eventually(() => /waiting for etcd/.test(told), CONVERGE_MS);
      await etcd.restart();
      waiting = await pending;
    } finally {
      if (!etcd.running) await etcd.restart();
    }
    const t = await table(adminClient(cleanup, waiting.adminPort));
    expect(t.revision).toBe(before.revision);
    expect(waiting.stderr()).toMatch(/waiting for etcd/);
  });
});

describe('one driver of data movement', () => {
  it('another router finishes a join when the driver dies mid-stream', async () => {
    const { prefix, routers, clients } = await startRouters(3, {
      streaming: { concurrency: 1 },
    });
    await converged(clients, (t) => t.etcd?.routers.length === 3 && allUp(t));
    // Spaces with data, so the join has something to stream.
    const writer = memoryClient(cleanup, routers[0]!.address);
    for (let i = 0; i < 60; i++) {
      await call(writer, 'store', { spaceId: `space-${i}`, memory: { content: `m${i}` } });
    }
    const tables = await Promise.all(clients.map(table));
    const driver = tables.findIndex((t) => t.etcd!.driving);
    expect(driver).toBeGreaterThanOrEqual(0);
    await admin(clients[(driver + 1) % 3]!, 'AddNode', { ...cluster.configs[3]! });
    // The driver's stream of the join is under way (past its fence, spaces done and their
    // progress in etcd), then the driver dies.
    await eventually(async () => {
      const t = await table(clients[driver]!);
      return t.streams.some((s) => s.kind === 'join' && s.subject === 'n4' && s.spacesDone > 0);
    }, CONVERGE_MS);
    const progressKeys = async () => {
      const client = etcdClient({ endpoints: [etcd.endpoint] });
      try {
        return await client.getAll().prefix(`${prefix}streams/join/n4/`).keys();
      } finally {
        client.close();
      }
    };
    expect((await progressKeys()).length).toBeGreaterThan(0);
    routers[driver]!.child.kill('SIGKILL');
    await routers[driver]!.exited;
    const survivors = clients.filter((_, i) => i !== driver);
    const done = await converged(
      survivors,
      (t) =>
        lifecycleOf(t, 'n4') === 'active' &&
        !t.etcd!.routers.some((r) => r.id === `r${driver + 1}`),
      TAKEOVER_MS,
    );
    expect(done.filter((t) => t.etcd!.driving)).toHaveLength(1);
    // The new driver resumed from that progress and, done, cleared it.
    await eventually(async () => (await progressKeys()).length === 0, CONVERGE_MS);
  }, 120_000);
});

describe('etcd over TLS', () => {
  it('seeds and follows etcd that requires a client certificate; without one it cannot start', async () => {
    const dir = tempDir(cleanup);
    generateTestCertificates(dir);
    const f = (name: string) => join(dir, name);
    const secure = await EtcdServer.start(30_000, {
      cert: f('server.crt'),
      key: f('server.key'),
      clientCa: f('ca.crt'),
      client: { cert: f('client.crt'), key: f('client.key'), ca: f('ca.crt') },
    });
    cleanup.add(() => secure.stop());
    const prefix = `/tls/${process.pid}/`;
    const config = (id: string, withCert: boolean) =>
      testConfig({
        nodes: cluster.configs.slice(0, 3),
        workers: 1,
        etcd: {
          endpoints: [secure.endpoint],
          prefix,
          routerId: id,
          leaseTtlMs: LEASE_TTL_MS,
          requestTimeoutMs: REQUEST_TIMEOUT_MS,
          ca: f('ca.crt'),
          ...(withCert ? { cert: f('client.crt'), key: f('client.key') } : {}),
        },
      });
    const router = await spawnRouter(cleanup, config('tls-1', true));
    const t = await eventually(async () => {
      const v = await table(adminClient(cleanup, router.adminPort));
      return v.etcd?.connected && v.etcd.routers.length === 1 ? v : undefined;
    }, CONVERGE_MS);
    expect(t.revision).toBeGreaterThan(0);
    // Without a client certificate etcd refuses it: no table to start from, so it waits.
    let told = '';
    const refused = spawnRouter(cleanup, config('tls-2', false), [], undefined, (s) => {
      told += s;
    });
    refused.catch(() => undefined);
    await eventually(() => /waiting for etcd/.test(told), CONVERGE_MS);
  });
});
