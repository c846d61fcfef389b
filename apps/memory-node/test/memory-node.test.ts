import { callMemory, checkHealth, MEMORY_SERVICE_NAME } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, startMemoryNode } from '../src/index.js';
import { Cleanup, healthClient, memoryClient, startNode } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function setup(options = {}) {
  const node = await startNode(cleanup, options);
  return { node, client: memoryClient(cleanup, node.address) };
}

describe('memory node', () => {
  it('binds 127.0.0.1 on an ephemeral port and reports its address', async () => {
    const { node } = await setup();
    expect(node.port).toBeGreaterThan(0);
    expect(node.address).toBe(`127.0.0.1:${node.port}`);
  });

  it('recalls what it stored, with an assigned id and direct routing info', async () => {
    const { client } = await setup({ clock: { now: () => 1234 } });
    const stored = await callMemory(client, 'store', {
      spaceId: 'space-a',
      memory: { content: 'the cat sat on the mat', confidence: 0.5 },
    });
    expect(stored.memoryId).toMatch(/^n1-/);
    expect(stored.routing).toEqual({
      servedBy: 'n1',
      attempts: 1,
      fallback: false,
      strategy: 'direct',
      tableEpoch: 0,
      acknowledged: 0,
      asked: 0,
      degraded: false,
    });
    const recalled = await callMemory(client, 'recall', {
      spaceId: 'space-a',
      cue: { text: 'cat' },
    });
    expect(recalled.memories).toEqual([
      {
        memory: {
          id: stored.memoryId,
          content: 'the cat sat on the mat',
          embedding: [],
          confidence: 0.5,
          createdAtMs: 1234,
          version: 1_234_000, // µs
        },
        score: 1,
      },
    ]);
    expect(recalled.routing?.servedBy).toBe('n1');
    // spaces are separate
    const other = await callMemory(client, 'recall', { spaceId: 'space-b', cue: { text: 'cat' } });
    expect(other.memories).toEqual([]);
  });

  it('keeps a client-supplied id and replaces the memory stored under it', async () => {
    const { client } = await setup();
    await callMemory(client, 'store', { spaceId: 's', memory: { id: 'x', content: 'one' } });
    const r = await callMemory(client, 'store', {
      spaceId: 's',
      memory: { id: 'x', content: 'two' },
    });
    expect(r.memoryId).toBe('x');
    const all = await callMemory(client, 'recall', { spaceId: 's' });
    expect(all.memories.map((m) => m.memory?.content)).toEqual(['two']);
  });

  it('ranks by cosine similarity when the cue has an embedding', async () => {
    const { client } = await setup();
    const put = (id: string, embedding: number[]) =>
      callMemory(client, 'store', { spaceId: 's', memory: { id, content: id, embedding } });
    await put('east', [1, 0, 0]);
    await put('northeast', [1, 1, 0]);
    await put('north', [0, 1, 0]);
    await put('west', [-1, 0, 0]);
    await put('other-dims', [1, 0]);
    const res = await callMemory(client, 'recall', {
      spaceId: 's',
      cue: { embedding: [1, 0.1, 0] },
      limit: 3,
    });
    expect(res.memories.map((m) => m.memory?.id)).toEqual(['east', 'northeast', 'north']);
    expect(res.memories[0]?.score).toBeCloseTo(0.995, 3);
  });

  it('ranks by term overlap without an embedding, case-insensitively', async () => {
    const { client } = await setup();
    for (const [id, content] of [
      ['a', 'Paris is the capital of France'],
      ['b', 'France has many cheeses'],
      ['c', 'Berlin is the capital of Germany'],
      ['d', 'nothing relevant here'],
    ] as const) {
      await callMemory(client, 'store', { spaceId: 's', memory: { id, content } });
    }
    const res = await callMemory(client, 'recall', {
      spaceId: 's',
      cue: { text: 'capital of FRANCE?' },
    });
    expect(res.memories.map((m) => [m.memory?.id, m.score])).toEqual([
      ['a', 1],
      ['c', Math.fround(2 / 3)], // score is a float on the wire
      ['b', Math.fround(1 / 3)],
    ]);
  });

  it('applies the default limit and returns newest first for an empty cue', async () => {
    const { client } = await setup({ defaultRecallLimit: 2 });
    for (let i = 1; i <= 3; i++) {
      await callMemory(client, 'store', {
        spaceId: 's',
        memory: { id: `m${i}`, content: `x${i}`, createdAtMs: i },
      });
    }
    const res = await callMemory(client, 'recall', { spaceId: 's' });
    expect(res.memories.map((m) => m.memory?.id)).toEqual(['m3', 'm2']);
  });

  it('consolidates near-duplicates and identical content, reporting what it merged', async () => {
    const { client } = await setup();
    const put = (
      id: string,
      content: string,
      embedding: number[],
      confidence: number,
      createdAtMs: number,
    ) =>
      callMemory(client, 'store', {
        spaceId: 's',
        memory: { id, content, embedding, confidence, createdAtMs },
      });
    await put('a1', 'alpha', [1, 0, 0], 0.2, 1);
    await put('a2', 'alpha again', [0.99, 0.01, 0], 0.9, 2);
    await put('b1', 'Beta  Text', [], 0.1, 3);
    await put('b2', 'beta text', [], 0.3, 4);
    await put('c', 'gamma', [0, 0, 1], 0.5, 5);
    await callMemory(client, 'store', { spaceId: 'other', memory: { id: 'o', content: 'alpha' } });

    const res = await callMemory(client, 'consolidate', { spaceId: 's' });
    expect(res.merged).toEqual([
      { keptId: 'a1', mergedIds: ['a2'] },
      { keptId: 'b1', mergedIds: ['b2'] },
    ]);
    expect([res.memoriesBefore, res.memoriesAfter]).toEqual([5, 3]);
    const left = await callMemory(client, 'recall', { spaceId: 's', limit: 10 });
    expect(left.memories.map((m) => m.memory?.id).sort()).toEqual(['a1', 'b1', 'c']);
    const a1 = left.memories.find((m) => m.memory?.id === 'a1');
    expect(a1?.memory?.confidence).toBeCloseTo(0.9, 5);
    expect((await callMemory(client, 'recall', { spaceId: 'other' })).memories).toHaveLength(1);
    // a second pass finds nothing more
    expect((await callMemory(client, 'consolidate', { spaceId: 's' })).merged).toEqual([]);
  });

  it('answers Query per space with partial results and per-space errors', async () => {
    const { client } = await setup();
    await callMemory(client, 'store', { spaceId: 'a', memory: { content: 'red apple' } });
    await callMemory(client, 'store', { spaceId: 'b', memory: { content: 'red car' } });
    const res = await callMemory(client, 'query', {
      spaceIds: ['a', '', 'b', 'empty', 'a'],
      cue: { text: 'red' },
    });
    expect(res.results.map((r) => [r.spaceId, r.memories.map((m) => m.memory?.content)])).toEqual([
      ['a', ['red apple']],
      ['b', ['red car']],
      ['empty', []],
    ]);
    expect(res.errors).toEqual([
      {
        spaceId: '',
        code: grpc.status.INVALID_ARGUMENT,
        message: expect.stringContaining('space_ids[1]'),
      },
    ]);
    expect(res.routing?.servedBy).toBe('n1');
  });

  it('accepts every space id the router accepts: 1024 characters of 3 UTF-8 bytes each', async () => {
    // MAX_SPACE_ID_LENGTH in @engram/ring is 1024 UTF-16 units; '€' is 3 UTF-8 bytes.
    const { client } = await setup();
    const spaceId = '€'.repeat(1024);
    expect(Buffer.byteLength(spaceId)).toBe(3072);
    const stored = await callMemory(client, 'store', {
      spaceId,
      memory: { content: 'long space ids are fine' },
    });
    const recalled = await callMemory(client, 'recall', { spaceId, cue: { text: 'fine' } });
    expect(recalled.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
    const queried = await callMemory(client, 'query', {
      spaceIds: [spaceId],
      cue: { text: 'fine' },
    });
    expect(queried.errors).toEqual([]);
    expect(queried.results.map((r) => r.spaceId)).toEqual([spaceId]);
    expect(queried.results[0]?.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);
    expect((await callMemory(client, 'consolidate', { spaceId })).merged).toEqual([]);
  });

  it('limits space ids by maxSpaceIdBytes (default 4096), apart from memory ids (256)', async () => {
    const { client } = await setup();
    const longest = 'a'.repeat(4096);
    await callMemory(client, 'store', { spaceId: longest, memory: { content: 'x' } });
    await expect(
      callMemory(client, 'store', { spaceId: `${longest}a`, memory: { content: 'x' } }),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('space_id must be at most 4096 bytes'),
    });
    await expect(
      callMemory(client, 'store', { spaceId: 's', memory: { id: 'i'.repeat(257), content: 'x' } }),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('memory.id'),
    });
    const small = await setup({ maxSpaceIdBytes: 8 });
    await expect(
      callMemory(small.client, 'recall', { spaceId: '€€€' }), // 9 bytes
    ).rejects.toMatchObject({ details: expect.stringContaining('at most 8 bytes') });
    await expect(startMemoryNode({ id: 'n', maxSpaceIdBytes: 0 })).rejects.toMatchObject({
      field: 'maxSpaceIdBytes',
    });
  });

  describe('rejects bad input with INVALID_ARGUMENT naming the field and stores nothing', () => {
    const cases: [string, object, string][] = [
      ['empty space_id', { spaceId: '', memory: { content: 'x' } }, 'space_id'],
      ['missing memory', { spaceId: 's' }, 'memory'],
      [
        'oversize content',
        { spaceId: 's', memory: { content: 'x'.repeat(101) } },
        'memory.content',
      ],
      [
        'NaN in embedding',
        { spaceId: 's', memory: { content: 'x', embedding: [1, Number.NaN] } },
        'memory.embedding[1]',
      ],
      [
        'Infinity in embedding',
        { spaceId: 's', memory: { content: 'x', embedding: [Number.POSITIVE_INFINITY] } },
        'memory.embedding[0]',
      ],
      [
        'confidence out of range',
        { spaceId: 's', memory: { content: 'x', confidence: 2 } },
        'memory.confidence',
      ],
      ['empty memory', { spaceId: 's', memory: { content: '' } }, 'memory.content'],
    ];
    for (const [name, request, field] of cases) {
      it(`Store: ${name}`, async () => {
        const { client } = await setup({ maxContentBytes: 100 });
        const err = await callMemory(client, 'store', request).then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        );
        expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err?.details).toContain(field);
        const after = await callMemory(client, 'recall', { spaceId: 's', limit: 1000 });
        expect(after.memories).toEqual([]);
      });
    }

    it('Recall: limit out of range, NaN cue embedding, empty space_id', async () => {
      const { client } = await setup();
      const bad: [object, string][] = [
        [{ spaceId: 's', limit: 1001 }, 'limit'],
        [{ spaceId: 's', cue: { embedding: [Number.NaN] } }, 'cue.embedding[0]'],
        [{ spaceId: '' }, 'space_id'],
      ];
      for (const [request, field] of bad) {
        await expect(callMemory(client, 'recall', request)).rejects.toMatchObject({
          code: grpc.status.INVALID_ARGUMENT,
          details: expect.stringContaining(field),
        });
      }
    });

    it('Consolidate and Query: bad threshold, empty space_ids', async () => {
      const { client } = await setup();
      await expect(
        callMemory(client, 'consolidate', { spaceId: 's', similarityThreshold: 1.5 }),
      ).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining('similarity_threshold'),
      });
      await expect(callMemory(client, 'query', { spaceIds: [] })).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining('space_ids'),
      });
    });
  });

  it('serves health: SERVING overall and for MemoryService, NOT_SERVING after close', async () => {
    const { node } = await setup();
    const health = healthClient(cleanup, node.address);
    expect(await checkHealth(health)).toEqual({ status: 'SERVING' });
    expect(await checkHealth(health, MEMORY_SERVICE_NAME)).toEqual({ status: 'SERVING' });
    await node.close();
    expect(node.health.getStatus(MEMORY_SERVICE_NAME)).toBe('NOT_SERVING');
  });

  it('validates options, naming the option', async () => {
    await expect(startMemoryNode({ id: '' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(startMemoryNode({ id: 'n', port: 70000 })).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'port',
    });
    await expect(startMemoryNode({ id: 'n', maxContentBytes: 0 })).rejects.toMatchObject({
      field: 'maxContentBytes',
    });
  });

  it('close is idempotent and lets in-flight clients finish', async () => {
    const { node, client } = await setup();
    const pending = callMemory(client, 'store', { spaceId: 's', memory: { content: 'x' } });
    await pending;
    await Promise.all([node.close(), node.close()]);
  });
});
