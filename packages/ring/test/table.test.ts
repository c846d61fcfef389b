import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildRing,
  CapacityExceededError,
  InvalidArgumentError,
  InvalidTableError,
  type PlacementTable,
  type Ring,
  TableReader,
  TableWriter,
} from '../src/index.js';
import { makeNodes } from './reference.js';

const spaces = Array.from({ length: 500 }, (_, i) => `space-${i}`);
const small = { maxNodes: 64, maxTokens: 8192, maxReplicationFactor: 5, maxBlobBytes: 64 * 1024 };

type Kind = 'lookupInto' | 'futureInto' | 'pendingInto';

function answers(table: Pick<PlacementTable, Kind | 'nodes'>, kind: Kind = 'lookupInto'): string[] {
  const out = new Uint16Array(8);
  return spaces.map((space) => {
    const count = table[kind](space, out);
    return Array.from(out.subarray(0, count), (i) => table.nodes[i]!.id).join(',');
  });
}

describe('TableWriter / TableReader', () => {
  it('a reader answers exactly as the ring it was published from', () => {
    const ring = buildRing({
      nodes: makeNodes(10, 3),
      vnodesPerNode: 64,
      assignments: [
        { spaceId: 'space-3', primary: 'node-9', replicas: ['node-1', 'node-2', 'node-3'] },
      ],
    });
    const writer = new TableWriter(small);
    expect(writer.publish(ring)).toBe(1);
    const reader = new TableReader(writer.buffer);
    expect(answers(reader)).toEqual(answers(ring));
    expect(reader.epoch).toBe(1);
    expect(reader.nodes).toEqual(ring.nodes);
    expect(reader.replicationFactor).toBe(3);
    expect(reader.vnodesPerNode).toBe(64);
    expect(reader.maxPlacementSize).toBe(4);
    expect(reader.lookup('space-3')).toEqual(ring.lookup('space-3'));
    expect(reader.nodeIndex('node-9')).toBe(ring.nodeIndex('node-9'));
  });

  it('moves to a new epoch on the next lookup, and only then', () => {
    const writer = new TableWriter(small);
    const a = buildRing({ nodes: makeNodes(4, 2), vnodesPerNode: 32 });
    const b = buildRing({
      nodes: makeNodes(9, 3, 'other'),
      vnodesPerNode: 16,
      replicationFactor: 2,
    });
    writer.publish(a);
    const reader = new TableReader(writer.buffer);
    expect(answers(reader)).toEqual(answers(a));
    writer.publish(b);
    expect(reader.epoch).toBe(1); // getters never move on by themselves
    expect(reader.nodes).toEqual(a.nodes);
    expect(answers(reader)).toEqual(answers(b));
    expect(reader.epoch).toBe(2);
    writer.publish(a);
    expect(reader.refresh()).toBe(true);
    expect(reader.refresh()).toBe(false);
    expect(reader.epoch).toBe(3);
    expect(answers(reader)).toEqual(answers(a));
  });

  it('rejects a ring that does not fit, publishing nothing', () => {
    const writer = new TableWriter({ ...small, maxTokens: 100 });
    const fits = buildRing({ nodes: makeNodes(4), vnodesPerNode: 25 });
    writer.publish(fits);
    const tooBig = buildRing({ nodes: makeNodes(4), vnodesPerNode: 26 });
    const error = catchError(() => writer.publish(tooBig));
    expect(error).toBeInstanceOf(CapacityExceededError);
    expect(error).toMatchObject({
      code: 'CapacityExceeded',
      limit: 'maxTokens',
      required: 104,
      capacity: 100,
    });
    expect(writer.epoch).toBe(1);
    expect(answers(new TableReader(writer.buffer))).toEqual(answers(fits));
  });

  it.each([
    ['maxNodes', { maxNodes: 3 }, buildRing({ nodes: makeNodes(4), vnodesPerNode: 1 })],
    [
      'maxReplicationFactor',
      { maxReplicationFactor: 2 },
      buildRing({ nodes: makeNodes(4), vnodesPerNode: 1 }),
    ],
    ['maxBlobBytes', { maxBlobBytes: 64 }, buildRing({ nodes: makeNodes(20), vnodesPerNode: 1 })],
  ])('names the %s limit when a table does not fit', (limit, options, ring: Ring) => {
    const writer = new TableWriter({ ...small, ...options });
    expect(catchError(() => writer.publish(ring))).toMatchObject({
      code: 'CapacityExceeded',
      limit,
    });
  });

  it('validates capacities with errors that name them', () => {
    expect(catchError(() => new TableWriter({ maxTokens: 0 }))).toMatchObject({
      code: 'InvalidArgument',
      field: 'maxTokens',
    });
    expect(catchError(() => new TableWriter({ maxNodes: 70_000 }))).toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it('refuses buffers that are not tables, and lookups before the first publish', () => {
    expect(catchError(() => new TableReader(new SharedArrayBuffer(1024)))).toBeInstanceOf(
      InvalidTableError,
    );
    expect(catchError(() => new TableReader(new ArrayBuffer(64) as never))).toMatchObject({
      code: 'InvalidArgument',
      field: 'buffer',
    });
    const reader = new TableReader(new TableWriter(small).buffer);
    expect(reader.published).toBe(false);
    expect(catchError(() => reader.lookupInto('x', new Uint16Array(3)))).toMatchObject({
      code: 'InvalidTable',
    });
  });
});

describe('across threads', () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
  });

  function startWorker(workerData: object, slot = 0): Promise<Record<string, number>> {
    const worker = new Worker(new URL('./fixtures/stress-reader.mjs', import.meta.url), {
      workerData: { ...workerData, slot },
    });
    workers.push(worker);
    return new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  }

  it('a reader in a worker thread gives the same placements as the ring in this thread', async () => {
    const ring = buildRing({ nodes: makeNodes(12, 3), vnodesPerNode: 128 });
    const writer = new TableWriter(small);
    writer.publish(ring);
    const control = new Int32Array(new SharedArrayBuffer(8));
    const result = await startWorker({
      buffer: writer.buffer,
      control: control.buffer,
      spaces,
      expected: { 1: answers(ring) },
      mode: 'once',
    });
    expect(result).toMatchObject({ mismatches: 0, lookups: spaces.length });
  });

  it('never answers from a half-written table while a writer publishes thousands of tables', async () => {
    // Two tables as different as possible: node sets, sizes, replication factor, assignments.
    const a = buildRing({
      nodes: makeNodes(40, 4, 'alpha'),
      vnodesPerNode: 150,
      replicationFactor: 3,
    });
    const b = buildRing({
      nodes: makeNodes(7, 2, 'beta'),
      vnodesPerNode: 300,
      replicationFactor: 2,
      assignments: [
        { spaceId: 'space-1', primary: 'beta-6', replicas: ['beta-0', 'beta-1', 'beta-2'] },
      ],
    });
    const writer = new TableWriter({ ...small, maxTokens: 8192 });
    writer.publish(a);
    const expectedA = answers(a);
    const expectedB = answers(b);
    // control[0]: 1 while the writer runs; [1]: readers ready; [2..5]: readers' progress
    const control = new Int32Array(new SharedArrayBuffer(32));
    Atomics.store(control, 0, 1);
    const data = {
      buffer: writer.buffer,
      control: control.buffer,
      spaces,
      expected: { odd: expectedA, even: expectedB },
      mode: 'stress',
    };
    const results = [startWorker(data, 0), startWorker(data, 1)];
    while (Atomics.load(control, 1) < 2) await new Promise((r) => setImmediate(r));
    // At least PUBLISHES, and on until both readers raced the writer (on a busy machine a
    // reader thread may get little CPU while the writer runs).
    const PUBLISHES = 3000;
    let published = 0;
    for (let i = 0; i < PUBLISHES || !raced(control, 2); i++) {
      writer.publish(i % 2 === 0 ? b : a);
      published++;
      // Let readers in: a few microseconds between publishes, none in most iterations.
      if (i % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    Atomics.store(control, 0, 0);
    const [first, second] = await Promise.all(results);
    for (const result of [first!, second!]) {
      expect(result.mismatches).toBe(0);
      // The check is only meaningful if the readers really raced the writer.
      expect(result.epochsSeen).toBeGreaterThan(10);
      expect(result.lookups).toBeGreaterThan(1000);
    }
    expect(writer.epoch).toBe(published + 1);
  });
});

describe('across threads, while membership changes', () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
  });

  it('never answers a current, future or pending placement from a half-written table', async () => {
    // Three tables in rotation, so each half's content changes on every rewrite (with two, a
    // half would always hold the same table and a torn read could go unseen). Two of them
    // have a change in progress, so future and pending answers walk the shared owners.
    const tables = [
      buildRing({ nodes: makeNodes(40, 4, 'alpha'), vnodesPerNode: 150, replicationFactor: 3 }),
      buildRing({
        nodes: makeNodes(7, 2, 'beta'),
        vnodesPerNode: 300,
        replicationFactor: 2,
        joining: ['beta-5', 'beta-6'],
        leaving: ['beta-0'],
        assignments: [{ spaceId: 'space-1', primary: 'beta-1', replicas: ['beta-2'] }],
        pendingAssignments: [
          { spaceId: 'space-1', primary: 'beta-6', replicas: ['beta-1', 'beta-2', 'beta-3'] },
          { spaceId: 'space-2', primary: 'beta-5', replicas: [] },
        ],
      }),
      buildRing({
        nodes: makeNodes(25, 3, 'gamma'),
        vnodesPerNode: 200,
        replicationFactor: 4,
        leaving: ['gamma-3', 'gamma-4', 'gamma-5', 'gamma-6'],
      }),
    ];
    expect(tables.map((t) => t.pending)).toEqual([false, true, true]);
    const cycle = tables.map((t) => ({
      lookupInto: answers(t),
      futureInto: answers(t, 'futureInto'),
      pendingInto: answers(t, 'pendingInto'),
    }));
    expect(cycle[2]!.pendingInto.filter((a) => a !== '').length).toBeGreaterThan(100);
    const writer = new TableWriter({ ...small, maxTokens: 8192 });
    writer.publish(tables[1]!); // epoch e holds tables[e % 3]
    const control = new Int32Array(new SharedArrayBuffer(32));
    Atomics.store(control, 0, 1);
    const data = {
      buffer: writer.buffer,
      control: control.buffer,
      spaces,
      expected: { cycle },
      mode: 'cycle',
    };
    const start = (slot: number): Promise<Record<string, number>> => {
      const worker = new Worker(new URL('./fixtures/stress-reader.mjs', import.meta.url), {
        workerData: { ...data, slot },
      });
      workers.push(worker);
      return new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    };
    const results = [start(0), start(1)];
    while (Atomics.load(control, 1) < 2) await new Promise((r) => setImmediate(r));
    const PUBLISHES = 3000;
    for (let i = 0; i < PUBLISHES || !raced(control, 2); i++) {
      writer.publish(tables[(writer.epoch + 1) % 3]!);
      if (i % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    Atomics.store(control, 0, 0);
    for (const result of await Promise.all(results)) {
      expect(result.mismatches).toBe(0);
      expect(result.epochsSeen).toBeGreaterThan(10);
      expect(result.lookups).toBeGreaterThan(1000);
    }
  });
});

