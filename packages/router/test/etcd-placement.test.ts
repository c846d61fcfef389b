import { EtcdServer } from '@engram/etcd-server';
import { buildRing } from '@engram/ring';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdPlacement, etcdClient, FollowedTable } from '../src/etcd.js';
import { ETCD_KEYS, etcdKey, Router, ringOptionsFromKeys } from '../src/index.js';
import { startNodes } from './helpers.js';

// Library mode: a client following the placement router-nodes keep in etcd, read-only. The
// keys are written here as a router-node writes them (router-node's own tests check that a
// client and the routers agree).

const P = '/lib/';
const node = (id: string, port: number, lifecycle = 'active', zone = '') =>
  JSON.stringify({ id, address: `127.0.0.1:${port}`, zone, lifecycle });
const SETTINGS = JSON.stringify({ replicationFactor: 2, vnodesPerNode: 16 });

function placement(extra: [string, string][] = []): Map<string, string> {
  return new Map([
    [`${P}placement`, '{}'],
    [`${P}settings`, SETTINGS],
    [etcdKey(P, ETCD_KEYS.nodes, 'a'), node('a', 1)],
    [etcdKey(P, ETCD_KEYS.nodes, 'b'), node('b', 2)],
    [etcdKey(P, ETCD_KEYS.nodes, 'c'), node('c', 3, 'drained')],
    ...extra,
  ]);
}

describe('ringOptionsFromKeys (the layout router-nodes write)', () => {
  it('places active, joining and leaving nodes, not drained ones, with pins, moves and settings', () => {
    const opts = ringOptionsFromKeys(
      P,
      placement([
        [etcdKey(P, ETCD_KEYS.nodes, 'd/1'), node('d/1', 4, 'joining')],
        [
          etcdKey(P, ETCD_KEYS.pins, 's'),
          JSON.stringify({ spaceId: 's', primary: 'a', replicas: [] }),
        ],
        [
          etcdKey(P, ETCD_KEYS.moves, 'm'),
          JSON.stringify({ spaceId: 'm', to: { spaceId: 'm', primary: 'b', replicas: [] } }),
        ],
        [etcdKey(P, ETCD_KEYS.moves, 'back'), JSON.stringify({ spaceId: 'back', to: null })],
        [
          etcdKey(P, ETCD_KEYS.pins, 'back'),
          JSON.stringify({ spaceId: 'back', primary: 'b', replicas: [] }),
        ],
        ['/other/nodes/x', node('x', 9)],
      ]),
    )!;
    expect(opts.nodes.map((n) => n.id).sort()).toEqual(['a', 'b', 'd/1']);
    expect(opts.joining).toEqual(['d/1']);
    expect([opts.replicationFactor, opts.vnodesPerNode]).toEqual([2, 16]);
    expect(opts.assignments).toContainEqual({ spaceId: 's', primary: 'a', replicas: [] });
    expect(opts.pendingAssignments).toContainEqual({ spaceId: 'back', primary: null });
    expect(buildRing(opts).lookup('s').primary.id).toBe('a');
  });

  it('builds a token-mode ring from the tokens each node carries (vnodesPerNode unused)', () => {
    const withTokens = (id: string, port: number, tokens: number[]) =>
      JSON.stringify({ id, address: `127.0.0.1:${port}`, zone: '', lifecycle: 'active', tokens });
    const opts = ringOptionsFromKeys(
      P,
      new Map([
        [`${P}placement`, '{}'],
        [`${P}settings`, SETTINGS],
        [etcdKey(P, ETCD_KEYS.nodes, 'a'), withTokens('a', 1, [100, 3_000_000_000])],
        [etcdKey(P, ETCD_KEYS.nodes, 'b'), withTokens('b', 2, [2_000_000_000])],
      ]),
    )!;
    expect(opts.vnodesPerNode).toBeUndefined();
    const ring = buildRing(opts);
    expect(ring.tokenCount).toBe(3);
    // A space hashing between two tokens belongs to the owner of the next one up.
    expect(ring.vnodesPerNode).toBe(0);
  });

  it('is null without a placement, and names the key of a malformed entry', () => {
    expect(ringOptionsFromKeys(P, new Map())).toBeNull();
    try {
      ringOptionsFromKeys(P, placement([[etcdKey(P, ETCD_KEYS.nodes, 'z'), '{"id":5}']]));
      expect.unreachable('accepted');
    } catch (err) {
      expect(err).toMatchObject({ code: 'InvalidArgument', field: `${P}nodes/z.id`, value: 5 });
    }
  });
});

