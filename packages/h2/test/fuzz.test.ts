/**
 * Seeded fuzzing of both sides with hostile byte streams: valid captured sessions with bytes
 * flipped, inserted, deleted, frames duplicated, reordered or cut, sent in random chunks; and
 * streams of random but well-framed frames. Whatever arrives, the process must not throw, every
 * connection must end (GOAWAY and/or close) or keep serving, and no connection or stream may
 * be left behind. A failure message names the seed: rerun one case with that seed.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2_ERROR,
  H2ClientConnection,
  type H2Error,
  H2Server,
  type H2Stream,
  SETTING,
  type StreamHandler,
} from '../src/index.js';
import { frame, PREFACE, settings, u32 } from './raw-frames.js';

const T = FRAME_TYPE;
const F = FLAG;
const BASE_SEED = 0x5eed_2026;
const SERVER_CASES = 400;
const CLIENT_CASES = 200;
/** Streams of random well-framed frames (cheap: most end early). */
const FRAMED_CASES = 1000;
/** Connections fuzzed at once. */
const PARALLEL = 16;
const KNOWN_CODES = new Set<number>(Object.values(H2_ERROR));

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <V>(r: Rand, list: readonly V[]): V => list[int(r, list.length)]!;

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

const REQUEST = encodeHeaderBlock([
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  '/engram.Memory/Recall',
  ':authority',
  'localhost',
  'content-type',
  'application/grpc',
  'te',
  'trailers',
  'x-custom-header',
  'some fairly long value to make the block longer than a few octets',
]);
const TRAILERS = encodeHeaderBlock(['grpc-status', '0', 'grpc-message', '']);
const RESPONSE = encodeHeaderBlock([':status', '200', 'content-type', 'application/grpc']);

/** A valid client session: several streams exercising most frame types. */
function clientSession(): Buffer[] {
  const padded = Buffer.concat([Buffer.from([4]), Buffer.from('padded!'), Buffer.alloc(4)]);
  const prio = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), REQUEST]);
  return [
    PREFACE,
    settings(
      [SETTING.HEADER_TABLE_SIZE, 256],
      [SETTING.INITIAL_WINDOW_SIZE, 100_000],
      [SETTING.MAX_FRAME_SIZE, 20_000],
      [SETTING.MAX_CONCURRENT_STREAMS, 50],
    ),
    frame(T.SETTINGS, F.ACK, 0),
    frame(T.WINDOW_UPDATE, 0, 0, u32(1_000_000)),
    frame(T.HEADERS, F.END_HEADERS, 1, REQUEST),
    frame(T.DATA, 0, 1, Buffer.from('\0\0\0\0\x05hello')),
    frame(T.DATA, F.END_STREAM, 1, Buffer.alloc(0)),
    frame(T.PING, 0, 0, Buffer.from('pingpong')),
    frame(T.HEADERS, 0, 3, REQUEST.subarray(0, 10)),
    frame(T.CONTINUATION, 0, 3, REQUEST.subarray(10, 30)),
    frame(T.CONTINUATION, F.END_HEADERS, 3, REQUEST.subarray(30)),
    frame(T.DATA, F.PADDED, 3, padded),
    frame(T.PRIORITY, 0, 3, Buffer.from([0, 0, 0, 1, 20])),
    frame(T.WINDOW_UPDATE, 0, 3, u32(500)),
    frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, TRAILERS),
    frame(T.HEADERS, F.END_HEADERS | F.PRIORITY, 5, prio),
    frame(T.DATA, 0, 5, Buffer.alloc(3000, 0x61)),
    frame(T.RST_STREAM, 0, 5, u32(H2_ERROR.CANCEL)),
    frame(0xbb, 0x3, 0, Buffer.from('unknown')),
    frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 7, REQUEST),
    frame(T.HEADERS, F.END_HEADERS, 9, REQUEST),
    frame(T.DATA, F.END_STREAM, 9, Buffer.alloc(20_000, 0x62)),
    frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(0), Buffer.from('bye')])),
  ];
}

