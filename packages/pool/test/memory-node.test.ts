import type * as http2 from 'node:http2';
import { type MemoryNode, startMemoryNode } from '@engram/memory-node';
import {
  callMemory,
  MEMORY_METHOD_PATHS,
  MemoryServiceClient,
  MemoryServiceDefinition,
  type RecallResponse,
} from '@engram/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionPool } from '../src/index.js';

// The router's two uses of the pool against a real memory node: typed calls over cached
// clients, and gRPC frames forwarded over a raw session without a grpc-js call object.
let node: MemoryNode;
let pool: ConnectionPool<MemoryServiceClient>;

beforeAll(async () => {
  node = await startMemoryNode({ id: 'n1' });
  pool = new ConnectionPool<MemoryServiceClient>({
    channelsPerNode: 2,
    makeClient: (channel, address, credentials) =>
      new MemoryServiceClient(address, credentials, { channelOverride: channel }),
  });
  pool.addNode('n1', node.address);
});

afterAll(async () => {
  await pool?.close();
  await node?.close();
});

/** One unary call as raw HTTP/2: 5-byte gRPC prefix + protobuf, response decoded here. */
function rawUnary(session: http2.ClientHttp2Session, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => {
      status = String(t['grpc-status']);
    });
    req.on('error', reject);
    req.on('end', () =>
      status === '0'
        ? resolve(Buffer.concat(chunks).subarray(5))
        : reject(new Error(`grpc-status ${status}`)),
    );
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(body.length, 1);
    req.end(Buffer.concat([prefix, body]));
  });
}

describe('pool against a real memory node', () => {
  it('stores and recalls through typed clients cached per channel', async () => {
    const stored = await callMemory(pool.acquireClient('n1'), 'store', {
      spaceId: 'pool-space',
      memory: { content: 'the pool keeps connections warm' },
    });
    expect(stored.memoryId).not.toBe('');
    const recalled = await callMemory(pool.acquireClient('n1'), 'recall', {
      spaceId: 'pool-space',
      cue: { text: 'connections warm' },
      limit: 5,
    });
    expect(recalled.memories[0]?.memory?.id).toBe(stored.memoryId);
    expect(recalled.routing?.servedBy).toBe('n1');
    expect(pool.channelCount).toBe(2);
  });

  it('forwards a Recall as raw frames over a pooled session', async () => {
    await pool.connect('n1', 'session');
    const recall = MemoryServiceDefinition.Recall;
    const body = recall.requestSerialize({
      spaceId: 'pool-space',
      cue: { text: 'pool', embedding: [] },
      limit: 5,
    });
    const reply = await rawUnary(pool.acquireSession('n1'), MEMORY_METHOD_PATHS.Recall, body);
    const response = recall.responseDeserialize(reply) as RecallResponse;
    expect(response.memories[0]?.memory?.content).toBe('the pool keeps connections warm');
    expect(response.routing?.servedBy).toBe('n1');
  });
});
