import { CLOSE, H2_ERROR, H2ClientConnection, type H2Stream, type StreamHandler } from '@engram/h2';
import { MemoryServiceDefinition } from '@engram/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  Cleanup,
  call,
  callWithTrailers,
  memoryClient,
  spawnRouter,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface RawReply {
  headers: string[];
  trailers: string[] | null;
  code: number;
}

function value(list: readonly string[] | null, name: string): string | undefined {
  if (list === null) return undefined;
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

/**
 * A Recall over a raw @engram/h2 connection, which (unlike grpc-js) sends any header it is
 * given; `endWithTrailers` ends the request with a trailers block instead of END_STREAM on DATA.
 */
function rawRecall(
  c: H2ClientConnection,
  extra: string[],
  endWithTrailers = false,
): Promise<RawReply> {
  const msg = MemoryServiceDefinition.Recall.requestSerialize({ spaceId: 'space-a', limit: 1 });
  return rawCall(c, '/engram.v1.MemoryService/Recall', msg, extra, endWithTrailers);
}

function rawCall(
  c: H2ClientConnection,
  path: string,
  msg: Buffer,
  extra: string[],
  endWithTrailers = false,
): Promise<RawReply> {
  const body = Buffer.alloc(5 + msg.length);
  body.writeUInt32BE(msg.length, 1);
  msg.copy(body, 5);
  return new Promise((resolve) => {
    let headers: string[] = [];
    let trailers: string[] | null = null;
    const handler: StreamHandler = {
      onHeaders(s: H2Stream, h: string[], end: boolean) {
        if (s.headers === h) {
          headers = h;
          if (end) trailers = h;
        } else trailers = h;
      },
      onData() {},
      onClose(_s, code) {
        resolve({ headers, trailers, code });
      },
    };
    const stream = c.request(
      [
        ':method',
        'POST',
        ':scheme',
        'http',
        ':path',
        path,
        ':authority',
        'router',
        'content-type',
        'application/grpc',
        'te',
        'trailers',
        ...extra,
      ],
      endWithTrailers ? null : body,
      handler,
    );
    if (endWithTrailers) {
      stream.sendData(body, false);
      stream.sendTrailers(['x-request-trailer', 'yes']);
    }
  });
}

describe('request and reply headers', () => {
  it('resets requests with malformed headers (RFC 9113 §8.2) before routing, and keeps the nodes healthy', async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 0 }));
    const h2 = H2ClientConnection.connect({ host: '127.0.0.1', port: router.port });
    cleanup.add(() => h2.destroy());
    const bad: [string, string][] = [
      ['x-newline', 'a\nb'],
      ['x-nul', 'a\u0000b'],
      ['x-space', ' padded'],
      ['X-Upper', 'v'],
      ['bad name', 'v'],
      ['connection', 'keep-alive'],
      ['te', 'gzip'],
    ];
    // More than breakerThreshold (5) bad calls: were they forwarded and refused by the node,
    // the nodes' breakers would open and the good call below would fail.
    for (let round = 0; round < 2; round++) {
      for (const [name, v] of bad) {
        const r = await rawRecall(h2, [name, v]);
        expect(r.code).toBe(H2_ERROR.PROTOCOL_ERROR);
        expect(r.trailers).toBeNull(); // never answered: reset as malformed
      }
    }
    // A path HTTP/2 allows and no gRPC method has is refused by the router itself.
    const spaced = await rawCall(h2, '/engram.v1.MemoryService/Re call', Buffer.alloc(0), []);
    expect(value(spaced.trailers, 'grpc-status')).toBe('3');
    const good = await rawRecall(h2, ['x-fine', 'ok value']);
    expect(value(good.trailers, 'grpc-status')).toBe('0');
    expect(value(good.trailers, 'x-engram-attempts')).toBe('1');
  });

  it('routes a request that ends with a trailers block instead of END_STREAM on its data', async () => {
    const c = await LocalCluster.start(1, 1);
    cleanup.add(() => c.stop());
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 0 }));
    const h2 = H2ClientConnection.connect({ host: '127.0.0.1', port: router.port });
    cleanup.add(() => h2.destroy());
    const r = await rawRecall(h2, [], true);
    expect(r.code).toBe(CLOSE.OK);
    expect(value(r.trailers, 'grpc-status')).toBe('0');
    expect(value(r.trailers, 'x-engram-served-by')).toBe(c.configs[0]!.id);
  });

  it('forwards a Store sent with content-length although the stamped body is longer', async () => {
    const c = await LocalCluster.start(3, 2);
    cleanup.add(() => c.stop());
    const router = await spawnRouter(cleanup, testConfig({ nodes: c.configs, workers: 0 }));
    const h2 = H2ClientConnection.connect({ host: '127.0.0.1', port: router.port });
    cleanup.add(() => h2.destroy());
    const msg = MemoryServiceDefinition.Store.requestSerialize({
      spaceId: 'sized',
      memory: { content: 'no id: the router stamps one, a version and a creation time' },
    });
    // What h2load and some HTTP/2 clients send: the client's length, stale once stamped.
    const r = await rawCall(h2, '/engram.v1.MemoryService/Store', msg, [
      'content-length',
      String(msg.length + 5),
    ]);
    expect(r.code).toBe(CLOSE.OK);
    expect(value(r.trailers, 'grpc-status')).toBe('0');
    const recalled = await call(memoryClient(cleanup, router.address), 'recall', {
      spaceId: 'sized',
      cue: { text: '' },
    });
    expect(recalled.memories).toHaveLength(1);
    expect(recalled.routing).toMatchObject({ strategy: 'PrimaryWithFallback' });
  });

  it('answers a request above listen.maxHeaderListBytes with HTTP 431, and serves the next call', async () => {
    const c = await LocalCluster.start(1, 1);
    cleanup.add(() => c.stop());
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: c.configs,
        workers: 0,
        listen: { host: '127.0.0.1', port: 0, maxHeaderListBytes: 2048 },
      }),
    );
    const h2 = H2ClientConnection.connect({ host: '127.0.0.1', port: router.port });
    cleanup.add(() => h2.destroy());
    const big = await rawRecall(h2, ['x-big', 'v'.repeat(4096)]);
    expect(big.code).toBe(CLOSE.OK);
    expect(value(big.headers, ':status')).toBe('431');
    const ok = await rawRecall(h2, ['x-small', 'v']);
    expect(value(ok.trailers, 'grpc-status')).toBe('0');
  });

  it('percent-encodes a non-ASCII node id in the served-by trailer; field 15 keeps it exact', async () => {
    const c = await LocalCluster.start(1, 1);
    cleanup.add(() => c.stop());
    const nodes = c.configs.map((n) => ({ ...n, id: 'nœud-1' }));
    const router = await spawnRouter(cleanup, testConfig({ nodes, workers: 0 }));
    const client = memoryClient(cleanup, router.address);
    const stored = await call(client, 'store', { spaceId: 's', memory: { content: 'x' } });
    expect(stored.routing?.servedBy).toBe('nœud-1');
    const { response, trailers } = await callWithTrailers(client, 's');
    expect(response.routing?.servedBy).toBe('nœud-1');
    expect(trailers.get('x-engram-served-by')).toEqual([encodeURIComponent('nœud-1')]);
  });
});
