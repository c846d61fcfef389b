import type { MemoryNode } from '@engram/memory-node';
import { RetryBudget } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type CallContext,
  LagTable,
  type NodeState,
  RECALL_MERGE,
  ReplicaServiceMissingError,
  type Replicated,
  type ReplicateOptions,
  Router,
  type RouterInit,
  type RoutingDecision,
  requiredReplicas,
} from '../src/index.js';
import {
  infoOf,
  invalidArgument,
  refusedAddress,
  ringOf,
  settling,
  startNodes,
  unavailable,
} from './helpers.js';

const NODES: NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
  { id: 'c', address: '127.0.0.1:1003' },
];
const TABLE = ringOf(NODES, [{ spaceId: 's', primary: 'a', replicas: ['b', 'c'] }]);
const routers: Router[] = [];

function router(init: Partial<RouterInit> = {}): Router {
  const r = new Router({
    table: TABLE,
    budget: new RetryBudget({ ratio: 1, minRetriesPerSecond: 1000 }),
    options: { retryBaseDelayMs: 1, retryMaxDelayMs: 2, ...init.options },
    ...init,
  });
  routers.push(r);
  return r;
}

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

/** Calls that settle when the test says, per node. */
class Gate {
  readonly waiting = new Map<string, { resolve(v: string): void; reject(e: unknown): void }>();
  readonly calls: string[] = [];
  call = (ctx: CallContext): Promise<string> => {
    this.calls.push(ctx.node.id);
    return new Promise((resolve, reject) => this.waiting.set(ctx.node.id, { resolve, reject }));
  };
  ok(id: string): void {
    this.waiting.get(id)!.resolve(`from ${id}`);
  }
  fail(id: string, error: unknown = unavailable()): void {
    this.waiting.get(id)!.reject(error);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('consistency levels', () => {
  it('need 1, a majority, or every replica', () => {
    expect([1, 2, 3, 4, 5].map((n) => requiredReplicas('quorum', n))).toEqual([1, 2, 2, 3, 3]);
    expect(requiredReplicas('one', 3)).toBe(1);
    expect(requiredReplicas('all', 3)).toBe(3);
  });
});

/** Both ways to run a replicated write: `replicate`'s promises, `replicateSettled`'s settles. */
const REPLICATE_MODES = ['replicate', 'replicateSettled'] as const;
let replicateMode: (typeof REPLICATE_MODES)[number] = 'replicate';

/** `router.replicate(decision, call, options)` in the mode under test. */
function replicate<T>(
  r: Router,
  decision: RoutingDecision,
  call: (ctx: CallContext) => Promise<T>,
  options: ReplicateOptions = {},
): Promise<Replicated<T>> {
  if (replicateMode === 'replicate') return r.replicate(decision, call, options);
  return r.replicateSettled<T>(decision, settling(call), options);
}

describe.each(REPLICATE_MODES)('replicated writes (Dynamo coordinator), through %s', (m) => {
  beforeEach(() => {
    replicateMode = m;
  });

  it('goes to every replica and answers after a quorum, with the first acknowledged reply in placement order', async () => {
    const r = router();
    const d = r.routeStore('s');
    expect(d.strategy).toBe('Replicated');
    const gate = new Gate();
    let answered = false;
    const p = replicate(r, d, gate.call).then((v) => {
      answered = true;
      return v;
    });
    await tick();
    expect(gate.calls.sort()).toEqual(['a', 'b', 'c']);
    gate.ok('c');
    await tick();
    expect(answered).toBe(false);
    gate.ok('b');
    const { value, routing, settled } = await p;
    // b is before c in placement order; a (the primary) had not answered: a fall-back.
    expect(value).toBe('from b');
    expect(routing).toMatchObject({
      servedBy: 'b',
      fallback: true,
      strategy: 'Replicated',
      acknowledged: 2,
      asked: 3,
      // a is still running, not failed: not degraded.
      degraded: false,
    });
    // a still runs: the lag table says it lacks the write until it lands.
    const bucket = LagTable.bucketOf('s');
    expect(r.lag.isBehind(r.slotOf(NODES[0]!), bucket)).toBe(true);
    gate.ok('a');
    await settled;
    expect(r.lag.isBehind(r.slotOf(NODES[0]!), bucket)).toBe(false);
    expect(r.lag.any).toBe(false);
  });

  it('fails with InsufficientReplicas once W cannot be met, and hints every replica that missed it', async () => {
    const r = router();
    const gate = new Gate();
    const p = replicate(r, r.routeStore('s'), gate.call, { isRetryable: () => false });
    await tick();
    gate.fail('a', unavailableNoRetry());
    gate.fail('b', unavailableNoRetry());
    const error = await p.catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'InsufficientReplicas',
      required: 2,
      acknowledged: 0,
      asked: 3,
    });
    expect((error as Error).message).toMatch(/may exist/);
    gate.ok('c');
    await tick();
    await tick();
    expect(Object.fromEntries(r.hints.pending())).toEqual({ a: 1, b: 1 });
  });

  it('W = all waits for every replica; W = one answers at the first', async () => {
    const all = router({ options: { writeConsistency: 'all' } });
    const g1 = new Gate();
    let done = false;
    const p1 = replicate(all, all.routeStore('s'), g1.call).then(() => {
      done = true;
    });
    await tick();
    g1.ok('a');
    g1.ok('b');
    await tick();
    expect(done).toBe(false);
    g1.ok('c');
    await p1;
    const one = router({ options: { writeConsistency: 'one' } });
    const g2 = new Gate();
    const p2 = replicate(one, one.routeStore('s'), g2.call);
    await tick();
    g2.ok('c');
    expect((await p2).routing).toMatchObject({ servedBy: 'c', acknowledged: 1 });
    g2.ok('a');
    g2.ok('b');
  });

  it('passes a node s answer about the request (INVALID_ARGUMENT) back, hinting nobody', async () => {
    const r = router();
    const gate = new Gate();
    const p = replicate(r, r.routeStore('s'), gate.call).catch((e: unknown) => e);
    await tick();
    for (const id of ['a', 'b', 'c']) gate.fail(id, invalidArgument());
    expect(await p).toMatchObject({ code: 3 });
    await tick();
    expect(r.hints.pending().size).toBe(0);
  });

  it('replays a hint once the node takes writes again, and clears its lag', async () => {
    const r = router();
    const bucket = LagTable.bucketOf('s');
    let aDown = true;
    const applied: string[] = [];
    const { settled } = await replicate(r, r.routeStore('s'), async (ctx) => {
      if (ctx.node.id === 'a' && aDown) throw unavailable();
      applied.push(ctx.node.id);
      return ctx.node.id;
    });
    await settled;
    expect(r.hints.pending().get('a')).toBe(1);
    expect(r.lag.isBehind(r.slotOf(NODES[0]!), bucket)).toBe(true);
    // Reads prefer b while a lacks the write.
    const d = r.routeRecall('s');
    expect(d.primary.id).toBe('b');
    aDown = false;
    expect(await r.replayHints()).toBe(1);
    expect(applied.filter((id) => id === 'a')).toHaveLength(1);
    expect(r.hints.pending().size).toBe(0);
    expect(r.lag.isBehind(r.slotOf(NODES[0]!), bucket)).toBe(false);
    expect(r.routeRecall('s').primary.id).toBe('a');
  });
});

