import { writeFileSync } from 'node:fs';
import type { MemoryServiceClient } from '@engram/proto';
import { buildRing } from '@engram/ring';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, type NodeConfig } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  idsOn,
  memoryClient,
  type RouterProcess,
  spawnRouter,
  tempDir,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/**
 * Jepsen-style: stores and recalls run concurrently through the router while a schedule of
 * faults plays (kill -9 and restart of every node in turn, a node frozen with SIGSTOP, the
 * router killed and restarted on its data directory, a node added, a node drained). With RF 3
 * and the default consistency (W = quorum, R = one):
 *  1. no acknowledged Store is missing from a recall through the router, at any moment at
 *     most one node is down (a recall starting after the acknowledgement);
 *  2. once hints and streams settle, every acknowledged memory is on every replica of its
 *     space.
 */

const SPACES = Array.from({ length: 32 }, (_, i) => `jepsen/${i}`);
/**
 * Writes per space stop here: a recall returns at most 1000 memories (memory-node's largest
 * `limit`), so past that a recall could not show every acknowledged memory and invariant 1
 * could not be checked. The margin covers the writes in flight when a space fills.
 */
const MAX_ACKED_PER_SPACE = 900;
/**
 * The frozen node's breaker opens on attempt timeouts while its health stays up, and writes
 * keep being hinted until the breaker lets a probe through: a phase settles only after
 * `breakerTimeoutMs`, which is sized well inside the 30 s a phase may take to settle (the
 * default 30 s would leave no margin at all).
 */
const SETTINGS = {
  deadlineMs: 2000,
  attemptTimeoutMs: 500,
  retryBaseDelayMs: 20,
  breakerTimeoutMs: 3000,
};

interface History {
  /** Memory ids acknowledged per space, in order. */
  readonly acked: Map<string, string[]>;
  checks: number;
  /** Recalls during "at most one node down" that missed an acknowledged memory. */
  readonly violations: string[];
  failedCalls: number;
}

describe('Jepsen-style: data survives faults', () => {
  // A schedule of faults with settling in between: ~30 s alone; the timeout is a hang detector.
  it('never loses an acknowledged store, and replicas converge', { timeout: 240_000 }, async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    const dataDir = tempDir(cleanup);
    let nodes: NodeConfig[] = [...c.configs];
    const config = () =>
      testConfig({ nodes, workers: 1, dataDir, router: SETTINGS, vnodesPerNode: 64 });
    let router: RouterProcess = await spawnRouter(cleanup, config());
    const file = router.configFile;
    let client: MemoryServiceClient = memoryClient(cleanup, router.address);
    const history: History = { acked: new Map(), checks: 0, violations: [], failedCalls: 0 };
    for (const s of SPACES) history.acked.set(s, []);
    /** Nodes down now (killed or frozen): invariant 1 is checked only while ≤ 1. */
    const down = new Set<string>();
    let routerDown = false;
    let running = true;
    let seq = 0;

    const writer = async () => {
      while (running) {
        const s = SPACES[seq++ % SPACES.length]!;
        if (history.acked.get(s)!.length >= MAX_ACKED_PER_SPACE) {
          if (seq % SPACES.length === 0) await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        try {
          const r = await call(
            client,
            'store',
            { spaceId: s, memory: { content: `w${seq}` } },
            3000,
          );
          history.acked.get(s)!.push(r.memoryId);
        } catch {
          history.failedCalls++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const reader = async () => {
      let k = 0;
      while (running) {
        const s = SPACES[k++ % SPACES.length]!;
        const expected = [...history.acked.get(s)!];
        const checkable = down.size <= 1 && !routerDown;
        try {
          const r = await call(
            client,
            'recall',
            { spaceId: s, cue: { text: '' }, limit: 1000 },
            3000,
          );
          if (!checkable || down.size > 1) continue;
          history.checks++;
          const got = new Set(r.memories.map((m) => m.memory?.id));
          const missing = expected.filter((id) => !got.has(id));
          if (missing.length > 0) {
            history.violations.push(
              `${s}: ${missing.length} of ${expected.length} missing, served by ${r.routing?.servedBy} (down: ${[...down]})`,
            );
          }
        } catch {
          history.failedCalls++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const loops = [writer(), writer(), reader()];
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const adm = () => adminClient(cleanup, router.adminPort);
    const nodeState = async (id: string) =>
      (await getTable(adm())).nodes.find((n) => n.id === id) as
        | { state: string; lifecycle: string; hintsPending: number }
        | undefined;
    const settled = async (id: string) =>
      eventually(async () => {
        const n = await nodeState(id);
        return n?.state === 'up' && Number(n.hintsPending) === 0;
      }, 30_000);

    await pause(500);
    // kill -9 and restart of each node in turn.
    for (const id of ['n1', 'n2', 'n3']) {
      down.add(id);
      await c.kill(id);
      await pause(800);
      await c.restart(id);
      down.delete(id);
      await settled(id);
    }
    // A frozen node: connected, silent.
    down.add('n1');
    c.pause('n1');
    await pause(1200);
    c.resume('n1');
    down.delete('n1');
    await settled('n1');
    // The router itself killed and restarted on its data directory.
    routerDown = true;
    router.child.kill('SIGKILL');
    await router.exited;
    router = await spawnRouter(cleanup, config(), [], file);
    client = memoryClient(cleanup, router.address);
    routerDown = false;
    await pause(500);
    // A node added (file + SIGHUP: the file keeps it across restarts), streamed to.
    const n4 = await c.add('n4', 'b');
    nodes = [...nodes, n4.config];
    writeFileSync(file, JSON.stringify(config()));
    router.child.kill('SIGHUP');
    await eventually(async () => (await nodeState('n4'))?.lifecycle === 'active', 30_000);
    // A node drained: its spaces handed over before it leaves the placement.
    await admin(adm(), 'DrainNode', { id: 'n2' });
    await eventually(async () => (await nodeState('n2'))?.lifecycle === 'drained', 30_000);
    await pause(500);
    running = false;
    await Promise.all(loops);

    const acked = [...history.acked.values()].reduce((n, ids) => n + ids.length, 0);
    expect(acked).toBeGreaterThan(100);
    expect(history.checks).toBeGreaterThan(50);
    expect(history.violations).toEqual([]);

    // 2. Once settled, every acknowledged memory is on every replica of its space.
    await eventually(async () => {
      const t = (await getTable(adm())) as unknown as {
        nodes: { hintsPending: number }[];
        streams: unknown[];
      };
      return t.streams.length === 0 && t.nodes.every((n) => Number(n.hintsPending) === 0);
    }, 30_000);
    const placed = nodes.filter((n) => n.id !== 'n2');
    const ring = buildRing({ nodes: placed, vnodesPerNode: 64 });
    for (const s of SPACES) {
      const p = ring.lookup(s);
      for (const replica of [p.primary, ...p.replicas]) {
        const held = await idsOn(cleanup, c.node(replica.id).config.address, s);
        const missing = history.acked.get(s)!.filter((id) => !held.has(id));
        expect(missing, `${s} on ${replica.id}`).toEqual([]);
      }
    }
  });
});
