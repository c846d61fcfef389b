import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeaderBlock, HpackDecoder, HpackEncoder } from '../src/internal/hpack.js';
import { frame, PREFACE } from './raw-frames.js';

const FRAME_HEADER_OCTETS = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_PING = 0x6;
const TYPE_GOAWAY = 0x7;
const TYPE_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const SETTINGS_HEADER_TABLE_SIZE = 0x1;

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits a byte stream into frames (test code: simplicity over speed). */
class FrameReader {
  private pending = Buffer.alloc(0);
  constructor(private skip: number) {}

  push(chunk: Buffer): Frame[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    if (this.skip > 0) {
      const n = Math.min(this.skip, this.pending.length);
      this.pending = this.pending.subarray(n);
      this.skip -= n;
    }
    const frames: Frame[] = [];
    while (this.pending.length >= FRAME_HEADER_OCTETS) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < FRAME_HEADER_OCTETS + length) break;
      frames.push({
        type: this.pending[3] as number,
        flags: this.pending[4] as number,
        streamId: this.pending.readUInt32BE(5) & 0x7fffffff,
        payload: this.pending.subarray(FRAME_HEADER_OCTETS, FRAME_HEADER_OCTETS + length),
      });
      this.pending = this.pending.subarray(FRAME_HEADER_OCTETS + length);
    }
    return frames;
  }
}

/** Joins HEADERS (+ CONTINUATION) payloads into complete header blocks. */
class BlockAssembler {
  private parts: Buffer[] = [];
  private streamId = 0;

  /** Returns [streamId, block] when a block is complete. */
  push(f: Frame): [number, Buffer] | undefined {
    if (f.type === TYPE_HEADERS) {
      let start = 0;
      let end = f.payload.length;
      if ((f.flags & FLAG_PADDED) !== 0) {
        end -= f.payload[0] as number;
        start = 1;
      }
      if ((f.flags & FLAG_PRIORITY) !== 0) start += 5;
      this.parts = [f.payload.subarray(start, end)];
      this.streamId = f.streamId;
    } else if (f.type === TYPE_CONTINUATION) {
      this.parts.push(f.payload);
    } else {
      return undefined;
    }
    if ((f.flags & FLAG_END_HEADERS) === 0) return undefined;
    return [this.streamId, Buffer.concat(this.parts)];
  }
}

