import {
  callMemory,
  callReplica,
  checkHealth,
  type Init,
  type Memory,
  REPLICA_SERVICE_NAME,
  type ReplicaServiceClient,
  type ScanSpaceResponse,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { REPLICA_PAGE_LIMITS } from '../src/index.js';
import { compareCodePoints } from '../src/internal/code-point.js';
import { Cleanup, healthClient, memoryClient, replicaClient, startNode } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function setup(options = {}) {
  const node = await startNode(cleanup, options);
  return {
    node,
    memory: memoryClient(cleanup, node.address),
    replica: replicaClient(cleanup, node.address),
  };
}

/** Every page of a space over the wire, following `more`. */
async function scanAll(
  client: ReplicaServiceClient,
  spaceId: string,
  limit = 0,
): Promise<ScanSpaceResponse[]> {
  const pages: ScanSpaceResponse[] = [];
  let after = '';
  for (;;) {
    const page = await callReplica(client, 'scanSpace', { spaceId, after, limit });
    pages.push(page);
    if (!page.more) return pages;
    const ids = [...page.memories, ...page.tombstones].map((e) => e.id).sort(compareCodePoints);
    after = ids.at(-1)!;
  }
}

async function digestOf(client: ReplicaServiceClient, spaceId: string) {
  const { spaces } = await callReplica(client, 'listSpaces', { spaceId });
  return spaces[0];
}

/** Streams a space from one node to another, as a router does for a joining node. */
async function stream(from: ReplicaServiceClient, to: ReplicaServiceClient, spaceId: string) {
  let applied = 0;
  for (const page of await scanAll(from, spaceId, 7)) {
    const res = await callReplica(to, 'applyEntries', {
      spaceId,
      memories: page.memories,
      tombstones: page.tombstones,
    });
    applied += res.applied;
  }
  return applied;
}

const NEAR_DUPLICATES: Init<Memory>[] = [
  { id: 'a1', content: 'alpha', embedding: [1, 0], confidence: 0.2, createdAtMs: 1, version: 11 },
  {
    id: 'a2',
    content: 'alpha!',
    embedding: [0.99, 0.01],
    confidence: 0.9,
    createdAtMs: 2,
    version: 12,
  },
  { id: 'b1', content: 'Beta', createdAtMs: 3, version: 13 },
  { id: 'b2', content: 'beta', createdAtMs: 4, version: 14 },
  { id: 'c', content: 'gamma', createdAtMs: 5, version: 15 },
];

describe('ReplicaService', () => {
  it('is served on the MemoryService port and reported healthy', async () => {
    const { node, memory, replica } = await setup();
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'x', content: 'hello' } });
    expect(await callReplica(replica, 'listSpaces', {})).toEqual({
      spaces: [
        {
          spaceId: 's',
          memories: 1,
          tombstones: 0,
          digest: expect.stringMatching(/^[0-9a-f]{16}$/),
        },
      ],
      more: false,
    });
    const health = healthClient(cleanup, node.address);
    expect(await checkHealth(health, REPLICA_SERVICE_NAME)).toEqual({ status: 'SERVING' });
  });

  it('stamps a Store without a version (µs, increasing) and keeps the newest of an id', async () => {
    const { memory, replica } = await setup({ clock: { now: () => 1000 } });
    const put = (content: string, version = 0) =>
      callMemory(memory, 'store', { spaceId: 's', memory: { id: 'k', content, version } });
    await put('first');
    await put('second'); // same ms: one µs later
    let [m] = (await scanAll(replica, 's'))[0]!.memories;
    expect(m).toMatchObject({ content: 'second', version: 1_000_001 });
    // an older copy (a late hint) is answered OK and changes nothing
    expect((await put('stale', 5)).memoryId).toBe('k');
    [m] = (await scanAll(replica, 's'))[0]!.memories;
    expect(m).toMatchObject({ content: 'second', version: 1_000_001 });
    await put('router-stamped', 2_000_000);
    [m] = (await scanAll(replica, 's'))[0]!.memories;
    expect(m).toMatchObject({ content: 'router-stamped', version: 2_000_000 });
  });

  it('a tombstone blocks older copies from Store and ApplyEntries; a newer memory supersedes it', async () => {
    const { memory, replica } = await setup();
    const res = await callReplica(replica, 'applyEntries', {
      spaceId: 's',
      tombstones: [{ id: 'k', version: 50 }],
    });
    expect(res.applied).toBe(1);
    await callMemory(memory, 'store', {
      spaceId: 's',
      memory: { id: 'k', content: 'x', version: 50 },
    });
    const late = await callReplica(replica, 'applyEntries', {
      spaceId: 's',
      memories: [{ id: 'k', content: 'y', version: 49 }],
    });
    expect(late.applied).toBe(0);
    expect(await digestOf(replica, 's')).toMatchObject({ memories: 0, tombstones: 1 });
    expect((await callMemory(memory, 'recall', { spaceId: 's' })).memories).toEqual([]);
    await callMemory(memory, 'store', {
      spaceId: 's',
      memory: { id: 'k', content: 'z', version: 51 },
    });
    expect(await digestOf(replica, 's')).toMatchObject({ memories: 1, tombstones: 0 });
  });

  it('streams a space to an empty node page by page: equal digests, and a second pass applies nothing', async () => {
    const a = await setup();
    const b = await setup({ id: 'n2' });
    for (let i = 0; i < 30; i++) {
      await callMemory(a.memory, 'store', {
        spaceId: 's',
        memory: {
          id: `m${i}`,
          content: i % 5 === 0 ? 'duplicate' : `memory ${i}`,
          createdAtMs: i + 1,
        },
      });
    }
    const merged = await callMemory(a.memory, 'consolidate', { spaceId: 's' });
    expect(merged.merged).toHaveLength(1); // m0 absorbs m5, m10, …, m25
    const source = await digestOf(a.replica, 's');
    expect(source).toMatchObject({ memories: 25, tombstones: 5 });

    expect(await stream(a.replica, b.replica, 's')).toBe(30);
    expect(await digestOf(b.replica, 's')).toEqual(source);
    expect(await scanAll(b.replica, 's')).toEqual(await scanAll(a.replica, 's'));
    expect(await stream(a.replica, b.replica, 's')).toBe(0);
  });

  it('Consolidate at a router-stamped version gives replicas with the same data the same result', async () => {
    const nodes = [await setup(), await setup({ id: 'n2' }), await setup({ id: 'n3' })];
    for (const { memory } of nodes) {
      for (const m of NEAR_DUPLICATES)
        await callMemory(memory, 'store', { spaceId: 's', memory: m });
    }
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const ra = await callMemory(a.memory, 'consolidate', { spaceId: 's', version: 1000 });
    const rb = await callMemory(b.memory, 'consolidate', { spaceId: 's', version: 1000 });
    expect(ra.merged).toEqual([
      { keptId: 'a1', mergedIds: ['a2'] },
      { keptId: 'b1', mergedIds: ['b2'] },
    ]);
    expect(rb.merged).toEqual(ra.merged);
    const digest = await digestOf(a.replica, 's');
    expect(await digestOf(b.replica, 's')).toEqual(digest);
    const [page] = await scanAll(a.replica, 's');
    expect(page?.tombstones).toEqual([
      { id: 'a2', version: 1000 },
      { id: 'b2', version: 1000 },
    ]);
    expect(page?.memories.find((m) => m.id === 'a1')).toMatchObject({ version: 1000 });
    expect(page?.memories.find((m) => m.id === 'b1')).toMatchObject({ version: 13 });

    // the third replica missed the consolidation: a repair from the first converges it
    expect(await digestOf(c.replica, 's')).not.toEqual(digest);
    expect(await stream(a.replica, c.replica, 's')).toBe(3); // a1 raised, two tombstones
    expect(await digestOf(c.replica, 's')).toEqual(digest);
  });

  it('Consolidate with version 0 stamps a version after every write the node stamped', async () => {
    let now = 5000;
    const { memory, replica } = await setup({ clock: { now: () => now } });
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'x', content: 'same' } });
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'y', content: 'SAME' } });
    now = 4000; // the clock stepped back
    await callMemory(memory, 'consolidate', { spaceId: 's' });
    const [page] = await scanAll(replica, 's');
    expect(page?.tombstones).toEqual([{ id: 'y', version: 5_000_002 }]);
  });

  it('pages ListSpaces in code-point order; space_id asks for one space', async () => {
    const { memory, replica } = await setup();
    const spaceIds = ['b', 'a', '\uff5e', '😀', 'é', 'aa', 'Z', '0', 'b-2', 'zz', 'ä', '𝔸'];
    for (const spaceId of spaceIds) {
      await callMemory(memory, 'store', { spaceId, memory: { content: spaceId } });
    }
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const page = await callReplica(replica, 'listSpaces', { after, limit: 5 });
      seen.push(...page.spaces.map((d) => d.spaceId));
      if (!page.more) break;
      after = page.spaces.at(-1)!.spaceId;
    }
    expect(seen).toEqual([...spaceIds].sort(compareCodePoints));
    expect(seen.indexOf('\uff5e')).toBeLessThan(seen.indexOf('😀'));
    const one = await callReplica(replica, 'listSpaces', { spaceId: 'é', after: 'zzz' });
    expect(one).toEqual({
      spaces: [expect.objectContaining({ spaceId: 'é', memories: 1 })],
      more: false,
    });
    expect(await callReplica(replica, 'listSpaces', { spaceId: 'absent' })).toEqual({
      spaces: [],
      more: false,
    });
    expect(seen.at(-1)).toBe('😀');
    expect(await callReplica(replica, 'listSpaces', { after: '😀' })).toEqual({
      spaces: [],
      more: false,
    });
  });

  it('keeps a ScanSpace page within what a default client accepts (4 MiB)', async () => {
    const { memory, replica } = await setup();
    const content = 'x'.repeat(60_000);
    for (let i = 0; i < 80; i++) {
      await callMemory(memory, 'store', { spaceId: 'big', memory: { id: `m${i}`, content } });
    }
    const pages = await scanAll(replica, 'big', REPLICA_PAGE_LIMITS.maxScanEntries);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.flatMap((p) => p.memories.map((m) => m.id)).sort()).toEqual(
      Array.from({ length: 80 }, (_, i) => `m${i}`).sort(),
    );
  });
});

