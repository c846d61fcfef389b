// Reads into one shared buffer per thread (socket-reads.ts): what a handler keeps past the read
// that brought it must still hold its bytes after later reads reuse the buffer.
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSE,
  FLAG,
  FRAME_TYPE,
  H2ClientConnection,
  H2Server,
  H2ServerConnection,
  type H2Stream,
  type StreamHandler,
} from '../src/index.js';
import { adoptSharedReads, SHARED_READ_BYTES } from '../src/internal/socket-reads.js';
import { frame, PREFACE, settings } from './raw-frames.js';
import { cleanups, data, RawPeer, requestBlock } from './raw-peer.js';

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const REQ = [':method', 'POST', ':scheme', 'http', ':path', '/x', ':authority', 'a'];

/** Distinct bytes for call `i`: a payload mixed up with another call's would not match. */
function bodyOf(i: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let k = 0; k < length; k++) b[k] = (i * 31 + k * 7) & 0xff;
  return b;
}

/** A server that keeps every DATA chunk as handed over (no copy) and echoes the body back. */
async function keepingServer(): Promise<{
  server: H2Server;
  port: number;
  kept: Map<string, Buffer[]>;
  sockets: net.Socket[];
}> {
  const kept = new Map<string, Buffer[]>();
  const sockets: net.Socket[] = [];
  const server = new H2Server({
    onStream(stream) {
      const h = stream.headers ?? [];
      const key = h[h.indexOf('x-call') + 1]!;
      const chunks: Buffer[] = [];
      kept.set(key, chunks);
      sockets.push(stream.connection.socket);
      stream.handler = {
        onHeaders() {},
        onData(s, chunk, end) {
          chunks.push(chunk);
          if (!end) return;
          s.sendHeaders([':status', '200'], false);
          s.sendData(Buffer.concat(chunks), true);
        },
        onClose() {},
      };
    },
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  cleanups.push(() => server.close(100));
  return { server, port: (server.server.address() as net.AddressInfo).port, kept, sockets };
}

async function readyClient(port: number): Promise<H2ClientConnection> {
  const c = H2ClientConnection.connect({ host: '127.0.0.1', port });
  cleanups.push(() => c.destroy());
  await new Promise<void>((r) => {
    c.onReady = r;
  });
  return c;
}

/** Sends a request; resolves with the reply's DATA chunks as handed over (no copy). */
function call(c: H2ClientConnection, key: string, body: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const handler: StreamHandler = {
      onHeaders() {},
      onData(_s, chunk) {
        chunks.push(chunk);
      },
      onClose(_s: H2Stream, code: number) {
        if (code === CLOSE.OK) resolve(chunks);
        else reject(new Error(`call ${key} closed with ${code}`));
      },
    };
    c.request([...REQ, 'x-call', key], body, handler);
  });
}

