import { encodeRoutingField, MemoryServiceDefinition } from '@engram/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  appendRouting,
  assignMemoryId,
  CONFIG_DEFAULTS,
  ConfigError,
  envName,
  parseGrpcTimeout,
  readSpaceId,
  resolveConfig,
  stampStore,
} from '../src/index.js';
import { encodeGrpcMessage, MalformedMessageError } from '../src/internal/wire.js';

function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

describe('wire', () => {
  it('reads space_id from any single-space request without decoding the rest', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 200 }),
        fc.string({ maxLength: 2000 }),
        (spaceId, text) => {
          const recall = MemoryServiceDefinition.Recall.requestSerialize({
            spaceId,
            cue: { text, embedding: [0.5, 1] },
            limit: 3,
          });
          expect(readSpaceId(frame(recall))).toBe(spaceId);
          const store = MemoryServiceDefinition.Store.requestSerialize({
            spaceId,
            memory: { content: text },
          });
          expect(readSpaceId(frame(store))).toBe(spaceId);
        },
      ),
    );
  });

  it('gives an id-less Store memory one UUID (frame and memory lengths fixed) and leaves others byte-identical', () => {
    const Store = MemoryServiceDefinition.Store;
    const uuid = '0b7e4c1a-5f7e-4d9a-9c1e-2a7b8c9d0e1f';
    fc.assert(
      fc.property(
        fc.string({ maxLength: 200 }),
        fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
        fc.string({ maxLength: 3000 }),
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { maxLength: 40 }),
        fc.boolean(),
        (spaceId, id, content, embedding, withMemory) => {
          const request = withMemory
            ? {
                spaceId,
                memory: {
                  content,
                  embedding,
                  confidence: 0.5,
                  createdAtMs: 42,
                  ...(id !== undefined ? { id } : {}),
                },
              }
            : { spaceId };
          const input = frame(Store.requestSerialize(request));
          const copy = Buffer.from(input);
          let calls = 0;
          const out = assignMemoryId(input, () => {
            calls++;
            return uuid;
          });
          expect(input.equals(copy)).toBe(true);
          if (!withMemory || (id !== undefined && id !== '')) {
            expect(out).toBe(input);
            expect(calls).toBe(0);
            return;
          }
          expect(calls).toBe(1);
          expect(out.readUInt32BE(1)).toBe(out.length - 5);
          const before = Store.requestDeserialize(input.subarray(5));
          const after = Store.requestDeserialize(out.subarray(5));
          expect(after).toEqual({ ...before, memory: { ...before.memory, id: uuid } });
          expect(readSpaceId(out)).toBe(spaceId);
          // Idempotent: a rewritten request is not rewritten again.
          expect(assignMemoryId(out, () => 'x'.repeat(36))).toBe(out);
        },
      ),
    );
    // An explicit empty id written on the wire is replaced too (the appended one wins).
    const explicitEmpty = frame(
      Uint8Array.of(0x0a, 0x01, 0x73, 0x12, 0x04, 0x0a, 0x00, 0x12, 0x00),
    );
    const rewritten = assignMemoryId(explicitEmpty, () => uuid);
    expect(Store.requestDeserialize(rewritten.subarray(5)).memory).toMatchObject({
      id: uuid,
      content: '',
    });
    // Malformed or compressed frames are refused (the data plane inflates compressed ones first).
    const bad = frame(Uint8Array.of(0x12, 0x05, 0x0a));
    expect(() => assignMemoryId(bad, () => uuid)).toThrow(
      expect.objectContaining({ reason: 'Truncated', field: 'StoreRequest.memory' }),
    );
    const compressed = Buffer.from([1, 0, 0, 0, 0]);
    expect(() => assignMemoryId(compressed, () => uuid)).toThrow(
      expect.objectContaining({ reason: 'Frame' }),
    );
  });

  it('stamps a version and its millisecond as the creation time, keeping what the client set', () => {
    const Store = MemoryServiceDefinition.Store;
    const uuid = '123e4567-e89b-12d3-a456-426614174000';
    const version = 1_764_000_000_123_456;
    const stamp = (memory: object) =>
      Store.requestDeserialize(
        stampStore(
          frame(Store.requestSerialize({ spaceId: 's', memory })),
          () => uuid,
          version,
        ).subarray(5),
      ).memory;
    expect(stamp({ content: 'x' })).toMatchObject({
      id: uuid,
      version,
      createdAtMs: 1_764_000_000_123,
    });
    // Replicas given this frame hold the same bytes: nothing is left for a node to stamp.
    expect(stamp({ id: 'mine', content: 'x', createdAtMs: 7, version: 9 })).toMatchObject({
      id: 'mine',
      createdAtMs: 7,
      version: 9,
    });
    expect(stamp({ id: 'mine', content: 'x', version: 9 })).toMatchObject({
      createdAtMs: 1_764_000_000_123,
      version: 9,
    });
    const complete = frame(
      Store.requestSerialize({ spaceId: 's', memory: { id: 'i', createdAtMs: 7, version: 9 } }),
    );
    expect(stampStore(complete, () => uuid, version)).toBe(complete);
  });

  it('percent-encodes grpc-message as the gRPC spec says (only non-printable bytes and %)', () => {
    const plain = 'InsufficientReplicas: 1 of 3 replicas acknowledged, 2 required; it may exist';
    expect(encodeGrpcMessage(plain)).toBe(plain);
    expect(encodeGrpcMessage('über 100%\nnext')).toBe('%C3%BCber 100%25%0Anext');
    // What grpc-js does with it (decodeURI) gives the message back.
    for (const m of [plain, 'über 100%\nnext', 'a/b?c#d&e=f+g']) {
      expect(decodeURI(encodeGrpcMessage(m))).toBe(m);
    }
  });

  it('finds field 1 after other fields and refuses malformed frames', () => {
    // limit = 3 (field 3 varint) then space_id = "ab"
    expect(readSpaceId(frame(Uint8Array.of(0x18, 0x03, 0x0a, 0x02, 0x61, 0x62)))).toBe('ab');
    expect(readSpaceId(frame(Uint8Array.of(0x18, 0x03)))).toBe('');
    const refused = (f: Buffer) => expect(() => readSpaceId(f)).toThrow(MalformedMessageError);
    refused(frame(Uint8Array.of(0x0a, 0x05, 0x61)));
    refused(Buffer.from([1, 0, 0, 0, 0])); // compressed
    refused(Buffer.from([0, 0, 0]));
  });

  it('appends RoutingInfo as field 15 so it merges into any reply, with the frame length fixed', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 50 }),
        fc.integer({ min: 1, max: 100 }),
        fc.boolean(),
        fc.constantFrom('Primary', 'PrimaryWithFallback', 'LocalOnly'),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (servedBy, attempts, fallback, strategy, epoch) => {
          const reply = MemoryServiceDefinition.Recall.responseSerialize({
            memories: [{ memory: { id: 'm1', content: 'c' }, score: 0.5 }],
            routing: { servedBy: 'n-direct', attempts: 1, strategy: 'direct' },
          });
          const out = appendRouting(
            frame(reply),
            Buffer.from(servedBy),
            attempts,
            fallback,
            Buffer.from(strategy),
            epoch,
          )!;
          expect(out.readUInt32BE(1)).toBe(out.length - 5);
          const decoded = MemoryServiceDefinition.Recall.responseDeserialize(out.subarray(5));
          expect(decoded.routing).toEqual({
            servedBy,
            attempts,
            fallback,
            strategy,
            tableEpoch: epoch,
            acknowledged: 0,
            asked: 0,
            degraded: false,
          });
          expect(decoded.memories).toHaveLength(1);
          // Decodes like @engram/proto's encoder output (which also writes default values).
          const theirs = Buffer.concat([
            reply,
            encodeRoutingField({ servedBy, attempts, fallback, strategy, tableEpoch: epoch }),
          ]);
          expect(MemoryServiceDefinition.Recall.responseDeserialize(theirs)).toEqual(decoded);
        },
      ),
    );
  });

  it('parses grpc-timeout units', () => {
    expect(parseGrpcTimeout('100m')).toBe(100);
    expect(parseGrpcTimeout('2S')).toBe(2000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('5000u')).toBe(5);
    expect(parseGrpcTimeout('x')).toBeUndefined();
    expect(parseGrpcTimeout('10q')).toBeUndefined();
  });
});

