import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { allocateClusterTokens, allocateTokens, TableReader, TableWriter } from '@engram/ring';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { adminStatus } from '../src/internal/admin.js';
import { CONFIG_DEFAULTS, type RouterNodeConfig } from '../src/internal/config.js';
import { ControlPlane } from '../src/internal/control-plane.js';
import { intentOf, type PlacementIntent } from '../src/internal/etcd-keys.js';
import { controlWords, createStateBuffer } from '../src/internal/layout.js';
import { Health, Membership } from '../src/internal/membership.js';
import {
  AbortedError,
  type PlacementStore,
  StoreUnavailableError,
} from '../src/internal/placement-store.js';
import { TablePublisher } from '../src/internal/table-publisher.js';
import { FakeTime } from './fake-time.js';
import { nodeConfigs, ROUND_HEALTH } from './node-configs.js';

// The control plane of a router in etcd mode, on fake time, against an in-memory model of the
// store: a revision counter and the intent at the latest one, written only when a change's
// base is that revision (etcd's conditioned transaction).

class ModelStore implements PlacementStore {
  revision: number;
  intent: PlacementIntent;
  unavailable = false;
  commits = 0;
  /** Resolves commits only when released (a write in flight), when set. */
  hold: Promise<void> | null = null;

  constructor(intent: PlacementIntent, revision: number) {
    this.intent = intent;
    this.revision = revision;
  }

  async commit(
    _before: PlacementIntent,
    after: PlacementIntent,
    baseRevision: number,
  ): Promise<number> {
    if (this.hold !== null) await this.hold;
    if (this.unavailable) throw new StoreUnavailableError('transaction', new Error('refused'));
    if (baseRevision !== this.revision) throw new AbortedError(baseRevision, this.revision);
    this.commits++;
    this.revision += 3; // other keys (registrations) move etcd's revision too
    this.intent = after;
    return this.revision;
  }

  /** Another router's change, written straight to the store. */
  writeElsewhere(change: (m: Membership) => Membership, from: Membership): PlacementIntent {
    this.revision += 1;
    this.intent = intentOf(change(from));
    return this.intent;
  }
}

const LIMITS = { maxNodes: 8, maxSlots: 10 };

function setup(tokensPerNode = 0) {
  const time = new FakeTime();
  const state = createStateBuffer(1, 16);
  const writer = new TableWriter({ maxNodes: 8, maxTokens: 8 * 16, maxReplicationFactor: 3 });
  const breakers = new BreakerTable({
    capacity: 16,
    trip: new ConsecutiveFailures(2),
    clock: time.clock,
  });
  const config: RouterNodeConfig = {
    ...CONFIG_DEFAULTS,
    nodes: nodeConfigs(3),
    vnodesPerNode: 16,
    health: ROUND_HEALTH,
    router: { ...CONFIG_DEFAULTS.router, replicateWrites: false },
    etcd: {
      endpoints: ['127.0.0.1:2379'],
      prefix: '/t/',
      routerId: 'r1',
      ca: null,
      cert: null,
      key: null,
      leaseTtlMs: 10_000,
      requestTimeoutMs: 2000,
      tokensPerNode,
    },
  };
  let first = Membership.create(config.nodes, [], null, LIMITS);
  if (tokensPerNode > 0) {
    // As seeded: each node with the allocator's tokens.
    const seeded = allocateClusterTokens(config.nodes, { tokensPerNode, replicationFactor: 3 });
    first = first.adopt(
      intentOf(first).nodes.map((n, i) => ({ ...n, tokens: seeded[i]!.tokens })),
      [],
      [],
      'seed',
    ).next;
  }
  const store = new ModelStore(intentOf(first), 10);
  const plane = new ControlPlane({
    config,
    limits: LIMITS,
    restored: first,
    revision: 10,
    store,
    publisher: new TablePublisher(writer, controlWords(state), config),
    breakers,
    probe: { check: async () => true, forget: () => undefined },
    timers: time,
    log: pino({ level: 'silent' }),
  });
  return { time, plane, store, reader: new TableReader(writer.buffer), breakers, writer };
}

async function rejection(p: unknown): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

