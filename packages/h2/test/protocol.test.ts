import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSE,
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2_ERROR,
  H2ClientConnection,
  type H2Error,
  H2Server,
  HpackDecoder,
  InvalidArgumentError,
  SETTING,
} from '../src/index.js';
import { frame, PREFACE, settings, u32 } from './raw-frames.js';
import {
  call,
  cleanups,
  clientWith,
  closeOf,
  connected,
  data,
  decodeBlock,
  echo,
  expectClean,
  headers,
  hold,
  PING_PAYLOAD,
  RawPeer,
  REQ,
  type Reply,
  rawServer,
  requestBlock,
  startServer,
  windowUpdate,
} from './raw-peer.js';

const T = FRAME_TYPE;
const F = FLAG;
const E = H2_ERROR;
const MAX_WINDOW = 2 ** 31 - 1;

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// ---- §3.4 connection preface ---------------------------------------------------------------

describe('connection preface (§3.4)', () => {
  it('accepts a preface split across many reads', async () => {
    const srv = await startServer();
    const peer = await RawPeer.connect(srv.port);
    for (let i = 0; i < PREFACE.length; i++) {
      await new Promise<void>((r) => peer.socket.write(PREFACE.subarray(i, i + 1), () => r()));
    }
    const s = settings();
    // The SETTINGS frame header split too.
    await new Promise<void>((r) => peer.socket.write(s.subarray(0, 4), () => r()));
    peer.send(s.subarray(4), headers(1, false), data(1, 'split', true));
    const t = await peer.waitFor(
      (f) => f.type === T.HEADERS && f.id === 1 && (f.flags & F.END_STREAM) !== 0,
    );
    expect(t.id).toBe(1);
    expect(peer.body(1).toString()).toBe('split');
    await expectClean(srv, peer);
  });

  it('answers a first frame other than SETTINGS with GOAWAY PROTOCOL_ERROR', async () => {
    const srv = await startServer();
    const peer = await RawPeer.connect(srv.port);
    peer.send(PREFACE, frame(T.PING, 0, 0, PING_PAYLOAD));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('answers a bad preface with GOAWAY PROTOCOL_ERROR', async () => {
    const srv = await startServer();
    const peer = await RawPeer.connect(srv.port);
    peer.send(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });
});

// ---- §4.2 frame size -----------------------------------------------------------------------

describe('frame size (§4.2)', () => {
  it('answers a frame larger than our MAX_FRAME_SIZE with GOAWAY FRAME_SIZE_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(1, false), data(1, Buffer.alloc(16_385), false));
    expect(await peer.goawayCode()).toBe(E.FRAME_SIZE_ERROR);
    expect(srv.closes.get(1)).toEqual([CLOSE.CONNECTION_LOST]);
    await expectClean(srv);
  });

  it('accepts a frame of exactly MAX_FRAME_SIZE', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(1, false), data(1, Buffer.alloc(16_384, 7), true));
    await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).length).toBe(16_384);
    await expectClean(srv, peer);
  });
});

// ---- §6.1 DATA -----------------------------------------------------------------------------

describe('DATA (§6.1)', () => {
  it('DATA on stream 0 → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(data(0, 'x', false));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('DATA on an idle stream → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(data(3, 'x', false));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('DATA after END_STREAM → RST_STREAM STREAM_CLOSED, the connection lives on', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), data(1, 'a', true), data(1, 'b', false));
    expect(await peer.rst(1)).toBe(E.STREAM_CLOSED);
    expect(srv.closes.get(1)).toEqual([E.STREAM_CLOSED]);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('DATA on a stream both sides finished → GOAWAY STREAM_CLOSED (§5.1)', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(1, true));
    await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    peer.send(data(1, 'late', false));
    expect(await peer.goawayCode()).toBe(E.STREAM_CLOSED);
    await expectClean(srv);
  });

  it('strips valid padding and counts it against flow control', async () => {
    const { srv, peer } = await connected();
    // Pad length 3, "abc", 3 octets of padding.
    const padded = Buffer.concat([Buffer.from([3]), Buffer.from('abc'), Buffer.alloc(3)]);
    peer.send(headers(1, false), frame(T.DATA, F.PADDED | F.END_STREAM, 1, padded));
    await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).toString()).toBe('abc');
    await expectClean(srv, peer);
  });

  it('padding as long as the payload → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    const bad = Buffer.concat([Buffer.from([4]), Buffer.from('abc')]);
    peer.send(headers(1, false), frame(T.DATA, F.PADDED, 1, bad));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('PADDED DATA with an empty payload → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(1, false), frame(T.DATA, F.PADDED, 1));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('a body split into 1,000 small DATA frames arrives intact', async () => {
    const { srv, peer } = await connected();
    const parts: Buffer[] = [headers(1, false)];
    const want: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const chunk = Buffer.from(`<${i}>`);
      want.push(chunk);
      parts.push(data(1, chunk, false));
    }
    parts.push(data(1, '', true));
    peer.send(...parts);
    const t = await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const trailers = decodeBlock(new HpackDecoder(), t.payload);
    expect(Buffer.concat(srv.bodies.get(1)!).equals(Buffer.concat(want))).toBe(true);
    expect(trailers['x-len']).toBe(String(Buffer.concat(want).length));
    await expectClean(srv, peer);
  });
});

// ---- §6.2 HEADERS, §6.10 CONTINUATION, §5.1.1 stream ids -----------------------------------

