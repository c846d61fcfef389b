import { describe, expect, it } from 'vitest';
import type { NodeConfig } from '../src/internal/config.js';
import {
  Health,
  Lifecycle,
  Membership,
  MembershipError,
  routingState,
} from '../src/internal/membership.js';

const LIMITS = { maxNodes: 4, maxSlots: 6 };

function node(id: string, port = 7000): NodeConfig {
  return { id, address: `127.0.0.1:${port}`, zone: '' };
}

function three(): Membership {
  return Membership.create([node('a', 1), node('b', 2), node('c', 3)], [], null, LIMITS);
}

/** Every member marked up (as after a first probe round that all passed). */
function up(m: Membership): Membership {
  let next = m;
  for (const x of m.members) next = next.setHealth(x.node.id, Health.Up);
  return next;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MembershipError);
    return (err as MembershipError).code;
  }
  throw new Error('expected a MembershipError');
}

describe('Membership', () => {
  it('starts every node of unknown health (routed as down) and active on slots 0..n-1', () => {
    const m = three();
    expect([...m.members].map((x) => [x.node.id, x.slot, x.health, x.lifecycle])).toEqual([
      ['a', 0, 'unknown', 'active'],
      ['b', 1, 'unknown', 'active'],
      ['c', 2, 'unknown', 'active'],
    ]);
    expect(routingState(m.get('a')!)).toBe('down');
    expect(m.reachable).toBe(0);
    // Nodes without a verdict count for neither side of a partition.
    expect(m.serving).toEqual({ total: 0, up: 0 });
    const probed = m.setHealth('a', Health.Up).setHealth('b', Health.Down);
    expect(probed.serving).toEqual({ total: 2, up: 1 });
  });

  it('a node added is of unknown health until probed, whatever the others are', () => {
    const m = up(three());
    expect(m.add(node('d', 4)).next.get('d')?.health).toBe('unknown');
  });

  it('adds a node on the next slot and reports it fresh; the old value is unchanged', () => {
    const m = three();
    const change = m.add(node('d', 4));
    expect(change.next.get('d')?.slot).toBe(3);
    expect(change.freshSlots).toEqual([3]);
    expect(m.get('d')).toBeUndefined();
    expect(codeOf(() => change.next.add(node('d', 5)))).toBe('AlreadyAMember');
  });

  it('refuses a fifth node (table capacity) and the seventh slot ever handed out', () => {
    const four = three().add(node('d', 4)).next;
    expect(codeOf(() => four.add(node('e', 5)))).toBe('CapacityExceeded');
    // Slots are reused (last freed first) before new ones are taken.
    let m = four.remove('d').next;
    expect(m.add(node('e', 5)).next.get('e')?.slot).toBe(3);
    m = m.add(node('e', 5)).next.remove('e').next.add(node('f', 6)).next;
    expect(m.get('f')?.slot).toBe(3);
  });

  it('runs out of slots after maxSlots distinct allocations with none freed', () => {
    const m = Membership.create([node('a', 1)], [], null, { maxNodes: 10, maxSlots: 2 });
    const two = m.add(node('b', 2)).next;
    const err = (() => {
      try {
        two.add(node('c', 3));
      } catch (e) {
        return e as MembershipError;
      }
      return undefined;
    })();
    expect(err?.code).toBe('CapacityExceeded');
    expect(err?.field).toBe('node.id');
    expect(err?.value).toBe('c');
  });

  it('refuses to remove an unknown node, the local node, a pinned node and the last node', () => {
    const m = Membership.create(
      [node('a', 1), node('b', 2), node('c', 3)],
      [{ spaceId: 's', primary: 'b', replicas: [] }],
      'c',
      LIMITS,
    );
    expect(codeOf(() => m.remove('ghost'))).toBe('NotAMember');
    expect(codeOf(() => m.remove('c'))).toBe('InUse');
    expect(codeOf(() => m.remove('b'))).toBe('InUse');
    const one = Membership.create([node('a', 1)], [], null, LIMITS);
    expect(codeOf(() => one.remove('a'))).toBe('InUse');
    expect(m.remove('a').next.size).toBe(2);
  });

  it('refuses a removal that leaves fewer placed nodes than the replication factor, unless forced', () => {
    const m = three();
    let err: MembershipError | undefined;
    try {
      m.remove('a', { replicationFactor: 3 });
    } catch (e) {
      err = e as MembershipError;
    }
    expect(err?.code).toBe('BelowReplicationFactor');
    expect(err?.details).toEqual({ remaining: 2, replicationFactor: 3 });
    expect(err?.message).toMatch(/2 .*replicationFactor 3.*force/);
    expect(m.remove('a', { replicationFactor: 3, force: true }).next.size).toBe(2);
    expect(m.remove('a', { replicationFactor: 2 }).next.size).toBe(2);
    // A drained member holds no placement: removing it leaves the placed count as it was.
    const moving = Membership.create(
      [node('a', 1), node('b', 2), node('c', 3)],
      [],
      null,
      LIMITS,
      true,
    );
    const drained = moving.drain('c').next.completeLeave('c').next;
    expect(drained.remove('c', { replicationFactor: 3 }).next.get('c')).toBeUndefined();
    // A leaving node is already on its way out: it does not count among those that remain.
    const leaving = moving.remove('c').next;
    expect(codeOf(() => leaving.remove('b', { replicationFactor: 2 }))).toBe(
      'BelowReplicationFactor',
    );
  });

  it('refuses a drain (with data movement) that leaves fewer placed nodes than the replication factor, unless forced', () => {
    const moving = Membership.create(
      [node('a', 1), node('b', 2), node('c', 3)],
      [],
      null,
      LIMITS,
      true,
    );
    expect(codeOf(() => moving.drain('c', { replicationFactor: 3 }))).toBe(
      'BelowReplicationFactor',
    );
    expect(moving.drain('c', { replicationFactor: 3, force: true }).next.get('c')?.lifecycle).toBe(
      'leaving',
    );
    expect(moving.drain('c', { replicationFactor: 2 }).next.get('c')?.lifecycle).toBe('leaving');
    // Without data movement a draining node stays placed: no replica is lost.
    expect(three().drain('c', { replicationFactor: 3 }).next.get('c')?.lifecycle).toBe('draining');
  });

  it('drains and undrains; the routed state combines lifecycle and health', () => {
    const m = up(three());
    const drained = m.drain('b').next;
    expect(routingState(drained.get('b')!)).toBe('draining');
    expect(codeOf(() => drained.drain('b'))).toBe('WrongLifecycle');
    expect(codeOf(() => m.undrain('b'))).toBe('WrongLifecycle');
    // Down while draining, then undrained: comes back down, not up.
    const back = drained.setHealth('b', Health.Down).undrain('b').next;
    expect(back.get('b')?.lifecycle).toBe(Lifecycle.Active);
    expect(routingState(back.get('b')!)).toBe('down');
    expect(back.reachable).toBe(2);
  });

  it('setHealth returns the same value when nothing changes', () => {
    const m = up(three());
    expect(m.setHealth('a', Health.Up)).toBe(m);
    expect(m.setHealth('ghost', Health.Down)).toBe(m);
    expect(m.setHealth('a', Health.Down)).not.toBe(m);
  });

  it('pins only to members, replaces a pin, and clears it', () => {
    const m = three();
    expect(codeOf(() => m.assign({ spaceId: 's', primary: 'x', replicas: [] }))).toBe('NotAMember');
    const pinned = m
      .assign({ spaceId: 's', primary: 'a', replicas: ['b'] })
      .next.assign({ spaceId: 's', primary: 'c', replicas: [] }).next;
    expect(pinned.assignments).toEqual([{ spaceId: 's', primary: 'c', replicas: [] }]);
    expect(codeOf(() => pinned.unassign('other'))).toBe('NoSuchAssignment');
    expect(pinned.unassign('s').next.assignments).toEqual([]);
  });

  it('reload: the list wins; kept nodes keep state, re-addressed ones keep their slot and start over', () => {
    const m = up(three()).drain('a').next.setHealth('b', Health.Down);
    const change = m.reload([node('a', 1), node('b', 22), node('d', 4)]);
    const next = change.next;
    expect(change.removed).toEqual(['c']);
    expect(change.added).toEqual(['d']);
    expect(next.get('a')).toMatchObject({ lifecycle: 'draining', health: 'up' });
    // A new address is a node never probed: unknown until its first probe.
    expect(next.get('b')).toMatchObject({ slot: 1, health: 'unknown', lifecycle: 'active' });
    expect(next.get('d')?.health).toBe('unknown');
    // d takes c's freed slot; b's breaker (same slot, new address) is reset too.
    expect(next.get('d')?.slot).toBe(2);
    expect([...change.freshSlots].sort()).toEqual([1, 2]);
  });

  it('reload refuses to drop a pinned node or the local node, changing nothing', () => {
    const m = Membership.create(
      [node('a', 1), node('b', 2)],
      [{ spaceId: 's', primary: 'b', replicas: [] }],
      'a',
      LIMITS,
    );
    expect(codeOf(() => m.reload([node('a', 1)]))).toBe('InUse');
    expect(codeOf(() => m.reload([node('b', 2)]))).toBe('InUse');
    expect(m.size).toBe(2);
  });
});