/** Every stress reader saw more than 10 epochs and made more than 1000 lookups. */
function raced(control: Int32Array, readers: number): boolean {
  for (let r = 0; r < readers; r++) {
    if (Atomics.load(control, 2 + 2 * r) <= 10 || Atomics.load(control, 3 + 2 * r) <= 1000) {
      return false;
    }
  }
  return true;
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('node slots', () => {
  const ring = buildRing({ nodes: makeNodes(4), vnodesPerNode: 8 });

  it('carry the publisher’s stable slot per node to readers', () => {
    const writer = new TableWriter(small);
    writer.publish(ring, { slots: new Map(ring.nodes.map((n, i) => [n.id, 100 + 10 * i])) });
    const reader = new TableReader(writer.buffer);
    reader.refresh();
    expect(ring.nodes.map((n) => reader.nodeSlot(reader.nodeIndex(n.id)))).toEqual([
      100, 110, 120, 130,
    ]);
    expect(reader.nodeSlot(99)).toBe(-1);
  });

  it('default to the node index, as on a ring', () => {
    const writer = new TableWriter(small);
    writer.publish(ring);
    const reader = new TableReader(writer.buffer);
    expect([0, 1, 2, 3].map((i) => reader.nodeSlot(i))).toEqual([0, 1, 2, 3]);
    expect(ring.nodeSlot(2)).toBe(2);
  });

  it('must cover every node with distinct non-negative integers', () => {
    const writer = new TableWriter(small);
    const partial = new Map([[ring.nodes[0]!.id, 1]]);
    expect(catchError(() => writer.publish(ring, { slots: partial }))).toMatchObject({
      code: 'InvalidArgument',
    });
    const same = new Map(ring.nodes.map((n) => [n.id, 7]));
    expect(catchError(() => writer.publish(ring, { slots: same }))).toMatchObject({
      code: 'InvalidArgument',
    });
    expect(writer.epoch).toBe(0);
  });
});