describe('HEADERS and CONTINUATION (§6.2, §6.10)', () => {
  it('accepts a padded HEADERS frame with a priority block', async () => {
    const { srv, peer } = await connected();
    const block = requestBlock();
    const payload = Buffer.concat([
      Buffer.from([2]),
      Buffer.from([0, 0, 0, 0, 16]),
      block,
      Buffer.alloc(2),
    ]);
    peer.send(frame(T.HEADERS, F.PADDED | F.PRIORITY | F.END_HEADERS | F.END_STREAM, 1, payload));
    await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(srv.streams[0]!.headers).toContain('/svc/Echo');
    await expectClean(srv, peer);
  });

  it('HEADERS padding longer than the payload → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    const payload = Buffer.concat([Buffer.from([200]), requestBlock()]);
    peer.send(frame(T.HEADERS, F.PADDED | F.END_HEADERS, 1, payload));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('assembles HEADERS + CONTINUATION frames', async () => {
    const { srv, peer } = await connected();
    const block = requestBlock('/svc/Cont');
    peer.send(
      frame(T.HEADERS, F.END_STREAM, 1, block.subarray(0, 3)),
      frame(T.CONTINUATION, 0, 1, block.subarray(3, 7)),
      frame(T.CONTINUATION, F.END_HEADERS, 1, block.subarray(7)),
    );
    await peer.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(srv.streams[0]!.headers).toContain('/svc/Cont');
    await expectClean(srv, peer);
  });

  it('a header block interrupted by another frame → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    const block = requestBlock();
    peer.send(
      frame(T.HEADERS, F.END_STREAM, 1, block.subarray(0, 3)),
      frame(T.PING, 0, 0, PING_PAYLOAD),
    );
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('CONTINUATION on a different stream → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    const block = requestBlock();
    peer.send(
      frame(T.HEADERS, F.END_STREAM, 1, block.subarray(0, 3)),
      frame(T.CONTINUATION, F.END_HEADERS, 3, block.subarray(3)),
    );
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('CONTINUATION without a header block → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(frame(T.CONTINUATION, F.END_HEADERS, 1, requestBlock()));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('an endless CONTINUATION sequence is cut off with GOAWAY (no unbounded buffering)', async () => {
    const { srv, peer } = await connected();
    const conn = [...srv.server.connections][0]!;
    const closed = new Promise<H2Error | null>((r) => {
      const prev = conn.onClose;
      conn.onClose = (err) => {
        prev?.(err);
        r(err);
      };
    });
    const block = requestBlock();
    peer.send(frame(T.HEADERS, F.END_STREAM, 1, block.subarray(0, 3)));
    const filler = frame(T.CONTINUATION, 0, 1, Buffer.alloc(16_384, 0x41));
    // 64 × 16 KiB = 1 MiB of header block, 16× the default header list limit.
    for (let i = 0; i < 64 && !conn.isDestroyed; i++) {
      await new Promise<void>((r) => peer.socket.write(filler, () => r()));
    }
    // Checked on the server's side: with our next frames unread, its close may be a TCP reset
    // that overtakes the GOAWAY.
    expect((await closed)?.h2Code).toBe(E.ENHANCE_YOUR_CALM);
    const g = peer.frames.find((f) => f.type === T.GOAWAY);
    if (g !== undefined) expect(g.payload.readUInt32BE(4)).toBe(E.ENHANCE_YOUR_CALM);
    await expectClean(srv, peer);
  });

  it('a header block that does not decode → GOAWAY COMPRESSION_ERROR', async () => {
    const { srv, peer } = await connected();
    // Indexed field 0 is invalid (RFC 7541 §6.1).
    peer.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, Buffer.from([0x80])));
    expect(await peer.goawayCode()).toBe(E.COMPRESSION_ERROR);
    await expectClean(srv);
  });

  it('HEADERS on stream 0 → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(0, true));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('an even-numbered stream from a client → GOAWAY PROTOCOL_ERROR (§5.1.1)', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(2, true));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams).toHaveLength(0);
    await expectClean(srv);
  });

  it('a new stream with a lower id than one already opened → GOAWAY PROTOCOL_ERROR (§5.1.1)', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(5, false), headers(3, false));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams.map((s) => s.id)).toEqual([5]);
    await expectClean(srv);
  });

  it('late trailers for a stream the server reset are ignored', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false));
    await expect.poll(() => srv.streams.length).toBe(1);
    srv.streams[0]!.reset(E.CANCEL);
    expect(await peer.rst(1)).toBe(E.CANCEL);
    peer.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, encodeHeaderBlock(['x-t', '1'])));
    await peer.sync();
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    await expectClean(srv, peer);
  });

  it('judges a repeated block as it judged the first (decoded once): 431 twice, reset twice', async () => {
    // The plain request block is ~240 octets of header list: over a 200-octet limit.
    // A smaller block in between: the second big one must not be judged by its size.
    const small = await connected(echo, { maxHeaderListSize: 200 });
    const fits = encodeHeaderBlock([':method', 'POST', ':scheme', 'http', ':path', '/']);
    small.peer.send(
      headers(1, true),
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, fits),
      headers(5, true),
    );
    await small.peer.waitFor((f) => f.id === 5 && f.type === T.HEADERS);
    await small.peer.waitFor((f) => f.id === 3 && (f.flags & F.END_STREAM) !== 0);
    // Every block in the order sent (the server's table evolves across them).
    const decoder = new HpackDecoder();
    const statuses = new Map<number, string>();
    for (const f of small.peer.frames) {
      if (f.type !== T.HEADERS) continue;
      const h = decodeBlock(decoder, f.payload);
      if (!statuses.has(f.id)) statuses.set(f.id, h[':status'] ?? '');
    }
    expect([...statuses]).toEqual([
      [1, '431'],
      [3, '200'],
      [5, '431'],
    ]);
    await expectClean(small.srv, small.peer);
    // A name with an upper-case letter is malformed (RFC 9113 §8.2.1), every time it comes.
    const { srv, peer } = await connected(echo);
    const bad = requestBlock('/svc/Echo', ['X-Upper', '1']);
    peer.send(
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, bad),
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, bad),
      headers(5, false),
      data(5, 'ok', true),
    );
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(await peer.rst(3)).toBe(E.PROTOCOL_ERROR);
    await peer.waitFor((f) => f.id === 5 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(5).toString()).toBe('ok');
    await expectClean(srv, peer);
  });

  it('non-trailer HEADERS on an open stream → RST_STREAM PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock(['x', '1'])));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    await peer.sync();
    await expectClean(srv, peer);
  });
});

// ---- §5.1.2 concurrency --------------------------------------------------------------------