describe('ControlPlane with a shared placement store (etcd mode)', () => {
  it('applies an admin change once written, at the revision the store gave it', async () => {
    const { plane, store, reader } = setup();
    const epoch = await plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'a' });
    expect(store.commits).toBe(1);
    expect(plane.revision).toBe(13);
    expect(plane.table().revision).toBe(13);
    expect(store.intent.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
    reader.refresh();
    expect(reader.epoch).toBe(epoch);
    expect(reader.nodes.map((n) => n.id)).toContain('n4');
  });

  it('gives a node added in token mode tokens from the allocator, written with it', async () => {
    const { plane, store, reader } = setup(16);
    reader.refresh();
    expect(reader.vnodesPerNode).toBe(0); // token mode: the ring is the stored tokens
    await plane.addNode({ id: 'n4', address: '127.0.0.1:7004', zone: 'b' });
    const written = store.intent.nodes.find((n) => n.id === 'n4')!;
    expect(written.tokens).toHaveLength(16);
    const others = new Set(
      store.intent.nodes.filter((n) => n.id !== 'n4').flatMap((n) => n.tokens!),
    );
    expect(written.tokens!.some((t) => others.has(t))).toBe(false);
    // What the allocator gives, from the nodes as they were: the same on every router.
    expect(written.tokens).toEqual(
      allocateTokens(
        store.intent.nodes
          .filter((n) => n.id !== 'n4')
          .map((n) => ({ id: n.id, zone: n.zone, tokens: n.tokens! })),
        { id: 'n4', zone: 'b' },
        { tokensPerNode: 16, replicationFactor: 3 },
      ),
    );
    reader.refresh();
    expect(reader.nodes.map((n) => n.id)).toContain('n4');
    expect(plane.table().vnodesPerNode).toBe(16);
  });

  it('applies nothing when another router changed the placement first: ABORTED', async () => {
    const { plane, store, reader } = setup();
    reader.refresh();
    const epochBefore = reader.epoch;
    store.writeElsewhere((m) => m.drain('n1').next, plane.membership);
    const err = await rejection(plane.assignSpace({ spaceId: 's', primary: 'n2', replicas: [] }));
    expect(err).toBeInstanceOf(AbortedError);
    expect(adminStatus(err)).toBe(10); // grpc ABORTED
    expect(plane.revision).toBe(10);
    expect(plane.membership.assignments).toEqual([]);
    reader.refresh();
    expect(reader.epoch).toBe(epochBefore);
  });

  it('refuses with UNAVAILABLE, nothing applied, when the store cannot be reached', async () => {
    const { plane, store } = setup();
    store.unavailable = true;
    const err = await rejection(plane.drainNode('n2', false));
    expect(err.code).toBe('Unavailable');
    expect(adminStatus(err)).toBe(14); // grpc UNAVAILABLE
    expect(plane.membership.get('n2')!.lifecycle).toBe('active');
  });

  it('checks a change against ifRevision, and refuses one without etcd mode', async () => {
    const { plane, store } = setup();
    const stale = await rejection(plane.addNode({ id: 'n5', address: '127.0.0.1:7005' }, 9));
    expect(stale).toBeInstanceOf(AbortedError);
    expect(stale).toMatchObject({ code: 'Aborted', field: 'ifRevision', value: 9 });
    expect(store.commits).toBe(0);
    await plane.addNode({ id: 'n5', address: '127.0.0.1:7005', zone: '' }, 10);
    expect(plane.revision).toBe(13);
    const bad = await rejection(Promise.resolve().then(() => plane.removeNode('n5', false, -1)));
    expect(bad.code).toBe('InvalidConfig');
  });

  it("runs one router's changes one after another, each checked against the one before", async () => {
    const { plane, store } = setup();
    let release!: () => void;
    store.hold = new Promise((r) => {
      release = r;
    });
    const a = plane.assignSpace({ spaceId: 'a', primary: 'n1', replicas: [] });
    const b = plane.assignSpace({ spaceId: 'b', primary: 'n2', replicas: [] });
    store.hold = null;
    release();
    await Promise.all([a, b]);
    expect(store.commits).toBe(2);
    expect(plane.membership.assignments.map((x) => x.spaceId).sort()).toEqual(['a', 'b']);
  });

  it('adopts what another router wrote, keeping slots and health verdicts; old revisions are ignored', async () => {
    const { plane, store, time } = setup();
    void plane.start();
    await time.advance(1000);
    await time.advance(1000);
    expect(plane.membership.get('n2')!.health).toBe(Health.Up);
    const slot = plane.membership.get('n2')!.slot;
    const intent = store.writeElsewhere(
      (m) => m.assign({ spaceId: 'pinned', primary: 'n2', replicas: ['n3'] }).next,
      plane.membership,
    );
    plane.adopt(intent, store.revision);
    expect(plane.revision).toBe(11);
    expect(plane.membership.assignments.map((a) => a.spaceId)).toEqual(['pinned']);
    expect(plane.membership.get('n2')).toMatchObject({ slot, health: Health.Up });
    const epoch = plane.epoch;
    plane.adopt({ ...intent, assignments: [] }, 11);
    plane.adopt({ ...intent, assignments: [] }, 5);
    expect(plane.epoch).toBe(epoch);
    expect(plane.membership.assignments).toHaveLength(1);
    plane.close();
  });
});
