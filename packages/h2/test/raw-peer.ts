/**
 * The raw-socket peers of the conformance tests (h2spec style): `RawPeer` speaks frames byte by
 * byte to an `H2Server` (or, as a scripted raw server, to an `H2ClientConnection`) and waits
 * for the answers frame by frame. Tests register teardown in `cleanups` and drain it in their
 * own `afterEach`.
 */
import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'vitest';
import {
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2ClientConnection,
  type H2Error,
  H2Server,
  type H2Stream,
  type HpackDecoder,
  type LocalSettings,
  type StreamHandler,
} from '../src/index.js';
import { frame, PREFACE, settings, u32 } from './raw-frames.js';

const T = FRAME_TYPE;
const F = FLAG;

/** Teardown steps of the running test, run in reverse by each test file's `afterEach`. */
export const cleanups: (() => Promise<void> | void)[] = [];

/**
 * The socket's 'close' (events.once would reject on an 'error' first, e.g. ECONNRESET when the
 * server resets a connection it failed, and a socket always closes after an error anyway).
 */
export function closeOf(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed && socket.closed) resolve();
    else socket.once('close', () => resolve());
  });
}

// ---- frame building ------------------------------------------------------------------------

export function windowUpdate(id: number, inc: number): Buffer {
  return frame(T.WINDOW_UPDATE, 0, id, u32(inc));
}

export function requestBlock(path = '/svc/Echo', extra: string[] = []): Buffer {
  return encodeHeaderBlock([
    ':method',
    'POST',
    ':scheme',
    'http',
    ':path',
    path,
    ':authority',
    'localhost',
    'content-type',
    'application/grpc',
    ...extra,
  ]);
}

export function headers(id: number, endStream: boolean, path = '/svc/Echo'): Buffer {
  return frame(T.HEADERS, F.END_HEADERS | (endStream ? F.END_STREAM : 0), id, requestBlock(path));
}

export function data(id: number, body: Buffer | string, endStream: boolean): Buffer {
  return frame(T.DATA, endStream ? F.END_STREAM : 0, id, Buffer.from(body));
}

export const PING_PAYLOAD = Buffer.from('01234567');

// ---- the raw peer --------------------------------------------------------------------------

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly id: number;
  readonly payload: Buffer;
}

export function describeFrames(frames: readonly Frame[]): string {
  return frames.map((f) => `${f.type}/${f.flags}/${f.id}/${f.payload.length}`).join(' ');
}