describe('Membership: one node per address', () => {
  function refusal(fn: () => unknown): MembershipError {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(MembershipError);
      return err as MembershipError;
    }
    throw new Error('expected a MembershipError');
  }

  it('refuses a node at an address a member has, naming the member that owns it', () => {
    const err = refusal(() => three().add({ id: 'e', address: '127.0.0.1:2', zone: '' }));
    expect(err.code).toBe('AddressInUse');
    expect(err.field).toBe('node.address');
    expect(err.value).toBe('127.0.0.1:2');
    expect(err.details).toEqual({ owner: 'b', ownerAddress: '127.0.0.1:2' });
  });

  it.each([
    ['a leading-zero port', '127.0.0.1:0002'],
    ['leading-zero octets', '127.000.000.001:2'],
    ['a short IPv4 form', '127.1:2'],
    ['a hex IPv4 form', '0x7f.0.0.1:2'],
    ['a 32-bit IPv4 number', '2130706433:2'],
    ['a trailing dot', '127.0.0.1.:2'],
    ['an IPv4-mapped IPv6 form', '[::ffff:127.0.0.1]:2'],
    ['an IPv4-mapped IPv6 form in hex', '[0:0:0:0:0:ffff:7f00:1]:2'],
  ])('sees through %s of the same literal IP', (_name, address) => {
    expect(refusal(() => three().add({ id: 'e', address, zone: '' })).code).toBe('AddressInUse');
  });

  it('compares host names without case and IPv6 literals in any written form', () => {
    const m = Membership.create(
      [
        { id: 'a', address: 'Node-A.example:7000', zone: '' },
        { id: 'b', address: '[::1]:7000', zone: '' },
      ],
      [],
      null,
      LIMITS,
    );
    expect(codeOf(() => m.add({ id: 'x', address: 'node-a.EXAMPLE.:7000', zone: '' }))).toBe(
      'AddressInUse',
    );
    expect(codeOf(() => m.add({ id: 'y', address: '[0:0:0:0:0:0:0:1]:7000', zone: '' }))).toBe(
      'AddressInUse',
    );
    // Different ports, and names that only a resolver could equate, are different addresses.
    expect(m.add({ id: 'z', address: 'node-a.example:7001', zone: '' }).next.size).toBe(3);
    expect(m.add({ id: 'w', address: 'localhost:7000', zone: '' }).next.size).toBe(3);
  });

  it('refuses a config list with two nodes on one address at create', () => {
    const err = refusal(() =>
      Membership.create(
        [node('a', 1), { id: 'b', address: '127.0.0.1:01', zone: '' }],
        [],
        null,
        LIMITS,
      ),
    );
    expect(err.code).toBe('AddressInUse');
    expect(err.details).toEqual({ owner: 'a', ownerAddress: '127.0.0.1:1' });
  });

  it('reload refuses a node re-addressed onto another member, changing nothing', () => {
    const m = three();
    const err = refusal(() => m.reload([node('a', 1), node('b', 3), node('c', 3)]));
    expect(err.code).toBe('AddressInUse');
    expect(m.get('b')?.node.address).toBe('127.0.0.1:2');
    // Taking the address of a node the same reload removes is fine (it is gone first).
    expect(m.reload([node('a', 1), node('b', 3)]).next.get('b')?.node.address).toBe('127.0.0.1:3');
  });
});

