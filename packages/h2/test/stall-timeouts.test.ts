import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_BODY_MIN_BYTES_PER_SECOND,
  FLAG,
  FRAME_TYPE,
  type H2Connection,
  H2Server,
  type H2Stream,
  InvalidArgumentError,
  SETTING,
} from '../src/index.js';
import { frame, PREFACE, settings, u32 } from './raw-frames.js';
import { requestBlock } from './raw-peer.js';

const BLOCK = requestBlock('/svc/M');

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HEADER_TIMEOUT_MS = 1_000;
const BODY_TIMEOUT_MS = 5_000;
const SEND_TIMEOUT_MS = 3_000;

/** A server on fake time: `advance` moves its clock and runs a sweep, as its timer would. */
async function fakeTimeServer(
  options: { maxConnections?: number; reply?: Buffer } = {},
): Promise<{ server: H2Server; port: number; advance: (ms: number) => void; opened: H2Stream[] }> {
  let now = 0;
  const opened: H2Stream[] = [];
  const server = new H2Server({
    headerTimeoutMs: HEADER_TIMEOUT_MS,
    bodyTimeoutMs: BODY_TIMEOUT_MS,
    sendTimeoutMs: SEND_TIMEOUT_MS,
    now: () => now,
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    onStream: (s) => {
      opened.push(s);
      s.handler = { onHeaders() {}, onData() {}, onClose() {} };
      if (options.reply !== undefined) {
        s.sendHeaders([':status', '200'], false);
        s.sendData(options.reply, true);
      }
    },
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  cleanups.push(() => server.close(0));
  const port = (server.server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    opened,
    advance: (ms) => {
      now += ms;
      server.sweep();
    },
  };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.resume(); // reads (and so sees the server's close) even where a test does not listen
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

/** The server side of the one connection a test made. */
function serverSide(server: H2Server): H2Connection | undefined {
  return [...server.connections][0];
}

/** Resolves once the server has seen `n` connections and handled what they sent. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}

/** Frames the server sent, by type. */
function received(socket: net.Socket): { types: number[]; payloads: Buffer[] } {
  let buf = Buffer.alloc(0);
  const types: number[] = [];
  const payloads: Buffer[] = [];
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      types.push(buf[3]!);
      payloads.push(buf.subarray(9, 9 + len));
      buf = buf.subarray(9 + len);
    }
  });
  return { types, payloads };
}

describe('header read timeout (slowloris on the handshake, frames and header blocks)', () => {
  it('closes a connection that never finishes its preface, not before the timeout', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(PREFACE.subarray(0, 10));
    await until(() => t.server.connections.size === 1);
    t.advance(0); // the sweep marks the stuck state
    t.advance(HEADER_TIMEOUT_MS - 1);
    expect(t.server.headerTimeouts).toBe(0);
    expect(socket.destroyed).toBe(false);
    const closed = once(socket, 'close');
    t.advance(1);
    expect(t.server.headerTimeouts).toBe(1);
    await closed;
  });

  it('closes a connection that trickles one frame a byte at a time', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(Buffer.concat([PREFACE, settings()]));
    const headers = frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, BLOCK);
    socket.write(headers.subarray(0, 1));
    await until(
      () => serverSide(t.server)?.isMidRead === true && serverSide(t.server)!.framesReceived === 1,
    );
    t.advance(0); // marked: stuck on one frame
    // A byte arrives every quarter of the timeout: bytes are not progress.
    for (let i = 1; i < 5; i++) {
      socket.write(headers.subarray(i, i + 1));
      t.advance(HEADER_TIMEOUT_MS / 4 - (i === 4 ? 1 : 0));
    }
    expect(t.server.headerTimeouts).toBe(0);
    const closed = once(socket, 'close');
    t.advance(1);
    expect(t.server.headerTimeouts).toBe(1);
    await closed;
    expect(t.opened).toHaveLength(0);
  });

  it('closes a connection whose header block never ends, however many CONTINUATIONs come', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(Buffer.concat([PREFACE, settings()]));
    socket.write(frame(FRAME_TYPE.HEADERS, 0, 1, BLOCK.subarray(0, 2)));
    await until(() => serverSide(t.server)?.framesReceived === 2);
    t.advance(0);
    let continuations = 0;
    for (let i = 2; i < 6; i++) {
      socket.write(frame(FRAME_TYPE.CONTINUATION, 0, 1, BLOCK.subarray(i, i + 1)));
      continuations++;
      await until(() => serverSide(t.server)?.isMidRead === true);
      t.advance(HEADER_TIMEOUT_MS / 4);
    }
    expect(continuations).toBe(4);
    expect(t.server.headerTimeouts).toBe(1);
    expect(t.opened).toHaveLength(0);
  });

  it('leaves alone a connection that keeps completing frames', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    const ping = frame(FRAME_TYPE.PING, 0, 0, Buffer.alloc(8));
    socket.write(Buffer.concat([PREFACE, settings(), ping.subarray(0, 9)]));
    await until(() => serverSide(t.server)?.framesReceived === 1);
    for (let i = 0; i < 6; i++) {
      // The PING waiting since the last round completes and half of the next one waits:
      // progress every round, and every round ends mid-frame.
      t.advance(HEADER_TIMEOUT_MS / 2);
      socket.write(Buffer.concat([ping.subarray(9), ping.subarray(0, 9)]));
      await until(() => serverSide(t.server)?.framesReceived === i + 2);
    }
    t.advance(HEADER_TIMEOUT_MS / 2);
    expect(t.server.headerTimeouts).toBe(0);
    expect(socket.destroyed).toBe(false);
  });

  it('leaves alone an idle connection (the idle timeout is for that)', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(Buffer.concat([PREFACE, settings()]));
    await until(() => serverSide(t.server)?.framesReceived === 1);
    for (let i = 0; i < 5; i++) t.advance(HEADER_TIMEOUT_MS);
    expect(t.server.headerTimeouts).toBe(0);
    expect(socket.destroyed).toBe(false);
  });
});

