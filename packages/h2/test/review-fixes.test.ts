// Regression tests for an independent review of @engram/h2 (one test per finding).
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSE,
  H2_ERROR,
  H2ClientConnection,
  H2Server,
  type H2Stream,
  type StreamHandler,
} from '../src/index.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const REQ = [
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  '/x',
  ':authority',
  'a',
  'te',
  'trailers',
];

interface Outcome {
  code: number;
  headers: (readonly string[])[];
  bytes: number;
}

function send(
  c: H2ClientConnection,
  body: Buffer | null,
): { stream: H2Stream; done: Promise<Outcome> } {
  let resolve!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => {
    resolve = r;
  });
  const headers: (readonly string[])[] = [];
  let bytes = 0;
  const handler: StreamHandler = {
    onHeaders(_s, h) {
      headers.push(h);
    },
    onData(_s, d) {
      bytes += d.length;
    },
    onClose(_s, code) {
      resolve({ code, headers, bytes });
    },
  };
  return { stream: c.request(REQ, body, handler), done };
}

async function nodeServer(
  onStream: (s: http2.ServerHttp2Stream) => void,
  settings: http2.Settings = {},
): Promise<{ port: number; server: http2.Http2Server; sockets: import('node:net').Socket[] }> {
  const server = http2.createServer({ settings });
  const sockets: import('node:net').Socket[] = [];
  server.on('connection', (s: import('node:net').Socket) => sockets.push(s));
  server.on('stream', (s) => {
    s.on('error', () => {});
    onStream(s);
  });
  server.on('session', (s) => s.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, server, sockets };
}

async function client(
  port: number,
  extra: { firstStreamId?: number } = {},
): Promise<H2ClientConnection> {
  const c = H2ClientConnection.connect({ host: '127.0.0.1', port, ...extra });
  cleanups.push(() => c.destroy());
  await new Promise<void>((r) => {
    c.onReady = r;
  });
  return c;
}

describe('review fixes', () => {
  it('keeps a complete early reply when the server stops the upload with RST_STREAM(NO_ERROR)', async () => {
    // A gRPC server answering before it read the whole request (e.g. RESOURCE_EXHAUSTED).
    const { port } = await nodeServer((st) => {
      st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      st.on('wantTrailers', () =>
        st.sendTrailers({ 'grpc-status': '8', 'grpc-message': 'too big' }),
      );
      st.end();
    });
    const c = await client(port);
    // Larger than the server's 64 KiB window: the body is still queued when the reply is done.
    const r = await send(c, Buffer.alloc(200_000, 1)).done;
    expect(r.code).toBe(CLOSE.OK);
    const trailers = r.headers.at(-1)!;
    expect(trailers[trailers.indexOf('grpc-status') + 1]).toBe('8');
    expect(c.streams.size).toBe(0);
  });

  it('fails requests still waiting for a slot when the connection drops', async () => {
    const { port, sockets } = await nodeServer(() => {}, { maxConcurrentStreams: 1 });
    const c = await client(port);
    const calls = [send(c, Buffer.from('a')), send(c, Buffer.from('b')), send(c, Buffer.from('c'))];
    expect(calls[1]!.stream.id).toBe(0); // waiting
    await expect.poll(() => sockets.length).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) s.destroy();
    const codes = (await Promise.all(calls.map((x) => x.done))).map((o) => o.code);
    expect(codes).toEqual([CLOSE.CONNECTION_LOST, CLOSE.CONNECTION_LOST, CLOSE.CONNECTION_LOST]);
  });

  it('refuses waiting requests when the connection is closed gracefully', async () => {
    const { port } = await nodeServer(() => {}, { maxConcurrentStreams: 1 });
    const c = await client(port);
    send(c, Buffer.from('a'));
    const waiting = send(c, Buffer.from('b'));
    c.close();
    expect((await waiting.done).code).toBe(H2_ERROR.REFUSED_STREAM);
  });

  it('closes and reports a connection whose stream ids ran out, so a pool replaces it', async () => {
    const { port } = await nodeServer((st) => {
      st.respond({ ':status': 200 }, { waitForTrailers: true });
      st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
      st.end();
    });
    const c = await client(port, { firstStreamId: 2 ** 31 - 3 });
    let goaway = false;
    c.onGoaway = () => {
      goaway = true;
    };
    const closed = new Promise<void>((r) => {
      c.onClose = () => r();
    });
    const a = await send(c, Buffer.from('1')).done;
    expect(a.code).toBe(CLOSE.OK);
    const b = await send(c, Buffer.from('2')).done; // id 2^31 - 1: the last one
    expect(b.code).toBe(CLOSE.OK);
    expect(goaway).toBe(true);
    expect(c.available).toBe(false);
    expect(() => send(c, Buffer.from('3'))).toThrow(
      expect.objectContaining({ code: 'H2Unavailable' }),
    );
    await closed;
  });

  it('delivers a whole reply to a slow reader through a graceful close, PINGs included', async () => {
    const SIZE = 8 * 1024 * 1024;
    const server = new H2Server({
      onStream(st) {
        const reply = () => {
          st.sendHeaders([':status', '200'], false);
          st.sendData(Buffer.alloc(SIZE, 7), false);
          st.sendTrailers(['grpc-status', '0']);
          setImmediate(() => {
            for (const c of server.connections) c.close();
          });
        };
        st.handler = {
          onHeaders() {},
          onData(_s, _d, end) {
            if (end) reply();
          },
          onClose() {},
        };
        if (st.remoteEnded) reply();
      },
    });
    server.server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    cleanups.push(() => server.close(100));
    const c = H2ClientConnection.connect({
      host: '127.0.0.1',
      port: (server.server.address() as AddressInfo).port,
      settings: { initialWindowSize: 2 ** 31 - 1, connectionWindowSize: 2 ** 31 - 1 },
    });
    cleanups.push(() => c.destroy());
    const call = send(c, Buffer.from('x'));
    setTimeout(() => c.socket.pause(), 5); // a slow reader
    setTimeout(() => c.ping(() => {}), 200); // keep-alive during the drain
    setTimeout(() => c.socket.resume(), 500);
    const r = await call.done;
    expect(r.bytes).toBe(SIZE);
    expect(r.code).toBe(CLOSE.OK);
  });

  it('answers one oversized request with 431 and keeps serving the other calls on the connection', async () => {
    const server = new H2Server({
      onStream(st) {
        st.handler = { onHeaders() {}, onData() {}, onClose() {} };
        setTimeout(() => st.sendHeaders([':status', '200', 'grpc-status', '0'], true), 30);
      },
    });
    server.server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    cleanups.push(() => server.close(100));
    // Our own client: unlike nghttp2 it does not hold back a list above the peer's limit.
    const c = await client((server.server.address() as AddressInfo).port);
    const bigHeaders: string[] = [];
    for (let i = 0; i < 10; i++) bigHeaders.push(`x-big-${i}`, 'v'.repeat(8000));
    const call = (extra: string[]) => {
      let resolve!: (o: { status: string | undefined; code: number }) => void;
      const done = new Promise<{ status: string | undefined; code: number }>((r) => {
        resolve = r;
      });
      let status: string | undefined;
      c.request([...REQ, ...extra], Buffer.alloc(0), {
        onHeaders(_s, h) {
          if (h[0] === ':status') status = h[1];
        },
        onData() {},
        onClose(_s, code) {
          resolve({ status, code });
        },
      });
      return done;
    };
    const innocent = call([]);
    const oversized = call(bigHeaders);
    expect(await oversized).toEqual({ status: '431', code: CLOSE.OK });
    expect(await innocent).toEqual({ status: '200', code: CLOSE.OK });
    expect(await call([])).toEqual({ status: '200', code: CLOSE.OK });
    expect(c.isDestroyed).toBe(false);
  });
});

