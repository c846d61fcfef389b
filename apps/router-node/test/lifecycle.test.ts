import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  memoryClient,
  metricValue,
  runRouter,
  scrape,
  spawnRouter,
  startSlowNode,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('router-node lifecycle', () => {
  it.each([
    ['unknown key', { nodez: [] }, 'nodez'],
    ['bad port', { listen: { port: 70000 } }, 'listen.port = 70000'],
    ['bad address', { nodes: [{ id: 'a', address: 'nowhere' }] }, 'nodes[0].address = "nowhere"'],
    [
      'duplicate id',
      {
        nodes: [
          { id: 'a', address: '127.0.0.1:1' },
          { id: 'a', address: '127.0.0.1:2' },
        ],
      },
      'nodes[1].id = "a"',
    ],
    [
      'duplicate address',
      {
        nodes: [
          { id: 'a', address: '127.0.0.1:1' },
          { id: 'b', address: '127.0.0.1:01' },
        ],
      },
      'nodes[1].address = "127.0.0.1:01"',
    ],
    ['bad type', { health: { intervalMs: 'fast' } }, 'health.intervalMs = "fast"'],
    [
      'unknown assignment node',
      {
        nodes: [{ id: 'a', address: '127.0.0.1:1' }],
        assignments: [{ spaceId: 's', primary: 'b' }],
      },
      'assignments[0].primary = "b"',
    ],
    ['not JSON', '{ nodes: ', 'not valid JSON'],
  ])('exits 2 on a bad config file (%s), naming the key and value', async (_name, config, text) => {
    const { code, stderr } = await runRouter(cleanup, config);
    expect(code).toBe(2);
    expect(stderr).toContain(text);
  });

  it('rejects bad env vars and flags the same way', async () => {
    const env = await runRouter(cleanup, {}, [], { ENGRAM_ROUTER_HEALTH_INTERVAL_MS: '-5' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('health.intervalMs = -5');
    const flag = await runRouter(cleanup, {}, ['--workers', 'many']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('workers = "many"');
  });

  it('finishes every in-flight call on SIGTERM, then exits 0', async () => {
    const slow = await startSlowNode(cleanup, 'slow', 400);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [{ id: 'slow', address: slow.address }],
        workers: 2,
        shutdownGraceMs: 5000,
      }),
    );
    const clients = Array.from({ length: 4 }, () => memoryClient(cleanup, router.address, true));
    const calls = Array.from({ length: 40 }, (_, i) =>
      call(clients[i % 4]!, 'recall', { spaceId: `s${i}`, cue: { text: 'x' } }),
    );
    await eventually(() => slow.recalls() === 40);
    router.child.kill('SIGTERM');
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(await router.exited).toEqual({ code: 0, signal: null });
  });

  it('passes the client deadline and cancellation through to the node', async () => {
    const slow = await startSlowNode(cleanup, 'slow', 30_000);
    const router = await spawnRouter(
      cleanup,
      testConfig({ nodes: [{ id: 'slow', address: slow.address }], workers: 0 }),
    );
    const client = memoryClient(cleanup, router.address);
    const err = await call(client, 'recall', { spaceId: 'd', cue: { text: 'x' } }, 300).catch(
      (e) => e,
    );
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await eventually(() => slow.cancelled() === 1);
    // The client's own deadline and the router's (taken from grpc-timeout) expire within a
    // millisecond of each other, so the router records the first call as DeadlineExceeded or,
    // when the client's RST_STREAM arrives first, as Cancelled: exactly one of the two.
    const NAME = 'engram_router_request_duration_seconds_count';
    const outcomes = async () => {
      const m = await scrape(router.metricsPort);
      return {
        cancelled: metricValue(m, NAME, 'outcome="Cancelled"'),
        deadline: metricValue(m, NAME, 'outcome="DeadlineExceeded"'),
      };
    };
    const first = await eventually(async () => {
      const o = await outcomes();
      return o.cancelled + o.deadline === 1 ? o : undefined;
    });
    // Cancellation: the client gives up; the node's call is cancelled too.
    const pending = client.recall(
      { spaceId: 'c', cue: { text: 'x' } },
      new grpc.Metadata(),
      { deadline: Date.now() + 20_000 },
      () => {},
    );
    await eventually(() => slow.recalls() === 2);
    pending.cancel();
    await eventually(() => slow.cancelled() === 2);
    const second = await eventually(async () => {
      const o = await outcomes();
      return o.cancelled + o.deadline === 2 ? o : undefined;
    });
    expect(second).toEqual({ cancelled: first.cancelled + 1, deadline: first.deadline });
  });

  it('on SIGHUP a changed node list in the file wins; an unchanged one leaves admin changes alone; AssignSpace assignments and drains survive (no data movement)', async () => {
    const c = await LocalCluster.start(4, 2);
    cleanup.add(() => c.stop());
    const [a, b, d, e] = c.configs;
    const { writeFileSync } = await import('node:fs');
    const legacy = { router: { replicateWrites: false } };
    const router = await spawnRouter(cleanup, testConfig({ nodes: [a, b], workers: 1, ...legacy }));
    const adm = adminClient(cleanup, router.adminPort);
    await admin(adm, 'AddNode', { id: d!.id, address: d!.address, zone: d!.zone });
    await admin(adm, 'AssignSpace', { spaceId: 'pinned', primary: 'n2', replicas: ['n1'] });
    await admin(adm, 'DrainNode', { id: 'n1' });
    // An added node is unknown until its first probe, whose verdict publishes a new epoch: wait
    // for it, so the epoch compared below is the reload's.
    const before = await eventually(async () => {
      const t = await getTable(adm);
      return t.nodes.find((n) => n.id === 'n3')?.state === 'up' ? t : undefined;
    });
    expect(before.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    // The same file (n1, n2), reloaded: its node list did not change, the admin state stays.
    router.child.kill('SIGHUP');
    await eventually(() => router.stderr().includes('"event":"reload-done"'));
    const unchanged = await getTable(adm);
    expect(unchanged.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    expect(unchanged.epoch).toBe(before.epoch);
    // The file's list changed (n4 added): it wins, so the admin-added n3 goes; the rest of the
    // admin state stays.
    const file = router.configFile;
    writeFileSync(file, JSON.stringify(testConfig({ nodes: [a, b, e], workers: 1, ...legacy })));
    router.child.kill('SIGHUP');
    const after = await eventually(async () => {
      const t = await getTable(adm);
      return t.epoch > before.epoch ? t : undefined;
    });
    expect(after.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n4']);
    expect(after.nodes.find((n) => n.id === 'n1')?.state).toBe('draining');
    expect(after.assignments).toContainEqual(
      expect.objectContaining({ spaceId: 'pinned', primary: 'n2', replicas: ['n1'] }),
    );
    await eventually(() => router.stderr().includes('"event":"reload-membership"'));
    expect(router.stderr()).toMatch(/"event":"reload-membership".*"removed":\["n3"\]/);
    expect(router.stderr()).toMatch(/"event":"reload","key":"nodes","result":"applied"/);
    const client = memoryClient(cleanup, router.address);
    const r = await call(client, 'store', { spaceId: 'pinned', memory: { content: 'x' } });
    expect(r.routing?.servedBy).toBe('n2');
  });

  it('reloads membership on SIGHUP', async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    const [a, b, d] = c.configs;
    const { writeFileSync } = await import('node:fs');
    const router = await spawnRouter(cleanup, testConfig({ nodes: [a, b], workers: 1 }));
    const adm = adminClient(cleanup, router.adminPort);
    const before = await getTable(adm);
    expect(before.nodes.map((n) => n.id)).toEqual(['n1', 'n2']);
    // spawnRouter wrote the config next to the process; rewrite it and send SIGHUP.
    const cmdline = router.child.spawnargs;
    const file = cmdline[cmdline.indexOf('--config') + 1]!;
    writeFileSync(file, JSON.stringify(testConfig({ nodes: [a, b, d], workers: 1 })));
    router.child.kill('SIGHUP');
    const after = await eventually(async () => {
      const t = await getTable(adm);
      return t.nodes.length === 3 ? t : undefined;
    });
    expect(after.epoch).toBeGreaterThan(before.epoch);
    const client = memoryClient(cleanup, router.address);
    const r = await call(client, 'store', { spaceId: 'after-reload', memory: { content: 'x' } });
    expect(['n1', 'n2', 'n3']).toContain(r.routing?.servedBy);
  });
});
