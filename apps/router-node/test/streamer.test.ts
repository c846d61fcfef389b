import type { Memory, SpaceDigest, Tombstone } from '@engram/proto';
import { buildRing, type NodeInfo } from '@engram/ring';
import {
  type ReplicaAccess,
  ReplicaServiceMissingError,
  type ScanPage,
  type StreamProgress,
} from '@engram/router';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { Streamer, type StreamProgressStore, type StreamStatus } from '../src/internal/streamer.js';
import { TransitionStore } from '../src/internal/transition-store.js';
import { FakeTime } from './fake-time.js';

const NODES: NodeInfo[] = ['n1', 'n2', 'n3', 'n4'].map((id, i) => ({
  id,
  address: `127.0.0.1:${1000 + i}`,
}));
/** n4 joining a 3-node ring with RF 2: some spaces gain it as a replica or primary. */
const TABLE = buildRing({ nodes: NODES, replicationFactor: 2, joining: ['n4'] });
const SPACES = Array.from({ length: 40 }, (_, i) => `s${i}`);

/** Nodes in memory: space → id → memory. `old` nodes answer like nodes without ReplicaService. */
class FakeNodes implements ReplicaAccess {
  readonly data = new Map<string, Map<string, Map<string, Memory>>>();
  readonly old = new Set<string>();
  constructor() {
    for (const n of NODES) this.data.set(n.id, new Map());
  }
  space(node: string, spaceId: string): Map<string, Memory> {
    const spaces = this.data.get(node)!;
    let s = spaces.get(spaceId);
    if (s === undefined) {
      s = new Map();
      spaces.set(spaceId, s);
    }
    return s;
  }
  #check(node: NodeInfo, method: string): void {
    if (this.old.has(node.id)) {
      throw new ReplicaServiceMissingError(node.id, `/engram.v1.ReplicaService/${method}`);
    }
  }
  async digest(): Promise<SpaceDigest | undefined> {
    throw new Error('not used by streaming');
  }
  async listSpaces(node: NodeInfo) {
    this.#check(node, 'ListSpaces');
    const spaces = [...this.data.get(node.id)!.keys()].sort().map((spaceId) => ({
      spaceId,
      memories: this.space(node.id, spaceId).size,
      tombstones: 0,
      digest: '',
    }));
    return { spaces, more: false };
  }
  async scan(node: NodeInfo, spaceId: string, after: string, limit: number): Promise<ScanPage> {
    this.#check(node, 'ScanSpace');
    const ids = [...this.space(node.id, spaceId).keys()].filter((id) => id > after).sort();
    const page = ids.slice(0, limit).map((id) => this.space(node.id, spaceId).get(id)!);
    return { memories: page, tombstones: [], more: ids.length > limit };
  }
  async apply(
    node: NodeInfo,
    spaceId: string,
    memories: readonly Memory[],
    _tombstones: readonly Tombstone[],
  ): Promise<number> {
    this.#check(node, 'ApplyEntries');
    for (const m of memories) this.space(node.id, spaceId).set(m.id, m);
    return memories.length;
  }
}

function memory(id: string): Memory {
  return { id, content: id, embedding: [], confidence: 1, createdAtMs: 1, version: 1 };
}

function capturingLog(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const log = {
    info() {},
    warn() {},
    error(_fields: unknown, message: string) {
      errors.push(message);
    },
  } as unknown as Logger;
  return { log, errors };
}

/**
 * Progress kept as etcd keeps it: a save always writes (no transition has to be begun first),
 * a forget deletes what is there.
 */
class KeyValueProgress implements StreamProgressStore {
  readonly kv = new Map<string, StreamProgress>();
  forgets = 0;
  async progress(kind: string, subject: string): Promise<Map<string, StreamProgress>> {
    const base = `${kind}/${subject}/`;
    return new Map(
      [...this.kv].filter(([k]) => k.startsWith(base)).map(([k, v]) => [k.slice(base.length), v]),
    );
  }
  async save(kind: string, subject: string, spaceId: string, p: StreamProgress): Promise<void> {
    this.kv.set(`${kind}/${subject}/${spaceId}`, p);
  }
  async forget(kind: string, subject: string): Promise<void> {
    this.forgets++;
    for (const k of [...this.kv.keys()]) if (k.startsWith(`${kind}/${subject}/`)) this.kv.delete(k);
  }
}

interface SetupOptions {
  /** The progress store the streamer gets, from an etcd-like one. */
  readonly wrap?: (store: KeyValueProgress) => StreamProgressStore;
  /** Whether `complete` succeeds this time (false: it rejects, as an etcd commit may). */
  readonly completes?: () => boolean;
}

async function setup(nodes: FakeNodes, options: SetupOptions = {}) {
  // Every space's current owners hold 3 memories of it.
  for (const s of SPACES) {
    const p = TABLE.lookup(s);
    for (const n of [p.primary, ...p.replicas]) {
      for (let i = 0; i < 3; i++) nodes.space(n.id, s).set(`${s}-m${i}`, memory(`${s}-m${i}`));
    }
  }
  const time = new FakeTime();
  const { log, errors } = capturingLog();
  const completed: string[] = [];
  const store = await TransitionStore.open(null);
  const kv = new KeyValueProgress();
  const streamer = new Streamer({
    access: nodes,
    table: () => TABLE,
    isUp: () => true,
    listSpaces: async (list) => {
      const all = new Set<string>();
      for (const n of list) for (const d of (await nodes.listSpaces(n)).spaces) all.add(d.spaceId);
      return [...all].sort();
    },
    concurrency: 4,
    fenceMs: 2000,
    retryMs: 1000,
    store: options.wrap?.(kv) ?? store,
    timers: time,
    log,
    complete: async (kind, subject) => {
      if (options.completes?.() === false) throw new Error('etcd is unreachable');
      completed.push(`${kind} ${subject}`);
    },
  });
  return { time, errors, completed, streamer, kv };
}

