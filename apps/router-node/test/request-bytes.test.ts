import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import { buildRing } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  Cleanup,
  call,
  metricValue,
  type RouterProcess,
  scrape,
  spawnRouter,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

function frame(bytes: Uint8Array | readonly number[], flag = 0): Buffer {
  const b = Buffer.alloc(5 + bytes.length);
  b[0] = flag;
  b.writeUInt32BE(bytes.length, 1);
  b.set(bytes, 5);
  return b;
}

interface RawReply {
  status: number;
  message: string;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One raw HTTP/2 gRPC call: what grpc-js clients cannot send (crafted frames, odd encodings). */
function rawCall(
  session: http2.ClientHttp2Session,
  method: string,
  body: Buffer,
  extra: http2.OutgoingHttpHeaders = {},
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const st = session.request({
      ':method': 'POST',
      ':path': `/engram.v1.MemoryService/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...extra,
    });
    let headers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => {
      headers = { ...h };
    });
    st.on('trailers', (t) => {
      headers = { ...headers, ...t };
    });
    st.on('data', (d: Buffer) => chunks.push(d));
    st.on('error', reject);
    st.on('close', () =>
      resolve({
        status: Number(headers['grpc-status']),
        message: decodeURIComponent(String(headers['grpc-message'] ?? '')),
        headers,
        body: Buffer.concat(chunks),
      }),
    );
    st.end(body);
  });
}

function session(address: string): http2.ClientHttp2Session {
  const s = http2.connect(`http://${address}`);
  cleanup.add(() => s.close());
  return s;
}

/** gRPC compression algorithm ids of grpc-js's `grpc.default_compression_algorithm`. */
const COMPRESSION = { deflate: 1, gzip: 2 } as const;

let c: LocalCluster;
let router: RouterProcess;

beforeAll(async () => {
  c = await LocalCluster.start(3, 2);
  cleanup.add(() => c.stop());
  // A low breaker threshold: were the crafted requests below counted, breakers would open.
  router = await spawnRouter(
    cleanup,
    testConfig({ nodes: c.configs, workers: 1, router: { breakerThreshold: 3 } }),
  );
});

describe('compressed requests', () => {
  for (const [name, algorithm] of Object.entries(COMPRESSION)) {
    it(`a grpc-js client compressing with ${name} stores, recalls, queries and consolidates through the router`, async () => {
      const client = new MemoryServiceClient(router.address, grpc.credentials.createInsecure(), {
        'grpc.default_compression_algorithm': algorithm,
        'test.unique': Math.random(),
      });
      cleanup.add(() => client.close());
      const space = `compressed/${name}`;
      const stored = await call(client, 'store', {
        spaceId: space,
        memory: { content: `the ${name} otter`, embedding: [0.25, 0.5, 0.75] },
      });
      expect(stored.memoryId).toMatch(/^[0-9a-f-]{36}$/);
      const recalled = await call(client, 'recall', {
        spaceId: space,
        cue: { text: `${name} otter` },
        limit: 5,
      });
      expect(recalled.memories.map((m) => m.memory?.id)).toContain(stored.memoryId);
      expect(recalled.memories[0]?.memory?.version).toBeGreaterThan(0);
      expect(recalled.routing?.servedBy).toMatch(/^n\d$/);
      const queried = await call(client, 'query', {
        spaceIds: [space],
        cue: { text: 'otter' },
        limit: 5,
      });
      expect(queried.results[0]?.memories.map((m) => m.memory?.id)).toContain(stored.memoryId);
      const consolidated = await call(client, 'consolidate', { spaceId: space });
      expect(consolidated.memoriesBefore).toBe(1);
    });
  }

  it('routes gzip and deflate frames (compressed flag 1) by their space_id and stamps a compressed Store', async () => {
    const s = session(router.address);
    const space = 'compressed/raw';
    const store = MemoryServiceDefinition.Store.requestSerialize({
      spaceId: space,
      memory: { content: 'raw gzip otter' },
    });
    const stored = await rawCall(s, 'Store', frame(zlib.gzipSync(store), 1), {
      'grpc-encoding': 'gzip',
    });
    expect(stored.status).toBe(0);
    const memoryId = MemoryServiceDefinition.Store.responseDeserialize(
      stored.body.subarray(5),
    ).memoryId;
    expect(memoryId).toMatch(/^[0-9a-f-]{36}$/); // stamped by the router
    const recall = MemoryServiceDefinition.Recall.requestSerialize({
      spaceId: space,
      cue: { text: 'otter' },
      limit: 3,
    });
    const recalled = await rawCall(s, 'Recall', frame(zlib.deflateSync(recall), 1), {
      'grpc-encoding': 'deflate',
    });
    expect(recalled.status).toBe(0);
    expect(recalled.body[0]).toBe(0);
    const res = MemoryServiceDefinition.Recall.responseDeserialize(recalled.body.subarray(5));
    expect(res.memories.map((m) => m.memory?.id)).toContain(memoryId);
    // Right after a Store, a replica still acknowledging it may rank behind the others (reads
    // go to the replicas known to hold every acknowledged write first), so the router's choice
    // is seen on a space nothing was written to: its placement primary.
    const untouched = 'compressed/raw-untouched';
    const expected = buildRing({ nodes: c.configs, vnodesPerNode: 256 }).lookup(untouched).primary
      .id;
    const cold = await rawCall(
      s,
      'Recall',
      frame(
        zlib.deflateSync(MemoryServiceDefinition.Recall.requestSerialize({ spaceId: untouched })),
        1,
      ),
      { 'grpc-encoding': 'deflate' },
    );
    expect(cold.status).toBe(0);
    expect(cold.headers['x-engram-served-by']).toBe(expected);
  });

  it('refuses a decompression bomb with RESOURCE_EXHAUSTED before any node is asked', async () => {
    const s = session(router.address);
    const message = MemoryServiceDefinition.Recall.requestSerialize({ spaceId: 'bomb' });
    // 64 MiB of zeros after a valid message: ~64 KiB on the wire, 16 × the 4 MiB request limit.
    const bomb = zlib.gzipSync(Buffer.concat([message, Buffer.alloc(64 * 1024 * 1024)]));
    const r = await rawCall(s, 'Recall', frame(bomb, 1), { 'grpc-encoding': 'gzip' });
    expect(r.status).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(r.message).toContain('decompresses to more than');
    expect(r.headers['x-engram-served-by']).toBeUndefined();
    // Bad compressed data: the node would fail INTERNAL; the router refuses it itself.
    const garbage = await rawCall(s, 'Recall', frame([1, 2, 3, 4], 1), { 'grpc-encoding': 'gzip' });
    expect(garbage.status).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('answers an unknown grpc-encoding with UNIMPLEMENTED and the encodings it accepts', async () => {
    const s = session(router.address);
    const message = MemoryServiceDefinition.Recall.requestSerialize({ spaceId: 'snappy' });
    const r = await rawCall(s, 'Recall', frame(message, 1), { 'grpc-encoding': 'snappy' });
    expect(r.status).toBe(grpc.status.UNIMPLEMENTED);
    expect(r.headers['grpc-accept-encoding']).toBe('identity,deflate,gzip');
  });
});

describe('crafted requests', () => {
  it('a burst of malformed requests gets INVALID_ARGUMENT and leaves every breaker closed; a repeated space_id is routed by the last', async () => {
    const s = session(router.address);
    const bad: [string, Buffer][] = [
      // space_id sent as a varint (protobufjs would read a string from the bytes after it).
      ['Store', frame([0x08, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65])],
      // A Memory that runs past its end: the node fails INTERNAL.
      ['Store', frame([0x0a, 0x01, 0x61, 0x12, 0x05, 0x0a])],
      // Wire type 7 after a valid space_id (the old reader stopped at the space_id).
      ['Recall', frame([0x0a, 0x01, 0x61, 0x0f])],
      // A packed embedding of 3 bytes.
      ['Recall', frame([0x0a, 0x01, 0x61, 0x12, 0x05, 0x12, 0x03, 1, 2, 3])],
      // A truncated message.
      ['Consolidate', frame([0x0a, 0x05, 0x61])],
    ];
    // A valid gzip/deflate Recall under a compressed flag other than 1: a node would read the
    // compressed bytes as protobuf and fail INTERNAL.
    const recall = MemoryServiceDefinition.Recall.requestSerialize({ spaceId: 'flagged' });
    const flagged: [string, Buffer, string][] = [
      ['Recall', frame(zlib.gzipSync(recall), 2), 'gzip'],
      ['Recall', frame(zlib.deflateSync(recall), 0x80), 'deflate'],
      ['Recall', frame(zlib.gzipSync(recall), 0xff), 'gzip'],
    ];
    const replies = await Promise.all(
      Array.from({ length: 8 }, () => [
        ...bad.map(([m, b]) => rawCall(s, m, b)),
        ...flagged.map(([m, b, encoding]) => rawCall(s, m, b, { 'grpc-encoding': encoding })),
      ]).flat(),
    );
    for (const r of replies) {
      expect(r.status).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.message).toMatch(/^malformed request message: /);
    }
    expect(replies[0]!.message).toBe(
      'malformed request message: StoreRequest.space_id: wire type 0, expected 2',
    );
    // space_id "a" then "b": the node keeps the last, so the router routes by it.
    const ring = buildRing({ nodes: c.configs, vnodesPerNode: 256 });
    const [x, y] = ['twice/first', 'twice/last'];
    const body = Buffer.concat([
      MemoryServiceDefinition.Recall.requestSerialize({ spaceId: x }),
      MemoryServiceDefinition.Recall.requestSerialize({ spaceId: y, limit: 1 }),
    ]);
    const twice = await rawCall(s, 'Recall', frame(body));
    expect(twice.status).toBe(0);
    expect(twice.headers['x-engram-served-by']).toBe(ring.lookup(y).primary.id);
    const text = await scrape(router.metricsPort);
    for (const n of c.configs) {
      expect(metricValue(text, 'engram_router_breaker_state', `node="${n.id}"`)).toBe(0);
    }
  });
});

describe('compressed replies', () => {
  it('a reply a node compressed reaches the client inflated, with RoutingInfo in field 15', async () => {
    // grpc-js nodes never compress replies; this node does, as another server may.
    const Recall = MemoryServiceDefinition.Recall;
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      stream.on('data', () => {});
      stream.on('end', () => {
        const health = headers[':path'] === '/grpc.health.v1.Health/Check';
        const message = health
          ? Buffer.from([0x08, 0x01])
          : Recall.responseSerialize({
              memories: [{ memory: { id: 'zipped', content: 'from a gzip reply' }, score: 1 }],
            });
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' },
          {
            waitForTrailers: true,
          },
        );
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame(zlib.gzipSync(message), 1));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const solo = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [{ id: 'zip', address, zone: 'a' }],
        replicationFactor: 1,
        workers: 0,
      }),
    );
    const client = new MemoryServiceClient(solo.address, grpc.credentials.createInsecure());
    cleanup.add(() => client.close());
    const res = await call(client, 'recall', { spaceId: 's', cue: { text: 'x' } });
    expect(res.memories[0]?.memory?.id).toBe('zipped');
    expect(res.routing?.servedBy).toBe('zip');
    expect(res.routing?.strategy).not.toBe('');
  });
});

describe('request bodies', () => {
  it('a Store whose message spans several DATA frames is forwarded whole, and read back intact', async () => {
    const s = session(router.address);
    const space = 'bodies/multi-frame';
    // ~42 KB of content: three DATA frames or more at the default 16 KiB frame size.
    const content = Array.from({ length: 6000 }, (_, i) => `otter${i % 10}`).join(' ');
    const message = frame(
      MemoryServiceDefinition.Store.requestSerialize({ spaceId: space, memory: { content } }),
    );
    expect(message.length).toBeGreaterThan(2 * 16_384);
    const stored = await rawCall(s, 'Store', message);
    expect(stored.status).toBe(0);
    const memoryId = MemoryServiceDefinition.Store.responseDeserialize(
      stored.body.subarray(5),
    ).memoryId;
    const recalled = await rawCall(
      s,
      'Recall',
      frame(
        MemoryServiceDefinition.Recall.requestSerialize({
          spaceId: space,
          cue: { text: 'otter7' },
          limit: 1,
        }),
      ),
    );
    expect(recalled.status).toBe(0);
    const res = MemoryServiceDefinition.Recall.responseDeserialize(recalled.body.subarray(5));
    const got = res.memories.find((m) => m.memory?.id === memoryId)?.memory?.content;
    // Compared by length and equality, not printed: 40 KiB would flood a failure report.
    expect(got?.length).toBe(content.length);
    expect(got === content).toBe(true);
  });
});
