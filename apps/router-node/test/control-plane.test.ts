import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { TableReader, TableWriter } from '@engram/ring';
import { ReplicaServiceMissingError } from '@engram/router';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { adminStatus } from '../src/internal/admin.js';
import { CONFIG_DEFAULTS, type RouterNodeConfig } from '../src/internal/config.js';
import { ControlPlane } from '../src/internal/control-plane.js';
import type { Probe, ProbeTarget } from '../src/internal/health-monitor.js';
import {
  C_PARTITIONED,
  controlWords,
  createStateBuffer,
  N_EJECTED,
  N_FAILURE_RUN,
  N_GEN,
  N_LAST_ANSWER,
  N_STATE,
  N_UP_SINCE,
  NODE_STATE_NAMES,
  nodeWord,
} from '../src/internal/layout.js';
import { TablePublisher } from '../src/internal/table-publisher.js';
import { RESTART_POLICY_DEFAULTS, RestartPolicy } from '../src/internal/worker-supervisor.js';
import { FakeTime } from './fake-time.js';
import { nodeConfigs, ROUND_HEALTH } from './node-configs.js';

const nodes = nodeConfigs;

/** Probes whose verdict per node the test sets; answers at once (or never, for `hang`). */
class SwitchProbe implements Probe {
  readonly healthy = new Map<string, boolean>();
  readonly hang = new Set<string>();
  async check(target: ProbeTarget): Promise<boolean> {
    if (this.hang.has(target.id)) return new Promise<boolean>(() => {});
    return this.healthy.get(target.id) ?? true;
  }
  forget(): void {}
}

function setup(count = 3, extra: Partial<RouterNodeConfig> = {}) {
  const time = new FakeTime();
  const probe = new SwitchProbe();
  const state = createStateBuffer(1, 16);
  const control = controlWords(state);
  const writer = new TableWriter({ maxNodes: 8, maxTokens: 8 * 16, maxReplicationFactor: 3 });
  const breakers = new BreakerTable({
    capacity: 16,
    trip: new ConsecutiveFailures(2),
    clock: time.clock,
  });
  const config: RouterNodeConfig = {
    ...CONFIG_DEFAULTS,
    nodes: nodes(count),
    vnodesPerNode: 16,
    health: ROUND_HEALTH,
    // Membership changes apply at once unless a test turns data movement on.
    router: { ...CONFIG_DEFAULTS.router, replicateWrites: false },
    ...extra,
  };
  const plane = new ControlPlane({
    config,
    limits: { maxNodes: 8, maxSlots: 10 },
    publisher: new TablePublisher(writer, control, config),
    breakers,
    probe,
    timers: time,
    log: pino({ level: 'silent' }),
  });
  const reader = new TableReader(writer.buffer);
  const stateOf = (slot: number) =>
    NODE_STATE_NAMES[Atomics.load(control, nodeWord(slot, N_STATE))];
  return { time, probe, control, plane, breakers, reader, stateOf };
}