describe('MAX_CONCURRENT_STREAMS (§5.1.2)', () => {
  it('refuses a stream beyond the limit with REFUSED_STREAM and keeps serving', async () => {
    const { srv, peer } = await connected(hold, { maxConcurrentStreams: 2 });
    peer.send(headers(1, false), headers(3, false), headers(5, false), data(5, 'x', true));
    expect(await peer.rst(5)).toBe(E.REFUSED_STREAM);
    await peer.sync();
    expect(srv.streams.map((s) => s.id)).toEqual([1, 3]);
    // Free a slot: stream 1 finishes both ways; a new stream is accepted.
    peer.send(data(1, 'done', true));
    await expect.poll(() => srv.streams[0]!.remoteEnded).toBe(true);
    echo(srv.streams[0]!, Buffer.from('ok'));
    peer.send(headers(7, true));
    await expect.poll(() => srv.streams.map((s) => s.id)).toEqual([1, 3, 7]);
    echo(srv.streams[2]!, Buffer.alloc(0));
    await peer.waitFor((f) => f.id === 7 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(srv.closes.get(1)).toEqual([CLOSE.OK]);
    expect(srv.closes.get(7)).toEqual([CLOSE.OK]);
    await expectClean(srv, peer);
  });
});

// ---- §6.5 SETTINGS -------------------------------------------------------------------------

describe('SETTINGS (§6.5)', () => {
  it('ACKs SETTINGS', async () => {
    const { srv, peer } = await connected();
    const before = peer.frames.filter((f) => f.type === T.SETTINGS && f.flags & F.ACK).length;
    peer.send(settings([SETTING.MAX_CONCURRENT_STREAMS, 10]));
    await peer.sync();
    const after = peer.frames.filter((f) => f.type === T.SETTINGS && f.flags & F.ACK);
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)!.payload.length).toBe(0);
    await expectClean(srv, peer);
  });

  it.each([
    ['a length not a multiple of 6', frame(T.SETTINGS, 0, 0, Buffer.alloc(5)), E.FRAME_SIZE_ERROR],
    ['a stream id', frame(T.SETTINGS, 0, 1, Buffer.alloc(6)), E.PROTOCOL_ERROR],
    ['ACK and a payload', frame(T.SETTINGS, F.ACK, 0, Buffer.alloc(6)), E.FRAME_SIZE_ERROR],
    [
      'INITIAL_WINDOW_SIZE above 2^31-1',
      settings([SETTING.INITIAL_WINDOW_SIZE, 2 ** 31]),
      E.FLOW_CONTROL_ERROR,
    ],
    ['MAX_FRAME_SIZE below 16384', settings([SETTING.MAX_FRAME_SIZE, 16_383]), E.PROTOCOL_ERROR],
    ['MAX_FRAME_SIZE above 2^24-1', settings([SETTING.MAX_FRAME_SIZE, 2 ** 24]), E.PROTOCOL_ERROR],
    ['ENABLE_PUSH of 2', settings([SETTING.ENABLE_PUSH, 2]), E.PROTOCOL_ERROR],
  ])('SETTINGS with %s → GOAWAY', async (_name, bad, code) => {
    const { srv, peer } = await connected();
    peer.send(bad);
    expect(await peer.goawayCode()).toBe(code);
    await expectClean(srv);
  });

  it('ignores unknown settings and accepts extreme but legal values', async () => {
    const { srv, peer } = await connected();
    peer.send(
      settings(
        [0xff, 12345],
        [SETTING.HEADER_TABLE_SIZE, 0xffffffff],
        [SETTING.MAX_HEADER_LIST_SIZE, 0xffffffff],
        [SETTING.MAX_FRAME_SIZE, 2 ** 24 - 1],
        [SETTING.INITIAL_WINDOW_SIZE, MAX_WINDOW],
      ),
      headers(1, true),
    );
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    await expectClean(srv, peer);
  });

  it('honours a larger peer MAX_FRAME_SIZE for DATA it sends', async () => {
    const { srv, peer } = await connected(
      echo,
      undefined,
      [SETTING.MAX_FRAME_SIZE, 65_536],
      [SETTING.INITIAL_WINDOW_SIZE, 1 << 20],
    );
    // Our 16 KiB frames in, one 60 000-octet DATA frame out (within the 65 535 connection window).
    const body = Buffer.alloc(60_000, 3);
    const parts = [headers(1, false)];
    for (let off = 0; off < body.length; off += 16_384) {
      parts.push(data(1, body.subarray(off, off + 16_384), off + 16_384 >= body.length));
    }
    peer.send(...parts);
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const frames = peer.framesOn(1).filter((f) => f.type === T.DATA);
    expect(frames.map((f) => f.payload.length)).toEqual([60_000]);
    await expectClean(srv, peer);
  });

  it('splits a header block larger than the peer MAX_FRAME_SIZE into HEADERS + CONTINUATION', async () => {
    const big = 'v'.repeat(40_000);
    const prebuilt = encodeHeaderBlock([':status', '200', 'x-big', big]);
    let n = 0;
    const reply: Reply = (s) => {
      // Pre-encoded block (with a pending size update in front) first, then the list path.
      if (n++ === 0) s.sendHeaders(prebuilt, false);
      else s.sendHeaders([':status', '200', 'x-big', big], false);
      s.sendTrailers(['grpc-status', '0']);
    };
    const { srv, peer } = await connected(reply, { maxHeaderListSize: 100_000 });
    peer.send(settings([SETTING.HEADER_TABLE_SIZE, 0]), headers(1, true), headers(3, true));
    await peer.waitFor((f) => f.id === 3 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const decoder = new HpackDecoder({ maxHeaderListSize: 100_000 });
    for (const id of [1, 3]) {
      const frames = peer.framesOn(id);
      const types = frames.map((f) => f.type);
      expect(types).toEqual([T.HEADERS, T.CONTINUATION, T.CONTINUATION, T.HEADERS]);
      expect(frames.every((f) => f.payload.length <= 16_384)).toBe(true);
      expect(frames.map((f) => f.flags & F.END_HEADERS)).toEqual([
        0,
        0,
        F.END_HEADERS,
        F.END_HEADERS,
      ]);
      const block = Buffer.concat(frames.slice(0, 3).map((f) => f.payload));
      if (id === 1) expect(block[0]).toBe(0x20);
      const h = decodeBlock(decoder, block);
      expect(h['x-big']).toBe(big);
      decodeBlock(decoder, frames[3]!.payload);
    }
    await expectClean(srv, peer);
  });

  it('starts the next header block with a table size update after HEADER_TABLE_SIZE shrinks', async () => {
    const prebuilt = encodeHeaderBlock([':status', '200', 'content-type', 'application/grpc']);
    let n = 0;
    const reply: Reply = (s) => {
      // First answer from a pre-encoded block, later ones from a list: both paths.
      if (n++ === 0) s.sendHeaders(prebuilt, false);
      else s.sendHeaders([':status', '200'], false);
      s.sendTrailers(['grpc-status', '0']);
    };
    const { srv, peer } = await connected(reply);
    peer.send(settings([SETTING.HEADER_TABLE_SIZE, 100]), headers(1, true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const [h1, t1] = peer.framesOn(1).filter((f) => f.type === T.HEADERS);
    // 100 in a 5-bit prefix: 0x3f, then 100 - 31 = 69.
    expect([...h1!.payload.subarray(0, 2)]).toEqual([0x3f, 69]);
    expect(t1!.payload[0]! & 0xe0).not.toBe(0x20); // only once
    const decoder = new HpackDecoder();
    expect(decodeBlock(decoder, h1!.payload)[':status']).toBe('200');
    expect(decodeBlock(decoder, t1!.payload)['grpc-status']).toBe('0');
    // Shrink again (to 0): the next block, from the list path, carries the update.
    peer.send(settings([SETTING.HEADER_TABLE_SIZE, 0]), headers(3, true));
    await peer.waitFor((f) => f.id === 3 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const [h3] = peer.framesOn(3).filter((f) => f.type === T.HEADERS);
    expect(h3!.payload[0]).toBe(0x20); // dynamic table size update to 0
    expect(decodeBlock(decoder, h3!.payload)[':status']).toBe('200');
    // Growing back needs no update.
    peer.send(settings([SETTING.HEADER_TABLE_SIZE, 4096]), headers(5, true));
    await peer.waitFor((f) => f.id === 5 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const [h5] = peer.framesOn(5).filter((f) => f.type === T.HEADERS);
    expect(h5!.payload[0]! & 0xe0).not.toBe(0x20);
    await expectClean(srv, peer);
  });
});

// ---- §6.9 flow control ---------------------------------------------------------------------

describe('WINDOW_UPDATE and flow control (§6.9)', () => {
  it('WINDOW_UPDATE of 0 on a stream → RST_STREAM PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), windowUpdate(1, 0));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(srv.closes.get(1)).toEqual([E.PROTOCOL_ERROR]);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('WINDOW_UPDATE of 0 on the connection → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(windowUpdate(0, 0));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });

  it('WINDOW_UPDATE with a bad length → GOAWAY FRAME_SIZE_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(frame(T.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)));
    expect(await peer.goawayCode()).toBe(E.FRAME_SIZE_ERROR);
    await expectClean(srv);
  });

  it('connection window beyond 2^31-1 → GOAWAY FLOW_CONTROL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(windowUpdate(0, MAX_WINDOW));
    expect(await peer.goawayCode()).toBe(E.FLOW_CONTROL_ERROR);
    await expectClean(srv);
  });

  it('stream window beyond 2^31-1 → RST_STREAM FLOW_CONTROL_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), windowUpdate(1, MAX_WINDOW));
    expect(await peer.rst(1)).toBe(E.FLOW_CONTROL_ERROR);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('INITIAL_WINDOW_SIZE that pushes an open stream window beyond 2^31-1 → GOAWAY FLOW_CONTROL_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), windowUpdate(1, MAX_WINDOW - 65_535));
    await peer.sync();
    peer.send(settings([SETTING.INITIAL_WINDOW_SIZE, 65_536]));
    expect(await peer.goawayCode()).toBe(E.FLOW_CONTROL_ERROR);
    await expectClean(srv);
  });

  it('DATA beyond the stream window → RST_STREAM FLOW_CONTROL_ERROR', async () => {
    const { srv, peer } = await connected(hold, { initialWindowSize: 1000 });
    peer.send(headers(1, false), data(1, Buffer.alloc(1001), false));
    expect(await peer.rst(1)).toBe(E.FLOW_CONTROL_ERROR);
    expect(srv.closes.get(1)).toEqual([E.FLOW_CONTROL_ERROR]);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('DATA beyond the connection window → GOAWAY FLOW_CONTROL_ERROR', async () => {
    const { srv, peer } = await connected(hold, {
      connectionWindowSize: 65_535,
      maxFrameSize: 100_000,
    });
    peer.send(headers(1, false), data(1, Buffer.alloc(70_000), false));
    expect(await peer.goawayCode()).toBe(E.FLOW_CONTROL_ERROR);
    await expectClean(srv);
  });

  it('never sends a WINDOW_UPDATE of 0 (empty DATA frames with tiny windows)', async () => {
    const { srv, peer } = await connected(echo, { initialWindowSize: 1, connectionWindowSize: 1 });
    peer.send(headers(1, false), data(1, '', false), data(1, '', false), data(1, 'x', true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const updates = peer.frames.filter((f) => f.type === T.WINDOW_UPDATE);
    expect(updates.map((f) => f.payload.readUInt32BE(0)).filter((inc) => inc === 0)).toEqual([]);
    await expectClean(srv, peer);
  });

  it('replenishes the stream window for bodies larger than half of it', async () => {
    const window = 65_535;
    const { srv, peer } = await connected(echo, { initialWindowSize: window }, [
      SETTING.INITIAL_WINDOW_SIZE,
      MAX_WINDOW,
    ]);
    peer.send(windowUpdate(0, MAX_WINDOW - 65_535));
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    peer.send(headers(1, false));
    // A well-behaved sender: never more than the window the server granted.
    let credit = window;
    let off = 0;
    let seenUpdates = 0;
    while (off < body.length) {
      const n = Math.min(credit, 16_384, body.length - off);
      if (n === 0) {
        const updates = () =>
          peer.frames.filter((f) => f.type === T.WINDOW_UPDATE && f.id === 1).length;
        const want = seenUpdates + 1;
        await expect.poll(updates, { timeout: 3_000 }).toBeGreaterThanOrEqual(want);
        const all = peer.frames.filter((f) => f.type === T.WINDOW_UPDATE && f.id === 1);
        for (const u of all.slice(seenUpdates)) credit += u.payload.readUInt32BE(0);
        seenUpdates = all.length;
        continue;
      }
      peer.send(data(1, body.subarray(off, off + n), off + n === body.length));
      credit -= n;
      off += n;
    }
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(seenUpdates).toBeGreaterThan(0);
    expect(peer.body(1).equals(body)).toBe(true);
    await expectClean(srv, peer);
  });

  it('holds DATA when the peer drops INITIAL_WINDOW_SIZE to 0 and resumes, trailers last, when raised', async () => {
    const { srv, peer } = await connected();
    peer.send(settings([SETTING.INITIAL_WINDOW_SIZE, 0]));
    await peer.sync();
    const body = Buffer.alloc(100);
    for (let i = 0; i < body.length; i++) body[i] = i;
    peer.send(headers(1, false), data(1, body, true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS);
    await peer.sync();
    // Headers only: data and trailers wait for window.
    expect(peer.framesOn(1).map((f) => f.type)).toEqual([T.HEADERS]);
    peer.send(settings([SETTING.INITIAL_WINDOW_SIZE, 60]));
    await peer.sync();
    expect(peer.body(1).length).toBe(60);
    expect(peer.framesOn(1).filter((f) => f.type === T.HEADERS)).toHaveLength(1);
    peer.send(windowUpdate(1, 40));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const types = peer.framesOn(1).map((f) => f.type);
    expect(types[0]).toBe(T.HEADERS);
    expect(types.at(-1)).toBe(T.HEADERS);
    expect(types.slice(1, -1).every((t) => t === T.DATA)).toBe(true);
    expect(peer.body(1).equals(body)).toBe(true);
    expect(srv.closes.get(1)).toEqual([CLOSE.OK]);
    await expectClean(srv, peer);
  });

  it('sendDataParts: one DATA frame from its parts, which the caller may reuse at once', async () => {
    const scratch = Buffer.from('AAAA');
    const reply: Reply = (s, body) => {
      s.sendHeaders([':status', '200'], false);
      s.sendDataParts([scratch, body, Buffer.from('-tail')], false);
      scratch.fill(0x5a); // reused by the caller: what was sent must not change
      s.sendTrailers(['grpc-status', '0']);
    };
    const { srv, peer } = await connected(reply);
    peer.send(headers(1, false), data(1, 'body', true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    const frames = peer.framesOn(1).filter((f) => f.type === T.DATA);
    expect(frames.map((f) => f.payload.toString())).toEqual(['AAAAbody-tail']);
    await expectClean(srv, peer);
  });

  it('sendDataParts short of window: joined, held by flow control, sent whole when it opens', async () => {
    const scratch = Buffer.from('0123456789');
    const reply: Reply = (s) => {
      s.sendHeaders([':status', '200'], false);
      s.sendDataParts([scratch, Buffer.from('abcdefghij')], true);
      scratch.fill(0x5a);
    };
    const { srv, peer } = await connected(reply, undefined, [SETTING.INITIAL_WINDOW_SIZE, 8]);
    peer.send(headers(1, false), data(1, 'x', true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.DATA);
    await peer.sync();
    expect(peer.body(1).toString()).toBe('01234567');
    peer.send(windowUpdate(1, 100));
    await peer.waitFor((f) => f.id === 1 && f.type === T.DATA && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).toString()).toBe('0123456789abcdefghij');
    expect(srv.closes.get(1)).toEqual([CLOSE.OK]);
    await expectClean(srv, peer);
  });

  it('a stream reset while its DATA waits for window writes nothing more', async () => {
    const { srv, peer } = await connected(echo, undefined, [SETTING.INITIAL_WINDOW_SIZE, 0]);
    peer.send(headers(1, false), data(1, 'queued', true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS);
    peer.send(frame(T.RST_STREAM, 0, 1, u32(E.CANCEL)));
    await peer.sync();
    peer.send(settings([SETTING.INITIAL_WINDOW_SIZE, 65_535]));
    await peer.sync();
    expect(peer.framesOn(1).map((f) => f.type)).toEqual([T.HEADERS]);
    expect(srv.closes.get(1)).toEqual([E.CANCEL]);
    await expectClean(srv, peer);
  });
});

// ---- §6.7 PING, §6.3 PRIORITY, unknown frames ----------------------------------------------

describe('PING, PRIORITY, unknown frames', () => {
  it('echoes a PING payload with ACK (§6.7)', async () => {
    const { srv, peer } = await connected();
    peer.send(frame(T.PING, 0, 0, PING_PAYLOAD));
    const ack = await peer.waitFor((f) => f.type === T.PING);
    expect(ack.flags).toBe(F.ACK);
    expect(ack.payload.equals(PING_PAYLOAD)).toBe(true);
    await expectClean(srv, peer);
  });

  it('answers 50 000 PINGs from a peer that reads them all', async () => {
    const { srv, peer } = await connected();
    const one = frame(T.PING, 0, 0, PING_PAYLOAD);
    for (let batch = 0; batch < 5; batch++) {
      peer.send(...Array.from({ length: 10_000 }, () => one));
    }
    await peer.sync();
    const acks = peer.frames.filter((f) => f.type === T.PING && f.payload.equals(PING_PAYLOAD));
    expect(acks).toHaveLength(50_000);
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    await expectClean(srv, peer);
  });

  it('cuts off a PING flood from a peer that does not read (ENHANCE_YOUR_CALM)', async () => {
    const { srv, peer } = await connected();
    const conn = [...srv.server.connections][0]!;
    const closed = new Promise<H2Error | null>((r) => {
      const prev = conn.onClose;
      conn.onClose = (err) => {
        prev?.(err);
        r(err);
      };
    });
    peer.socket.pause();
    const batch = Buffer.concat(
      Array.from({ length: 50_000 }, () => frame(T.PING, 0, 0, PING_PAYLOAD)),
    );
    // Up to 40 MB of PINGs (2.4 M); the server gives up long before.
    for (let i = 0; i < 48 && !conn.isDestroyed; i++) {
      await new Promise<void>((r) => peer.socket.write(batch, () => r()));
    }
    const err = await closed;
    expect(err?.h2Code).toBe(E.ENHANCE_YOUR_CALM);
    await expectClean(srv, peer);
  }, 30_000);

  it.each([
    ['PING on a stream', frame(T.PING, 0, 1, PING_PAYLOAD), E.PROTOCOL_ERROR],
    ['PING of 7 octets', frame(T.PING, 0, 0, Buffer.alloc(7)), E.FRAME_SIZE_ERROR],
    ['PRIORITY on stream 0', frame(T.PRIORITY, 0, 0, Buffer.alloc(5)), E.PROTOCOL_ERROR],
    ['RST_STREAM on stream 0', frame(T.RST_STREAM, 0, 0, u32(0)), E.PROTOCOL_ERROR],
    ['RST_STREAM on an idle stream', frame(T.RST_STREAM, 0, 1, u32(0)), E.PROTOCOL_ERROR],
    ['RST_STREAM of 3 octets', frame(T.RST_STREAM, 0, 1, Buffer.alloc(3)), E.FRAME_SIZE_ERROR],
    ['WINDOW_UPDATE on an idle stream', windowUpdate(9, 1), E.PROTOCOL_ERROR],
    ['GOAWAY on a stream', frame(T.GOAWAY, 0, 1, Buffer.alloc(8)), E.PROTOCOL_ERROR],
    ['GOAWAY of 7 octets', frame(T.GOAWAY, 0, 0, Buffer.alloc(7)), E.FRAME_SIZE_ERROR],
    [
      'PUSH_PROMISE from a client',
      frame(T.PUSH_PROMISE, F.END_HEADERS, 1, Buffer.alloc(4)),
      E.PROTOCOL_ERROR,
    ],
  ])('%s → GOAWAY', async (_name, bad, code) => {
    const { srv, peer } = await connected();
    peer.send(bad);
    expect(await peer.goawayCode()).toBe(code);
    await expectClean(srv);
  });

  it('ignores PRIORITY frames, also on idle streams (§5.3.2)', async () => {
    const { srv, peer } = await connected();
    const prio = Buffer.from([0, 0, 0, 0, 255]);
    peer.send(
      frame(T.PRIORITY, 0, 11, prio),
      headers(1, false),
      frame(T.PRIORITY, 0, 1, prio),
      data(1, 'p', true),
    );
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).toString()).toBe('p');
    // A stream opened later with the id PRIORITY named is fine too.
    peer.send(headers(11, true));
    await peer.waitFor(
      (f) => f.id === 11 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0,
    );
    await expectClean(srv, peer);
  });

  it('PRIORITY of the wrong length → RST_STREAM FRAME_SIZE_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), frame(T.PRIORITY, 0, 1, Buffer.alloc(4)));
    expect(await peer.rst(1)).toBe(E.FRAME_SIZE_ERROR);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('ignores unknown frame types (§4.1), between and inside streams', async () => {
    const { srv, peer } = await connected();
    peer.send(
      frame(0xfa, 0xff, 0, Buffer.from('hello')),
      headers(1, false),
      frame(0x20, 0, 1, Buffer.alloc(100)),
      frame(0xfb, 0, 99, Buffer.alloc(0)),
      data(1, 'u', true),
    );
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).toString()).toBe('u');
    await expectClean(srv, peer);
  });
});

// ---- §6.4 RST_STREAM, §6.8 GOAWAY, socket loss ---------------------------------------------

describe('RST_STREAM, GOAWAY and socket loss', () => {
  it('RST_STREAM from the client: onClose gets the code; nothing more is written on the stream', async () => {
    const srv = await startServer(hold, undefined, (s) => {
      // A handler that answers anyway (racing the reset) must write nothing.
      s.sendHeaders([':status', '200'], false);
      s.sendData(Buffer.from('late'), false);
      s.sendTrailers(['grpc-status', '0']);
    });
    const peer = await RawPeer.connect(srv.port);
    await peer.handshake();
    peer.send(headers(1, false), data(1, 'part', false), frame(T.RST_STREAM, 0, 1, u32(E.CANCEL)));
    await expect.poll(() => srv.closes.get(1)).toEqual([E.CANCEL]);
    await peer.sync();
    expect(peer.framesOn(1)).toEqual([]);
    // Frames on the closed stream afterwards do not upset the connection.
    peer.send(data(1, 'after', false), windowUpdate(1, 10), frame(T.RST_STREAM, 0, 1, u32(0)));
    peer.send(headers(3, false), data(3, 'next', true));
    await expect.poll(() => srv.streams[1]?.remoteEnded).toBe(true);
    expect(Buffer.concat(srv.bodies.get(3)!).toString()).toBe('next');
    await peer.sync();
    // DATA on the reset stream may draw RST_STREAM STREAM_CLOSED (§5.1), never a GOAWAY.
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    for (const f of peer.frames.filter((x) => x.type === T.RST_STREAM)) {
      expect([f.id, f.payload.readUInt32BE(0)]).toEqual([1, E.STREAM_CLOSED]);
    }
    await expectClean(srv, peer);
  });

  it('GOAWAY from the client: in-flight streams finish, then the server closes', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, true), frame(T.GOAWAY, 0, 0, Buffer.alloc(8)));
    const g = await peer.waitFor((f) => f.type === T.GOAWAY);
    expect(g.payload.readUInt32BE(0)).toBe(1);
    expect(g.payload.readUInt32BE(4)).toBe(E.NO_ERROR);
    expect(peer.closed).toBe(false);
    echo(srv.streams[0]!, Buffer.from('bye'));
    await closeOf(peer.socket);
    expect(peer.body(1).toString()).toBe('bye');
    expect(srv.closes.get(1)).toEqual([CLOSE.OK]);
    await expectClean(srv);
  });

  it('socket loss closes every open stream once with CONNECTION_LOST', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), headers(3, true), headers(5, false), data(5, 'x', false));
    await expect.poll(() => srv.streams.length).toBe(3);
    const conn = srv.streams[0]!.connection;
    const closedConn = new Promise<H2Error | null>((r) => {
      const prev = conn.onClose;
      conn.onClose = (err) => {
        prev?.(err);
        r(err);
      };
    });
    peer.socket.destroy();
    await closedConn;
    expect(conn.streams.size).toBe(0);
    for (const id of [1, 3, 5]) expect(srv.closes.get(id)).toEqual([CLOSE.CONNECTION_LOST]);
    // Writes after the loss are dropped, not thrown.
    srv.streams[0]!.sendHeaders([':status', '200'], false);
    srv.streams[0]!.reset();
    await expectClean(srv);
  });
});