/** Calls that settle when the test says, several per node, oldest first. */
class Queue {
  readonly waiting = new Map<string, { resolve(v: string): void; reject(e: unknown): void }[]>();
  call = (ctx: CallContext): Promise<string> =>
    new Promise((resolve, reject) => {
      const q = this.waiting.get(ctx.node.id) ?? [];
      q.push({ resolve, reject });
      this.waiting.set(ctx.node.id, q);
    });
  /** Settles call `index` (in arrival order) on node `id`. */
  ok(id: string, index = 0): void {
    this.waiting.get(id)![index]!.resolve(`from ${id}`);
  }
  fail(id: string, index: number, error: unknown): void {
    this.waiting.get(id)![index]!.reject(error);
  }
}

describe.each(REPLICATE_MODES)('writes trailing their answer, through %s', (m) => {
  beforeEach(() => {
    replicateMode = m;
  });

  /** Starts a write on `r`; `answered()` tells whether its client has its answer yet. */
  function write(r: Router, q: Queue, options: ReplicateOptions = {}) {
    let answered = false;
    const p = replicate(r, r.routeStore('s'), q.call, options).then((v) => {
      answered = true;
      return v;
    });
    return { p, answered: () => answered };
  }

  it('counts the replicas still running after the answer, per node, and never holds an answer for them', async () => {
    const r = router({ options: { writeConsistency: 'one' } });
    const q = new Queue();
    const w = [write(r, q), write(r, q), write(r, q)];
    await tick();
    for (let i = 0; i < 3; i++) q.ok('a', i);
    await tick();
    // Every write answered at a's acknowledgement, however many b and c still run.
    expect(w.map((x) => x.answered())).toEqual([true, true, true]);
    expect([r.trailing.of('a'), r.trailing.of('b'), r.trailing.of('c')]).toEqual([0, 3, 3]);
    q.ok('b', 0);
    q.fail('c', 0, unavailableNoRetry());
    await tick();
    expect([r.trailing.of('b'), r.trailing.of('c'), r.trailing.total]).toEqual([2, 2, 4]);
    for (const i of [1, 2]) {
      q.ok('b', i);
      q.ok('c', i);
    }
    await Promise.all(w.map(async (x) => (await x.p).settled));
    expect(r.trailing.total).toBe(0);
    expect(Object.fromEntries(r.hints.pending())).toEqual({ c: 1 });
  });

  it('counts the replicas of a refused write that are still running, until they end', async () => {
    const r = router();
    const q = new Queue();
    const p = replicate(r, r.routeStore('s'), q.call, { isRetryable: () => false });
    await tick();
    q.fail('a', 0, unavailableNoRetry());
    q.fail('b', 0, unavailableNoRetry());
    await expect(p).rejects.toMatchObject({ code: 'InsufficientReplicas' });
    expect(r.trailing.of('c')).toBe(1);
    q.ok('c');
    await tick();
    expect(r.trailing.total).toBe(0);
  });
});