describe('reads into the shared buffer', () => {
  it('is how accepted and connected sockets read on this Node (no data listener)', async () => {
    const srv = await keepingServer();
    const c = await readyClient(srv.port);
    await call(c, 'one', bodyOf(1, 10));
    expect(srv.sockets).toHaveLength(1);
    expect(srv.sockets[0]!.listenerCount('data')).toBe(0);
    expect(c.socket.listenerCount('data')).toBe(0);
  });

  it('leaves every chunk a handler kept intact after later reads reuse the buffer', async () => {
    const srv = await keepingServer();
    const c = await readyClient(srv.port);
    // Sizes around the frame (16 KiB) and read buffer sizes: payloads split over frames and
    // reads, many reads in all, so later ones overwrite the buffer earlier chunks came from.
    const sizes = [1, 17, 300, 16_384, 16_385, SHARED_READ_BYTES - 5, SHARED_READ_BYTES + 123];
    const calls: Promise<Buffer[]>[] = [];
    const expected: Buffer[] = [];
    for (let i = 0; i < 120; i++) {
      const body = bodyOf(i, sizes[i % sizes.length]!);
      expected.push(body);
      calls.push(call(c, `c${i}`, body));
      if (i % 10 === 9) await new Promise((r) => setImmediate(r)); // some calls in later reads
    }
    const replies = await Promise.all(calls);
    for (let i = 0; i < expected.length; i++) {
      // What the server kept (the request chunks) and what the client kept (the reply's).
      expect(Buffer.concat(srv.kept.get(`c${i}`)!).equals(expected[i]!)).toBe(true);
      expect(Buffer.concat(replies[i]!).equals(expected[i]!)).toBe(true);
    }
  });

  it('joins a frame and a header block cut between reads', async () => {
    const srv = await keepingServer();
    const peer = await RawPeer.connect(srv.port);
    await peer.handshake();
    const block = requestBlock('/x', ['x-call', 'cut']);
    const half = block.length >> 1;
    const body = bodyOf(7, 5000);
    const bytes = Buffer.concat([
      frame(FRAME_TYPE.HEADERS, 0, 1, block.subarray(0, half)),
      frame(FRAME_TYPE.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(half)),
      data(1, body, true),
    ]);
    // Cut inside frame heads, the header block and the DATA payload, with a pause between
    // writes so each part arrives in a read of its own (a PING round trip would interrupt the
    // header block, a protocol error).
    const cuts = [3, 9, 12, 9 + half + 4, 9 + half + 9 + 2, bytes.length - 2500, bytes.length];
    let at = 0;
    for (const cut of cuts) {
      peer.send(bytes.subarray(at, cut));
      at = cut;
      await new Promise((r) => setTimeout(r, 5));
    }
    const reply = await peer.waitFor(
      (f) => f.type === FRAME_TYPE.DATA && (f.flags & FLAG.END_STREAM) !== 0,
    );
    expect(Buffer.concat(srv.kept.get('cut')!).equals(body)).toBe(true);
    expect(reply.payload.equals(body)).toBe(true);
  });

  it('declines a socket that already reads; a connection over it reads through data events', async () => {
    // A plain net server: its sockets start reading at once (no pauseOnConnect).
    const accepted: net.Socket[] = [];
    const conns: H2ServerConnection[] = [];
    const plain = net.createServer((socket) => {
      accepted.push(socket);
      expect(adoptSharedReads(socket)).toBe(false);
      conns.push(
        new H2ServerConnection(socket, {}, (stream) => {
          stream.handler = {
            onHeaders() {},
            onData(s, chunk, end) {
              if (end) {
                s.sendHeaders([':status', '200'], false);
                s.sendData(chunk, true);
              }
            },
            onClose() {},
          };
        }),
      );
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    cleanups.push(() => {
      for (const c of conns) c.destroy();
      return new Promise<void>((r) => plain.close(() => r()));
    });
    const c = await readyClient((plain.address() as net.AddressInfo).port);
    const reply = await call(c, 'plain', bodyOf(3, 40));
    expect(Buffer.concat(reply).equals(bodyOf(3, 40))).toBe(true);
    expect(accepted[0]!.listenerCount('data')).toBe(1);
  });

  it('closes a socket read before any connection took its reads; the process goes on', async () => {
    const closed: Promise<void>[] = [];
    const paused = net.createServer({ pauseOnConnect: true }, (socket) => {
      expect(adoptSharedReads(socket)).toBe(true);
      closed.push(new Promise((r) => socket.once('close', () => r())));
      socket.resume(); // no connection, no error listener: a setup that failed
    });
    paused.listen(0, '127.0.0.1');
    await once(paused, 'listening');
    cleanups.push(() => new Promise<void>((r) => paused.close(() => r())));
    const client = net.connect((paused.address() as net.AddressInfo).port, '127.0.0.1');
    client.on('error', () => {});
    cleanups.push(() => {
      client.destroy();
    });
    await once(client, 'connect');
    client.write('bytes with nowhere to go');
    await once(client, 'close');
    await closed[0];
  });

  it('sends a client preface cut into single bytes through', async () => {
    const srv = await keepingServer();
    const socket = net.connect(srv.port, '127.0.0.1');
    cleanups.push(() => {
      socket.destroy();
    });
    await once(socket, 'connect');
    const peer = new RawPeer(socket);
    for (let i = 0; i < PREFACE.length; i++) {
      socket.write(PREFACE.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 1));
    }
    socket.write(settings());
    const got = await peer.waitFor((f) => f.type === FRAME_TYPE.SETTINGS);
    expect(got.flags & FLAG.ACK).toBe(0);
  });
});