describe('Membership with data movement', () => {
  function moving(): Membership {
    return up(
      Membership.create([node('a', 1), node('b', 2), node('c', 3)], [], null, LIMITS, true),
    );
  }

  it('starts its first nodes active; a node added later joins until completeJoin', () => {
    const m = moving();
    expect([...m.members].map((x) => x.lifecycle)).toEqual(['active', 'active', 'active']);
    const joined = m.add(node('d', 4)).next;
    expect(joined.get('d')?.lifecycle).toBe('joining');
    expect(joined.serving).toEqual({ total: 3, up: 3 });
    expect(joined.completeJoin('d').next.get('d')?.lifecycle).toBe('active');
    expect(codeOf(() => m.completeJoin('a'))).toBe('WrongLifecycle');
  });

  it('removing an active node makes it leave first; a joining one goes at once', () => {
    const m = moving().add(node('d', 4)).next;
    expect(m.remove('d').next.get('d')).toBeUndefined();
    const leaving = m.remove('a').next;
    expect(leaving.get('a')).toMatchObject({ lifecycle: 'leaving', leaveTo: 'removed' });
    expect(leaving.completeLeave('a').next.get('a')).toBeUndefined();
  });

  it('drain: leaving, then drained (a member out of the placement); undrain joins again', () => {
    const drained = moving().drain('b').next.completeLeave('b').next;
    expect(drained.get('b')?.lifecycle).toBe('drained');
    expect(drained.serving.total).toBe(2);
    expect(drained.undrain('b').next.get('b')?.lifecycle).toBe('joining');
    // Undoing a drain still in progress: back to active.
    expect(moving().drain('b').next.undrain('b').next.get('b')?.lifecycle).toBe('active');
    expect(codeOf(() => drained.drain('b'))).toBe('WrongLifecycle');
  });

  it('a pin is a move until completeMove; unpinning moves back to the ring', () => {
    const m = moving().assign({ spaceId: 's', primary: 'a', replicas: [] }).next;
    expect(m.assignments).toEqual([]);
    expect(m.moves).toEqual([{ spaceId: 's', to: { spaceId: 's', primary: 'a', replicas: [] } }]);
    const pinned = m.completeMove('s').next;
    expect(pinned.assignments).toEqual([{ spaceId: 's', primary: 'a', replicas: [] }]);
    const back = pinned.unassign('s').next;
    expect(back.moves).toEqual([{ spaceId: 's', to: null }]);
    expect(back.completeMove('s').next.assignments).toEqual([]);
    expect(codeOf(() => pinned.completeMove('s'))).toBe('NoSuchAssignment');
  });

  it('refuses a pin on a node in transit, and a second node at an address in use', () => {
    const m = moving().add(node('d', 4)).next;
    expect(codeOf(() => m.assign({ spaceId: 's', primary: 'd', replicas: [] }))).toBe(
      'WrongLifecycle',
    );
    expect(codeOf(() => m.add({ id: 'e', address: '127.0.0.1:1', zone: '' }))).toBe('AddressInUse');
  });
});