describe('quorum reads', () => {
  it('asks a majority, merges by id keeping the newest version, and asks for a repair when they differ', async () => {
    const divergent: string[] = [];
    const r = router({ options: { readConsistency: 'quorum' } });
    const mem = (id: string, version: number, score: number) => ({
      memory: { id, content: id, embedding: [], confidence: 1, createdAtMs: 1, version },
      score,
    });
    const answers: Record<string, unknown> = {
      a: { memories: [mem('m1', 5, 0.9)], routing: null },
      b: { memories: [mem('m1', 7, 0.9), mem('m2', 1, 0.5)], routing: null },
    };
    const asked: string[] = [];
    const { value, routing } = await r.readQuorum(
      r.routeRecall('s'),
      async (ctx) => {
        asked.push(ctx.node.id);
        return answers[ctx.node.id] as never;
      },
      RECALL_MERGE,
      { onDivergence: (spaceId) => divergent.push(spaceId) },
    );
    expect(asked.sort()).toEqual(['a', 'b']);
    expect(value.memories.map((m) => [m.memory?.id, m.memory?.version])).toEqual([
      ['m1', 7],
      ['m2', 1],
    ]);
    expect(routing).toMatchObject({ acknowledged: 2, asked: 3 });
    expect(divergent).toEqual(['s']);
  });

  it('replaces a failed replica with the next one, and fails when no majority answers', async () => {
    const r = router({ options: { readConsistency: 'quorum' } });
    const ok = await r.readQuorum(
      r.routeRecall('s'),
      async (ctx) => {
        if (ctx.node.id === 'a') throw unavailable();
        return { memories: [], routing: null };
      },
      RECALL_MERGE,
    );
    expect(ok.routing.servedBy.split(',').sort()).toEqual(['b', 'c']);
    const failed = await r
      .readQuorum(
        r.routeRecall('s'),
        async (ctx) => {
          if (ctx.node.id !== 'c') throw unavailable();
          return { memories: [], routing: null };
        },
        RECALL_MERGE,
      )
      .catch((e: unknown) => e);
    // Refused as soon as two of three failed: the third cannot make a majority alone.
    expect(failed).toMatchObject({ code: 'InsufficientReplicas', required: 2, asked: 3 });
  });
});