describe('a client ignores DATA for a stream it reset', () => {
  it('answers late DATA on a cancelled stream with nothing (no RST_STREAM per frame)', async () => {
    const net = await import('node:net');
    const frames: { type: number; id: number }[] = [];
    let serverSocket: import('node:net').Socket | null = null;
    const raw = net.createServer((sock) => {
      serverSocket = sock;
      sock.on('error', () => {});
      // Server preface: an empty SETTINGS.
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
      let buf = Buffer.alloc(0);
      let prefaceLeft = 24;
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (prefaceLeft > 0) {
          const n = Math.min(prefaceLeft, buf.length);
          buf = buf.subarray(n);
          prefaceLeft -= n;
        }
        while (buf.length >= 9) {
          const len = buf.readUIntBE(0, 3);
          if (buf.length < 9 + len) break;
          frames.push({ type: buf[3]!, id: buf.readUInt32BE(5) & 0x7fffffff });
          buf = buf.subarray(9 + len);
        }
      });
    });
    raw.listen(0, '127.0.0.1');
    await once(raw, 'listening');
    cleanups.push(() => {
      serverSocket?.destroy();
      return new Promise<void>((r) => raw.close(() => r()));
    });
    const c = await client((raw.address() as AddressInfo).port);
    const { stream, done } = send(c, Buffer.from('x'));
    await expect.poll(() => frames.some((f) => f.type === 1 && f.id === 1)).toBe(true);
    stream.reset(); // the router cancels an attempt
    expect((await done).code).toBe(H2_ERROR.CANCEL);
    await expect.poll(() => frames.filter((f) => f.type === 3).length).toBe(1);
    // The node's DATA that was already on its way for stream 1, then a PING to sync.
    const dataFrame = Buffer.from([0, 0, 3, 0, 0, 0, 0, 0, 1, 1, 2, 3]);
    const ping = Buffer.from([0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    serverSocket!.write(Buffer.concat([dataFrame, dataFrame, dataFrame, dataFrame, ping]));
    await expect.poll(() => frames.some((f) => f.type === 6)).toBe(true);
    expect(frames.filter((f) => f.type === 3)).toHaveLength(1); // only our CANCEL
    expect(c.isDestroyed).toBe(false);
  });
});