describe('body read timeout (slowloris on request bodies)', () => {
  it('answers 408 and resets a request whose body does not end in time', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    const got = received(socket);
    socket.write(
      Buffer.concat([
        PREFACE,
        settings(),
        frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, BLOCK),
        frame(FRAME_TYPE.DATA, 0, 1, Buffer.from('a')),
      ]),
    );
    await until(() => t.opened[0]?.bytesReceived === 1);
    // One byte earns 1000 / 16 384 ms beyond the timeout: a trickle earns nothing that counts.
    const earnedMs = 1000 / DEFAULT_BODY_MIN_BYTES_PER_SECOND;
    t.advance(0);
    t.advance(BODY_TIMEOUT_MS - 1);
    expect(t.server.bodyTimeouts).toBe(0);
    t.advance(1 + earnedMs);
    expect(t.server.bodyTimeouts).toBe(1);
    expect(t.opened[0]!.closed).toBe(true);
    await until(() => got.types.includes(FRAME_TYPE.RST_STREAM));
    expect(got.types).toContain(FRAME_TYPE.HEADERS);
    expect(t.server.connections.size).toBe(1); // the connection lives on
  });

  it('gives a large body on a slow link one more second per bodyMinBytesPerSecond received', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(
      Buffer.concat([PREFACE, settings(), frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, BLOCK)]),
    );
    await until(() => t.opened.length === 1);
    t.advance(0);
    // 64 KiB arrive at 16 KiB/s over 4 s: 4 s earned beyond the timeout.
    const chunk = Buffer.alloc(DEFAULT_BODY_MIN_BYTES_PER_SECOND, 0x61);
    for (let i = 1; i <= 4; i++) {
      socket.write(frame(FRAME_TYPE.DATA, 0, 1, chunk));
      await until(() => t.opened[0]!.bytesReceived === i * chunk.length);
      t.advance(1000);
    }
    t.advance(BODY_TIMEOUT_MS - 1);
    expect(t.server.bodyTimeouts).toBe(0);
    t.advance(1);
    expect(t.server.bodyTimeouts).toBe(1);
  });

  it('does not time out a request that ended, however long its answer takes', async () => {
    const t = await fakeTimeServer();
    const socket = await connect(t.port);
    socket.write(
      Buffer.concat([
        PREFACE,
        settings(),
        frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, BLOCK),
      ]),
    );
    await until(() => t.opened.length === 1);
    t.advance(0);
    t.advance(10 * BODY_TIMEOUT_MS);
    expect(t.server.bodyTimeouts).toBe(0);
    expect(t.opened[0]!.closed).toBe(false);
  });
});

/** The handshake of a client granting every window, and one request: nothing but TCP holds the reply back. */
const WIDE_OPEN_REQUEST = Buffer.concat([
  PREFACE,
  settings([SETTING.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]),
  frame(FRAME_TYPE.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1 - 65_535)),
  frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, BLOCK),
]);

/** A client that grants no window, then asks for one reply. */
async function stuckReply(t: Awaited<ReturnType<typeof fakeTimeServer>>) {
  const socket = await connect(t.port);
  const got = received(socket);
  socket.write(
    Buffer.concat([
      PREFACE,
      settings([SETTING.INITIAL_WINDOW_SIZE, 0]),
      frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, BLOCK),
    ]),
  );
  await until(() => t.opened.length === 1);
  return { socket, got };
}

describe('send timeout (a peer that does not read)', () => {
  const REPLY = Buffer.alloc(1000, 1);

  it('resets a stream whose reply made no progress behind a zero window', async () => {
    const t = await fakeTimeServer({ reply: REPLY });
    const { got } = await stuckReply(t);
    t.advance(0);
    t.advance(SEND_TIMEOUT_MS - 1);
    expect(t.server.sendTimeouts).toBe(0);
    t.advance(1);
    expect(t.server.sendTimeouts).toBe(1);
    expect(t.opened[0]!.closed).toBe(true);
    await until(() => got.types.includes(FRAME_TYPE.RST_STREAM));
    expect(t.server.connections.size).toBe(1);
  });

  it('leaves a reply alone while the peer keeps opening its window', async () => {
    const t = await fakeTimeServer({ reply: REPLY });
    const { socket, got } = await stuckReply(t);
    t.advance(0);
    for (let i = 0; i < 6; i++) {
      t.advance(SEND_TIMEOUT_MS / 2);
      socket.write(frame(FRAME_TYPE.WINDOW_UPDATE, 0, 1, u32(100)));
      await until(() => got.types.filter((x) => x === FRAME_TYPE.DATA).length === i + 1);
    }
    t.advance(SEND_TIMEOUT_MS / 2);
    expect(t.server.sendTimeouts).toBe(0);
    expect(t.opened[0]!.closed).toBe(false);
  });
});

