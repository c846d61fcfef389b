import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLOSE, type H2ClientConnection, type H2Stream } from '@engram/h2';
import { type MemoryNode, startMemoryNode } from '@engram/memory-node';
import { generateTestCertificates, type TestCertificates } from '@engram/memory-node/test-support';
import {
  MEMORY_METHOD_PATHS,
  MemoryServiceDefinition,
  type RecallResponse,
  type StoreResponse,
} from '@engram/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConnectionEvent,
  ConnectionFailedError,
  ConnectionPool,
  type ConnectionStateEvent,
  type PoolOptions,
} from '../src/index.js';
import {
  type CountingProxy,
  deadPort,
  ManualClock,
  startBlackhole,
  startCountingProxy,
  until,
} from './helpers.js';

// The pool's third kind, '@engram/h2' client connections, covered the way the raw
// node:http2 sessions are: real memory nodes behind a pass-through proxy that counts TCP
// connections, real unary gRPC calls made with `request()` and decoded with the proto
// definitions, fake time wherever a timer decides the outcome.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A real memory node behind a counting proxy (the proxy's address is "the node"). */
interface ProxiedMemoryNode {
  readonly id: string;
  readonly address: string;
  readonly proxy: CountingProxy;
  readonly node: MemoryNode;
  /** Stops proxy and node, dropping every connection (idempotent). */
  stop(): Promise<void>;
}

async function memoryNode(
  ports: { proxy?: number; node?: number } = {},
  id = 'n1',
): Promise<ProxiedMemoryNode> {
  const node = await startMemoryNode({
    id,
    ...(ports.node === undefined ? {} : { port: ports.node }),
  });
  const proxy = await startCountingProxy(node.port, ports.proxy ?? 0);
  let stopped: Promise<void> | undefined;
  const n: ProxiedMemoryNode = {
    id,
    address: proxy.address,
    proxy,
    node,
    stop: () => {
      stopped ??= proxy.close().then(() => node.close());
      return stopped;
    },
  };
  cleanups.push(() => n.stop());
  return n;
}

function pool(options: PoolOptions = {}): ConnectionPool {
  const p = new ConnectionPool({ channelsPerNode: 4, ...options });
  cleanups.push(() => p.close());
  return p;
}

function header(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

interface UnaryReply {
  readonly headers: string[];
  readonly trailers: string[];
  readonly message: Buffer;
}

/**
 * One unary gRPC call over an `@engram/h2` connection: 5-byte prefix + protobuf request with
 * END_STREAM; resolves the response message (prefix stripped) and the trailers.
 */
function h2Unary(
  c: H2ClientConnection,
  authority: string,
  path: string,
  request: Buffer,
): Promise<UnaryReply> {
  return new Promise((resolve, reject) => {
    const blocks: string[][] = [];
    const chunks: Buffer[] = [];
    const framed = Buffer.alloc(5 + request.length);
    framed.writeUInt32BE(request.length, 1);
    request.copy(framed, 5);
    c.request(
      [
        ':method',
        'POST',
        ':scheme',
        'http',
        ':path',
        path,
        ':authority',
        authority,
        'content-type',
        'application/grpc',
        'te',
        'trailers',
      ],
      framed,
      {
        onHeaders: (_s: H2Stream, headers: string[]) => {
          blocks.push(headers);
        },
        // A view into the read buffer: copy it.
        onData: (_s: H2Stream, chunk: Buffer) => {
          chunks.push(Buffer.from(chunk));
        },
        onClose: (_s: H2Stream, code: number) => {
          if (code !== CLOSE.OK) return reject(new Error(`stream closed with code ${code}`));
          const headers = blocks[0] ?? [];
          // Trailers-only responses carry grpc-status in their single header block.
          const trailers = blocks[blocks.length - 1] ?? [];
          const body = Buffer.concat(chunks);
          if (header(trailers, 'grpc-status') !== '0') {
            return reject(
              new Error(
                `grpc-status ${header(trailers, 'grpc-status')}: ${header(trailers, 'grpc-message')}`,
              ),
            );
          }
          if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
            return reject(new Error(`malformed gRPC body of ${body.length} bytes`));
          }
          resolve({ headers, trailers, message: body.subarray(5) });
        },
      },
    );
  });
}

const RECALL = MemoryServiceDefinition.Recall;
const STORE = MemoryServiceDefinition.Store;