describe('ControlPlane (fake time)', () => {
  it('publishes the membership at start, every node unknown (routed as down) until probed', () => {
    const { plane, reader, stateOf } = setup();
    expect(plane.epoch).toBe(1);
    reader.refresh();
    expect(reader.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    expect([0, 1, 2].map(stateOf)).toEqual(['down', 'down', 'down']);
    expect(plane.table().nodes.map((n) => n.state)).toEqual(['unknown', 'unknown', 'unknown']);
    // No verdict yet is no evidence of a partition (nor of a panic).
    expect(plane.partitioned).toBe(false);
  });

  it('start() resolves after the first probe round, every node then up on its first success', async () => {
    const { time, plane, stateOf } = setup();
    let started = false;
    void plane.start().then(() => {
      started = true;
    });
    await time.advance(0);
    expect(started).toBe(true);
    expect([0, 1, 2].map(stateOf)).toEqual(['up', 'up', 'up']);
    plane.close();
  });

  it('start() waits no longer than the probe timeout for a first round that hangs', async () => {
    const { time, probe, plane, stateOf } = setup();
    probe.hang.add('n2');
    let started = false;
    void plane.start().then(() => {
      started = true;
    });
    await time.advance(499);
    expect(started).toBe(false);
    await time.advance(1); // timeoutMs 500: n2's probe counts as failed
    expect(started).toBe(true);
    expect([0, 1, 2].map(stateOf)).toEqual(['up', 'down', 'up']);
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.state).toBe('unknown');
    plane.close();
  });

  it('marks a node down after unhealthyThreshold failed rounds, republishing its state', async () => {
    const { time, probe, plane, stateOf } = setup();
    probe.healthy.set('n2', false);
    plane.start();
    await time.advance(0); // first round, at start: n1, n3 up; n2 failure 1
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.state).toBe('unknown');
    const epoch = plane.epoch;
    await time.advance(1000); // failure 2
    expect(stateOf(1)).toBe('down');
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.state).toBe('down');
    expect(plane.epoch).toBe(epoch + 1);
    expect(plane.partitioned).toBe(false);
    plane.close();
    expect(time.pending).toBe(0);
  });

  it('declares a partition when a majority is down and heals it; a node up gets its breaker half-open', async () => {
    const { time, probe, plane, control, breakers } = setup();
    probe.healthy.set('n1', false);
    probe.healthy.set('n2', false);
    plane.start();
    await time.advance(1000); // rounds at 0 and 1000: two failures each
    expect(plane.partitioned).toBe(true);
    expect(Atomics.load(control, C_PARTITIONED)).toBe(1);
    // n1's breaker opened from failed calls meanwhile.
    breakers.onFailure(0, breakers.tryAcquire(0));
    breakers.onFailure(0, breakers.tryAcquire(0));
    expect(breakers.state(0)).toBe('open');
    probe.healthy.set('n1', true);
    await time.advance(1000); // success 1
    expect(plane.partitioned).toBe(true);
    await time.advance(1000); // success 2: n1 up
    expect(plane.partitioned).toBe(false);
    expect(Atomics.load(control, C_PARTITIONED)).toBe(0);
    // Half-open, not closed: its first calls are probes that decide (the rest of the open
    // timeout is not waited out). One that succeeds closes it.
    expect(breakers.state(0)).toBe('half-open');
    const probeCall = breakers.tryAcquire(0);
    expect(breakers.tryAcquire(0)).toBe(0); // REJECTED: one probe at a time
    breakers.onSuccess(0, probeCall);
    expect(breakers.state(0)).toBe('closed');
    plane.close();
  });

  it('a node added is not up until its first successful probe, which runs at once', async () => {
    const { time, probe, plane, reader, stateOf } = setup();
    plane.start();
    await time.advance(0);
    probe.healthy.set('n4', false);
    plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'b' });
    const slot = plane.membership.get('n4')!.slot;
    reader.refresh();
    expect(reader.nodes.map((n) => n.id)).toContain('n4');
    expect(stateOf(slot)).toBe('down');
    expect(plane.table().nodes.find((n) => n.id === 'n4')?.state).toBe('unknown');
    await time.advance(0); // its first probe, at once: failed
    expect(stateOf(slot)).toBe('down');
    await time.advance(1000); // failed again: now down, not merely unknown
    expect(plane.table().nodes.find((n) => n.id === 'n4')?.state).toBe('down');
    // A node added healthy is up on its first probe (no healthyThreshold rounds to wait).
    plane.addNode({ id: 'n5', address: '127.0.0.1:7005', zone: 'a' });
    expect(plane.table().nodes.find((n) => n.id === 'n5')?.state).toBe('unknown');
    await time.advance(0);
    expect(stateOf(plane.membership.get('n5')!.slot)).toBe('up');
    plane.close();
  });

  it('adds, drains and removes nodes as new epochs, and watches the new node', async () => {
    const { time, probe, plane, reader, stateOf } = setup();
    plane.start();
    const e1 = plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'b' });
    expect(e1).toBe(2);
    reader.refresh();
    expect(reader.nodes.map((n) => n.id)).toContain('n4');
    probe.healthy.set('n4', false);
    await time.advance(1000);
    await time.advance(1000);
    expect(stateOf(3)).toBe('down');
    expect(plane.drainNode('n1', false)).toBeGreaterThan(e1 as number);
    expect(stateOf(0)).toBe('draining');
    plane.removeNode('n4');
    reader.refresh();
    expect(reader.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
    plane.close();
  });

  it('a slot handed to a new node keeps nothing of its previous holder (ejection, failure run, last answer, ramp)', () => {
    const { control, plane } = setup();
    plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'b' });
    const slot = plane.membership.get('n4')!.slot;
    for (const word of [N_EJECTED, N_FAILURE_RUN, N_LAST_ANSWER, N_UP_SINCE]) {
      Atomics.store(control, nodeWord(slot, word), 9);
    }
    const gen = Atomics.load(control, nodeWord(slot, N_GEN));
    plane.removeNode('n4');
    plane.addNode({ id: 'n5', address: '127.0.0.1:7005', zone: 'b' });
    expect(plane.membership.get('n5')!.slot).toBe(slot);
    for (const word of [N_EJECTED, N_FAILURE_RUN, N_LAST_ANSWER, N_UP_SINCE]) {
      expect(Atomics.load(control, nodeWord(slot, word))).toBe(0);
    }
    // A new generation: the old node's attempts still in flight count nowhere when they end.
    expect(Atomics.load(control, nodeWord(slot, N_GEN))).toBe(gen + 1);
    plane.close();
  });

  it('applies nothing when a change fails: coded error, same epoch, same table', () => {
    const { plane } = setup();
    const before = plane.table();
    const attempts: [() => unknown, string, number][] = [
      [() => plane.addNode({ id: 'n1', address: '127.0.0.1:9' }), 'AlreadyAMember', 6],
      [() => plane.addNode({ id: 'x', address: 'nope' }), 'InvalidConfig', 3],
      [() => plane.removeNode('ghost'), 'NotAMember', 5],
      [() => plane.drainNode('n1', true), 'WrongLifecycle', 9],
      [() => plane.unassignSpace('s'), 'NoSuchAssignment', 5],
      // Four nodes in one pin: wider than the table's maxReplicationFactor (3) at publish.
      [
        () => plane.assignSpace({ spaceId: 's', primary: 'n1', replicas: ['n2', 'n3', 'n1x'] }),
        'InvalidConfig',
        3,
      ],
    ];
    for (const [fn, code, status] of attempts) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string })?.code, String(fn)).toBe(code);
      expect(adminStatus(err)).toBe(status);
    }
    expect(plane.table()).toEqual(before);
    // A repair refused by a node without ReplicaService: FAILED_PRECONDITION, not INTERNAL.
    expect(
      adminStatus(new ReplicaServiceMissingError('n1', '/engram.v1.ReplicaService/ListSpaces')),
    ).toBe(9);
  });

  it('RemoveNode below the replication factor is FAILED_PRECONDITION saying what force overrides', () => {
    const { plane } = setup(3, { replicationFactor: 3 });
    const epoch = plane.epoch;
    let err: unknown;
    try {
      plane.removeNode('n2');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'BelowReplicationFactor',
      field: 'id',
      value: 'n2',
      details: { remaining: 2, replicationFactor: 3 },
    });
    expect((err as Error).message).toContain('force');
    expect(adminStatus(err)).toBe(grpc.status.FAILED_PRECONDITION);
    expect(plane.epoch).toBe(epoch);
    expect(plane.removeNode('n2', true)).toBe(epoch + 1);
    expect(plane.table().nodes.map((n) => n.id)).toEqual(['n1', 'n3']);
  });

  it('a publish refused by the table capacity leaves the previous states and epoch', () => {
    const { plane, stateOf } = setup(3);
    plane.addNode({ id: 'n4', address: '127.0.0.1:7004' });
    plane.drainNode('n4', false);
    const epoch = plane.epoch;
    const err = (() => {
      try {
        plane.assignSpace({ spaceId: 's', primary: 'n1', replicas: ['n2', 'n3', 'n4'] });
      } catch (e) {
        return e as { code?: string };
      }
      return undefined;
    })();
    expect(err?.code).toBe('CapacityExceeded');
    expect(plane.epoch).toBe(epoch);
    expect(plane.table().assignments).toEqual([]);
    expect(stateOf(3)).toBe('draining');
  });
});

