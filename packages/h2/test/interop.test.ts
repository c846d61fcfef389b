import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSE,
  encodeHeaderBlock,
  H2_ERROR,
  H2ClientConnection,
  H2Server,
  type H2Stream,
  type LocalSettings,
  type StreamHandler,
} from '../src/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function headerMap(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

/** Collects one request's body, then calls `reply`. */
function unaryServer(
  reply: (stream: H2Stream, body: Buffer) => void,
  settings?: Partial<LocalSettings>,
  idleTimeoutMs?: number,
): Promise<{ server: H2Server; port: number; closed: number[] }> {
  const closed: number[] = [];
  const server = new H2Server({
    ...(settings === undefined ? {} : { settings }),
    ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
    onStream(stream) {
      const chunks: Buffer[] = [];
      const handler: StreamHandler = {
        onHeaders() {},
        onData(s, chunk, end) {
          chunks.push(Buffer.from(chunk));
          if (end) reply(s, Buffer.concat(chunks));
        },
        onClose(_s, code) {
          closed.push(code);
        },
      };
      stream.handler = handler;
      if (stream.remoteEnded) reply(stream, Buffer.alloc(0));
    },
  });
  server.server.listen(0, '127.0.0.1');
  cleanups.push(() => server.close(100));
  return once(server.server, 'listening').then(() => ({
    server,
    port: (server.server.address() as net.AddressInfo).port,
    closed,
  }));
}

function echoReply(stream: H2Stream, body: Buffer): void {
  const h = headerMap(stream.headers!);
  stream.sendHeaders(
    [':status', '200', 'content-type', 'application/grpc', 'x-path', h[':path']!],
    false,
  );
  stream.sendData(body, false);
  stream.sendTrailers(['grpc-status', '0', 'x-len', String(body.length)]);
}

function nodeClient(port: number): http2.ClientHttp2Session {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        if (c.destroyed) return resolve();
        c.close(() => resolve());
        setTimeout(() => {
          c.destroy();
          resolve();
        }, 200);
      }),
  );
  return c;
}

function nodeCall(
  c: http2.ClientHttp2Session,
  path: string,
  body: Buffer,
): Promise<{
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}> {
  return new Promise((resolve, reject) => {
    const req = c.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc' });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      headers = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', reject);
    req.on('close', () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
    req.end(body);
  });
}

describe('H2Server with node:http2 clients', () => {
  it('answers a unary call with headers, body and trailers', async () => {
    const { port, closed } = await unaryServer(echoReply);
    const c = nodeClient(port);
    const r = await nodeCall(c, '/svc/Echo', Buffer.from('hello'));
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-path']).toBe('/svc/Echo');
    expect(r.body.toString()).toBe('hello');
    expect(r.trailers['grpc-status']).toBe('0');
    expect(r.trailers['x-len']).toBe('5');
    expect(closed).toEqual([CLOSE.OK]);
  });

  it('serves 500 concurrent streams on one connection, each its own answer', async () => {
    const { port } = await unaryServer(echoReply);
    const c = nodeClient(port);
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => nodeCall(c, `/svc/${i}`, Buffer.from(`body-${i}`))),
    );
    results.forEach((r, i) => {
      expect(r.headers['x-path']).toBe(`/svc/${i}`);
      expect(r.body.toString()).toBe(`body-${i}`);
    });
  });

  it('moves bodies larger than every window both ways (flow control)', async () => {
    const { port } = await unaryServer(echoReply);
    const c = nodeClient(port);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const results = await Promise.all([nodeCall(c, '/a', big), nodeCall(c, '/b', big)]);
    for (const r of results) {
      expect(r.body.length).toBe(big.length);
      expect(r.body.equals(big)).toBe(true);
      expect(r.trailers['x-len']).toBe(String(big.length));
    }
  });

  it('sends trailers encoded up front (encodeHeaderBlock), at once and behind flow control', async () => {
    const block = encodeHeaderBlock(['grpc-status', '0', 'x-prebuilt', 'yes']);
    const { port } = await unaryServer((stream, body) => {
      stream.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
      stream.sendData(body, false);
      stream.sendTrailers(block);
    });
    const c = nodeClient(port);
    // A body larger than the client's stream window: the trailers wait behind queued data.
    const big = Buffer.alloc(200 * 1024, 7);
    const [small, large] = await Promise.all([
      nodeCall(c, '/small', Buffer.from('hi')),
      nodeCall(c, '/large', big),
    ]);
    for (const r of [small, large]) {
      expect(r.trailers['grpc-status']).toBe('0');
      expect(r.trailers['x-prebuilt']).toBe('yes');
    }
    expect(large.body.equals(big)).toBe(true);
  });

  it('tells the handler when the client cancels a stream', async () => {
    let accepted!: () => void;
    const gotStream = new Promise<void>((r) => {
      accepted = r;
    });
    const { port, closed } = await unaryServer(() => accepted());
    const c = nodeClient(port);
    const req = c.request({ ':method': 'POST', ':path': '/slow' });
    req.on('error', () => {});
    req.end(Buffer.from('x'));
    await gotStream;
    req.close(http2.constants.NGHTTP2_CANCEL);
    await expect.poll(() => closed).toEqual([H2_ERROR.CANCEL]);
  });

  it('closes gracefully: in-flight streams finish, then the connection ends', async () => {
    let pending: H2Stream | null = null;
    const { server, port } = await unaryServer((s) => {
      pending = s;
    });
    const c = nodeClient(port);
    const call = nodeCall(c, '/late', Buffer.from('abc'));
    await expect.poll(() => pending).not.toBeNull();
    const closing = server.close(5_000);
    setTimeout(() => echoReply(pending!, Buffer.from('done')), 20);
    const r = await call;
    expect(r.body.toString()).toBe('done');
    await closing;
    expect(server.connections.size).toBe(0);
  });

  it('answers a bad preface with GOAWAY PROTOCOL_ERROR and closes', async () => {
    const { port } = await unaryServer(echoReply);
    const sock = net.connect(port, '127.0.0.1');
    cleanups.push(() => {
      sock.destroy();
    });
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    await once(sock, 'close');
    const all = Buffer.concat(chunks);
    // SETTINGS first, then GOAWAY (type 7) with PROTOCOL_ERROR.
    let pos = 0;
    let goawayCode = -1;
    while (pos + 9 <= all.length) {
      const len = all.readUIntBE(pos, 3);
      if (all[pos + 3] === 7) goawayCode = all.readUInt32BE(pos + 9 + 4);
      pos += 9 + len;
    }
    expect(goawayCode).toBe(H2_ERROR.PROTOCOL_ERROR);
  });
});