async function recall(c: H2ClientConnection, authority: string, spaceId = 'h2-space') {
  const reply = await h2Unary(
    c,
    authority,
    MEMORY_METHOD_PATHS.Recall,
    RECALL.requestSerialize({ spaceId, cue: { text: 'h2', embedding: [] }, limit: 5 }),
  );
  expect(header(reply.headers, ':status')).toBe('200');
  return RECALL.responseDeserialize(reply.message) as RecallResponse;
}

async function store(c: H2ClientConnection, authority: string, content: string) {
  const reply = await h2Unary(
    c,
    authority,
    MEMORY_METHOD_PATHS.Store,
    STORE.requestSerialize({ spaceId: 'h2-space', memory: { content } } as Parameters<
      typeof STORE.requestSerialize
    >[0]),
  );
  return STORE.responseDeserialize(reply.message) as StoreResponse;
}

/** `e`'s cause chain, outermost first. */
function causes(e: unknown): unknown[] {
  const chain: unknown[] = [];
  for (
    let c = (e as { cause?: unknown }).cause;
    c !== undefined;
    c = (c as { cause?: unknown }).cause
  ) {
    chain.push(c);
  }
  return chain;
}

/** Counts the timers armed, so a test can wait for the one a PING ACK arms. */
class CountingClock extends ManualClock {
  armed = 0;
  override setTimeout(callback: () => void, delayMs: number): unknown {
    this.armed++;
    return super.setTimeout(callback, delayMs);
  }
}

const tcpHandles = () =>
  process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

