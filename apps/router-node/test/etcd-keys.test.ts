import { isPlacementKey } from '@engram/router';
import { describe, expect, it } from 'vitest';
import type { NodeConfig } from '../src/internal/config.js';
import {
  diffKeys,
  EtcdStateError,
  intentFromKeys,
  intentKeys,
  intentOf,
  placementKey,
  routerKey,
  routersFromKeys,
  settingsFromKeys,
  settingsKey,
} from '../src/internal/etcd-keys.js';
import { Health, Lifecycle, Membership, MembershipError } from '../src/internal/membership.js';

const P = '/engram/router/';
const LIMITS = { maxNodes: 8, maxSlots: 10 };

function node(id: string, port: number, zone = ''): NodeConfig {
  return { id, address: `127.0.0.1:${port}`, zone };
}

function cluster(moveData = true): Membership {
  return Membership.create(
    [node('a', 1, 'z1'), node('b', 2, 'z2'), node('c/3', 3, 'z1')],
    [{ spaceId: 'pinned', primary: 'a', replicas: ['b'] }],
    null,
    LIMITS,
    moveData,
  );
}

function errorOf(fn: () => unknown): EtcdStateError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EtcdStateError);
    return err as EtcdStateError;
  }
  throw new Error('expected an EtcdStateError');
}

describe('etcd keys of a placement intent', () => {
  it('round-trips a membership with a drain in progress, a pin and a pin move', () => {
    let m = cluster();
    m = m.drain('b').next;
    m = m.assign({ spaceId: 'moving/1', primary: 'a', replicas: ['c/3'] }).next;
    m = m.unassign('pinned').next;
    const intent = intentOf(m);
    const keys = intentKeys(P, intent);
    expect([...keys.keys()].sort()).toEqual([
      `${P}moves/moving%2F1`,
      `${P}moves/pinned`,
      `${P}nodes/a`,
      `${P}nodes/b`,
      `${P}nodes/c%2F3`,
      `${P}pins/pinned`,
    ]);
    const back = intentFromKeys(P, new Map([...keys, [placementKey(P), '{}']]));
    expect(back.nodes.find((n) => n.id === 'b')).toEqual({
      id: 'b',
      address: '127.0.0.1:2',
      zone: 'z2',
      lifecycle: Lifecycle.Leaving,
      leaveTo: 'drained',
    });
    expect(back.assignments).toEqual(intent.assignments);
    expect([...back.moves].sort((x, y) => (x.spaceId < y.spaceId ? -1 : 1))).toEqual(
      [...intent.moves].sort((x, y) => (x.spaceId < y.spaceId ? -1 : 1)),
    );
  });

  it("keeps a node's allocated tokens, and refuses tokens that are not ring positions", () => {
    const m = Membership.create([node('a', 1)], [], null, LIMITS, true)
      .add(node('b', 2), [7, 99])
      .next.completeJoin('b').next;
    const keys = intentKeys(P, intentOf(m));
    const back = intentFromKeys(P, new Map([...keys, [placementKey(P), '{}']]));
    expect(back.nodes.find((n) => n.id === 'b')?.tokens).toEqual([7, 99]);
    expect(back.nodes.find((n) => n.id === 'a')?.tokens).toBeUndefined();
    const bad = JSON.stringify({ ...node('x', 9), lifecycle: 'active', tokens: [1, -2] });
    try {
      intentFromKeys(P, new Map([...keys, [`${P}nodes/x`, bad]]));
      expect.unreachable('accepted');
    } catch (err) {
      expect(err).toMatchObject({
        code: 'InvalidConfig',
        field: `${P}nodes/x.tokens[1]`,
        value: -2,
      });
    }
    // A leave completed keeps the tokens of a node drained (for its return).
    const drained = m.drain('b').next.completeLeave('b').next;
    expect(drained.get('b')).toMatchObject({ lifecycle: 'drained', tokens: [7, 99] });
  });

  it('diffs to the keys a change writes and deletes, nothing else', () => {
    const m = cluster(false);
    const before = intentKeys(P, intentOf(m));
    const after = intentKeys(P, intentOf(m.drain('b').next.unassign('pinned').next));
    const d = diffKeys(before, after);
    expect(d.puts.map(([k]) => k)).toEqual([`${P}nodes/b`]);
    expect(JSON.parse(d.puts[0]![1]).lifecycle).toBe('draining');
    expect(d.deletes).toEqual([`${P}pins/pinned`]);
    expect(diffKeys(after, after)).toEqual({ puts: [], deletes: [] });
  });

  it('tells placement keys from registrations and other prefixes', () => {
    expect(isPlacementKey(P, placementKey(P))).toBe(true);
    expect(isPlacementKey(P, `${P}nodes/a`)).toBe(true);
    expect(isPlacementKey(P, routerKey(P, 'r1'))).toBe(false);
    expect(isPlacementKey(P, '/other/nodes/a')).toBe(false);
  });

  it('refuses bad state with the key, the value and why', () => {
    const ok = intentKeys(P, intentOf(cluster()));
    const bad = (key: string, value: string) => new Map([...ok, [key, value]]);
    let e = errorOf(() => intentFromKeys(P, bad(`${P}nodes/x`, '{nope')));
    expect(e.code).toBe('InvalidConfig');
    expect(e.field).toBe(`${P}nodes/x`);
    e = errorOf(() =>
      intentFromKeys(
        P,
        bad(`${P}nodes/x`, JSON.stringify({ ...node('y', 9), lifecycle: 'active' })),
      ),
    );
    expect(e.message).toMatch(/another node than its key/);
    e = errorOf(() =>
      intentFromKeys(
        P,
        bad(`${P}nodes/x`, JSON.stringify({ ...node('x', 9), lifecycle: 'sleeping' })),
      ),
    );
    expect(e.field).toBe(`${P}nodes/x.lifecycle`);
    expect(e.value).toBe('sleeping');
    e = errorOf(() =>
      intentFromKeys(
        P,
        bad(`${P}pins/s`, JSON.stringify({ spaceId: 's', primary: 'ghost', replicas: [] })),
      ),
    );
    expect(e.field).toBe(`${P}pins/s`);
    expect(e.message).toMatch(/ghost/);
    e = errorOf(() => intentFromKeys(P, new Map([[placementKey(P), '{}']])));
    expect(e.message).toMatch(/at least one/);
  });

  it('reads the ring settings every router shares, refusing them out of range', () => {
    const limits = {
      replicationFactor: { min: 1, max: 16 },
      vnodesPerNode: { min: 1, max: 8192 },
      tokensPerNode: { min: 0, max: 4096 },
      maxNodes: { min: 1, max: 65535 },
    };
    const key = settingsKey(P);
    expect(settingsFromKeys(P, new Map(), limits)).toBeNull();
    expect(
      settingsFromKeys(
        P,
        new Map([
          [
            key,
            JSON.stringify({
              replicationFactor: 3,
              vnodesPerNode: 256,
              tokensPerNode: 0,
              maxNodes: 64,
            }),
          ],
        ]),
        limits,
      ),
    ).toEqual({ replicationFactor: 3, vnodesPerNode: 256, tokensPerNode: 0, maxNodes: 64 });
    const e = errorOf(() =>
      settingsFromKeys(
        P,
        new Map([
          [
            key,
            JSON.stringify({
              replicationFactor: 0,
              vnodesPerNode: 256,
              tokensPerNode: 0,
              maxNodes: 64,
            }),
          ],
        ]),
        limits,
      ),
    );
    expect([e.field, e.value]).toEqual([`${key}.replicationFactor`, 0]);
    expect(isPlacementKey(P, key)).toBe(true);
  });

  it('lists live routers, sorted, skipping entries that do not parse', () => {
    const kvs = new Map([
      [routerKey(P, 'r2'), JSON.stringify({ id: 'r2', listen: '127.0.0.1:2', admin: null })],
      [routerKey(P, 'r1'), JSON.stringify({ id: 'r1', listen: '127.0.0.1:1', since: 5 })],
      [routerKey(P, 'bad'), '{'],
      [`${P}nodes/a`, '{}'],
    ]);
    expect(routersFromKeys(P, kvs).map((r) => [r.id, r.listen, r.since])).toEqual([
      ['r1', '127.0.0.1:1', 5],
      ['r2', '127.0.0.1:2', 0],
    ]);
  });
});