describe('config', () => {
  it('layers defaults, file, env and flags', () => {
    const cfg = resolveConfig({
      file: { nodes: [{ id: 'a', address: '127.0.0.1:1' }], health: { intervalMs: 500 } },
      env: { [envName('health.intervalMs')]: '700', ENGRAM_ROUTER_WORKERS: '0', HOME: '/x' },
      flags: { workers: '3' },
    });
    expect(cfg.health.intervalMs).toBe(700);
    expect(cfg.workers).toBe(3);
    expect(cfg.router).toEqual(CONFIG_DEFAULTS.router);
    expect(cfg.nodes).toEqual([{ id: 'a', address: '127.0.0.1:1', zone: '' }]);
  });

  it('takes the ingress HTTP/2 limits from file, env and flags', () => {
    const cfg = resolveConfig({
      file: { listen: { maxConcurrentStreams: 50, headerTimeoutMs: 2000 } },
      env: {
        [envName('listen.idleTimeoutMs')]: '0',
        [envName('listen.maxConnectionsPerWorker')]: '500',
      },
      flags: { 'listen.maxHeaderListBytes': '8192', 'listen.sendTimeoutMs': '0' },
    });
    expect(cfg.listen).toEqual({
      host: CONFIG_DEFAULTS.listen.host,
      port: CONFIG_DEFAULTS.listen.port,
      maxConcurrentStreams: 50,
      idleTimeoutMs: 0,
      maxHeaderListBytes: 8192,
      maxConnectionsPerWorker: 500,
      headerTimeoutMs: 2000,
      bodyTimeoutMs: CONFIG_DEFAULTS.listen.bodyTimeoutMs,
      bodyMinBytesPerSecond: CONFIG_DEFAULTS.listen.bodyMinBytesPerSecond,
      sendTimeoutMs: 0,
    });
  });

  it.each([
    [{ router: { maxRetries: -1 } }, 'router.maxRetries'],
    [{ router: { retryBaseDelayMs: 500, retryMaxDelayMs: 100 } }, 'router.retryMaxDelayMs'],
    [{ health: { timeoutMs: 0 } }, 'health.timeoutMs'],
    [{ logLevel: 'loud' }, 'logLevel'],
    [{ localNodeId: 'zz', nodes: [{ id: 'a', address: '127.0.0.1:1' }] }, 'localNodeId'],
    [{ nodes: [], localCluster: { nodes: 0 } }, 'nodes'],
    [{ listen: { maxConcurrentStreams: 0 } }, 'listen.maxConcurrentStreams'],
    [{ listen: { maxHeaderListBytes: 10 } }, 'listen.maxHeaderListBytes'],
    [{ listen: { idleTimeoutMs: -1 } }, 'listen.idleTimeoutMs'],
    [{ listen: { maxConnectionsPerWorker: 0 } }, 'listen.maxConnectionsPerWorker'],
    [{ listen: { headerTimeoutMs: -1 } }, 'listen.headerTimeoutMs'],
    [{ listen: { bodyTimeoutMs: 1.5 } }, 'listen.bodyTimeoutMs'],
  ])('rejects %j naming %s', (file, field) => {
    try {
      resolveConfig({ file });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('InvalidConfig');
      expect((err as ConfigError).field).toBe(field);
    }
  });
});