describe('partitions and node states', () => {
  it('serves reads from a reachable replica while partitioned (degraded), NoLocalData when none is up', async () => {
    const states = new Map<string, NodeState>([
      ['a', 'down'],
      ['b', 'down'],
    ]);
    const r = router({
      partition: { isPartitioned: () => true },
      nodeStates: { stateOf: (n) => states.get(n.id) ?? 'up' },
    });
    const d = r.routeRecall('s');
    expect(d.primary.id).toBe('c');
    expect(d.degraded).toBe(true);
    const { routing } = await r.execute(d, async () => 'x');
    expect(routing).toMatchObject({ servedBy: 'c', degraded: true, fallback: true });
    states.set('c', 'down');
    expect(() => r.routeRecall('s')).toThrow(expect.objectContaining({ code: 'NoLocalData' }));
  });
});

describe('against real memory nodes', () => {
  let nodes: MemoryNode[] = [];
  beforeAll(async () => {
    nodes = await startNodes(3, 'r');
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
  });

  it('stores on every replica with one id and one version, so any replica recalls it', async () => {
    const infos = nodes.map(infoOf);
    const r = router({ table: ringOf(infos) });
    const stored = await r.store({ spaceId: 'everywhere', memory: { content: 'kept thrice' } });
    expect(stored.routing).toMatchObject({ strategy: 'Replicated', asked: 3 });
    await new Promise((res) => setTimeout(res, 0));
    for (const info of infos) {
      const one = router({ table: ringOf([info]) });
      const recalled = await one.recall({ spaceId: 'everywhere', cue: { text: 'kept' } });
      expect(recalled.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
      expect(recalled.memories[0]?.memory?.version).toBeGreaterThan(0);
    }
  });

  it('keeps writing through a dead replica, and repairSpace brings a replica that missed writes up to date', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const infos = nodes.map(infoOf);
    const table = ringOf(
      [...infos, dead],
      [{ spaceId: 'repaired', primary: infos[0]!.id, replicas: [infos[1]!.id, dead.id] }],
    );
    const r = router({ table });
    const stored = await r.store({ spaceId: 'repaired', memory: { content: 'one' } });
    expect(stored.routing).toMatchObject({ acknowledged: 2, asked: 3 });
    // The dead replica's write fails after the answer (its retries refused): then its hint.
    await until(() => r.hints.pending().get('dead') === 1);
    // A replica of the same space on another ring, that never got the write.
    const wider = router({
      table: ringOf(infos, [
        { spaceId: 'repaired', primary: infos[0]!.id, replicas: [infos[1]!.id, infos[2]!.id] },
      ]),
    });
    const report = await wider.repairSpace('repaired');
    expect(report).toMatchObject({ differed: true, applied: 1 });
    const third = router({ table: ringOf([infos[2]!]) });
    const recalled = await third.recall({ spaceId: 'repaired', cue: { text: 'one' } });
    expect(recalled.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
    expect(await wider.repairSpace('repaired')).toMatchObject({ differed: false, applied: 0 });
  });

  it('repairSpace counts every entry it gave every replica (the replicas are repaired at once)', async () => {
    const infos = nodes.map(infoOf);
    // Written to one node alone: the two others lack both memories.
    const alone = router({ table: ringOf([infos[1]!]) });
    for (const content of ['x', 'y'])
      await alone.store({ spaceId: 'counted', memory: { content } });
    const r = router({ table: ringOf(infos) });
    expect(await r.repairSpace('counted')).toMatchObject({ differed: true, applied: 4 });
    expect(await r.repairSpace('counted')).toMatchObject({ differed: false, applied: 0 });
  });

  it('refuses to repair with a node that does not serve ReplicaService, naming it', async () => {
    // An older node: a gRPC server without engram.v1.ReplicaService answers UNIMPLEMENTED.
    const old = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      old.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    try {
      const infos = [infoOf(nodes[0]!), { id: 'old', address: `127.0.0.1:${port}` }];
      const r = router({
        table: ringOf(infos, [{ spaceId: 'old/s', primary: infos[0]!.id, replicas: ['old'] }]),
      });
      const failed = await r.repairSpace('old/s').catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(ReplicaServiceMissingError);
      expect(failed).toMatchObject({
        code: 'ReplicaServiceMissing',
        nodeId: 'old',
        method: '/engram.v1.ReplicaService/ListSpaces',
      });
    } finally {
      old.forceShutdown();
    }
  });
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

function unavailableNoRetry(): Error & { code: number } {
  return unavailable('down');
}
