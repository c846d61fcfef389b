import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2_ERROR,
  H2Server,
  STREAM_RESET_BURST,
  STREAM_RESET_PER_SECOND,
} from '../src/index.js';
import { frame, PREFACE } from './raw-frames.js';

const BLOCK = encodeHeaderBlock([
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  '/svc/M',
  ':authority',
  'x',
]);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** HEADERS then RST_STREAM(CANCEL) for `count` new streams from `firstId`. */
function openAndReset(firstId: number, count: number): Buffer {
  const parts: Buffer[] = [];
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(H2_ERROR.CANCEL);
  for (let i = 0; i < count; i++) {
    const id = firstId + 2 * i;
    parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, id, BLOCK));
    parts.push(frame(FRAME_TYPE.RST_STREAM, 0, id, cancel));
  }
  return Buffer.concat(parts);
}

/** Frames the server sent, as [type, payload] (GOAWAY code readable from the payload). */
function collect(socket: net.Socket): {
  types: number[];
  goaway: () => number;
  pingAcks: () => number;
} {
  let buf = Buffer.alloc(0);
  const types: number[] = [];
  let goaway = -1;
  let pingAcks = 0;
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      types.push(type);
      if (type === FRAME_TYPE.GOAWAY) goaway = buf.readUInt32BE(9 + 4);
      if (type === FRAME_TYPE.PING && (buf[4]! & FLAG.ACK) !== 0) pingAcks++;
      buf = buf.subarray(9 + len);
    }
  });
  return { types, goaway: () => goaway, pingAcks: () => pingAcks };
}

async function serverAt(clock: {
  ms: number;
}): Promise<{ server: H2Server; port: number; opened: () => number }> {
  let opened = 0;
  const server = new H2Server({
    now: () => clock.ms,
    onStream(s) {
      opened++;
      s.handler = { onHeaders() {}, onData() {}, onClose() {} };
    },
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  cleanups.push(() => server.close(100));
  return { server, port: (server.server.address() as net.AddressInfo).port, opened: () => opened };
}

async function client(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  socket.write(Buffer.concat([PREFACE, frame(FRAME_TYPE.SETTINGS, 0, 0)]));
  return socket;
}

async function pingRoundTrip(socket: net.Socket, seen: () => number): Promise<void> {
  const before = seen();
  socket.write(frame(FRAME_TYPE.PING, 0, 0, Buffer.alloc(8)));
  await expect.poll(seen).toBe(before + 1);
}

describe('stream reset rate limit (Rapid Reset, CVE-2023-44487)', () => {
  it(`lets a client reset ${STREAM_RESET_BURST} streams in a burst, and closes it on the next`, async () => {
    const clock = { ms: 1000 };
    const { port, opened } = await serverAt(clock);
    const socket = await client(port);
    const seen = collect(socket);
    socket.write(openAndReset(1, STREAM_RESET_BURST));
    await pingRoundTrip(socket, seen.pingAcks);
    expect(opened()).toBe(STREAM_RESET_BURST);
    expect(seen.goaway()).toBe(-1);
    socket.write(openAndReset(1 + 2 * STREAM_RESET_BURST, 1));
    await once(socket, 'close');
    expect(seen.goaway()).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
  });

  it('counts streams the client makes the server reset (self-dependent PRIORITY) against the same budget (MadeYouReset)', async () => {
    const clock = { ms: 1000 };
    const { port, opened } = await serverAt(clock);
    const socket = await client(port);
    const seen = collect(socket);
    const parts: Buffer[] = [];
    for (let i = 0; i <= STREAM_RESET_BURST; i++) {
      const id = 1 + 2 * i;
      const selfDependent = Buffer.alloc(5);
      selfDependent.writeUInt32BE(id);
      parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, BLOCK));
      parts.push(frame(FRAME_TYPE.PRIORITY, 0, id, selfDependent));
    }
    socket.write(Buffer.concat(parts));
    await once(socket, 'close');
    expect(seen.goaway()).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    // GOAWAY at the budget's end: no stream opened past it.
    expect(opened()).toBeLessThanOrEqual(STREAM_RESET_BURST + 1);
  });

  it(`refills ${STREAM_RESET_PER_SECOND} resets per second after the burst`, async () => {
    const clock = { ms: 1000 };
    const { port } = await serverAt(clock);
    const socket = await client(port);
    const seen = collect(socket);
    socket.write(openAndReset(1, STREAM_RESET_BURST));
    await pingRoundTrip(socket, seen.pingAcks);
    clock.ms += 1000;
    let id = 1 + 2 * STREAM_RESET_BURST;
    socket.write(openAndReset(id, STREAM_RESET_PER_SECOND));
    id += 2 * STREAM_RESET_PER_SECOND;
    await pingRoundTrip(socket, seen.pingAcks);
    expect(seen.goaway()).toBe(-1);
    socket.write(openAndReset(id, 1));
    await once(socket, 'close');
    expect(seen.goaway()).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
  });

  it('does not count streams that end normally', async () => {
    const clock = { ms: 1000 };
    const server = new H2Server({
      now: () => clock.ms,
      onStream(s) {
        s.handler = { onHeaders() {}, onData() {}, onClose() {} };
        s.sendHeaders([':status', '200', 'grpc-status', '0'], true);
      },
    });
    server.server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    cleanups.push(() => server.close(100));
    const socket = await client((server.server.address() as net.AddressInfo).port);
    const seen = collect(socket);
    const parts: Buffer[] = [];
    for (let i = 0; i < 2 * STREAM_RESET_BURST; i++) {
      parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, BLOCK));
    }
    socket.write(Buffer.concat(parts));
    await pingRoundTrip(socket, seen.pingAcks);
    expect(seen.goaway()).toBe(-1);
  });
});

describe('stream reset rate limit, graceful', () => {
  it('lets the calls already open finish after GOAWAY(ENHANCE_YOUR_CALM)', async () => {
    const clock = { ms: 1000 };
    let held: import('../src/index.js').H2Stream | null = null;
    const server = new H2Server({
      now: () => clock.ms,
      onStream(s) {
        s.handler = { onHeaders() {}, onData() {}, onClose() {} };
        if (held === null) held = s; // the first stream is answered only after the trip
      },
    });
    server.server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    cleanups.push(() => server.close(100));
    const socket = await client((server.server.address() as net.AddressInfo).port);
    const seen = collect(socket);
    let answered = false;
    socket.on('data', (d: Buffer) => {
      // HEADERS (type 1) with END_STREAM on stream 1: the held call's answer.
      for (let p = 0; p + 9 <= d.length; ) {
        const len = d.readUIntBE(p, 3);
        if (d[p + 3] === FRAME_TYPE.HEADERS && (d.readUInt32BE(p + 5) & 0x7fffffff) === 1) {
          answered = true;
        }
        p += 9 + len;
      }
    });
    socket.write(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, BLOCK));
    await expect.poll(() => held).not.toBeNull();
    socket.write(openAndReset(3, STREAM_RESET_BURST + 1));
    await expect.poll(() => seen.goaway()).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(server.connections.size).toBe(1); // still open: stream 1 is in flight
    held!.sendHeaders([':status', '200', 'grpc-status', '0'], true);
    await once(socket, 'close');
    expect(answered).toBe(true);
  });
});