/** A valid server side of a session with requests 1, 3, 5 in flight. */
function serverSession(): Buffer[] {
  return [
    settings([SETTING.MAX_CONCURRENT_STREAMS, 2], [SETTING.INITIAL_WINDOW_SIZE, 1_000]),
    frame(T.SETTINGS, F.ACK, 0),
    frame(T.WINDOW_UPDATE, 0, 0, u32(100_000)),
    frame(T.HEADERS, F.END_HEADERS, 1, RESPONSE),
    frame(T.DATA, 0, 1, Buffer.from('\0\0\0\0\x02ok')),
    frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, TRAILERS),
    frame(T.PING, 0, 0, Buffer.from('12345678')),
    frame(T.WINDOW_UPDATE, 0, 3, u32(10_000)),
    frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, TRAILERS),
    frame(T.HEADERS, 0, 5, RESPONSE.subarray(0, 2)),
    frame(T.CONTINUATION, F.END_HEADERS, 5, RESPONSE.subarray(2)),
    frame(T.DATA, F.END_STREAM, 5, Buffer.alloc(5000)),
    frame(T.RST_STREAM, 0, 7, u32(H2_ERROR.REFUSED_STREAM)),
    frame(T.GOAWAY, 0, 0, Buffer.concat([u32(7), u32(H2_ERROR.NO_ERROR)])),
  ];
}

/** One of several structural or byte-level mutations of a frame list, then flattened. */
function mutate(r: Rand, frames: Buffer[], keepPrefix: number): Buffer {
  const list = frames.slice();
  const rounds = 1 + int(r, 4);
  for (let k = 0; k < rounds; k++) {
    const i = keepPrefix + int(r, list.length - keepPrefix);
    switch (int(r, 7)) {
      case 0: // duplicate a frame
        list.splice(i, 0, list[i]!);
        break;
      case 1: // drop a frame
        list.splice(i, 1);
        break;
      case 2: {
        // swap two frames
        const j = keepPrefix + int(r, list.length - keepPrefix);
        const t = list[i]!;
        list[i] = list[j]!;
        list[j] = t;
        break;
      }
      case 3: // a random well-framed frame
        list.splice(i, 0, randomFrame(r));
        break;
      default:
        break;
    }
  }
  const bytes = Buffer.concat(list);
  const start = keepPrefix === 0 ? 0 : Buffer.concat(list.slice(0, keepPrefix)).length;
  const flips = int(r, 6);
  for (let k = 0; k < flips && bytes.length > start; k++) {
    const at = start + int(r, bytes.length - start);
    bytes[at] = r() < 0.5 ? int(r, 256) : bytes[at]! ^ (1 << int(r, 8));
  }
  if (r() < 0.2) return bytes.subarray(0, start + int(r, bytes.length - start + 1));
  if (r() < 0.1) {
    const at = start + int(r, bytes.length - start + 1);
    return Buffer.concat([bytes.subarray(0, at), randomBytes(r, int(r, 40)), bytes.subarray(at)]);
  }
  return bytes;
}

const IDS = [0, 1, 2, 3, 5, 7, 9, 11, 0x7fffffff];
const CONNECTION_TYPES = new Set<number>([T.SETTINGS, T.PING, T.GOAWAY]);

/**
 * A frame with a consistent length field. Mostly plausible (right sizes, ids that make sense
 * for the type) so a connection survives long enough to meet the odd broken one.
 */