/** Frame types and GOAWAY codes in a captured server byte stream. */
function framesOf(all: Buffer): { types: number[]; goaway: number } {
  const types: number[] = [];
  let goaway = -1;
  let pos = 0;
  while (pos + 9 <= all.length) {
    const len = all.readUIntBE(pos, 3);
    types.push(all[pos + 3]!);
    if (all[pos + 3] === 7) goaway = all.readUInt32BE(pos + 9 + 4);
    pos += 9 + len;
  }
  return { types, goaway };
}

describe('write batching', () => {
  it('writes the replies of 64 streams answered in one turn with one socket.write', async () => {
    let batch: H2Stream[] = [];
    const writes: number[] = [];
    let wrapped = false;
    const { port } = await unaryServer((s) => {
      batch.push(s);
      if (batch.length < 64) return;
      const streams = batch;
      batch = [];
      const socket = streams[0]!.connection.socket;
      if (!wrapped) {
        wrapped = true;
        const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
        socket.write = ((chunk: Buffer) => {
          writes.push(chunk.length);
          return write(chunk);
        }) as typeof socket.write;
      }
      writes.length = 0;
      for (const st of streams) echoReply(st, Buffer.alloc(300, 1));
    });
    const c = nodeClient(port);
    const round = () =>
      Promise.all(Array.from({ length: 64 }, (_, i) => nodeCall(c, `/b/${i}`, Buffer.from('x'))));
    // The first rounds grow the connection's output slab (2 KiB, doubling) to fit a turn's
    // ~25 KB, a few writes each; from then on a turn is one write.
    await round();
    expect(writes.length).toBeGreaterThan(1);
    await round();
    await round();
    // (Control frames the client prompts, e.g. a PING ACK, may follow in their own small write.)
    const big = writes.filter((n) => n > 1024);
    expect(big, `writes: ${writes.join(', ')}`).toHaveLength(1);
    expect(big[0]).toBeGreaterThan(64 * 300);
  });
});