describe('FollowedTable', () => {
  it('moves to a new epoch per ring, keeping slots of kept nodes and reusing freed ones', () => {
    const ring = (ids: string[]) =>
      buildRing({
        nodes: ids.map((id, i) => ({ id, address: `127.0.0.1:${i + 1}` })),
        vnodesPerNode: 8,
      });
    const t = new FollowedTable(ring(['a', 'b', 'c']));
    const slotOf = (id: string) => t.nodeSlot(t.nodeIndex(id));
    expect(t.epoch).toBe(1);
    const [a, b, c] = [slotOf('a'), slotOf('b'), slotOf('c')];
    expect(new Set([a, b, c]).size).toBe(3);
    t.replace(ring(['a', 'c', 'd']));
    expect(t.epoch).toBe(2);
    expect([slotOf('a'), slotOf('c'), slotOf('d')]).toEqual([a, c, b]);
    t.replace(ring(['a', 'b0', 'c', 'd', 'e']));
    expect(new Set(t.nodes.map((_, i) => t.nodeSlot(i))).size).toBe(5);
    expect(t.lookup('x').primary.id).toBe(t.ring.lookup('x').primary.id);
  });
});

describe('EtcdPlacement (a real etcd)', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await EtcdServer.start();
  }, 60_000);
  afterAll(() => etcd?.stop());

  async function write(kvs: Map<string, string>, deletes: string[] = []): Promise<void> {
    const client = etcdClient({ endpoints: [etcd.endpoint] });
    try {
      const ops = [
        ...[...kvs].map(([k, v]) => client.put(k).value(v)),
        ...deletes.map((k) => client.delete().key(k)),
      ];
      await client
        .if(`${P}placement`, 'Version', '>', -1)
        .then(...ops)
        .commit();
    } finally {
      client.close();
    }
  }

  /** Polls `check` until true; the watch pushes changes at once, this only absorbs scheduling. */
  async function until(check: () => boolean, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`not true in ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('refuses a prefix that holds no placement, and bad options', async () => {
    await expect(
      EtcdPlacement.open({ endpoints: [etcd.endpoint], prefix: '/none/' }),
    ).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'prefix',
    });
    await expect(EtcdPlacement.open({ endpoints: [] })).rejects.toMatchObject({
      field: 'endpoints',
    });
  });

  it('routes by the placement, follows its changes, and keeps the last one while etcd is away', async () => {
    const nodes = await startNodes(2);
    try {
      const kvs = new Map([
        [`${P}placement`, '{}'],
        [`${P}settings`, SETTINGS],
        ...nodes.map(
          (n) =>
            [
              etcdKey(P, ETCD_KEYS.nodes, n.id),
              JSON.stringify({ id: n.id, address: n.address, zone: '', lifecycle: 'active' }),
            ] as [string, string],
        ),
      ]);
      await write(kvs);
      const placement = await EtcdPlacement.open({ endpoints: [etcd.endpoint], prefix: P });
      try {
        expect(placement.status.connected).toBe(true);
        const first = placement.revision;
        expect(first).toBeGreaterThan(0);
        const router = new Router({ table: placement.table, options: { replicateWrites: false } });
        try {
          const pin = (primary: string) =>
            new Map([
              [`${P}placement`, '{"reason":"pin"}'],
              [
                etcdKey(P, ETCD_KEYS.pins, 'space'),
                JSON.stringify({ spaceId: 'space', primary, replicas: [] }),
              ],
            ]);
          await write(pin('n2'));
          await until(() => placement.revision > first);
          expect(placement.table.epoch).toBe(2);
          const stored = await router.store({ spaceId: 'space', memory: { content: 'hi' } });
          expect(stored.routing?.servedBy).toBe('n2');

          // A malformed placement is refused whole: the last good one stays.
          const good = placement.revision;
          await write(
            new Map([
              [`${P}placement`, '{}'],
              [etcdKey(P, ETCD_KEYS.nodes, 'bad'), '{'],
            ]),
          );
          await until(() => placement.status.lastError !== null);
          expect(placement.status.lastError).toMatch(/nodes\/bad/);
          expect(placement.revision).toBe(good);
          await write(new Map([[`${P}placement`, '{}']]), [etcdKey(P, ETCD_KEYS.nodes, 'bad')]);
          await until(() => placement.status.lastError === null);

          await etcd.kill();
          await until(() => !placement.status.connected);
          expect(placement.table.lookup('space').primary.id).toBe('n2');
          await etcd.restart();
          await until(() => placement.status.connected);
          await write(pin('n1'));
          await until(() => placement.table.lookup('space').primary.id === 'n1');
        } finally {
          await router.close();
        }
      } finally {
        await placement.close();
      }
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  }, 60_000);
});
