import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callMemory, checkHealth } from '@engram/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup, healthClient, memoryClient, spawnNode, startNode, tempDir } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LOG_FILE = 'memories.log';

describe('persistence with --data-dir', () => {
  it('keeps every acknowledged Store across a SIGKILL of the process', async () => {
    const dataDir = tempDir(cleanup);
    const first = await spawnNode(cleanup, [
      '--id',
      'p1',
      '--port',
      '0',
      '--zone',
      'a',
      '--data-dir',
      dataDir,
    ]);
    const c1 = memoryClient(cleanup, first.address);
    const one = await callMemory(c1, 'store', {
      spaceId: 'durable',
      memory: { content: 'remember the milk', embedding: [0.25, 0.5] },
    });
    // concurrent stores exercise group commit
    const many = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        callMemory(c1, 'store', { spaceId: 'bulk', memory: { content: `item ${i}` } }),
      ),
    );
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    c1.close();

    const second = await spawnNode(cleanup, ['--id', 'p1', '--port', '0', '--data-dir', dataDir]);
    const c2 = memoryClient(cleanup, second.address);
    const recalled = await callMemory(c2, 'recall', { spaceId: 'durable', cue: { text: 'milk' } });
    expect(
      recalled.memories.map((m) => [m.memory?.id, m.memory?.content, m.memory?.embedding]),
    ).toEqual([[one.memoryId, 'remember the milk', [0.25, 0.5]]]);
    const bulk = await callMemory(c2, 'recall', { spaceId: 'bulk', limit: 100 });
    expect(bulk.memories.map((m) => m.memory?.id).sort()).toEqual(
      many.map((r) => r.memoryId).sort(),
    );
    // ids assigned after the restart do not collide with earlier ones
    const fresh = await callMemory(c2, 'store', { spaceId: 'bulk', memory: { content: 'new' } });
    expect(many.map((r) => r.memoryId)).not.toContain(fresh.memoryId);
  });

  it('exits 0 on SIGTERM and serves health until then', async () => {
    const node = await spawnNode(cleanup, ['--id', 't1', '--port', '0']);
    const health = healthClient(cleanup, node.address);
    expect(await checkHealth(health)).toEqual({ status: 'SERVING' });
    node.child.kill('SIGTERM');
    expect(await node.exited).toEqual({ code: 0, signal: null });
  });

  it('ignores and truncates a torn last record instead of failing to start', async () => {
    const dataDir = tempDir(cleanup);
    const a = await startNode(cleanup, { id: 'n1', dataDir });
    await callMemory(memoryClient(cleanup, a.address), 'store', {
      spaceId: 's',
      memory: { id: 'kept', content: 'survives' },
    });
    await a.close();
    const path = join(dataDir, LOG_FILE);
    const goodBytes = statSync(path).size;
    // header claiming 100 payload bytes, followed by only 3: a write cut short by a crash
    const torn = Buffer.alloc(11);
    torn.writeUInt32LE(100, 0);
    appendFileSync(path, torn);

    const b = await startNode(cleanup, { id: 'n1', dataDir });
    expect(b.replayedRecords).toBe(1);
    expect(statSync(path).size).toBe(goodBytes);
    const client = memoryClient(cleanup, b.address);
    await callMemory(client, 'store', {
      spaceId: 's',
      memory: { id: 'after', content: 'also survives' },
    });
    await b.close();

    const c = await startNode(cleanup, { id: 'n1', dataDir });
    const all = await callMemory(memoryClient(cleanup, c.address), 'recall', { spaceId: 's' });
    expect(all.memories.map((m) => m.memory?.id).sort()).toEqual(['after', 'kept']);
  });

  it('stops replay at a record whose checksum does not match', async () => {
    const dataDir = tempDir(cleanup);
    const a = await startNode(cleanup, { id: 'n1', dataDir });
    const client = memoryClient(cleanup, a.address);
    await callMemory(client, 'store', { spaceId: 's', memory: { id: 'one', content: 'first' } });
    await callMemory(client, 'store', { spaceId: 's', memory: { id: 'two', content: 'second' } });
    await a.close();
    const path = join(dataDir, LOG_FILE);
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3]! + 1) & 0xff; // corrupt the last payload
    writeFileSync(path, bytes);

    const b = await startNode(cleanup, { id: 'n1', dataDir });
    expect(b.replayedRecords).toBe(1);
    const all = await callMemory(memoryClient(cleanup, b.address), 'recall', { spaceId: 's' });
    expect(all.memories.map((m) => m.memory?.id)).toEqual(['one']);
  });

  it('persists consolidation so merged memories stay merged after a restart', async () => {
    const dataDir = tempDir(cleanup);
    const a = await startNode(cleanup, { id: 'n1', dataDir });
    const client = memoryClient(cleanup, a.address);
    await callMemory(client, 'store', {
      spaceId: 's',
      memory: { id: 'x', content: 'same', createdAtMs: 1 },
    });
    await callMemory(client, 'store', {
      spaceId: 's',
      memory: { id: 'y', content: 'SAME', createdAtMs: 2 },
    });
    const res = await callMemory(client, 'consolidate', { spaceId: 's' });
    expect(res.merged).toEqual([{ keptId: 'x', mergedIds: ['y'] }]);
    await a.close();

    const b = await startNode(cleanup, { id: 'n1', dataDir });
    const all = await callMemory(memoryClient(cleanup, b.address), 'recall', { spaceId: 's' });
    expect(all.memories.map((m) => m.memory?.id)).toEqual(['x']);
  });
});