describe('H2Server idle timeout', () => {
  it('sends GOAWAY to a connection idle past idleTimeoutMs and ends it', async () => {
    const { port, server } = await unaryServer(echoReply, undefined, 100);
    const c = nodeClient(port);
    const r = await nodeCall(c, '/before-idle', Buffer.from('x'));
    expect(r.body.toString()).toBe('x');
    const goaway = new Promise<number>((resolve) => c.once('goaway', resolve));
    expect(await goaway).toBe(H2_ERROR.NO_ERROR);
    await expect.poll(() => server.connections.size).toBe(0);
  });

  it('ends, then destroys, a connection that never speaks and never closes', async () => {
    const { port, server } = await unaryServer(echoReply, undefined, 100);
    // allowHalfOpen: the client does not answer the server's FIN, as a stuck peer would not.
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => {
      sock.destroy();
    });
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    await once(sock, 'end');
    expect(framesOf(Buffer.concat(chunks)).goaway).toBe(H2_ERROR.NO_ERROR);
    // The peer keeps its half open; the server's side is destroyed one idle period later.
    expect(server.connections.size).toBe(1);
    await expect.poll(() => server.connections.size).toBe(0);
  });

  it('does not cut a stream that stays open longer than the idle timeout', async () => {
    const { port } = await unaryServer(
      (s, body) => {
        setTimeout(() => echoReply(s, body), 300);
      },
      undefined,
      50,
    );
    const c = nodeClient(port);
    const r = await nodeCall(c, '/slow', Buffer.from('still here'));
    expect(r.body.toString()).toBe('still here');
    expect(r.trailers['grpc-status']).toBe('0');
  });

  it('rejects an invalid idleTimeoutMs, naming it', () => {
    expect(() => new H2Server({ idleTimeoutMs: -1, onStream() {} })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'idleTimeoutMs' }),
    );
  });
});

