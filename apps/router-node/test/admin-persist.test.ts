import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STATE_FILE } from '../src/internal/admin-state.js';
import { LocalCluster } from '../src/internal/local-cluster.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  memoryClient,
  type RouterProcess,
  runRouter,
  spawnRouter,
  tempDir,
  testConfig,
} from './helpers.js';

interface Table {
  epoch: number;
  nodes: { id: string; lifecycle: string; state: string }[];
  assignments: { spaceId: string; primary: string; replicas: string[] }[];
  pendingAssignments: { spaceId: string }[];
}

async function table(r: RouterProcess, cleanup: Cleanup): Promise<Table> {
  return (await getTable(adminClient(cleanup, r.adminPort))) as unknown as Table;
}

async function stop(r: RouterProcess): Promise<void> {
  r.child.kill('SIGTERM');
  const { code } = await r.exited;
  expect(code).toBe(0);
}

function adminStateLine(r: RouterProcess): Record<string, unknown> {
  const line = r
    .stderr()
    .split('\n')
    .find((l) => l.includes('"event":"admin-state"'));
  expect(line).toBeDefined();
  return JSON.parse(line!) as Record<string, unknown>;
}

describe('admin changes persist in dataDir (real router-node processes)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  it('AddNode, DrainNode and AssignSpace are still in effect after a restart on the same dataDir', async () => {
    const c = await LocalCluster.start(4, 2);
    cleanup.add(() => c.stop());
    const [a, b, d, e] = c.configs;
    const dataDir = tempDir(cleanup);
    // Data movement on (the default): each change streams, then settles. A transition waits
    // one router.deadlineMs (writes under the old table end) before it streams: a short one.
    const router = { deadlineMs: 2000, attemptTimeoutMs: 1000 };
    const config = testConfig({ nodes: [a, b, d], workers: 1, dataDir, router });
    const first = await spawnRouter(cleanup, config);
    expect(adminStateLine(first)).toMatchObject({ source: 'config' });
    const adm = adminClient(cleanup, first.adminPort);
    await admin(adm, 'AddNode', { id: e!.id, address: e!.address, zone: e!.zone });
    await eventually(
      async () =>
        (await table(first, cleanup)).nodes.find((n) => n.id === 'n4')?.lifecycle === 'active',
      30_000,
    );
    await admin(adm, 'DrainNode', { id: 'n1' });
    await eventually(
      async () =>
        (await table(first, cleanup)).nodes.find((n) => n.id === 'n1')?.lifecycle === 'drained',
      30_000,
    );
    await admin(adm, 'AssignSpace', { spaceId: 'pinned', primary: 'n2', replicas: ['n3'] });
    await eventually(
      async () => (await table(first, cleanup)).assignments.some((x) => x.spaceId === 'pinned'),
      30_000,
    );
    const before = await table(first, cleanup);
    await stop(first);
    const state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8'));
    expect(state.version).toBe(1);

    const second = await spawnRouter(cleanup, config, [], first.configFile);
    expect(adminStateLine(second)).toMatchObject({
      source: 'state',
      notInFile: ['n4'],
      notActive: ['n1'],
      pinsDiffer: true,
    });
    const after = await table(second, cleanup);
    expect(after.nodes.map((n) => [n.id, n.lifecycle])).toEqual(
      before.nodes.map((n) => [n.id, n.lifecycle]),
    );
    expect(after.nodes.map((n) => [n.id, n.lifecycle])).toEqual([
      ['n1', 'drained'],
      ['n2', 'active'],
      ['n3', 'active'],
      ['n4', 'active'],
    ]);
    expect(after.assignments).toEqual([{ spaceId: 'pinned', primary: 'n2', replicas: ['n3'] }]);
    expect(after.pendingAssignments).toEqual([]);
    // And routed by: the pin's primary serves its space.
    const client = memoryClient(cleanup, second.address);
    const r = await call(client, 'store', { spaceId: 'pinned', memory: { content: 'x' } });
    expect(r.routing?.servedBy).toBe('n2');
  });

  it('the config file seeds; its nodes changed while the router was down win at the next start, and stay', async () => {
    const c = await LocalCluster.start(4, 2);
    cleanup.add(() => c.stop());
    const [a, b, d, e] = c.configs;
    const dataDir = tempDir(cleanup);
    const legacy = { router: { replicateWrites: false } };
    const config = testConfig({ nodes: [a, b], workers: 1, dataDir, ...legacy });
    const first = await spawnRouter(cleanup, config);
    await admin(adminClient(cleanup, first.adminPort), 'AddNode', {
      id: d!.id,
      address: d!.address,
      zone: d!.zone,
    });
    await stop(first);

    // Same file: the state (with the admin-added n3) wins.
    const second = await spawnRouter(cleanup, config, [], first.configFile);
    expect((await table(second, cleanup)).nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    await stop(second);

    // The operator edits the node list (n4 instead of nothing): the file wins, n3 goes.
    const edited = testConfig({ nodes: [a, b, e], workers: 1, dataDir, ...legacy });
    const third = await spawnRouter(cleanup, edited, [], first.configFile);
    expect(adminStateLine(third)).toMatchObject({ source: 'state+config', fileWins: ['nodes'] });
    expect((await table(third, cleanup)).nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n4']);
    await stop(third);

    // That result was persisted: the same edited file starts from the state again.
    const fourth = await spawnRouter(cleanup, edited, [], first.configFile);
    expect(adminStateLine(fourth)).toMatchObject({ source: 'state' });
    expect((await table(fourth, cleanup)).nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n4']);

    // On SIGHUP the same: a changed list wins, and is what the next start finds.
    const again = testConfig({ nodes: [a, e], workers: 1, dataDir, ...legacy });
    writeFileSync(first.configFile, JSON.stringify(again));
    fourth.child.kill('SIGHUP');
    await eventually(async () => (await table(fourth, cleanup)).nodes.length === 2);
    expect((await table(fourth, cleanup)).nodes.map((n) => n.id)).toEqual(['n1', 'n4']);
    await stop(fourth);
    const fifth = await spawnRouter(cleanup, again, [], first.configFile);
    expect(adminStateLine(fifth)).toMatchObject({ source: 'state' });
    expect((await table(fifth, cleanup)).nodes.map((n) => n.id)).toEqual(['n1', 'n4']);
  });

  it('a corrupt state file stops the start with exit 2, naming the file', async () => {
    const dataDir = tempDir(cleanup);
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, STATE_FILE);
    writeFileSync(file, '{"version":1,"nodes":[');
    const run = await runRouter(
      cleanup,
      testConfig({ nodes: [{ id: 'n1', address: '127.0.0.1:1' }], dataDir }),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(file);
    expect(run.stderr).toMatch(/invalid configuration: .*is not valid JSON/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