/** A plain socket that speaks frames: collects what arrives and waits for frames by predicate. */
export class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  readonly #pending: {
    pred: (f: Frame) => boolean;
    resolve: (f: Frame) => void;
    reject: (e: Error) => void;
  }[] = [];
  #buf = Buffer.alloc(0);
  #prefaceLeft: number;

  constructor(
    readonly socket: net.Socket,
    expectPreface = false,
  ) {
    this.#prefaceLeft = expectPreface ? PREFACE.length : 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#pending.splice(0)) {
        w.reject(new Error(`socket closed; frames: ${describeFrames(this.frames)}`));
      }
    });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const peer = new RawPeer(socket);
    cleanups.push(() => {
      socket.destroy();
    });
    await once(socket, 'connect');
    return peer;
  }

  #onData(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    if (this.#prefaceLeft > 0) {
      const n = Math.min(this.#prefaceLeft, this.#buf.length);
      this.#buf = this.#buf.subarray(n);
      this.#prefaceLeft -= n;
    }
    while (this.#buf.length >= 9) {
      const len = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < 9 + len) break;
      const f: Frame = {
        type: this.#buf[3]!,
        flags: this.#buf[4]!,
        id: this.#buf.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.#buf.subarray(9, 9 + len)),
      };
      this.#buf = this.#buf.subarray(9 + len);
      this.frames.push(f);
      for (let i = 0; i < this.#pending.length; i++) {
        const w = this.#pending[i]!;
        if (w.pred(f)) {
          this.#pending.splice(i--, 1);
          w.resolve(f);
        }
      }
    }
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /** Resolves with the first frame (already received or arriving) matching `pred`. */
  waitFor(pred: (f: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.closed) {
      return Promise.reject(new Error(`socket closed; frames: ${describeFrames(this.frames)}`));
    }
    return new Promise((resolve, reject) => this.#pending.push({ pred, resolve, reject }));
  }

  /** Sends a PING and waits for its ACK: every frame the server wrote before it has arrived. */
  async sync(): Promise<void> {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(Math.floor(Math.random() * 2 ** 32));
    this.send(frame(T.PING, 0, 0, payload));
    await this.waitFor(
      (f) => f.type === T.PING && (f.flags & F.ACK) !== 0 && f.payload.equals(payload),
    );
  }

  /** Client handshake: preface + SETTINGS, then ACKs the server's SETTINGS. */
  async handshake(...pairs: [number, number][]): Promise<void> {
    this.send(PREFACE, settings(...pairs));
    await this.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0);
    this.send(frame(T.SETTINGS, F.ACK, 0));
    await this.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) !== 0);
  }

  /** Waits for GOAWAY and then the socket close; returns GOAWAY's error code. */
  async goawayCode(): Promise<number> {
    const g = await this.waitFor((f) => f.type === T.GOAWAY);
    if (!this.closed) await closeOf(this.socket);
    return g.payload.readUInt32BE(4);
  }

  rst(id: number): Promise<number> {
    return this.waitFor((f) => f.type === T.RST_STREAM && f.id === id).then((f) =>
      f.payload.readUInt32BE(0),
    );
  }

  framesOn(id: number): Frame[] {
    return this.frames.filter((f) => f.id === id);
  }

  /** DATA payloads of stream `id`, joined. */
  body(id: number): Buffer {
    return Buffer.concat(
      this.frames.filter((f) => f.type === T.DATA && f.id === id).map((f) => f.payload),
    );
  }
}

// ---- the server under test -----------------------------------------------------------------

export interface TestServer {
  readonly server: H2Server;
  readonly port: number;
  /** Every stream accepted, in order. */
  readonly streams: H2Stream[];
  /** onClose codes per stream id (the last connection's stream of that id). */
  readonly closes: Map<number, number[]>;
  /** onClose calls per stream. */
  readonly closeCalls: Map<H2Stream, number>;
  /** Request body bytes received per stream id. */
  readonly bodies: Map<number, Buffer[]>;
  readonly connections: Set<H2Stream['connection']>;
}

export type Reply = (stream: H2Stream, body: Buffer) => void;

/** Echo: response headers, the request body back, trailers. */
export const echo: Reply = (s, body) => {
  s.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
  if (body.length > 0) s.sendData(body, false);
  s.sendTrailers(['grpc-status', '0', 'x-len', String(body.length)]);
};

/** Never answers (the test drives the stream itself). */
export const hold: Reply = () => {};