describe('ControlPlane with data movement (fake time)', () => {
  const moving = { router: { ...CONFIG_DEFAULTS.router, replicateWrites: true } };

  it('a node added joins: placed for writes only until its transition completes', () => {
    const changes: string[][] = [];
    const { plane, reader } = setup(3, moving);
    plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'b' });
    reader.refresh();
    expect(plane.table().nodes.find((n) => n.id === 'n4')?.lifecycle).toBe('joining');
    expect(reader.nodeRole(reader.nodeIndex('n4'))).toBe('joining');
    expect(reader.pending).toBe(true);
    // No current placement holds it; some future ones do.
    let future = 0;
    for (let i = 0; i < 200; i++) {
      const p = reader.lookup(`space-${i}`);
      expect([p.primary.id, ...p.replicas.map((r) => r.id)]).not.toContain('n4');
      const f = reader.lookupFuture(`space-${i}`);
      if ([f.primary.id, ...f.replicas.map((r) => r.id)].includes('n4')) future++;
    }
    expect(future).toBeGreaterThan(0);
    plane.completeTransition('join', 'n4');
    reader.refresh();
    expect(plane.table().nodes.find((n) => n.id === 'n4')?.lifecycle).toBe('active');
    expect(reader.pending).toBe(false);
    expect(changes).toEqual([]);
  });

  it('a drained node leaves, then stays drained out of the placement; undrain makes it join', () => {
    const { plane, reader } = setup(4, moving);
    plane.drainNode('n2', false);
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.lifecycle).toBe('leaving');
    reader.refresh();
    expect(reader.nodeRole(reader.nodeIndex('n2'))).toBe('leaving');
    plane.completeTransition('leave', 'n2');
    reader.refresh();
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.lifecycle).toBe('drained');
    expect(reader.nodeIndex('n2')).toBe(-1);
    plane.drainNode('n2', true);
    expect(plane.table().nodes.find((n) => n.id === 'n2')?.lifecycle).toBe('joining');
  });

  it('a pin moves: the ring placement serves until the move completes', () => {
    const { plane, reader } = setup(3, moving);
    plane.assignSpace({ spaceId: 'pinned', primary: 'n3', replicas: [] });
    expect(plane.table().assignments).toEqual([]);
    expect(plane.table().pendingAssignments).toEqual([
      { spaceId: 'pinned', primary: 'n3', replicas: [] },
    ]);
    reader.refresh();
    expect(reader.lookupFuture('pinned').primary.id).toBe('n3');
    plane.completeTransition('pin', 'pinned');
    reader.refresh();
    expect(reader.lookup('pinned').primary.id).toBe('n3');
    expect(plane.table().assignments).toEqual([{ spaceId: 'pinned', primary: 'n3', replicas: [] }]);
  });

  it('refuses a second node with an address another member has: ALREADY_EXISTS naming the owner', () => {
    const { plane } = setup(3, moving);
    const epoch = plane.epoch;
    let err: unknown;
    try {
      plane.addNode({ id: 'n9', address: '127.000.000.001:07001' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'AddressInUse',
      field: 'node.address',
      details: { owner: 'n1' },
    });
    expect((err as Error).message).toContain('n1');
    expect(adminStatus(err)).toBe(grpc.status.ALREADY_EXISTS);
    expect(plane.epoch).toBe(epoch);
    expect(plane.table().nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
  });

  it('in a panic (too few nodes up to believe), publishes every node up', async () => {
    const { time, probe, plane, stateOf, control } = setup(3, {
      health: { ...ROUND_HEALTH, unhealthyThreshold: 1, healthyThreshold: 1, panicThreshold: 0.5 },
    });
    probe.healthy.set('n1', false);
    probe.healthy.set('n2', false);
    plane.start();
    await time.advance(0);
    // 1 of 3 up: below 0.5, so the verdicts are not believed.
    expect([0, 1, 2].map(stateOf)).toEqual(['up', 'up', 'up']);
    expect(plane.table().nodes.map((n) => n.state)).toEqual(['down', 'down', 'up']);
    expect(Atomics.load(control, C_PARTITIONED)).toBe(0);
    probe.healthy.set('n1', true);
    await time.advance(1000);
    // 2 of 3 up: the verdicts hold again.
    expect(stateOf(1)).toBe('down');
    plane.close();
  });
});

describe('RestartPolicy', () => {
  it('backs off 100, 200, 400 ms… up to 5 s, and gives up after 10 restarts in a minute', () => {
    const p = new RestartPolicy();
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const v = p.onExit(i);
      expect(v.restart).toBe(true);
      if (v.restart) delays.push(v.delayMs);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
    expect(p.onExit(10)).toEqual({ restart: false, recent: 10 });
    // A minute after the first restarts they no longer count.
    const later = p.onExit(RESTART_POLICY_DEFAULTS.windowMs + 5);
    expect(later).toMatchObject({ restart: true });
  });
});