describe('Membership.adopt (following an intent written by another router)', () => {
  it('keeps slots and health of kept members, frees the slots of members gone', () => {
    let m = cluster(false);
    for (const id of ['a', 'b', 'c/3']) m = m.setHealth(id, Health.Up);
    const slotB = m.get('b')!.slot;
    const other = m
      .unassign('pinned')
      .next.remove('b')
      .next.add(node('d', 4, 'z2')).next; // another router's
    const change = m.adopt(
      intentOf(other).nodes,
      other.assignments,
      other.moves,
      'etcd revision 7',
    );
    const next = change.next;
    expect(next.get('a')).toMatchObject({ slot: m.get('a')!.slot, health: Health.Up });
    expect(next.get('b')).toBeUndefined();
    // The freed slot is reused for the new member, and handed out fresh.
    expect(next.get('d')).toMatchObject({ slot: slotB, health: Health.Unknown });
    expect(change.freshSlots).toEqual([slotB]);
    expect(change.reason).toBe('etcd revision 7');
    expect(next.assignments).toEqual(other.assignments);
  });

  it('starts a re-addressed member over on its own slot, and takes lifecycles as given', () => {
    let m = cluster();
    m = m.setHealth('a', Health.Up);
    const intent = intentOf(m);
    const nodes = intent.nodes.map((n) =>
      n.id === 'a'
        ? { ...n, address: '127.0.0.1:11' }
        : n.id === 'b'
          ? { ...n, lifecycle: Lifecycle.Leaving, leaveTo: 'removed' as const }
          : n,
    );
    const change = m.adopt(nodes, intent.assignments, intent.moves, 'r');
    expect(change.next.get('a')).toMatchObject({ slot: m.get('a')!.slot, health: 'unknown' });
    expect(change.freshSlots).toEqual([m.get('a')!.slot]);
    expect(change.next.get('b')).toMatchObject({ lifecycle: 'leaving', leaveTo: 'removed' });
  });

  it('refuses an intent over capacity, changing nothing; follows one without the localNodeId', () => {
    const m = Membership.create([node('a', 1), node('b', 2)], [], 'a', LIMITS);
    const many = Array.from({ length: 9 }, (_, i) => ({
      ...node(`n${i}`, 10 + i),
      lifecycle: Lifecycle.Active,
    }));
    try {
      m.adopt(many, [], [], 'r');
      throw new Error('expected a refusal');
    } catch (err) {
      expect(err).toBeInstanceOf(MembershipError);
      expect((err as MembershipError).code).toBe('CapacityExceeded');
    }
    expect(m.size).toBe(2);
    // Another router removed this router's local node: it follows (and has no local copy).
    const next = m.adopt([{ ...node('b', 2), lifecycle: Lifecycle.Active }], [], [], 'r').next;
    expect(next.get('a')).toBeUndefined();
    expect(next.localNodeId).toBe('a');
  });
});