export async function startServer(
  reply: Reply = echo,
  settings?: Partial<LocalSettings>,
  onClose?: (s: H2Stream, code: number) => void,
): Promise<TestServer> {
  const streams: H2Stream[] = [];
  const closes = new Map<number, number[]>();
  const closeCalls = new Map<H2Stream, number>();
  const bodies = new Map<number, Buffer[]>();
  const connections = new Set<H2Stream['connection']>();
  const server = new H2Server({
    ...(settings === undefined ? {} : { settings }),
    onStream(stream) {
      streams.push(stream);
      connections.add(stream.connection);
      const chunks: Buffer[] = [];
      bodies.set(stream.id, chunks);
      closes.delete(stream.id);
      const handler: StreamHandler = {
        onHeaders() {},
        onData(s, chunk, end) {
          chunks.push(Buffer.from(chunk));
          if (end) reply(s, Buffer.concat(chunks));
        },
        onClose(s, code) {
          const list = closes.get(s.id) ?? [];
          list.push(code);
          closes.set(s.id, list);
          closeCalls.set(s, (closeCalls.get(s) ?? 0) + 1);
          onClose?.(s, code);
        },
      };
      stream.handler = handler;
      if (stream.remoteEnded) reply(stream, Buffer.alloc(0));
    },
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  cleanups.push(() => server.close(100));
  const port = (server.server.address() as net.AddressInfo).port;
  return { server, port, streams, closes, closeCalls, bodies, connections };
}

/**
 * The peer goes away; then nothing may be left: no connection in the server's set, no stream
 * in any connection's map, every accepted stream closed exactly once.
 */
export async function expectClean(srv: TestServer, peer?: RawPeer): Promise<void> {
  if (peer !== undefined && !peer.closed) {
    peer.socket.destroy();
    await closeOf(peer.socket);
  }
  expect(await srv.server.shutdown(2_000)).toBe(true);
  expect(srv.server.connections.size).toBe(0);
  for (const c of srv.connections) expect(c.streams.size).toBe(0);
  for (const s of srv.streams) {
    expect(s.closed).toBe(true);
    expect(srv.closeCalls.get(s)).toBe(1);
  }
}

export async function connected(
  reply: Reply = echo,
  settings?: Partial<LocalSettings>,
  ...peerSettings: [number, number][]
): Promise<{ srv: TestServer; peer: RawPeer }> {
  const srv = await startServer(reply, settings);
  const peer = await RawPeer.connect(srv.port);
  await peer.handshake(...peerSettings);
  return { srv, peer };
}

export function decodeBlock(decoder: HpackDecoder, payload: Buffer): Record<string, string> {
  const list: string[] = [];
  decoder.decode(payload, 0, payload.length, list);
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

// ---- the client against a scripted raw server ----------------------------------------------

export interface RawServer {
  readonly port: number;
  /** The next accepted connection, preface already skipped. */
  accept(): Promise<RawPeer>;
}

export async function rawServer(): Promise<RawServer> {
  const queue: RawPeer[] = [];
  const waiters: ((p: RawPeer) => void)[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const peer = new RawPeer(socket, true);
    const w = waiters.shift();
    if (w !== undefined) w(peer);
    else queue.push(peer);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    accept: () => {
      const p = queue.shift();
      if (p !== undefined) return Promise.resolve(p);
      return new Promise((r) => waiters.push(r));
    },
  };
}

export interface Call {
  readonly headers: Record<string, string>[];
  readonly ends: boolean[];
  readonly body: Buffer[];
  readonly closed: Promise<number>;
  readonly handler: StreamHandler;
}

export function call(): Call {
  let done!: (code: number) => void;
  const closed = new Promise<number>((r) => {
    done = r;
  });
  const c: Call = {
    headers: [],
    ends: [],
    body: [],
    closed,
    handler: {
      onHeaders(_s, h, end) {
        const rec: Record<string, string> = {};
        for (let i = 0; i < h.length; i += 2) rec[h[i]!] = h[i + 1]!;
        c.headers.push(rec);
        c.ends.push(end);
      },
      onData(_s, chunk) {
        c.body.push(Buffer.from(chunk));
      },
      onClose(_s, code) {
        done(code);
      },
    },
  };
  return c;
}

export async function clientWith(
  raw: RawServer,
  settings?: Partial<LocalSettings>,
): Promise<{ client: H2ClientConnection; peer: RawPeer; closed: Promise<H2Error | null> }> {
  const client = H2ClientConnection.connect({
    host: '127.0.0.1',
    port: raw.port,
    ...(settings === undefined ? {} : { settings }),
  });
  const closed = new Promise<H2Error | null>((r) => {
    client.onClose = r;
  });
  cleanups.push(() => client.destroy());
  const peer = await raw.accept();
  return { client, peer, closed };
}

export const REQ = [':method', 'POST', ':scheme', 'http', ':path', '/svc/M', ':authority', 'x'];