/** A node:http2 server; `handle` answers each stream. */
async function nodeServer(
  handle: (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    body: Buffer,
  ) => void,
  settings: http2.Settings = {},
): Promise<{ port: number; server: http2.Http2Server }> {
  const server = http2.createServer({ settings });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', () => {});
    stream.on('end', () => handle(stream, headers, Buffer.concat(chunks)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('error', () => {});
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, server };
}

function nodeEcho(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  body: Buffer,
): void {
  stream.respond({ ':status': 200, 'x-path': String(headers[':path']) }, { waitForTrailers: true });
  stream.on('wantTrailers', () =>
    stream.sendTrailers({ 'grpc-status': '0', 'x-len': String(body.length) }),
  );
  stream.end(body);
}

interface Result {
  headers: Record<string, string>;
  trailers: Record<string, string> | null;
  body: Buffer;
  code: number;
}

function call(
  c: H2ClientConnection,
  path: string,
  body: Buffer,
): { stream: H2Stream; done: Promise<Result> } {
  let resolve!: (r: Result) => void;
  const done = new Promise<Result>((r) => {
    resolve = r;
  });
  const chunks: Buffer[] = [];
  let headers: Record<string, string> = {};
  let trailers: Record<string, string> | null = null;
  const handler: StreamHandler = {
    onHeaders(s, h) {
      if (s.headers === h) headers = headerMap(h);
      else trailers = headerMap(h);
    },
    onData(_s, chunk) {
      chunks.push(Buffer.from(chunk));
    },
    onClose(_s, code) {
      resolve({ headers, trailers, body: Buffer.concat(chunks), code });
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
      'test',
      'content-type',
      'application/grpc',
    ],
    body,
    handler,
  );
  return { stream, done };
}

async function connect(port: number): Promise<H2ClientConnection> {
  const c = H2ClientConnection.connect({ host: '127.0.0.1', port });
  cleanups.push(() => c.destroy());
  await new Promise<void>((resolve, reject) => {
    c.onReady = resolve;
    c.onClose = (e) => reject(e ?? new Error('closed'));
  });
  c.onClose = null;
  return c;
}

describe('H2ClientConnection against node:http2 servers', () => {
  it('makes a unary call and gets headers, body and trailers', async () => {
    const { port } = await nodeServer(nodeEcho);
    const c = await connect(port);
    const r = await call(c, '/svc/Echo', Buffer.from('ping')).done;
    expect(r.code).toBe(CLOSE.OK);
    expect(r.headers[':status']).toBe('200');
    expect(r.headers['x-path']).toBe('/svc/Echo');
    expect(r.body.toString()).toBe('ping');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'x-len': '4' });
    expect(c.streams.size).toBe(0);
  });

  it('lets go of the handler and context once a stream has closed (after onClose ran)', async () => {
    const { port } = await nodeServer(nodeEcho);
    const c = await connect(port);
    const { stream, done } = call(c, '/svc/Echo', Buffer.from('ping'));
    stream.context = { owner: 'a call' };
    let seenInClose: unknown;
    const handler = stream.handler!;
    const onClose = handler.onClose.bind(handler);
    handler.onClose = (s, code) => {
      seenInClose = [s.handler, s.context];
      onClose(s, code);
    };
    const r = await done;
    expect(r.code).toBe(CLOSE.OK);
    // onClose still saw both; afterwards the closed stream references neither.
    expect(seenInClose).toEqual([handler, { owner: 'a call' }]);
    expect(stream.closed).toBe(true);
    expect(stream.handler).toBeNull();
    expect(stream.context).toBeNull();
  });

  it('queues requests beyond the server MAX_CONCURRENT_STREAMS and runs them all', async () => {
    let open = 0;
    let maxOpen = 0;
    const { port } = await nodeServer(
      (stream, headers, body) => {
        open++;
        maxOpen = Math.max(maxOpen, open);
        setTimeout(() => {
          open--;
          nodeEcho(stream, headers, body);
        }, 2);
      },
      { maxConcurrentStreams: 3 },
    );
    const c = await connect(port);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(c, `/q/${i}`, Buffer.from(String(i))).done),
    );
    results.forEach((r, i) => {
      expect(r.code).toBe(CLOSE.OK);
      expect(r.body.toString()).toBe(String(i));
    });
    expect(maxOpen).toBeLessThanOrEqual(3);
  });

  it('sends and receives bodies larger than the default windows', async () => {
    const { port } = await nodeServer(nodeEcho);
    const c = await connect(port);
    const big = Buffer.alloc(2 * 1024 * 1024 + 5, 7);
    const [a, b] = await Promise.all([call(c, '/a', big).done, call(c, '/b', big).done]);
    expect(a.body.equals(big)).toBe(true);
    expect(b.body.equals(big)).toBe(true);
  });

  it('reports a server RST_STREAM with its code', async () => {
    const { port } = await nodeServer((stream) =>
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM),
    );
    const c = await connect(port);
    const r = await call(c, '/rst', Buffer.from('x')).done;
    expect(r.code).toBe(H2_ERROR.REFUSED_STREAM);
  });

  it('cancels a call with reset(): the server sees the stream closed', async () => {
    let serverStream: http2.ServerHttp2Stream | null = null;
    const { port } = await nodeServer((stream) => {
      serverStream = stream;
    });
    const c = await connect(port);
    const { stream, done } = call(c, '/hang', Buffer.from('x'));
    await expect.poll(() => serverStream).not.toBeNull();
    const closed = once(serverStream!, 'close');
    stream.reset();
    expect((await done).code).toBe(H2_ERROR.CANCEL);
    await closed;
    expect(serverStream!.rstCode).toBe(H2_ERROR.CANCEL);
  });

  it('fails open streams with CONNECTION_LOST when the server goes away', async () => {
    const sockets: net.Socket[] = [];
    let received = 0;
    const { port, server } = await nodeServer(() => {
      received++;
    });
    server.on('connection', (s: net.Socket) => sockets.push(s));
    const c = await connect(port);
    const { done } = call(c, '/hang', Buffer.from('x'));
    await expect.poll(() => received).toBe(1);
    // The socket drops without a GOAWAY (a crashed peer).
    for (const s of sockets) s.destroy();
    expect((await done).code).toBe(CLOSE.CONNECTION_LOST);
    expect(c.isDestroyed).toBe(true);
  });

  it('stops taking streams after the server GOAWAY, finishing the ones it accepted', async () => {
    let received = 0;
    const { port, server } = await nodeServer((stream, headers, body) => {
      received++;
      setTimeout(() => nodeEcho(stream, headers, body), 10);
    });
    let session: http2.ServerHttp2Session | null = null;
    server.on('session', (s) => {
      session = s;
    });
    const c = await connect(port);
    let goaway = -1;
    c.onGoaway = (_last, code) => {
      goaway = code;
    };
    const first = call(c, '/first', Buffer.from('1')).done;
    await expect.poll(() => received).toBe(1);
    session!.close();
    const r = await first;
    expect(r.body.toString()).toBe('1');
    await expect.poll(() => goaway).toBe(H2_ERROR.NO_ERROR);
    expect(c.available).toBe(false);
    expect(() => call(c, '/second', Buffer.from('2'))).toThrow(
      expect.objectContaining({ code: 'H2Unavailable' }),
    );
  });

  it('answers PING round trips', async () => {
    const { port } = await nodeServer(nodeEcho);
    const c = await connect(port);
    const results = await Promise.all(
      [1, 2, 3].map(() => new Promise<Error | null>((resolve) => c.ping(resolve))),
    );
    expect(results).toEqual([null, null, null]);
  });

  it('talks to our own server: many calls over one connection', async () => {
    const { port } = await unaryServer(echoReply);
    const c = await connect(port);
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => call(c, `/own/${i}`, Buffer.from(`m${i}`)).done),
    );
    results.forEach((r, i) => {
      expect(r.code).toBe(CLOSE.OK);
      expect(r.headers['x-path']).toBe(`/own/${i}`);
      expect(r.body.toString()).toBe(`m${i}`);
      expect(r.trailers?.['x-len']).toBe(String(`m${i}`.length));
    });
  });
});