describe('ReplicaService rejects bad input with INVALID_ARGUMENT naming the field', () => {
  const UNSAFE = 2 ** 53 + 2; // a uint64 a JS number cannot hold exactly
  const ok: Init<Memory> = { id: 'fine', content: 'fine', version: 1 };
  const applyCases: [string, object, string][] = [
    ['empty space_id', { spaceId: '', memories: [ok] }, 'space_id'],
    [
      'memory without an id',
      { spaceId: 's', memories: [ok, { content: 'x', version: 1 }] },
      'memories[1].id',
    ],
    [
      'memory without a version',
      { spaceId: 's', memories: [ok, ok, { id: 'v', content: 'x' }] },
      'memories[2].version',
    ],
    [
      'memory version beyond 2^53',
      { spaceId: 's', memories: [{ ...ok, version: UNSAFE }] },
      'memories[0].version',
    ],
    [
      'memory confidence out of range',
      { spaceId: 's', memories: [{ ...ok, confidence: 2 }] },
      'memories[0].confidence',
    ],
    [
      'NaN in an embedding',
      { spaceId: 's', memories: [{ ...ok, embedding: [1, Number.NaN] }] },
      'memories[0].embedding[1]',
    ],
    ['empty memory', { spaceId: 's', memories: [{ id: 'e', version: 1 }] }, 'memories[0].content'],
    [
      'memory id too long',
      { spaceId: 's', memories: [{ ...ok, id: 'i'.repeat(257) }] },
      'memories[0].id',
    ],
    [
      'tombstone without an id',
      { spaceId: 's', memories: [ok], tombstones: [{ version: 3 }] },
      'tombstones[0].id',
    ],
    [
      'tombstone without a version',
      { spaceId: 's', tombstones: [{ id: 't', version: 3 }, { id: 'u' }] },
      'tombstones[1].version',
    ],
    [
      'tombstone id too long',
      { spaceId: 's', tombstones: [{ id: 'i'.repeat(257), version: 1 }] },
      'tombstones[0].id',
    ],
  ];
  for (const [name, request, field] of applyCases) {
    it(`ApplyEntries: ${name} → ${field}, and nothing of the request is applied`, async () => {
      const { replica } = await setup();
      const err = await callReplica(replica, 'applyEntries', request).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details.startsWith(`${field} must be`)).toBe(true);
      expect((await callReplica(replica, 'listSpaces', {})).spaces).toEqual([]);
    });
  }

  it('ScanSpace and ListSpaces: limits, ids and cursors out of range', async () => {
    const { replica } = await setup();
    const bad: [ReturnType<typeof callReplica>, string][] = [
      [callReplica(replica, 'scanSpace', { spaceId: '' }), 'space_id'],
      [callReplica(replica, 'scanSpace', { spaceId: 's', limit: 5001 }), 'limit'],
      [callReplica(replica, 'scanSpace', { spaceId: 's', after: 'a'.repeat(257) }), 'after'],
      [callReplica(replica, 'scanSpace', { spaceId: 's'.repeat(4097) }), 'space_id'],
      [callReplica(replica, 'listSpaces', { limit: 10_001 }), 'limit'],
      [callReplica(replica, 'listSpaces', { after: 'a'.repeat(4097) }), 'after'],
      [callReplica(replica, 'listSpaces', { spaceId: 's'.repeat(4097) }), 'space_id'],
    ];
    for (const [call, field] of bad) {
      const err = await call.then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details.startsWith(`${field} must be`), err?.details).toBe(true);
    }
    // the largest limits are accepted
    await callReplica(replica, 'scanSpace', { spaceId: 's', limit: 5000 });
    await callReplica(replica, 'listSpaces', { limit: 10_000 });
  });

  it('Store and Consolidate: a version beyond 2^53 → memory.version / version, nothing written', async () => {
    const { memory, replica } = await setup();
    await expect(
      callMemory(memory, 'store', { spaceId: 's', memory: { content: 'x', version: UNSAFE } }),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^memory\.version must be/),
    });
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'a', content: 'same' } });
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'b', content: 'same' } });
    const before = await digestOf(replica, 's');
    await expect(
      callMemory(memory, 'consolidate', { spaceId: 's', version: UNSAFE }),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^version must be/),
    });
    expect(await digestOf(replica, 's')).toEqual(before);
  });
});