describe('send timeout: what is not progress', () => {
  it('resets a reply whose queue only grows (a stream writing to a window that never opens)', async () => {
    const t = await fakeTimeServer();
    await stuckReply(t);
    const s = t.opened[0]!;
    s.sendHeaders([':status', '200'], false);
    s.sendData(Buffer.alloc(10, 2), false);
    t.advance(0);
    for (let i = 0; i < 3; i++) {
      // More queued each round (a server-streaming reply): growth is no progress.
      s.sendData(Buffer.alloc(10, 2), false);
      t.advance(SEND_TIMEOUT_MS / 4);
      expect(s.closed).toBe(false);
    }
    t.advance(SEND_TIMEOUT_MS / 4);
    expect(t.server.sendTimeouts).toBe(1);
    expect(s.closed).toBe(true);
  });

  it('closes a connection whose peer does not read its socket, whatever window it granted', async () => {
    const big = Buffer.alloc(32 * 1024 * 1024, 3);
    const t = await fakeTimeServer({ reply: big });
    const socket = await connect(t.port);
    socket.write(WIDE_OPEN_REQUEST);
    socket.pause(); // and it never reads
    await until(() => t.opened.length === 1);
    const server = serverSide(t.server)!;
    // Until the kernel's buffers are full and it takes no more.
    let last = '';
    await until(() => {
      const now = progressOf(server.socket);
      const stable = now === last && server.socket.writableLength > 0;
      last = now;
      return stable;
    });
    t.advance(0);
    t.advance(SEND_TIMEOUT_MS - 1);
    expect(t.server.unreadTimeouts).toBe(0);
    t.advance(1);
    expect(t.server.unreadTimeouts).toBe(1);
    expect(server.isDestroyed).toBe(true);
  });
});

/** What the kernel has taken of a socket's output so far (completed writes, the one in flight). */
function progressOf(socket: net.Socket): string {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: number } })._handle;
  return `${socket.bytesWritten - socket.writableLength}/${handle?.writeQueueSize}`;
}

describe('send timeout: a slow reader is not a non-reader', () => {
  it('leaves alone a peer that reads its socket slowly, a large write still in flight', async () => {
    const big = Buffer.alloc(32 * 1024 * 1024, 3);
    const t = await fakeTimeServer({ reply: big });
    const socket = await connect(t.port);
    let read = 0;
    let target = 0;
    socket.on('data', (d: Buffer) => {
      read += d.length;
      if (read >= target) socket.pause();
    });
    socket.write(WIDE_OPEN_REQUEST);
    socket.pause();
    await until(() => t.opened.length === 1);
    const server = serverSide(t.server)!;
    await until(() => server.socket.writableLength > 0);
    t.advance(0);
    // Rounds in which no write completed although the kernel took more: what counting
    // completed writes alone took for a peer that does not read.
    let onlyInFlightMoved = 0;
    for (let i = 0; i < 40 && server.socket.writableLength > 0; i++) {
      // 2 MiB read each round, then half the send timeout passes.
      const before = progressOf(server.socket);
      target = read + 2 * 1024 * 1024;
      socket.resume();
      await until(() => read >= target || server.socket.writableLength === 0);
      await until(() => progressOf(server.socket) !== before || server.socket.writableLength === 0);
      if (progressOf(server.socket).split('/')[0] === before.split('/')[0]) onlyInFlightMoved++;
      t.advance(SEND_TIMEOUT_MS / 2);
      expect(t.server.unreadTimeouts).toBe(0);
    }
    expect(onlyInFlightMoved).toBeGreaterThanOrEqual(2);
    expect(server.isDestroyed).toBe(false);
  });
});

describe('connection limit', () => {
  it('closes connections past maxConnections at accept and serves the others', async () => {
    const t = await fakeTimeServer({ maxConnections: 2 });
    const a = await connect(t.port);
    const b = await connect(t.port);
    await until(() => t.server.connections.size === 2);
    const c = await connect(t.port);
    await once(c, 'close');
    expect(t.server.refusedConnections).toBe(1);
    expect(a.destroyed || b.destroyed).toBe(false);
  });
});

describe('options', () => {
  it('refuses a negative or fractional timeout and names it', () => {
    const make = (o: object) => () => new H2Server({ onStream: () => {}, ...o });
    expect(make({ headerTimeoutMs: -1 })).toThrow(InvalidArgumentError);
    expect(make({ bodyTimeoutMs: 1.5 })).toThrow(/bodyTimeoutMs/);
    expect(make({ maxConnections: -2 })).toThrow(/maxConnections/);
  });
});