/** Lets every promise chain not waiting on a timer finish (nodes here answer at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** Fake time forward, then what it set off runs to its next timer. */
async function advance(time: FakeTime, ms: number): Promise<void> {
  await time.advance(ms);
  await settle();
}

const gained = SPACES.filter((s) => {
  const future = TABLE.lookupFuture(s);
  return [future.primary, ...future.replicas].some((n) => n.id === 'n4');
});

describe('Streamer (fake time, nodes in memory)', () => {
  it('waits one fence, copies every space the joining node gains, then completes the join', async () => {
    const nodes = new FakeNodes();
    const { time, completed, streamer } = await setup(nodes);
    expect(gained.length).toBeGreaterThan(0);
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    await advance(time, 1999);
    expect(streamer.status()).toMatchObject([{ phase: 'waiting', spacesDone: 0 }]);
    await advance(time, 1);
    expect(completed).toEqual(['join n4']);
    expect(streamer.status()).toEqual([]);
    expect([...nodes.data.get('n4')!.keys()].sort()).toEqual([...gained].sort());
    for (const s of gained) expect(nodes.space('n4', s).size).toBe(3);
    expect(streamer.totals).toEqual({
      spaces: gained.length,
      entries: gained.length * 3,
      transitions: 1,
    });
  });

  it('refuses a source without ReplicaService with a clear error, and finishes once it is upgraded', async () => {
    const nodes = new FakeNodes();
    const { time, errors, completed, streamer } = await setup(nodes);
    nodes.old.add('n1');
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    await advance(time, 2000);
    const [status] = streamer.status() as [StreamStatus];
    expect(status.phase).toBe('listing');
    expect(status.lastError).toMatch(
      /n1 does not implement \/engram.v1.ReplicaService\/ListSpaces/,
    );
    expect(errors.some((e) => e.includes('upgrade it'))).toBe(true);
    expect(completed).toEqual([]);
    // Retried every retryMs, still refused: nothing half-done is published.
    await advance(time, 5000);
    expect(completed).toEqual([]);
    nodes.old.delete('n1');
    await advance(time, 1000);
    expect(completed).toEqual(['join n4']);
    for (const s of gained) expect(nodes.space('n4', s).size).toBe(3);
  });

  it('rides out a progress store that fails for a while (etcd away), then completes', async () => {
    const nodes = new FakeNodes();
    let down = true;
    const { time, completed, streamer } = await setup(nodes, {
      wrap: (store) => ({
        progress: (k, sub) =>
          down ? Promise.reject(new Error('etcd down')) : store.progress(k, sub),
        save: (k, sub, sp, p) =>
          down ? Promise.reject(new Error('etcd down')) : store.save(k, sub, sp, p),
        forget: (k, sub) => store.forget(k, sub),
      }),
    });
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    await advance(time, 2000);
    await advance(time, 3000);
    expect(completed).toEqual([]);
    expect(streamer.status()[0]?.lastError).toMatch(/etcd down/);
    down = false;
    for (let i = 0; i < 5 && completed.length === 0; i++) await advance(time, 1000);
    expect(completed).toEqual(['join n4']);
    for (const s of gained) expect(nodes.space('n4', s).size).toBe(3);
  });

  it('retries a completion that fails, keeping the progress until it succeeds', async () => {
    const nodes = new FakeNodes();
    let ok = false;
    const { time, completed, streamer, kv } = await setup(nodes, {
      completes: () => ok,
      wrap: (store) => store,
    });
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    await advance(time, 2000);
    await advance(time, 3000);
    expect(completed).toEqual([]);
    expect(streamer.status()).toMatchObject([{ phase: 'done' }]);
    expect((await kv.progress('join', 'n4')).size).toBe(gained.length);
    ok = true;
    await advance(time, 1000);
    expect(completed).toEqual(['join n4']);
    expect(streamer.status()).toEqual([]);
    expect((await kv.progress('join', 'n4')).size).toBe(0);
  });

  it('lets no page of a cancelled run leave progress behind for a later one', async () => {
    const nodes = new FakeNodes();
    let release!: () => void;
    let hold: Promise<void> | null = new Promise((r) => {
      release = r;
    });
    const { time, completed, streamer, kv } = await setup(nodes, {
      wrap: (inner) => ({
        progress: (k, sub) => inner.progress(k, sub),
        // Pages land on n4 but their progress write waits (a slow etcd).
        save: async (k, sub, sp, p) => {
          if (hold !== null) await hold;
          return inner.save(k, sub, sp, p);
        },
        forget: (k, sub) => inner.forget(k, sub),
      }),
    });
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    await advance(time, 2000);
    // The join is cancelled (n4 removed) while pages are in flight; n4 comes back empty.
    streamer.sync([]);
    hold = null;
    release();
    await settle();
    expect((await kv.progress('join', 'n4')).size).toBe(0);
    nodes.data.set('n4', new Map());
    streamer.sync([{ kind: 'join', subject: 'n4' }]);
    for (let i = 0; i < 5 && completed.length === 0; i++) await advance(time, 2000);
    expect(completed).toEqual(['join n4']);
    for (const s of gained) expect(nodes.space('n4', s).size).toBe(3);
  });
});