describe('ConnectionPool with @engram/h2 connections', () => {
  // First in the file: no earlier test's sockets can still be closing while handles are counted.
  it('removeNode and close() leave no sockets or TCP handles behind', async () => {
    const a = await memoryNode({}, 'a');
    const b = await memoryNode({}, 'b');
    const baseline = tcpHandles();
    const p = pool();
    p.addNode('a', a.address);
    p.addNode('b', b.address);
    await Promise.all([p.connect('a', 'h2'), p.connect('b', 'h2')]);
    await a.proxy.whenOpen(4);
    await b.proxy.whenOpen(4);
    expect(tcpHandles()).toBeGreaterThan(baseline);
    expect((await recall(p.acquireH2('a'), a.address)).routing?.servedBy).toBe('a');
    expect(p.h2Count).toBe(8);

    await p.removeNode('a');
    await a.proxy.whenOpen(0);
    expect(b.proxy.open()).toBe(4);
    expect(p.h2Count).toBe(4);
    expect(p.hasNode('a')).toBe(false);

    await p.close();
    await b.proxy.whenOpen(0);
    expect(p.h2Count).toBe(0);
    expect(p.healthReport().totalH2).toBe(0);
    // The node's side of each proxied connection closes a moment after the proxy's.
    await until(() => tcpHandles() === baseline, 'TCP handles to return to the baseline');
  });

  it('opens channelsPerNode distinct connections per node, counted at the proxy', async () => {
    const a = await memoryNode({}, 'a');
    const b = await memoryNode({}, 'b');
    const p = pool();
    p.addNode('a', a.address);
    p.addNode('b', b.address);
    await Promise.all([p.connect('a', 'h2'), p.connect('b', 'h2')]);
    const fromA = new Set(Array.from({ length: 8 }, () => p.acquireH2('a')));
    const fromB = new Set(Array.from({ length: 8 }, () => p.acquireH2('b')));
    expect(fromA.size).toBe(4);
    expect(fromB.size).toBe(4);
    expect([...fromA].some((c) => fromB.has(c))).toBe(false);
    for (const c of fromA) expect((await recall(c, a.address)).routing?.servedBy).toBe('a');
    for (const c of fromB) expect((await recall(c, b.address)).routing?.servedBy).toBe('b');
    expect(a.proxy.accepted()).toBe(4);
    expect(b.proxy.accepted()).toBe(4);
    expect(p.h2Count).toBe(8);
    // The other kinds stay unopened: h2 use opens neither channels nor sessions.
    expect(p.channelCount + p.sessionCount).toBe(0);
  });

  it('opens one connection per node with default options', async () => {
    const a = await memoryNode();
    const p = new ConnectionPool();
    cleanups.push(() => p.close());
    p.addNode('n1', a.address);
    for (let i = 0; i < 5; i++) await recall(p.acquireH2('n1'), a.address);
    expect(a.proxy.accepted()).toBe(1);
    expect(p.h2Count).toBe(p.options.channelsPerNode);
  });

  it("carries a request on first use, before the server's SETTINGS arrive", async () => {
    const a = await memoryNode();
    const p = new ConnectionPool({ channelsPerNode: 2 });
    cleanups.push(() => p.close());
    p.addNode('n1', a.address);
    // No connect(): the first acquireH2() opens the node's connections and hands one out
    // while it is still CONNECTING; the request goes out behind the preface (RFC 9113 §3.4).
    const c = p.acquireH2('n1');
    expect(c.isReady).toBe(false);
    expect(p.healthReport().perNode[0]!.h2).toEqual(['connecting', 'connecting']);
    const replies = await Promise.all([recall(c, a.address), recall(p.acquireH2('n1'), a.address)]);
    expect(replies.map((r) => r.routing?.servedBy)).toEqual(['n1', 'n1']);
    expect(a.proxy.accepted()).toBe(2);
  });

  it('round-robins over the connections in a fixed order', async () => {
    const a = await memoryNode();
    const p = pool({ channelsPerNode: 3 });
    const slot = p.addNode('n1', a.address);
    const seq = Array.from({ length: 9 }, (_, i) => p.acquireH2(i % 2 === 0 ? 'n1' : slot));
    expect(new Set(seq).size).toBe(3);
    expect(seq.slice(0, 3)).toEqual(seq.slice(3, 6));
    expect(seq.slice(0, 3)).toEqual(seq.slice(6, 9));
  });

  it('carries 1,000 real unary calls on the same connections', { timeout: 30_000 }, async () => {
    const a = await memoryNode();
    const p = pool();
    const slot = p.addNode('n1', a.address);
    await p.connect(slot, 'h2');
    await a.proxy.whenOpen(4);
    const stored = await store(p.acquireH2(slot), a.address, 'h2 keeps connections warm');
    expect(stored.memoryId).not.toBe('');
    const used = new Set<H2ClientConnection>();
    for (let i = 0; i < 1000; i++) {
      const c = p.acquireH2(slot);
      used.add(c);
      const response = await recall(c, a.address);
      if (i % 250 === 0) {
        expect(response.routing?.servedBy).toBe('n1');
        expect(response.memories[0]?.memory?.id).toBe(stored.memoryId);
        expect(response.memories[0]?.memory?.content).toBe('h2 keeps connections warm');
      }
    }
    expect(used.size).toBe(4);
    expect(a.proxy.accepted()).toBe(4);
    expect(a.proxy.open()).toBe(4);
    expect(p.h2Count).toBe(4);
    expect(p.healthReport()).toMatchObject({
      totalNodes: 1,
      healthyNodes: 1,
      totalChannels: 0,
      totalSessions: 0,
      totalH2: 4,
    });
  });

  it('carries concurrent calls on one connection', async () => {
    const a = await memoryNode();
    const p = new ConnectionPool();
    cleanups.push(() => p.close());
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    const replies = await Promise.all(
      Array.from({ length: 64 }, () => recall(p.acquireH2('n1'), a.address)),
    );
    expect(replies.every((r) => r.routing?.servedBy === 'n1')).toBe(true);
    expect(a.proxy.accepted()).toBe(1);
  });

  it('reports h2 states and totalH2 in healthReport()', async () => {
    const a = await memoryNode();
    const p = pool({ channelsPerNode: 2 });
    p.addNode('n1', a.address);
    expect(p.healthReport().perNode[0]).toMatchObject({ healthy: false, h2: [] });
    expect(p.healthReport().totalH2).toBe(0);
    p.acquireH2('n1'); // opens both, CONNECTING until the server's SETTINGS arrive
    expect(p.healthReport().perNode[0]!.h2).toEqual(['connecting', 'connecting']);
    expect(p.healthReport()).toMatchObject({ healthyNodes: 0, totalH2: 2 });
    await p.connect('n1', 'h2');
    expect(p.healthReport()).toMatchObject({
      totalNodes: 1,
      healthyNodes: 1,
      totalH2: 2,
      perNode: [
        {
          nodeId: 'n1',
          address: a.address,
          healthy: true,
          channels: [],
          sessions: [],
          h2: ['ready', 'ready'],
          lastError: undefined,
        },
      ],
    });
  });

  it('emits onConnection and onStateChange events of kind h2', async () => {
    const a = await memoryNode();
    const events: ConnectionEvent[] = [];
    const states: ConnectionStateEvent[] = [];
    const p = pool({
      channelsPerNode: 2,
      onConnection: (e) => events.push(e),
      onStateChange: (e) => states.push(e),
    });
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    expect(events).toEqual([
      { type: 'open', kind: 'h2', nodeId: 'n1', index: 0 },
      { type: 'open', kind: 'h2', nodeId: 'n1', index: 1 },
    ]);
    expect(states.filter((s) => s.state === 'ready').map((s) => [s.kind, s.index])).toEqual(
      expect.arrayContaining([
        ['h2', 0],
        ['h2', 1],
      ]),
    );
    await p.removeNode('n1');
    expect(events.slice(2)).toEqual([
      { type: 'close', kind: 'h2', nodeId: 'n1', index: 0 },
      { type: 'close', kind: 'h2', nodeId: 'n1', index: 1 },
    ]);
    expect(states.filter((s) => s.state === 'shutdown')).toHaveLength(2);
    expect(states.every((s) => s.kind === 'h2' && s.nodeId === 'n1')).toBe(true);
  });

  it('replaces broken connections with backoff after the server restarts on the same port', async () => {
    const clock = new ManualClock();
    const a = await memoryNode();
    const p = pool({ clock, random: () => 0 });
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    const old = new Set(Array.from({ length: 4 }, () => p.acquireH2('n1')));
    expect(old.size).toBe(4);

    await a.stop();
    await until(() => p.h2Count === 0, 'every connection to break');
    // All four broke; none is handed out while their replacements wait out the backoff.
    expect(() => p.acquireH2('n1')).toThrow(ConnectionFailedError);
    expect(p.healthReport().perNode[0]!.h2).toEqual(Array(4).fill('transient_failure'));
    expect(p.healthReport()).toMatchObject({ healthyNodes: 0, totalH2: 0 });
    const b = await memoryNode({ proxy: a.proxy.port, node: a.node.port });
    expect(b.address).toBe(a.address);
    clock.advance(49);
    expect(p.h2Count).toBe(0);
    clock.advance(1); // first replacement: 100 ms base, equal jitter with r = 0 -> 50 ms
    expect(p.h2Count).toBe(4);
    await p.connect('n1', 'h2');
    const fresh = Array.from({ length: 4 }, () => p.acquireH2('n1'));
    expect(new Set(fresh).size).toBe(4);
    expect(fresh.some((c) => old.has(c))).toBe(false);
    for (const c of fresh) expect((await recall(c, b.address)).routing?.servedBy).toBe('n1');
    expect(b.proxy.accepted()).toBe(4);
    expect(p.healthReport().perNode[0]!.h2).toEqual(Array(4).fill('ready'));
    await p.close();
    // Keep-alive, connect, backoff and grace timers are all gone with the connections.
    expect(clock.pending()).toBe(0);
  });

  it('replaces a connection whose keep-alive PING goes unanswered', async () => {
    const clock = new ManualClock();
    const a = await memoryNode();
    const p = new ConnectionPool({ clock, random: () => 0 });
    cleanups.push(() => p.close());
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    await a.proxy.whenOpen(1);
    const first = p.acquireH2('n1');
    await recall(first, a.address);
    // The peer completed TCP and sent SETTINGS; from now on it is silent.
    a.proxy.freeze();

    clock.advance(30_000); // keepaliveIntervalMs: the PING goes out, nothing comes back
    expect(p.h2Count).toBe(p.options.channelsPerNode);
    expect(first.isDestroyed).toBe(false);
    clock.advance(9_999);
    expect(p.h2Count).toBe(p.options.channelsPerNode);
    clock.advance(1); // keepaliveTimeoutMs: broken, closed, replacement scheduled
    expect(p.h2Count).toBe(0);
    expect(first.isDestroyed).toBe(true);
    expect(p.healthReport().perNode[0]!.lastError).toMatch(/PING unanswered after 10000 ms/);
    expect(() => p.acquireH2('n1')).toThrow(ConnectionFailedError);
    clock.advance(50);
    await p.connect('n1', 'h2');
    const replaced = p.acquireH2('n1');
    expect(replaced === first).toBe(false);
    expect(a.proxy.accepted()).toBe(2);
    expect((await recall(replaced, a.address)).routing?.servedBy).toBe('n1');
  });

  it('keeps a connection whose keep-alive PINGs are answered', async () => {
    const clock = new CountingClock();
    const a = await memoryNode();
    const p = new ConnectionPool({ clock });
    cleanups.push(() => p.close());
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    const first = p.acquireH2('n1');
    for (let round = 0; round < 3; round++) {
      const armed = clock.armed;
      clock.advance(30_000); // the PING goes out; its timeout timer is armed
      expect(clock.armed).toBe(armed + 1);
      // The ACK clears the timeout and arms the next interval.
      await until(() => clock.armed === armed + 2, 'the PING ACK');
      expect(clock.pending()).toBe(1);
    }
    clock.advance(10_000);
    expect(first.isDestroyed).toBe(false);
    expect(p.acquireH2('n1')).toBe(first);
    expect(a.proxy.accepted()).toBe(1);
    expect((await recall(first, a.address)).routing?.servedBy).toBe('n1');
  });

  /** A node:http2 server that answers each stream when the test says so. */
  async function manualServer() {
    const server = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    const streams: http2.ServerHttp2Stream[] = [];
    server.on('session', (s) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
      s.on('error', () => {});
    });
    server.on('stream', (st) => {
      st.on('error', () => {});
      streams.push(st);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => {
      for (const s of sessions) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, sessions, streams };
  }

  it('replaces a connection on GOAWAY and lets its in-flight call finish', async () => {
    const clock = new ManualClock();
    const srv = await manualServer();
    const p = pool({ clock, random: () => 0, channelsPerNode: 1 });
    p.addNode('g', srv.address);
    await p.connect('g', 'h2');
    const c = p.acquireH2('g');
    const chunks: Buffer[] = [];
    let closeCode: number | undefined;
    const headers = [':method', 'POST', ':scheme', 'http', ':path', '/x', ':authority', 'g'];
    c.request(headers, Buffer.alloc(0), {
      onHeaders: () => {},
      onData: (_s, chunk) => {
        chunks.push(Buffer.from(chunk));
      },
      onClose: (_s, code) => {
        closeCode = code;
      },
    });
    await until(() => srv.streams.length === 1, 'the request to arrive');
    const stream = srv.streams[0]!;
    // Graceful server shutdown (what grpc-js does): GOAWAY, then close once streams end.
    for (const s of srv.sessions) s.close();
    await until(() => p.h2Count === 0, 'the connection to break on GOAWAY');
    expect(p.healthReport().perNode[0]!.lastError).toMatch(/GOAWAY received \(code 0\)/);
    expect(c.available).toBe(false);
    expect(() => p.acquireH2('g')).toThrow(ConnectionFailedError);
    expect(closeCode).toBeUndefined(); // the call below the GOAWAY's last stream id lives on
    stream.respond({ ':status': 200 });
    stream.end('done');
    await until(() => closeCode !== undefined, 'the in-flight call to finish');
    expect(closeCode).toBe(CLOSE.OK);
    expect(Buffer.concat(chunks).toString()).toBe('done');
    await until(() => c.isDestroyed && srv.sessions.size === 0, 'both sides to close');
    clock.advance(50); // backoff with r = 0: a fresh connection to the same server
    await p.connect('g', 'h2');
    expect(p.acquireH2('g')).not.toBe(c);
    expect(p.h2Count).toBe(p.options.channelsPerNode);
  });

  it('destroys a GOAWAY connection the server never closes after the grace period', async () => {
    const clock = new ManualClock();
    const srv = await manualServer();
    const p = pool({ clock, random: () => 0, channelsPerNode: 2 });
    p.addNode('g', srv.address);
    await p.connect('g', 'h2');
    const old = Array.from({ length: 2 }, () => p.acquireH2('g'));
    await until(() => srv.sessions.size === 2, 'both sessions on the server');
    // GOAWAY without closing: node:http2 then stops reading (nghttp2 wants no more input)
    // and never closes the socket, whatever the client sends.
    for (const s of srv.sessions) s.goaway(http2.constants.NGHTTP2_NO_ERROR);
    await until(() => p.h2Count === 0, 'both connections to break on GOAWAY');
    expect(p.healthReport().perNode[0]!.lastError).toMatch(/GOAWAY received \(code 0\)/);
    expect(old.every((c) => !c.available && !c.isDestroyed)).toBe(true);
    clock.advance(9_999);
    expect(old.every((c) => !c.isDestroyed)).toBe(true);
    clock.advance(1); // keepaliveTimeoutMs after the graceful close began: destroyed
    expect(old.every((c) => c.isDestroyed && c.socket.destroyed)).toBe(true);
    // The replacements were due long ago (50 ms); they connect to the same server.
    await p.connect('g', 'h2');
    expect(p.h2Count).toBe(2);
    expect(old.includes(p.acquireH2('g'))).toBe(false);
  });

  it('close() lets an in-flight call finish before the socket goes', async () => {
    const a = await memoryNode();
    const p = pool({ channelsPerNode: 1 });
    p.addNode('n1', a.address);
    await p.connect('n1', 'h2');
    const c = p.acquireH2('n1');
    const call = recall(c, a.address);
    const closed = p.close();
    expect(c.available).toBe(false); // GOAWAY queued: no new streams
    expect((await call).routing?.servedBy).toBe('n1');
    await closed;
    expect(c.isDestroyed).toBe(true);
    await a.proxy.whenOpen(0);
    expect(p.h2Count).toBe(0);
  });

  it('close() does not wait forever for a stream that never ends', async () => {
    const clock = new ManualClock();
    const silent = http2.createServer();
    silent.on('stream', () => {}); // accepts the request, never answers
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const port = (silent.address() as AddressInfo).port;
    const p = new ConnectionPool({ clock });
    p.addNode('s', `127.0.0.1:${port}`);
    await p.connect('s', 'h2');
    const arrived = once(silent, 'stream');
    let closeCode: number | undefined;
    const c = p.acquireH2('s');
    c.request([':method', 'POST', ':scheme', 'http', ':path', '/', ':authority', 'x'], null, {
      onHeaders: () => {},
      onData: () => {},
      onClose: (_s, code) => {
        closeCode = code;
      },
    });
    await arrived;
    let done = false;
    const closed = p.close().then(() => {
      done = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false); // graceful close is waiting on the stream
    expect(closeCode).toBeUndefined();
    clock.advance(10_000); // keepaliveTimeoutMs: the grace period ends, the socket goes
    await closed;
    expect(p.h2Count).toBe(0);
    expect(c.isDestroyed).toBe(true);
    expect(closeCode).toBe(CLOSE.CONNECTION_LOST);
  });

  it('reports ConnectionFailed for a refused port, from connect() and acquireH2()', async () => {
    const port = await deadPort();
    // Fake time: the connect timeout never fires, so the rejection must come from the
    // refused connection itself.
    const p = pool({ clock: new ManualClock() });
    p.addNode('dead', `127.0.0.1:${port}`);
    const err = (await p.connect('dead', 'h2').catch((e: unknown) => e)) as ConnectionFailedError;
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect(err).toMatchObject({
      code: 'ConnectionFailed',
      nodeId: 'dead',
      address: `127.0.0.1:${port}`,
    });
    expect(err.cause).toBeInstanceOf(Error);
    expect(err.cause.message).toMatch(/ECONNREFUSED/);
    // The socket error itself stays reachable through the cause chain, as for sessions.
    expect(causes(err)).toContainEqual(expect.objectContaining({ code: 'ECONNREFUSED' }));
    await until(() => p.h2Count === 0, 'every connection attempt to fail');
    expect(() => p.acquireH2('dead')).toThrow(
      expect.objectContaining({ code: 'ConnectionFailed', nodeId: 'dead' }),
    );
    expect(p.healthReport()).toMatchObject({ totalNodes: 1, healthyNodes: 0, totalH2: 0 });
    // A node known to be back is dialled again at once, not after its backoff.
    p.reconnectNow('dead');
    expect(p.h2Count).toBe(p.options.channelsPerNode);
  });

  it('reports ConnectionFailed when the peer accepts TCP but never sends SETTINGS', async () => {
    const clock = new ManualClock();
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const p = pool({ clock, connectTimeoutMs: 200, channelsPerNode: 2 });
    p.addNode('slow', hole.address);
    const connecting = p.connect('slow', 'h2').catch((e: unknown) => e);
    const conns = Array.from({ length: 2 }, () => p.acquireH2('slow'));
    // READY waits for the server's SETTINGS, which never come.
    expect(p.healthReport().perNode[0]!.h2).toEqual(['connecting', 'connecting']);
    clock.advance(199);
    expect(p.h2Count).toBe(2);
    clock.advance(1);
    const err = (await connecting) as ConnectionFailedError;
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect(err).toMatchObject({ code: 'ConnectionFailed', nodeId: 'slow' });
    expect(err.cause.message).toMatch(/connect timeout after 200 ms/);
    expect(p.h2Count).toBe(0);
    expect(conns.every((c) => c.isDestroyed)).toBe(true);
    expect(() => p.acquireH2('slow')).toThrow(ConnectionFailedError);
  });

  it('reconnects to the new address when a node is re-added with one', async () => {
    const a = await memoryNode({}, 'a');
    const b = await memoryNode({}, 'b');
    const p = pool({ channelsPerNode: 2 });
    const slot = p.addNode('n', a.address);
    await p.connect('n', 'h2');
    expect(p.addNode('n', b.address)).toBe(slot);
    await a.proxy.whenOpen(0);
    await p.connect(slot, 'h2');
    expect(b.proxy.accepted()).toBe(2);
    expect(p.h2Count).toBe(2);
    expect((await recall(p.acquireH2(slot), b.address)).routing?.servedBy).toBe('b');
  });
});

describe('@engram/h2 connections over TLS', () => {
  let dir: string;
  let pki: TestCertificates;
  let otherCa: Buffer;
  let tlsNode: MemoryNode;
  let mtlsNode: MemoryNode;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'engram-pool-h2-pki-'));
    pki = generateTestCertificates(join(dir, 'main'));
    otherCa = generateTestCertificates(join(dir, 'other')).ca;
    tlsNode = await startMemoryNode({
      id: 'tls',
      tls: { cert: pki.serverCert, key: pki.serverKey },
    });
    mtlsNode = await startMemoryNode({
      id: 'mtls',
      tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
    });
  });

  afterAll(async () => {
    await tlsNode?.close();
    await mtlsNode?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const tlsRecall = async (c: H2ClientConnection, authority: string) => {
    const reply = await h2Unary(
      c,
      authority,
      MEMORY_METHOD_PATHS.Recall,
      RECALL.requestSerialize({ spaceId: 's', cue: { text: 'x', embedding: [] }, limit: 1 }),
    );
    return RECALL.responseDeserialize(reply.message) as RecallResponse;
  };

  it('round-trips over TLS verified with the configured CA', async () => {
    const p = pool({ channelsPerNode: 2, credentials: { kind: 'tls', ca: pki.ca } });
    p.addNode('t', tlsNode.address);
    await p.connect('t', 'h2');
    for (let i = 0; i < 4; i++) {
      const c = p.acquireH2('t');
      expect(c.socket.constructor.name).toBe('TLSSocket');
      expect((await tlsRecall(c, tlsNode.address)).routing?.servedBy).toBe('tls');
    }
  });

  it('verifies the server name given instead of the address host', async () => {
    const p = pool({
      channelsPerNode: 1,
      credentials: { kind: 'tls', ca: pki.ca, serverName: 'localhost' },
    });
    p.addNode('t', tlsNode.address);
    await p.connect('t', 'h2');
    expect((await tlsRecall(p.acquireH2('t'), tlsNode.address)).routing?.servedBy).toBe('tls');
  });

  it('refuses a server whose certificate the CA did not sign', async () => {
    const p = pool({ clock: new ManualClock(), credentials: { kind: 'tls', ca: otherCa } });
    p.addNode('t', tlsNode.address);
    const err = (await p.connect('t', 'h2').catch((e: unknown) => e)) as ConnectionFailedError;
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect(err.cause.message).toMatch(/certificate/i);
  });

  it('round-trips over mutual TLS with a client certificate', async () => {
    const p = pool({
      channelsPerNode: 2,
      credentials: { kind: 'tls', ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    });
    p.addNode('m', mtlsNode.address);
    await p.connect('m', 'h2');
    for (let i = 0; i < 2; i++) {
      expect((await tlsRecall(p.acquireH2('m'), mtlsNode.address)).routing?.servedBy).toBe('mtls');
    }
  });

  it('is refused by a mutual-TLS server without a client certificate', async () => {
    // Fake time: only the server's refusal can fail the connect.
    const p = pool({ clock: new ManualClock(), credentials: { kind: 'tls', ca: pki.ca } });
    p.addNode('m', mtlsNode.address);
    await expect(p.connect('m', 'h2')).rejects.toBeInstanceOf(ConnectionFailedError);
  });
});
