import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ApplyEntriesRequest,
  type ApplyEntriesResponse,
  addHealthService,
  type ConsolidateRequest,
  type ConsolidateResponse,
  type Cue,
  callMemory,
  callReplica,
  checkHealth,
  encodeMemory,
  encodeRoutingField,
  HealthClient,
  type Init,
  type ListSpacesRequest,
  type ListSpacesResponse,
  MEMORY_METHOD_PATHS,
  MEMORY_PROTO_FILE,
  type Memory,
  MemoryServiceClient,
  MemoryServiceDefinition,
  type MemoryServiceHandlers,
  type MergedGroup,
  PROTO_ROOT,
  packageDefinition,
  type QueryRequest,
  type QueryResponse,
  REPLICA_METHOD_PATHS,
  REPLICA_SERVICE_NAME,
  type RecallRequest,
  type RecallResponse,
  ReplicaServiceClient,
  ReplicaServiceDefinition,
  type ReplicaServiceHandlers,
  type RoutingInfo,
  type ScanSpaceRequest,
  type ScanSpaceResponse,
  type ScoredMemory,
  type SpaceDigest,
  type SpaceError,
  type SpaceResult,
  type StoreRequest,
  type StoreResponse,
  type Tombstone,
} from '../src/index.js';

// `Record<keyof T, true>` fails to compile when an interface gains or loses a field, and the
// test below fails when the proto does: together they keep the hand-written types honest.
type Keys<T> = Record<keyof T, true>;
const MESSAGE_KEYS = {
  Memory: {
    id: true,
    content: true,
    embedding: true,
    confidence: true,
    createdAtMs: true,
    version: true,
  } satisfies Keys<Memory>,
  Cue: { text: true, embedding: true } satisfies Keys<Cue>,
  RoutingInfo: {
    servedBy: true,
    attempts: true,
    fallback: true,
    strategy: true,
    tableEpoch: true,
    acknowledged: true,
    asked: true,
    degraded: true,
  } satisfies Keys<RoutingInfo>,
  StoreRequest: { spaceId: true, memory: true } satisfies Keys<StoreRequest>,
  StoreResponse: { memoryId: true, routing: true } satisfies Keys<StoreResponse>,
  RecallRequest: { spaceId: true, cue: true, limit: true } satisfies Keys<RecallRequest>,
  ScoredMemory: { memory: true, score: true } satisfies Keys<ScoredMemory>,
  RecallResponse: { memories: true, routing: true } satisfies Keys<RecallResponse>,
  ConsolidateRequest: {
    spaceId: true,
    similarityThreshold: true,
    version: true,
  } satisfies Keys<ConsolidateRequest>,
  MergedGroup: { keptId: true, mergedIds: true } satisfies Keys<MergedGroup>,
  ConsolidateResponse: {
    merged: true,
    memoriesBefore: true,
    memoriesAfter: true,
    routing: true,
  } satisfies Keys<ConsolidateResponse>,
  QueryRequest: { spaceIds: true, cue: true, limit: true } satisfies Keys<QueryRequest>,
  SpaceResult: { spaceId: true, memories: true } satisfies Keys<SpaceResult>,
  SpaceError: { spaceId: true, code: true, message: true } satisfies Keys<SpaceError>,
  QueryResponse: { results: true, errors: true, routing: true } satisfies Keys<QueryResponse>,
  Tombstone: { id: true, version: true } satisfies Keys<Tombstone>,
  SpaceDigest: {
    spaceId: true,
    memories: true,
    tombstones: true,
    digest: true,
  } satisfies Keys<SpaceDigest>,
  ListSpacesRequest: { after: true, limit: true, spaceId: true } satisfies Keys<ListSpacesRequest>,
  ListSpacesResponse: { spaces: true, more: true } satisfies Keys<ListSpacesResponse>,
  ScanSpaceRequest: { spaceId: true, after: true, limit: true } satisfies Keys<ScanSpaceRequest>,
  ScanSpaceResponse: {
    memories: true,
    tombstones: true,
    more: true,
  } satisfies Keys<ScanSpaceResponse>,
  ApplyEntriesRequest: {
    spaceId: true,
    memories: true,
    tombstones: true,
  } satisfies Keys<ApplyEntriesRequest>,
  ApplyEntriesResponse: { applied: true } satisfies Keys<ApplyEntriesResponse>,
};

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(setup: (server: grpc.Server) => void): Promise<string> {
  const server = new grpc.Server();
  setup(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  cleanups.push(() => {
    server.forceShutdown();
  });
  return `127.0.0.1:${port}`;
}

describe('@engram/proto', () => {
  it('loads the protos copied into the package, not a directory above it', () => {
    expect(PROTO_ROOT).toBe(fileURLToPath(new URL('../protos/', import.meta.url)));
    expect(existsSync(join(PROTO_ROOT, MEMORY_PROTO_FILE))).toBe(true);
  });

  it('declares exactly the fields grpc-js decodes for every engram.v1 message', () => {
    const protoMessages = Object.keys(packageDefinition)
      .filter((k) => k.startsWith('engram.v1.') && !k.endsWith('Service'))
      .map((k) => k.slice('engram.v1.'.length))
      .sort();
    expect(protoMessages).toEqual(Object.keys(MESSAGE_KEYS).sort());
    for (const [name, keys] of Object.entries(MESSAGE_KEYS)) {
      const def = packageDefinition[`engram.v1.${name}`] as { deserialize(b: Buffer): object };
      expect(Object.keys(def.deserialize(Buffer.alloc(0))).sort(), name).toEqual(
        Object.keys(keys).sort(),
      );
    }
  });

  it('decodes with camelCase names, defaults, numeric int64 and null sub-messages', () => {
    const bytes = MemoryServiceDefinition.Store.requestSerialize({
      spaceId: 's',
      memory: {
        content: 'x',
        createdAtMs: 1_700_000_000_123,
        embedding: [0.5, 1],
        version: 1_700_000_000_123_456,
      },
    });
    const req: StoreRequest = MemoryServiceDefinition.Store.requestDeserialize(bytes);
    expect(req).toEqual({
      spaceId: 's',
      memory: {
        id: '',
        content: 'x',
        embedding: [0.5, 1],
        confidence: 0,
        createdAtMs: 1_700_000_000_123,
        version: 1_700_000_000_123_456,
      },
    });
    expect(MemoryServiceDefinition.Store.requestDeserialize(Buffer.alloc(0))).toEqual({
      spaceId: '',
      memory: null,
    });
  });

  it('puts space_id first on the wire of every single-space request', () => {
    for (const def of [
      MemoryServiceDefinition.Store,
      MemoryServiceDefinition.Recall,
      MemoryServiceDefinition.Consolidate,
      ReplicaServiceDefinition.ScanSpace,
      ReplicaServiceDefinition.ApplyEntries,
    ]) {
      const bytes = (def.requestSerialize as (v: object) => Buffer)({ spaceId: 'abc', limit: 3 });
      // tag (field 1, wire type 2) = 0x0a, then length, then the UTF-8 bytes
      expect([...bytes.subarray(0, 5)]).toEqual([0x0a, 3, 0x61, 0x62, 0x63]);
    }
  });

  it('merges an appended routing field into any response', () => {
    const body = MemoryServiceDefinition.Recall.responseSerialize({
      memories: [{ memory: { id: 'm1' }, score: 1 }],
    });
    const merged = Buffer.concat([
      body,
      encodeRoutingField({
        servedBy: 'n2',
        attempts: 2,
        fallback: true,
        strategy: 'primary',
        tableEpoch: 7,
      }),
    ]);
    const res = MemoryServiceDefinition.Recall.responseDeserialize(merged);
    expect(res.memories[0]?.memory?.id).toBe('m1');
    expect(res.routing).toEqual({
      servedBy: 'n2',
      attempts: 2,
      fallback: true,
      strategy: 'primary',
      tableEpoch: 7,
      acknowledged: 0,
      asked: 0,
      degraded: false,
    });
  });

  it('carries the replication fields of RoutingInfo through an appended routing field', () => {
    const body = MemoryServiceDefinition.Store.responseSerialize({ memoryId: 'm1' });
    const merged = Buffer.concat([
      body,
      encodeRoutingField({ servedBy: 'n1', acknowledged: 2, asked: 3, degraded: true }),
    ]);
    const res = MemoryServiceDefinition.Store.responseDeserialize(merged);
    expect(res.routing).toMatchObject({
      servedBy: 'n1',
      acknowledged: 2,
      asked: 3,
      degraded: true,
    });
  });

  it('encodes a Memory canonically: defaults left out, so presence does not change the bytes', () => {
    const def = packageDefinition['engram.v1.Memory'] as {
      serialize(v: object): Buffer;
      deserialize(b: Buffer): Memory;
    };
    const full: Memory = {
      id: 'a',
      content: '',
      embedding: [],
      confidence: 0,
      createdAtMs: 0,
      version: 5,
    };
    // protobufjs alone writes the empty content because the property is present
    expect(def.serialize(full)).not.toEqual(def.serialize({ id: 'a', version: 5 }));
    expect(encodeMemory(full)).toEqual(encodeMemory({ id: 'a', version: 5 }));
    // id (field 1) then version (field 6, varint): what any proto3 encoder emits
    expect([...encodeMemory(full)]).toEqual([0x0a, 1, 0x61, 0x30, 5]);
    const rich: Memory = {
      id: 'm',
      content: 'c',
      embedding: [0.5, -1],
      confidence: 0.25,
      createdAtMs: 1_700_000_000_000,
      version: 1_700_000_000_000_001,
    };
    expect(def.deserialize(encodeMemory(rich))).toEqual(rich);
    expect(encodeMemory({})).toHaveLength(0);
  });

  it('types what is sent for the replica messages as Init<T>', () => {
    const req: Init<ApplyEntriesRequest> = {
      spaceId: 's',
      memories: [{ id: 'a', content: 'x', version: 1 }],
      tombstones: [{ id: 'b', version: 2 }],
    };
    const decoded = ReplicaServiceDefinition.ApplyEntries.requestDeserialize(
      ReplicaServiceDefinition.ApplyEntries.requestSerialize(req),
    );
    expect(decoded.memories.map((m) => [m.id, m.version])).toEqual([['a', 1]]);
    expect(decoded.tombstones).toEqual([{ id: 'b', version: 2 }]);
    const scan: Init<ScanSpaceResponse> = { memories: [], more: true };
    expect(ReplicaServiceDefinition.ScanSpace.responseSerialize(scan)).toEqual(
      Buffer.from([0x18, 1]),
    );
  });

  it('serves typed unary calls through the generated client', async () => {
    const handlers: MemoryServiceHandlers = {
      Store: (call, cb) =>
        cb(null, { memoryId: `${call.request.spaceId}-1`, routing: { servedBy: 'x' } }),
      Recall: (_call, cb) => cb(null, {}),
      Consolidate: (_call, cb) => cb(null, {}),
      Query: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
    };
    const address = await startServer((s) => s.addService(MemoryServiceDefinition, handlers));
    const client = new MemoryServiceClient(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const res = await callMemory(client, 'store', { spaceId: 'sp', memory: { content: 'c' } });
    expect(res.memoryId).toBe('sp-1');
    expect(res.routing?.servedBy).toBe('x');
    await expect(callMemory(client, 'query', { spaceIds: ['a'] })).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
    expect(MEMORY_METHOD_PATHS.Store).toBe(MemoryServiceDefinition.Store.path);
  });

  it('serves typed ReplicaService calls through the generated client', async () => {
    const handlers: ReplicaServiceHandlers = {
      ListSpaces: (call, cb) =>
        cb(null, {
          spaces: [{ spaceId: call.request.spaceId, memories: 2, digest: '00ff00ff00ff00ff' }],
          more: true,
        }),
      ScanSpace: (call, cb) =>
        cb(null, {
          memories: [{ id: `${call.request.after}+`, version: 9 }],
          tombstones: [{ id: 'gone', version: 8 }],
        }),
      ApplyEntries: (call, cb) =>
        cb(null, { applied: call.request.memories.length + call.request.tombstones.length }),
    };
    const address = await startServer((s) => s.addService(ReplicaServiceDefinition, handlers));
    const client = new ReplicaServiceClient(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    expect(await callReplica(client, 'listSpaces', { spaceId: 'sp' })).toEqual({
      spaces: [{ spaceId: 'sp', memories: 2, tombstones: 0, digest: '00ff00ff00ff00ff' }],
      more: true,
    });
    const scan = await callReplica(client, 'scanSpace', { spaceId: 'sp', after: 'k' });
    expect(scan.memories.map((m) => [m.id, m.version])).toEqual([['k+', 9]]);
    expect(scan.tombstones).toEqual([{ id: 'gone', version: 8 }]);
    expect(scan.more).toBe(false);
    const applied = await callReplica(client, 'applyEntries', {
      spaceId: 'sp',
      memories: [{ id: 'a', version: 1 }],
      tombstones: [{ id: 'b', version: 1 }],
    });
    expect(applied.applied).toBe(2);
    for (const [name, path] of Object.entries(REPLICA_METHOD_PATHS)) {
      expect(path).toBe(ReplicaServiceDefinition[name as keyof typeof REPLICA_METHOD_PATHS].path);
      expect(path.startsWith(`/${REPLICA_SERVICE_NAME}/`)).toBe(true);
    }
  });

  it('serves grpc.health.v1 Check and Watch', async () => {
    let reporter: ReturnType<typeof addHealthService> | undefined;
    const address = await startServer((s) => {
      reporter = addHealthService(s, { '': 'SERVING', svc: 'NOT_SERVING' });
    });
    const client = new HealthClient(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    expect(await checkHealth(client)).toEqual({ status: 'SERVING' });
    expect(await checkHealth(client, 'svc')).toEqual({ status: 'NOT_SERVING' });
    await expect(checkHealth(client, 'nope')).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });

    const stream = client.watch({ service: 'svc' });
    const seen: string[] = [];
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (m: { status: string }) => {
        seen.push(m.status);
        if (seen.length === 1) reporter?.setStatus('svc', 'SERVING');
        if (seen.length === 2) reporter?.shutdown();
      });
      stream.on('end', () => resolve());
      stream.on('error', () => resolve());
    });
    await ended;
    expect(seen).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
  });
});