function randomFrame(r: Rand): Buffer {
  const odd = r() < 0.12;
  let type = r() < 0.95 ? int(r, 10) : 10 + int(r, 246);
  if (!odd && (type === T.GOAWAY || type === T.CONTINUATION || type === T.PUSH_PROMISE)) {
    type = T.PING;
  }
  let flags = odd ? int(r, 256) : pick(r, [0, 0, 1]);
  if (type === T.HEADERS && !odd) flags = F.END_HEADERS | F.END_STREAM;
  const id = odd
    ? pick(r, IDS)
    : CONNECTION_TYPES.has(type) || (type === T.WINDOW_UPDATE && r() < 0.5)
      ? 0
      : type === T.HEADERS
        ? pick(r, [1, 3, 5, 7, 9])
        : 1;
  // Sometimes a size that is wrong for the type (the length checks must hold).
  const size = (n: number) => (odd && r() < 0.5 ? int(r, n + 3) : n);
  let payload: Buffer;
  switch (type) {
    case T.HEADERS:
    case T.CONTINUATION:
      payload =
        odd && r() < 0.5
          ? randomBytes(r, int(r, 60))
          : type === T.HEADERS
            ? REQUEST
            : Buffer.alloc(0);
      break;
    case T.SETTINGS:
      payload = Buffer.concat(
        Array.from({ length: int(r, 4) }, () =>
          Buffer.concat([
            Buffer.from([0, odd ? int(r, 8) : pick(r, [1, 3, 4, 5, 6, 7])]),
            u32(r() < 0.8 ? 16_384 + int(r, 70_000) : int(r, 2 ** 32)),
          ]),
        ),
      );
      if (odd) payload = randomBytes(r, int(r, 13));
      break;
    case T.WINDOW_UPDATE:
      payload = odd ? randomBytes(r, size(4)) : u32(1 + int(r, 100_000));
      break;
    case T.RST_STREAM:
      payload = randomBytes(r, size(4));
      break;
    case T.PRIORITY:
      payload = randomBytes(r, size(5));
      break;
    case T.PING:
      payload = randomBytes(r, size(8));
      break;
    case T.GOAWAY:
      payload = odd ? randomBytes(r, int(r, 12)) : Buffer.concat([u32(3), u32(0)]);
      break;
    case T.DATA:
      payload = randomBytes(r, int(r, 300));
      break;
    default:
      payload = randomBytes(r, int(r, 300));
  }
  return frame(type, flags, id, payload);
}

/** Writes `bytes` in random-sized chunks, each its own write. */
async function writeChunked(r: Rand, socket: net.Socket, bytes: Buffer): Promise<void> {
  let off = 0;
  while (off < bytes.length && !socket.destroyed) {
    const n = r() < 0.3 ? 1 + int(r, 8) : 1 + int(r, 4096);
    const part = bytes.subarray(off, off + n);
    off += n;
    await new Promise<void>((resolve) => socket.write(part, () => resolve()));
  }
}

interface Outcome {
  goaway: number | null;
  closed: boolean;
}

/** Collects frames from a raw socket (after an optional preface) up to its close. */
function watch(socket: net.Socket, preface: boolean): { outcome: Outcome; closed: Promise<void> } {
  const outcome: Outcome = { goaway: null, closed: false };
  let buf = Buffer.alloc(0);
  let skip = preface ? PREFACE.length : 0;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (skip > 0) {
      const n = Math.min(skip, buf.length);
      buf = buf.subarray(n);
      skip -= n;
    }
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      if (buf[3] === T.GOAWAY && len >= 8) outcome.goaway = buf.readUInt32BE(13);
      buf = buf.subarray(9 + len);
    }
  });
  socket.on('error', () => {});
  // Not events.once: it would reject on an 'error' (ECONNRESET) before the close.
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      outcome.closed = true;
      resolve();
    }),
  );
  return { outcome, closed };
}

const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);
beforeAll(() => {
  process.on('uncaughtException', onUncaught);
});
afterAll(() => {
  process.off('uncaughtException', onUncaught);
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  expect(uncaught).toEqual([]);
});