/** Seeded PRNG (mulberry32) so the request mix is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomText(rand: () => number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(0x20 + Math.floor(rand() * 95));
  return s;
}

const REQUESTS = 300;

describe('interop: Node (nghttp2) client encoder -> our decoder', () => {
  let server: net.Server;
  let session: http2.ClientHttp2Session;
  const decoded = new Map<number, string[]>();
  const decodeErrors: unknown[] = [];
  let continuationFrames = 0;
  let decoder: HpackDecoder;

  beforeAll(async () => {
    decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
    server = net.createServer((socket) => {
      const reader = new FrameReader(PREFACE.length);
      const assembler = new BlockAssembler();
      socket.write(frame(TYPE_SETTINGS, 0, 0, new Uint8Array(0)));
      socket.on('data', (chunk: Buffer) => {
        for (const f of reader.push(chunk)) {
          if (f.type === TYPE_SETTINGS && (f.flags & FLAG_ACK) === 0) {
            socket.write(frame(TYPE_SETTINGS, FLAG_ACK, 0, new Uint8Array(0)));
          } else if (f.type === TYPE_PING && (f.flags & FLAG_ACK) === 0) {
            socket.write(frame(TYPE_PING, FLAG_ACK, 0, f.payload));
          }
          if (f.type === TYPE_CONTINUATION) continuationFrames++;
          const block = assembler.push(f);
          if (block === undefined) continue;
          const [streamId, bytes] = block;
          const out: string[] = [];
          try {
            decoder.decode(bytes, 0, bytes.length, out);
          } catch (err) {
            decodeErrors.push(err);
          }
          decoded.set(streamId, out);
          // Reply with our encoder so the client side exercises nghttp2's decoder too.
          const reply = encodeHeaderBlock([
            ':status',
            '200',
            'content-type',
            'application/grpc',
            'x-stream',
            String(streamId),
          ]);
          socket.write(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, streamId, reply));
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => session.close(resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it(`decodes ${REQUESTS} request blocks from one session (Huffman, indexing, evictions, CONTINUATION)`, async () => {
    const rand = prng(7541);
    const sent: Record<string, string>[] = [];
    const replies: http2.IncomingHttpHeaders[] = [];
    const repeated = randomText(rand, 40);
    const BATCH = 10;
    for (let i = 0; i < REQUESTS; i += BATCH) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(REQUESTS, i + BATCH); j++) {
        const headers: Record<string, string> = {
          ':method': j % 3 === 0 ? 'POST' : 'GET',
          ':path': j % 5 === 0 ? '/' : `/engram.v1.Router/Call${j % 7}`,
          'content-type': 'application/grpc',
          te: 'trailers',
          'x-repeated': repeated,
          'x-request-id': `req-${j}-${randomText(rand, 8)}`, // changes every request
          // distinct ~100-octet values fill the 4096-octet table and force evictions
          'x-random': randomText(rand, 20 + Math.floor(rand() * 160)),
          'x-huffman-friendly': 'aaaaeeeeiiiioooo'.repeat(1 + (j % 4)),
          'x-long-codes': `{|}~^\\<>${randomText(rand, 5)}`,
        };
        if (j % 50 === 17) headers['x-large'] = randomText(rand, 20000); // > 16384: CONTINUATION
        if (j % 40 === 3) headers['x-bigger-than-table'] = randomText(rand, 5000);
        sent[j] = headers;
        batch.push(
          new Promise<void>((resolve, reject) => {
            const req = session.request(headers, { endStream: true });
            req.on('response', (h) => {
              replies[j] = h;
            });
            req.on('error', reject);
            req.on('close', () => resolve());
            req.resume();
          }),
        );
      }
      await Promise.all(batch);
    }
    expect(decodeErrors).toEqual([]);
    expect(decoded.size).toBe(REQUESTS);
    expect(continuationFrames).toBeGreaterThan(0);
    // The table is full and the early per-request values were evicted long ago.
    expect(decoder.dynamicTableSize).toBeGreaterThan(3000);
    const tableValues = decoder.dynamicTableEntries().map(([, v]) => v);
    expect(tableValues).not.toContain(sent[0]?.['x-random']);
    expect(tableValues).toContain(sent[REQUESTS - 1]?.['x-random']);
    const { port } = server.address() as net.AddressInfo;
    for (let j = 0; j < REQUESTS; j++) {
      const got = decoded.get(2 * j + 1) as string[];
      const expected: Record<string, string> = {
        ...(sent[j] as Record<string, string>),
        ':scheme': 'http',
        ':authority': `127.0.0.1:${port}`,
      };
      const gotMap: Record<string, string> = {};
      for (let k = 0; k < got.length; k += 2) gotMap[got[k] as string] = got[k + 1] as string;
      expect(got.length / 2).toBe(Object.keys(expected).length);
      expect(gotMap).toEqual(expected);
      // Pseudo-headers come first.
      const firstRegular = got.findIndex((v, k) => k % 2 === 0 && !v.startsWith(':'));
      expect(got.slice(firstRegular).filter((v, k) => k % 2 === 0 && v.startsWith(':'))).toEqual(
        [],
      );
      expect(replies[j]?.[':status']).toBe(200);
      expect(replies[j]?.['content-type']).toBe('application/grpc');
      expect(replies[j]?.['x-stream']).toBe(String(2 * j + 1));
    }
  });
});

interface RawClient {
  socket: net.Socket;
  frames: Frame[];
  waitFor(pred: (f: Frame) => boolean): Promise<Frame>;
}

async function rawClient(port: number, onSettings: (f: Frame) => void): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reader = new FrameReader(0);
  const frames: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  socket.on('data', (chunk: Buffer) => {
    for (const f of reader.push(chunk)) {
      if (f.type === TYPE_SETTINGS && (f.flags & FLAG_ACK) === 0) {
        onSettings(f);
        socket.write(frame(TYPE_SETTINGS, FLAG_ACK, 0, new Uint8Array(0)));
      }
      frames.push(f);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i] as (typeof waiters)[number];
        if (w.pred(f)) {
          waiters.splice(i, 1);
          w.resolve(f);
        }
      }
    }
  });
  socket.on('error', () => {});
  socket.write(Buffer.concat([PREFACE, frame(TYPE_SETTINGS, 0, 0, new Uint8Array(0))]));
  return {
    socket,
    frames,
    waitFor: (pred) => {
      const seen = frames.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

describe('interop: our encoder -> Node (nghttp2) server decoder', () => {
  let server: http2.Http2Server;
  let smallTableServer: http2.Http2Server;
  const clients: net.Socket[] = [];
  const received = new Map<string, string[]>();

  function onStream(
    stream: http2.ServerHttp2Stream,
    _headers: http2.IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ): void {
    const id = rawHeaders[rawHeaders.indexOf('x-id') + 1] as string;
    received.set(id, rawHeaders);
    stream.respond({ ':status': 200 }, { endStream: true });
  }

  beforeAll(async () => {
    server = http2.createServer();
    server.on('stream', onStream);
    smallTableServer = http2.createServer({ settings: { headerTableSize: 0 } });
    smallTableServer.on('stream', onStream);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => smallTableServer.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of clients) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => smallTableServer.close(() => resolve()));
  });

  function requestHeaders(id: string, port: number, rand: () => number): string[] {
    let latin1 = '';
    for (let b = 0x80; b <= 0xff; b++) latin1 += String.fromCharCode(b);
    return [
      ':method',
      'POST', // exact static match
      ':scheme',
      'http', // exact static match
      ':path',
      '/engram.v1.Router/Call', // static name, literal value
      ':authority',
      `127.0.0.1:${port}`,
      'content-type',
      'application/grpc',
      'te',
      'trailers',
      'accept-encoding',
      'gzip, deflate', // exact static match
      'user-agent',
      'grpc-node-js/1.0',
      'x-id',
      id,
      'x-random',
      randomText(rand, 300), // multi-octet length prefix
      'x-latin1',
      `caf${latin1}`,
    ];
  }

  it.each([
    ['stateless', 0],
    ['indexing (a 4096-octet dynamic table, as connections use)', 4096],
    ['indexing in a 256-octet table (announced, then turned over)', 256],
  ])(
    'nghttp2 accepts our blocks and sees exactly the headers we encoded: %s',
    async (_n, tableSize) => {
      const { port } = server.address() as net.AddressInfo;
      const client = await rawClient(port, () => {});
      clients.push(client.socket);
      const encoder = new HpackEncoder({ tableSize });
      const rand = prng(9113);
      const sent = new Map<string, string[]>();
      const replyDecoder = new HpackDecoder(); // nghttp2 indexes its replies: one decoder per connection
      for (let i = 0; i < 20; i++) {
        const streamId = 2 * i + 1;
        const headers = requestHeaders(`a${tableSize}-${i}`, port, rand);
        sent.set(`a${tableSize}-${i}`, headers);
        const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
        const end = encoder.encode(headers, out, 0);
        client.socket.write(
          frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, streamId, out.subarray(0, end)),
        );
        // A GOAWAY (e.g. COMPRESSION_ERROR) ends the wait too, so a rejection fails fast.
        const reply = await client.waitFor(
          (f) => f.type === TYPE_GOAWAY || (f.type === TYPE_HEADERS && f.streamId === streamId),
        );
        expect(reply.type).toBe(TYPE_HEADERS);
        const replyHeaders: string[] = [];
        replyDecoder.decode(reply.payload, 0, reply.payload.length, replyHeaders);
        expect(replyHeaders.slice(0, 2)).toEqual([':status', '200']);
      }
      for (const [id, headers] of sent) expect(received.get(id)).toEqual(headers);
    },
  );

  it('after the peer shrinks SETTINGS_HEADER_TABLE_SIZE to 0, nghttp2 accepts our size update', async () => {
    const { port } = smallTableServer.address() as net.AddressInfo;
    const encoder = new HpackEncoder();
    const client = await rawClient(port, (f) => {
      for (let k = 0; k + 6 <= f.payload.length; k += 6) {
        if (f.payload.readUInt16BE(k) === SETTINGS_HEADER_TABLE_SIZE) {
          encoder.setPeerMaxTableSize(f.payload.readUInt32BE(k + 2));
        }
      }
    });
    clients.push(client.socket);
    await client.waitFor((f) => f.type === TYPE_SETTINGS && (f.flags & FLAG_ACK) !== 0);
    const rand = prng(1);
    for (let i = 0; i < 3; i++) {
      const headers = requestHeaders(`b${i}`, port, rand);
      const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
      const end = encoder.encode(headers, out, 0);
      if (i === 0) expect(out[0]).toBe(0x20); // size update to 0 leads the first block
      client.socket.write(
        frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 2 * i + 1, out.subarray(0, end)),
      );
      const reply = await client.waitFor(
        (f) => f.type === TYPE_GOAWAY || (f.type === TYPE_HEADERS && f.streamId === 2 * i + 1),
      );
      expect(reply.type).toBe(TYPE_HEADERS);
      expect(received.get(`b${i}`)).toEqual(headers);
    }
  });
});
