import { afterEach, describe, expect, it } from 'vitest';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  freePort,
  getTable,
  memoryClient,
  spawnRouter,
  startSlowNode,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

// Without data movement a node added is placed (active) at once: what keeps calls off it
// until it answers is its health alone.
const LEGACY = { router: { replicateWrites: false } };

describe('a node is up only once a probe passed', () => {
  it('added while not listening: not up, its spaces served by the others; listening: up and served', async () => {
    const a = await startSlowNode(cleanup, 'a', 0);
    const b = await startSlowNode(cleanup, 'b', 0);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [
          { id: 'a', address: a.address },
          { id: 'b', address: b.address },
        ],
        workers: 0,
        replicationFactor: 3,
        ...LEGACY,
      }),
    );
    const adm = adminClient(cleanup, router.adminPort);
    const port = await freePort();
    await admin(adm, 'AddNode', { id: 'c', address: `127.0.0.1:${port}` });
    const stateOfC = async () => (await getTable(adm)).nodes.find((n) => n.id === 'c')?.state;
    expect(await stateOfC()).not.toBe('up');

    // Every space has c among its three nodes, and c is the primary of about a third: none is
    // sent to c, none needs a second attempt.
    const client = memoryClient(cleanup, router.address);
    for (let i = 0; i < 30; i++) {
      const r = await call(client, 'recall', { spaceId: `s${i}`, cue: { text: 'x' } });
      expect(r.routing?.servedBy).not.toBe('c');
      expect(r.routing?.attempts).toBe(1);
    }
    // Probed and failed: down, never up on the way.
    await eventually(async () => (await stateOfC()) === 'down');

    await startSlowNode(cleanup, 'c', 0, port);
    await eventually(async () => (await stateOfC()) === 'up');
    const served = await eventually(async () => {
      for (let i = 0; i < 30; i++) {
        const r = await call(client, 'recall', { spaceId: `s${i}`, cue: { text: 'x' } });
        if (r.routing?.servedBy === 'c') return true;
      }
      return false;
    });
    expect(served).toBe(true);
  });

  it('at start, a configured node that does not answer is not up once the router says it started', async () => {
    const a = await startSlowNode(cleanup, 'a', 0);
    const port = await freePort();
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [
          { id: 'a', address: a.address },
          { id: 'd', address: `127.0.0.1:${port}` },
        ],
        workers: 0,
        ...LEGACY,
      }),
    );
    const table = await getTable(adminClient(cleanup, router.adminPort));
    expect(table.nodes.map((n) => [n.id, n.state === 'up'])).toEqual([
      ['a', true],
      ['d', false],
    ]);
    const r = await call(memoryClient(cleanup, router.address), 'recall', {
      spaceId: 'first',
      cue: { text: 'x' },
    });
    expect(r.routing?.servedBy).toBe('a');
    expect(r.routing?.attempts).toBe(1);
  });
});
