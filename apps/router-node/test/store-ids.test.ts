import { randomUUID } from 'node:crypto';
import type { MemoryServiceHandlers } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Cleanup,
  call,
  memoryClient,
  serveMemoryService,
  spawnRouter,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface FlakyNode {
  id: string;
  address: string;
  /** Memory ids this node holds (a node overwrites by id; an empty id gets a fresh one). */
  stored: Set<string>;
  /** Ids as they arrived, per Store call. */
  received: string[];
}

/**
 * A node whose first `failFirst` Stores are applied and then answered UNAVAILABLE: the write
 * landed but the router cannot know it, so it retries or fails over.
 */
async function startFlakyNode(id: string, failFirst: number): Promise<FlakyNode> {
  const node: FlakyNode = { id, address: '', stored: new Set(), received: [] };
  let failures = 0;
  const routing = { servedBy: id, attempts: 1, fallback: false, strategy: 'direct', tableEpoch: 0 };
  const handlers: MemoryServiceHandlers = {
    Store: (c, cb) => {
      const given = c.request.memory?.id ?? '';
      node.received.push(given);
      const memoryId = given === '' ? randomUUID() : given;
      node.stored.add(memoryId);
      if (failures < failFirst) {
        failures++;
        cb({ code: grpc.status.UNAVAILABLE, details: 'applied, then lost the reply' });
        return;
      }
      cb(null, { memoryId, routing });
    },
    Recall: (_c, cb) => cb(null, { memories: [], routing }),
    Consolidate: (_c, cb) => cb(null, { merged: [], memoriesBefore: 0, memoriesAfter: 0, routing }),
    Query: (_c, cb) => cb(null, { results: [], errors: [], routing }),
  };
  node.address = await serveMemoryService(cleanup, handlers);
  return node;
}

describe('Store ids through the pass-through', () => {
  it('a store retried and failed over after the primary applied it is stored once, under one id (primary-only writes)', async () => {
    // Both nodes apply their first Store and then fail it: whichever is primary, the call is
    // retried and fails over, and every attempt must carry the same id.
    const a = await startFlakyNode('a', 2);
    const b = await startFlakyNode('b', 1);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [
          { id: 'a', address: a.address, zone: 'z1' },
          { id: 'b', address: b.address, zone: 'z2' },
        ],
        replicationFactor: 2,
        workers: 1,
        router: {
          retryBaseDelayMs: 1,
          retryMaxDelayMs: 5,
          maxRetries: 4,
          replicateWrites: false,
        },
      }),
    );
    const client = memoryClient(cleanup, router.address);
    const res = await call(client, 'store', { spaceId: 'dup/space', memory: { content: 'once' } });
    expect(res.routing?.attempts).toBeGreaterThan(1);
    const received = [...a.received, ...b.received];
    expect(received.length).toBe(res.routing?.attempts);
    // One id, assigned by the router before the first attempt, replayed by every attempt.
    expect(new Set(received).size).toBe(1);
    expect(received[0]).toMatch(/^[0-9a-f-]{36}$/);
    const held = new Set([...a.stored, ...b.stored]);
    expect([...held]).toEqual([res.memoryId]);

    // A client's own id passes through untouched.
    const own = await call(client, 'store', {
      spaceId: 'dup/space',
      memory: { id: 'client-id-1', content: 'mine' },
    });
    expect(own.memoryId).toBe('client-id-1');
    const now = [...a.received, ...b.received];
    expect(now.length).toBe(received.length + 1);
    expect(now.filter((id) => id === 'client-id-1')).toHaveLength(1);

    // Two separate id-less stores are two memories (a fresh id per call, not per router).
    const other = await call(client, 'store', { spaceId: 'dup/space', memory: { content: 'two' } });
    expect(other.memoryId).not.toBe(res.memoryId);
  });

  it('a replicated store retried on every replica carries one id and one version, and every replica holds just it', async () => {
    const a = await startFlakyNode('a', 2);
    const b = await startFlakyNode('b', 1);
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [
          { id: 'a', address: a.address, zone: 'z1' },
          { id: 'b', address: b.address, zone: 'z2' },
        ],
        replicationFactor: 2,
        workers: 1,
        router: { retryBaseDelayMs: 1, retryMaxDelayMs: 5, maxRetries: 4, writeConsistency: 'all' },
      }),
    );
    const client = memoryClient(cleanup, router.address);
    const res = await call(client, 'store', { spaceId: 'dup/space', memory: { content: 'once' } });
    expect(res.routing).toMatchObject({ strategy: 'Replicated', acknowledged: 2, asked: 2 });
    // a failed twice and b once before both applied it: every attempt had the router's id.
    expect(a.received.length).toBeGreaterThanOrEqual(3);
    expect(b.received.length).toBeGreaterThanOrEqual(2);
    expect(new Set([...a.received, ...b.received])).toEqual(new Set([res.memoryId]));
    expect([...a.stored]).toEqual([res.memoryId]);
    expect([...b.stored]).toEqual([res.memoryId]);
  });
});