describe('fuzzing the server', () => {
  async function fuzzServer(
    makeCase: (r: Rand) => Buffer | Buffer[],
    finish: 'poison' | 'ping',
  ): Promise<{ accepted: number; goaways: number; served: number }> {
    const streams: H2Stream[] = [];
    const closeCalls = new Map<H2Stream, number>();
    const connections = new Set<H2Stream['connection']>();
    let n = 0;
    const stats = { goaway: 0, served: 0 };
    const server = new H2Server({
      settings: { maxConcurrentStreams: 4, initialWindowSize: 30_000 },
      onStream(stream) {
        streams.push(stream);
        connections.add(stream.connection);
        const mode = n++ % 4;
        const chunks: Buffer[] = [];
        const answer = (s: H2Stream) => {
          s.sendHeaders(RESPONSE, false);
          s.sendData(Buffer.concat([...chunks, Buffer.alloc(70_000, 1)]), false);
          s.sendTrailers(['grpc-status', '0']);
        };
        const handler: StreamHandler = {
          onHeaders(s, _h, end) {
            if (end && mode !== 3) answer(s);
          },
          onData(s, chunk, end) {
            chunks.push(Buffer.from(chunk));
            if (mode === 1 && chunks.length === 1) s.reset();
            else if (end && mode !== 3) answer(s);
          },
          onClose(s) {
            closeCalls.set(s, (closeCalls.get(s) ?? 0) + 1);
          },
        };
        stream.handler = handler;
        if (mode === 2)
          answer(stream); // answers before the request ended
        else if (stream.remoteEnded && mode !== 3) answer(stream);
      },
    });
    server.server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    cleanups.push(() => server.close(100));
    const port = (server.server.address() as net.AddressInfo).port;

    const runCase = async (i: number): Promise<void> => {
      const seed = BASE_SEED + i;
      const r = rng(seed);
      const socket = net.connect(port, '127.0.0.1');
      const { outcome, closed } = watch(socket, false);
      await once(socket, 'connect');
      const input = makeCase(r);
      if (Buffer.isBuffer(input)) await writeChunked(r, socket, input);
      else {
        // One write per frame, each followed by a turn of the event loop (the server reads in
        // its poll phase): frames tend to end exactly at the end of a read, where a length check
        // missing in the parser would read past the buffer and throw. Coverage only: nothing
        // asserted depends on this timing.
        for (const part of input) {
          if (socket.destroyed) break;
          await new Promise<void>((resolve) => socket.write(part, () => resolve()));
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      if (finish === 'poison') {
        // Completes any partial frame (≤ 16 384 octets), then a zero header = DATA on stream 0:
        // whatever state the parser is in, the connection must now fail and close.
        if (!socket.destroyed) socket.write(Buffer.alloc(16_384 + 9 + 9));
        await closed;
        expect(outcome.closed, `seed ${seed}`).toBe(true);
      } else {
        // Well-framed input: the server either still answers a PING or has said GOAWAY.
        const payload = Buffer.from('fuzzping');
        const acked = new Promise<boolean>((resolve) => {
          let buf = Buffer.alloc(0);
          socket.on('data', (chunk: Buffer) => {
            buf = Buffer.concat([buf, chunk]);
            if (
              buf.includes(
                Buffer.concat([Buffer.from([0, 0, 8, T.PING, F.ACK, 0, 0, 0, 0]), payload]),
              )
            ) {
              resolve(true);
            }
          });
          socket.on('close', () => resolve(false));
        });
        if (!socket.destroyed) socket.write(frame(T.PING, 0, 0, payload));
        const ok = await acked;
        // A failed connection may lose its GOAWAY to a TCP reset (the server closed with our
        // next frame unread): then the close itself is the answer.
        if (!ok) await closed;
        if (ok) stats.served++;
        if (!ok)
          expect(outcome.goaway === null || KNOWN_CODES.has(outcome.goaway), `seed ${seed}`).toBe(
            true,
          );
        expect(ok || outcome.goaway !== null || outcome.closed, `seed ${seed}`).toBe(true);
        socket.destroy();
        await closed;
      }
      if (outcome.goaway !== null)
        expect(KNOWN_CODES.has(outcome.goaway), `seed ${seed}`).toBe(true);
      // The handlers here never throw: INTERNAL_ERROR would be an exception inside @engram/h2
      // that the connection's guard turned into a GOAWAY.
      expect(outcome.goaway, `seed ${seed}`).not.toBe(H2_ERROR.INTERNAL_ERROR);
      stats.goaway += outcome.goaway === null ? 0 : 1;
    };

    const total = finish === 'poison' ? SERVER_CASES : FRAMED_CASES;
    for (let i = 0; i < total; i += PARALLEL) {
      await Promise.all(
        Array.from({ length: Math.min(PARALLEL, total - i) }, (_, k) =>
          runCase(i + k + (finish === 'ping' ? 100_000 : 0)),
        ),
      );
    }
    expect(await server.shutdown(5_000)).toBe(true);
    expect(server.connections.size).toBe(0);
    for (const c of connections) expect(c.streams.size).toBe(0);
    for (const s of streams) {
      expect(s.closed).toBe(true);
      expect(closeCalls.get(s)).toBe(1);
    }
    return { accepted: streams.length, goaways: stats.goaway, served: stats.served };
  }

  it(`survives ${SERVER_CASES} mutated client sessions; every connection fails cleanly on a poison frame`, async () => {
    const session = clientSession();
    const { accepted, goaways } = await fuzzServer((r) => {
      // Keep the preface intact most of the time so the frame layer gets exercised.
      const keep = r() < 0.9 ? 1 : 0;
      return mutate(r, session, keep);
    }, 'poison');
    expect(accepted).toBeGreaterThan(SERVER_CASES / 4);
    expect(goaways).toBeGreaterThan(SERVER_CASES / 2);
  }, 60_000);

  it(`keeps serving or says GOAWAY after ${FRAMED_CASES} streams of random well-framed frames`, async () => {
    const { served, goaways } = await fuzzServer((r) => {
      const parts = [PREFACE, settings(), frame(T.HEADERS, F.END_HEADERS, 1, REQUEST)];
      const n = 1 + int(r, 16);
      for (let k = 0; k < n; k++) parts.push(randomFrame(r));
      return parts;
    }, 'ping');
    // Both outcomes happen: the input is neither all fatal nor all harmless.
    expect(served).toBeGreaterThan(FRAMED_CASES / 10);
    expect(goaways).toBeGreaterThan(FRAMED_CASES / 10);
  }, 60_000);
});

describe('fuzzing the client', () => {
  it(`survives ${CLIENT_CASES} hostile servers; every call closes exactly once`, async () => {
    const session = serverSession();
    const sockets = new Set<net.Socket>();
    const accepted: net.Socket[] = [];
    const waiters: ((s: net.Socket) => void)[] = [];
    const raw = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      const w = waiters.shift();
      if (w !== undefined) w(socket);
      else accepted.push(socket);
    });
    raw.listen(0, '127.0.0.1');
    await once(raw, 'listening');
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => raw.close(() => r()));
    });
    const port = (raw.address() as net.AddressInfo).port;
    const nextSocket = (): Promise<net.Socket> => {
      const s = accepted.shift();
      return s !== undefined ? Promise.resolve(s) : new Promise((r) => waiters.push(r));
    };
    const REQ = [':method', 'POST', ':scheme', 'http', ':path', '/svc/M', ':authority', 'x'];

    let protocolErrors = 0;
    for (let i = 0; i < CLIENT_CASES; i++) {
      const seed = BASE_SEED + 200_000 + i;
      const r = rng(seed);
      const client = H2ClientConnection.connect({
        host: '127.0.0.1',
        port,
        settings: { initialWindowSize: 20_000 },
      });
      const clientClosed = new Promise<H2Error | null>((resolve) => {
        client.onClose = resolve;
      });
      cleanups.push(() => client.destroy());
      const calls: { closes: number; stream: H2Stream }[] = [];
      const handler: StreamHandler = {
        onHeaders() {},
        onData(s) {
          if (r() < 0.05) s.reset();
        },
        onClose(s) {
          const c = calls.find((x) => x.stream === s);
          if (c !== undefined) c.closes++;
        },
      };
      for (let k = 0; k < 4; k++) {
        const body = k === 3 ? null : Buffer.alloc(k * 9000, k);
        calls.push({ closes: 0, stream: client.request(REQ, body, handler) });
      }
      const socket = await nextSocket();
      const { closed } = watch(socket, true);
      const bytes = r() < 0.15 ? randomBytes(r, int(r, 200)) : mutate(r, session, 0);
      await writeChunked(r, socket, bytes);
      if (r() < 0.5) {
        socket.end();
      } else {
        socket.destroy();
      }
      const err = await clientClosed;
      await closed;
      // No exception inside @engram/h2 (the guard reports one as INTERNAL_ERROR with a cause).
      expect(err?.message ?? '', `seed ${seed}`).not.toMatch(/stream handler threw/);
      if (err?.h2Code === H2_ERROR.PROTOCOL_ERROR) protocolErrors++;
      expect(client.streams.size, `seed ${seed}`).toBe(0);
      for (const c of calls) expect(c.closes, `seed ${seed}`).toBe(1);
      expect(client.available, `seed ${seed}`).toBe(false);
    }
    // The mutations reach the protocol checks, not only the socket close.
    expect(protocolErrors).toBeGreaterThan(CLIENT_CASES / 10);
  }, 60_000);
});