describe('a throwing stream handler', () => {
  it('costs its connection (GOAWAY INTERNAL_ERROR), not the process; the server keeps serving', async () => {
    const srv = await startServer((s, body) => {
      if (body.toString() === 'boom') throw new Error('handler bug');
      echo(s, body);
    });
    const bad = await RawPeer.connect(srv.port);
    await bad.handshake();
    bad.send(headers(1, false), data(1, 'boom', true));
    expect(await bad.goawayCode()).toBe(E.INTERNAL_ERROR);
    const good = await RawPeer.connect(srv.port);
    await good.handshake();
    good.send(headers(1, false), data(1, 'fine', true));
    await good.waitFor((f) => f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(good.body(1).toString()).toBe('fine');
    await expectClean(srv, good);
  });
});

describe('local settings', () => {
  it.each([
    ['maxFrameSize', 16_383],
    ['maxFrameSize', 2 ** 24],
    ['initialWindowSize', 2 ** 31],
    ['connectionWindowSize', -1],
    ['maxConcurrentStreams', 1.5],
    ['maxHeaderListSize', 2 ** 32],
  ] as const)(
    'rejects %s = %s when the server or client is made, naming the field',
    (key, value) => {
      const settings = { [key]: value };
      const check = (make: () => unknown) => {
        let err: unknown;
        try {
          make();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field).toBe(`settings.${key}`);
        expect((err as InvalidArgumentError).value).toBe(value);
      };
      check(() => new H2Server({ settings, onStream() {} }));
      check(() => H2ClientConnection.connect({ host: '127.0.0.1', port: 1, settings }));
    },
  );

  it('advertises the largest legal values and serves with them', async () => {
    const { srv, peer } = await connected(
      echo,
      {
        maxFrameSize: 2 ** 24 - 1,
        initialWindowSize: MAX_WINDOW,
        connectionWindowSize: MAX_WINDOW,
        maxConcurrentStreams: 2 ** 32 - 1,
      },
      [SETTING.INITIAL_WINDOW_SIZE, 1 << 20],
    );
    const settingsFrame = peer.frames.find((f) => f.type === T.SETTINGS && f.flags === 0)!;
    const advertised = new Map<number, number>();
    for (let p = 0; p < settingsFrame.payload.length; p += 6) {
      advertised.set(
        settingsFrame.payload.readUInt16BE(p),
        settingsFrame.payload.readUInt32BE(p + 2),
      );
    }
    expect(advertised.get(SETTING.MAX_FRAME_SIZE)).toBe(2 ** 24 - 1);
    expect(advertised.get(SETTING.INITIAL_WINDOW_SIZE)).toBe(MAX_WINDOW);
    expect(advertised.get(SETTING.MAX_CONCURRENT_STREAMS)).toBe(2 ** 32 - 1);
    peer.send(windowUpdate(0, 1 << 20));
    // One 100 000-octet DATA frame: larger than the default 16 384, legal under our setting.
    peer.send(headers(1, false), data(1, Buffer.alloc(100_000, 9), true));
    await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
    expect(peer.body(1).length).toBe(100_000);
    await expectClean(srv, peer);
  });
});

describe('H2ClientConnection against a hostile server', () => {
  it('PUSH_PROMISE → GOAWAY PROTOCOL_ERROR; the call closes with CONNECTION_LOST', async () => {
    const raw = await rawServer();
    const { client, peer, closed } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    peer.send(settings());
    await peer.waitFor((f) => f.type === T.HEADERS && f.id === 1);
    const promised = Buffer.concat([u32(2), encodeHeaderBlock(REQ)]);
    peer.send(frame(T.PUSH_PROMISE, F.END_HEADERS, 1, promised));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(await c.closed).toBe(CLOSE.CONNECTION_LOST);
    const err = await closed;
    expect(err?.h2Code).toBe(E.PROTOCOL_ERROR);
    expect(client.streams.size).toBe(0);
  });

  it('a server that never sends SETTINGS still gets the request; destroy closes it cleanly', async () => {
    const raw = await rawServer();
    const { client, peer, closed } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('body'), c.handler);
    const h = await peer.waitFor((f) => f.type === T.HEADERS && f.id === 1);
    expect(decodeBlock(new HpackDecoder(), h.payload)[':path']).toBe('/svc/M');
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    expect(client.isReady).toBe(false);
    client.destroy();
    expect(await c.closed).toBe(CLOSE.CONNECTION_LOST);
    await closed;
    expect(client.streams.size).toBe(0);
  });

  it('a server whose first frame is not SETTINGS → GOAWAY PROTOCOL_ERROR', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    peer.send(frame(T.PING, 0, 0, PING_PAYLOAD));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(await c.closed).toBe(CLOSE.CONNECTION_LOST);
  });

  it('accepts a trailers-only response (HEADERS with END_STREAM)', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    peer.send(settings());
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    const block = encodeHeaderBlock([':status', '200', 'grpc-status', '5', 'grpc-message', 'nf']);
    peer.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block));
    expect(await c.closed).toBe(CLOSE.OK);
    expect(c.headers).toEqual([{ ':status': '200', 'grpc-status': '5', 'grpc-message': 'nf' }]);
    expect(c.ends).toEqual([true]);
    expect(client.streams.size).toBe(0);
  });

  it('skips 1xx informational responses before the real one (§8.1)', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    peer.send(settings());
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    peer.send(
      frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock([':status', '100'])),
      frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock([':status', '103', 'link', '</a>'])),
      frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock([':status', '200'])),
      data(1, 'resp', false),
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, encodeHeaderBlock(['grpc-status', '0'])),
    );
    expect(await c.closed).toBe(CLOSE.OK);
    expect(c.headers).toEqual([{ ':status': '200' }, { 'grpc-status': '0' }]);
    expect(Buffer.concat(c.body).toString()).toBe('resp');
  });

  it('a 1xx response with END_STREAM is malformed → RST_STREAM PROTOCOL_ERROR', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    peer.send(settings());
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    peer.send(
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, encodeHeaderBlock([':status', '100'])),
    );
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(await c.closed).toBe(E.PROTOCOL_ERROR);
    expect(c.headers).toEqual([]);
    expect(client.streams.size).toBe(0);
  });

  it('requests queued behind MAX_CONCURRENT_STREAMS = 0 go out when the server raises it', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    peer.send(settings([SETTING.MAX_CONCURRENT_STREAMS, 0]));
    await peer.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) !== 0);
    await expect.poll(() => client.isReady).toBe(true);
    const c = call();
    client.request(REQ, null, c.handler);
    peer.send(frame(T.PING, 0, 0, PING_PAYLOAD));
    await peer.waitFor((f) => f.type === T.PING && (f.flags & F.ACK) !== 0);
    expect(peer.frames.some((f) => f.type === T.HEADERS)).toBe(false);
    peer.send(settings([SETTING.MAX_CONCURRENT_STREAMS, 1]));
    const h = await peer.waitFor((f) => f.type === T.HEADERS);
    expect(h.id).toBe(1);
  });

  it('body and trailers sent on a request still waiting for a slot go out after its headers', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    peer.send(settings([SETTING.MAX_CONCURRENT_STREAMS, 1]));
    await expect.poll(() => client.isReady).toBe(true);
    const a = call();
    const b = call();
    const c = call();
    client.request(REQ, Buffer.alloc(0), a.handler);
    // b streams its body and ends with trailers while waiting; c ends with an empty DATA.
    const sb = client.request(REQ, null, b.handler);
    sb.sendHeaders(['ignored', 'x'], false);
    sb.sendData(Buffer.from('part1-'), false);
    sb.sendData(Buffer.from('part2'), false);
    sb.sendTrailers(['x-trailer', 't']);
    const sc = client.request(REQ, null, c.handler);
    sc.sendData(Buffer.alloc(0), true);
    expect([sb.id, sc.id]).toEqual([0, 0]);
    const h1 = await peer.waitFor((f) => f.type === T.HEADERS && f.id === 1);
    expect(h1.flags & F.END_STREAM).toBe(F.END_STREAM);
    peer.send(
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, encodeHeaderBlock([':status', '200'])),
    );
    expect(await a.closed).toBe(CLOSE.OK);
    await peer.waitFor((f) => f.type === T.HEADERS && f.id === 3 && (f.flags & F.END_STREAM) !== 0);
    const on3 = peer.framesOn(3);
    expect(on3.map((f) => [f.type, f.flags & F.END_STREAM])).toEqual([
      [T.HEADERS, 0],
      [T.DATA, 0],
      [T.DATA, 0],
      [T.HEADERS, F.END_STREAM],
    ]);
    expect(peer.body(3).toString()).toBe('part1-part2');
    // One decoder for the connection, blocks in wire order: the client indexes its fields, so
    // stream 3's blocks may refer to entries stream 1's added.
    const decoder = new HpackDecoder();
    expect(decodeBlock(decoder, h1.payload)[':path']).toBe('/svc/M');
    expect(decodeBlock(decoder, on3[0]!.payload)[':path']).toBe('/svc/M');
    expect(decodeBlock(decoder, on3[3]!.payload)['x-trailer']).toBe('t');
    peer.send(
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, encodeHeaderBlock([':status', '200'])),
    );
    expect(await b.closed).toBe(CLOSE.OK);
    await peer.waitFor((f) => f.type === T.DATA && f.id === 5 && (f.flags & F.END_STREAM) !== 0);
    expect(peer.framesOn(0).filter((f) => f.type === T.DATA || f.type === T.HEADERS)).toEqual([]);
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
  });

  it('a server opening a stream (even-numbered HEADERS) → GOAWAY PROTOCOL_ERROR', async () => {
    const raw = await rawServer();
    const { peer } = await clientWith(raw);
    peer.send(
      settings(),
      frame(T.HEADERS, F.END_HEADERS, 2, encodeHeaderBlock([':status', '200'])),
    );
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
  });

  it('a throwing response handler closes the connection with the error as cause', async () => {
    const raw = await rawServer();
    const { client, peer, closed } = await clientWith(raw);
    const bug = new Error('client handler bug');
    const c = call();
    client.request(REQ, Buffer.alloc(0), {
      ...c.handler,
      onHeaders() {
        throw bug;
      },
    });
    peer.send(settings());
    await peer.waitFor((f) => f.type === T.HEADERS && f.id === 1);
    peer.send(frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock([':status', '200'])));
    expect(await peer.goawayCode()).toBe(E.INTERNAL_ERROR);
    const err = await closed;
    expect(err?.cause).toBe(bug);
    expect(await c.closed).toBe(CLOSE.CONNECTION_LOST);
  });

  it('GOAWAY from the server refuses streams above its last-stream-id', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    let goaway: number[] = [];
    client.onGoaway = (last, code) => {
      goaway = [last, code];
    };
    peer.send(settings());
    const a = call();
    const b = call();
    client.request(REQ, Buffer.alloc(0), a.handler);
    client.request(REQ, Buffer.alloc(0), b.handler);
    await peer.waitFor((f) => f.type === T.HEADERS && f.id === 3);
    const g = Buffer.concat([u32(1), u32(E.NO_ERROR)]);
    peer.send(frame(T.GOAWAY, 0, 0, g));
    expect(await b.closed).toBe(E.REFUSED_STREAM);
    expect(goaway).toEqual([1, E.NO_ERROR]);
    expect(client.available).toBe(false);
    peer.send(
      frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, encodeHeaderBlock([':status', '200'])),
    );
    expect(await a.closed).toBe(CLOSE.OK);
  });
});
