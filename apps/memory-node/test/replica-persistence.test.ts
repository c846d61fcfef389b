import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callMemory, callReplica, type ReplicaServiceClient } from '@engram/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, LOG_FILE_NAME, type LogRecord } from '../src/internal/log.js';
import { Cleanup, memoryClient, replicaClient, spawnNode, startNode, tempDir } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Everything a node holds: every space's digest and full scan. */
async function snapshot(client: ReplicaServiceClient) {
  const { spaces } = await callReplica(client, 'listSpaces', {});
  const scans = await Promise.all(
    spaces.map((d) => callReplica(client, 'scanSpace', { spaceId: d.spaceId, limit: 5000 })),
  );
  return { spaces, scans };
}

describe('persistence of versions, tombstones and consolidations', () => {
  it('replays to the same digests and entries after a restart; tombstones still block old copies', async () => {
    const dataDir = tempDir(cleanup);
    const a = await startNode(cleanup, { id: 'n1', dataDir });
    const memory = memoryClient(cleanup, a.address);
    const replica = replicaClient(cleanup, a.address);
    await callMemory(memory, 'store', {
      spaceId: 's',
      memory: { id: 'k', content: 'kept', confidence: 0.1, createdAtMs: 1, version: 10 },
    });
    await callMemory(memory, 'store', {
      spaceId: 's',
      memory: { id: 'd', content: 'KEPT', confidence: 0.7, createdAtMs: 2, version: 20 },
    });
    await callMemory(memory, 'store', {
      spaceId: 's',
      memory: { id: 'n', content: 'stamped by the node' },
    });
    await callReplica(replica, 'applyEntries', {
      spaceId: 'r',
      memories: [{ id: 'x', content: 'streamed', version: 5 }],
      tombstones: [{ id: 'y', version: 7 }],
    });
    const merged = await callMemory(memory, 'consolidate', { spaceId: 's', version: 30 });
    expect(merged.merged).toEqual([{ keptId: 'k', mergedIds: ['d'] }]);
    const before = await snapshot(replica);
    expect(before.spaces.map((d) => [d.spaceId, d.memories, d.tombstones])).toEqual([
      ['r', 1, 1],
      ['s', 2, 1],
    ]);
    await a.close();

    const b = await startNode(cleanup, { id: 'n1', dataDir });
    const replica2 = replicaClient(cleanup, b.address);
    expect(await snapshot(replica2)).toEqual(before);
    const k = before.scans[1]?.memories.find((m) => m.id === 'k');
    expect(k).toMatchObject({ confidence: Math.fround(0.7), version: 30 });
    // a replayed hint of the merged memory does not come back
    const late = await callReplica(replica2, 'applyEntries', {
      spaceId: 's',
      memories: [{ id: 'd', content: 'KEPT', version: 20 }],
    });
    expect(late.applied).toBe(0);
  });

  it('keeps every acknowledged write, tombstone and consolidation across a SIGKILL', async () => {
    const dataDir = tempDir(cleanup);
    const first = await spawnNode(cleanup, ['--id', 'p1', '--port', '0', '--data-dir', dataDir]);
    const memory = memoryClient(cleanup, first.address);
    const replica = replicaClient(cleanup, first.address);
    // concurrent writes of every kind share group commits
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) =>
        callMemory(memory, 'store', {
          spaceId: 'bulk',
          memory: {
            id: `m${i}`,
            content: i % 4 === 0 ? 'repeat' : `memory ${i}`,
            createdAtMs: i + 1,
          },
        }),
      ),
      ...Array.from({ length: 10 }, (_, i) =>
        callReplica(replica, 'applyEntries', {
          spaceId: `stream-${i % 3}`,
          memories: [{ id: `s${i}`, content: `streamed ${i}`, version: 100 + i }],
          tombstones: [{ id: `t${i}`, version: 200 + i }],
        }),
      ),
    ]);
    await callMemory(memory, 'consolidate', { spaceId: 'bulk' });
    const before = await snapshot(replica);
    expect(before.spaces.find((d) => d.spaceId === 'bulk')).toMatchObject({
      memories: 16,
      tombstones: 4,
    });
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await spawnNode(cleanup, ['--id', 'p1', '--port', '0', '--data-dir', dataDir]);
    expect(await snapshot(replicaClient(cleanup, second.address))).toEqual(before);
  });

  it('loads a log written before versions: stores replay as version 0 in log order, old merges as then', async () => {
    const dataDir = tempDir(cleanup);
    const old = (id: string, content: string, createdAtMs: number, confidence = 0.5) => ({
      id,
      content,
      embedding: [],
      confidence,
      createdAtMs,
    });
    const records: LogRecord[] = [
      { t: 'store', s: 's', m: old('x', 'zebra', 1) },
      // the later record won then, although its encoding is the smaller one
      { t: 'store', s: 's', m: old('x', 'apple', 2) },
      { t: 'store', s: 's', m: old('y', 'same', 3, 0.2) },
      { t: 'store', s: 's', m: old('z', 'SAME', 4, 0.9) },
      { t: 'merge', s: 's', g: [{ kept: old('y', 'same', 3, 0.9), removed: ['z'] }] },
    ];
    writeFileSync(join(dataDir, LOG_FILE_NAME), Buffer.concat(records.map(encodeFrame)));

    const a = await startNode(cleanup, { id: 'n1', dataDir, clock: { now: () => 1000 } });
    expect(a.replayedRecords).toBe(5);
    const memory = memoryClient(cleanup, a.address);
    const replica = replicaClient(cleanup, a.address);
    const [page] = (await snapshot(replica)).scans;
    expect(page?.memories).toEqual([
      { ...old('x', 'apple', 2), version: 0 },
      { ...old('y', 'same', 3, Math.fround(0.9)), version: 0 },
    ]);
    expect(page?.tombstones).toEqual([]); // a merge of then deleted without a tombstone
    // any versioned write supersedes a version-0 memory
    await callMemory(memory, 'store', { spaceId: 's', memory: { id: 'x', content: 'aardvark' } });
    const before = await snapshot(replica);
    expect(before.scans[0]?.memories[0]).toMatchObject({ content: 'aardvark', version: 1_000_000 });
    await a.close();

    const b = await startNode(cleanup, { id: 'n1', dataDir });
    expect(b.replayedRecords).toBe(6);
    expect(await snapshot(replicaClient(cleanup, b.address))).toEqual(before);
  });
});
