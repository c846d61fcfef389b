/**
 * Conformance cases a hostile-client review (an h2spec-style suite) found failing, one block
 * per rule, named after the RFC section: frames on closed streams and stream ids (RFC 9113
 * §5.1, §5.1.1), self-dependent streams (RFC 7540 §5.3.1), malformed messages (RFC 9113 §8.1.1,
 * §8.2, §8.3) and CONTINUATION floods (§6.10, CVE-2024-27316). Raw sockets on both sides.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSE,
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2_ERROR,
  type H2Error,
} from '../src/index.js';
import { MAX_CONTINUATION_FRAMES } from '../src/internal/connection.js';
import { frame, settings, u32 } from './raw-frames.js';
import {
  call,
  cleanups,
  clientWith,
  connected,
  data,
  expectClean,
  headers,
  hold,
  type RawPeer,
  REQ,
  rawServer,
  requestBlock,
  type TestServer,
} from './raw-peer.js';

const T = FRAME_TYPE;
const F = FLAG;
const E = H2_ERROR;

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const GOOD = [':method', 'POST', ':scheme', 'http', ':path', '/svc/Echo', ':authority', 'x'];

/** A HEADERS frame carrying exactly `list` (no defaults added). */
function headersOf(id: number, list: readonly string[], flags: number = F.END_HEADERS): Buffer {
  return frame(T.HEADERS, flags, id, encodeHeaderBlock(list));
}

function trailers(id: number, list: readonly string[] = ['x-t', '1']): Buffer {
  return headersOf(id, list, F.END_HEADERS | F.END_STREAM);
}

/** A PRIORITY block (exclusive bit clear, weight 16) naming `dependsOn`. */
function priorityBlock(dependsOn: number): Buffer {
  return Buffer.concat([u32(dependsOn), Buffer.from([15])]);
}

/** Waits for the reply to stream `id` to end: the server served it. */
function served(peer: RawPeer, id: number): Promise<unknown> {
  return peer.waitFor((f) => f.id === id && f.type === T.HEADERS && (f.flags & F.END_STREAM) !== 0);
}

/** The server's connection closed: its error's HTTP/2 code (our GOAWAY may be overtaken by a TCP reset). */
function connectionError(srv: TestServer): Promise<number | undefined> {
  const conn = [...srv.server.connections][0]!;
  return new Promise<H2Error | null>((resolve) => {
    const prev = conn.onClose;
    conn.onClose = (err) => {
      prev?.(err);
      resolve(err);
    };
  }).then((err) => err?.h2Code);
}

// ---- RFC 9113 §5.1 stream states -----------------------------------------------------------

describe('RFC 9113 §5.1: frames on half-closed and closed streams', () => {
  it('HEADERS on a half-closed (remote) stream → RST_STREAM STREAM_CLOSED', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, true), trailers(1));
    expect(await peer.rst(1)).toBe(E.STREAM_CLOSED);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('HEADERS on a stream both sides ended → GOAWAY STREAM_CLOSED', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(1, true));
    await served(peer, 1);
    peer.send(trailers(1));
    expect(await peer.goawayCode()).toBe(E.STREAM_CLOSED);
    await expectClean(srv);
  });

  it('HEADERS on a stream the client reset itself → RST_STREAM STREAM_CLOSED, the connection lives on', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), frame(T.RST_STREAM, 0, 1, u32(E.CANCEL)), trailers(1));
    expect(await peer.rst(1)).toBe(E.STREAM_CLOSED);
    peer.send(headers(3, true));
    await expect.poll(() => srv.streams.map((s) => s.id)).toEqual([1, 3]);
    await peer.sync();
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    await expectClean(srv, peer);
  });

  it('late trailers and DATA on a stream the server refused are ignored (it may not have seen the RST_STREAM)', async () => {
    const { srv, peer } = await connected(hold, { maxConcurrentStreams: 1 });
    peer.send(headers(1, false), headers(3, false));
    expect(await peer.rst(3)).toBe(E.REFUSED_STREAM);
    peer.send(data(3, 'late', false), trailers(3));
    await peer.sync();
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    expect(srv.streams.map((s) => s.id)).toEqual([1]);
    await expectClean(srv, peer);
  });

  it('late trailers for a stream the server cancelled are ignored', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false));
    await expect.poll(() => srv.streams.length).toBe(1);
    srv.streams[0]!.reset(E.CANCEL);
    expect(await peer.rst(1)).toBe(E.CANCEL);
    peer.send(data(1, 'in flight', false), trailers(1));
    await peer.sync();
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    await expectClean(srv, peer);
  });

  it('client side: late DATA and trailers on a stream the client cancelled are ignored', async () => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    peer.send(settings());
    const first = call();
    const stream = client.request(REQ, null, first.handler);
    await peer.waitFor((f) => f.type === T.HEADERS && f.id === 1);
    peer.send(headersOf(1, [':status', '200']));
    await expect.poll(() => first.headers.length).toBe(1);
    stream.reset();
    expect(await peer.rst(1)).toBe(E.CANCEL);
    // Sent before the server saw the reset: nothing may come of them.
    peer.send(data(1, 'late', false), trailers(1, ['grpc-status', '0']));
    const second = call();
    client.request(REQ, Buffer.from('x'), second.handler);
    await peer.waitFor((f) => f.type === T.DATA && f.id === 3 && (f.flags & F.END_STREAM) !== 0);
    peer.send(headersOf(3, [':status', '200']), trailers(3, ['grpc-status', '0']));
    expect(await second.closed).toBe(CLOSE.OK);
    expect(peer.frames.some((f) => f.type === T.GOAWAY)).toBe(false);
    expect(peer.framesOn(1).filter((f) => f.type === T.RST_STREAM)).toHaveLength(1);
    expect(first.body).toEqual([]);
  });

  it('client side: HEADERS after the server ended the stream → GOAWAY STREAM_CLOSED', async () => {
    const raw = await rawServer();
    const { client, peer, closed } = await clientWith(raw);
    peer.send(settings());
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    peer.send(headersOf(1, [':status', '200']), trailers(1, ['grpc-status', '0']));
    expect(await c.closed).toBe(CLOSE.OK);
    peer.send(trailers(1, ['grpc-status', '0']));
    expect(await peer.goawayCode()).toBe(E.STREAM_CLOSED);
    expect((await closed)?.h2Code).toBe(E.STREAM_CLOSED);
  });
});

// ---- RFC 9113 §5.1.1 stream identifiers ----------------------------------------------------

describe('RFC 9113 §5.1.1: stream identifiers', () => {
  it('a never-used id lower than one already opened, with END_STREAM → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(5, true), headers(3, true));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams.map((s) => s.id)).toEqual([5]);
    await expectClean(srv);
  });

  it('an even stream id from a client → GOAWAY PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected();
    peer.send(headers(2, true));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams).toHaveLength(0);
    await expectClean(srv);
  });
});

// ---- RFC 7540 §5.3.1 stream dependencies ---------------------------------------------------

describe('RFC 7540 §5.3.1: a stream cannot depend on itself', () => {
  it('HEADERS whose priority names its own stream → RST_STREAM PROTOCOL_ERROR, never reaches onStream', async () => {
    const { srv, peer } = await connected();
    const payload = Buffer.concat([priorityBlock(1), requestBlock()]);
    peer.send(frame(T.HEADERS, F.PRIORITY | F.END_HEADERS | F.END_STREAM, 1, payload));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    // Other priorities are still ignored.
    const ok = Buffer.concat([priorityBlock(1), requestBlock()]);
    peer.send(frame(T.HEADERS, F.PRIORITY | F.END_HEADERS | F.END_STREAM, 3, ok));
    await served(peer, 3);
    expect(srv.streams.map((s) => s.id)).toEqual([3]);
    await expectClean(srv, peer);
  });

  it('PRIORITY naming its own open stream → RST_STREAM PROTOCOL_ERROR; the handler hears it', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), frame(T.PRIORITY, 0, 1, priorityBlock(1)));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(srv.closes.get(1)).toEqual([E.PROTOCOL_ERROR]);
    await peer.sync();
    await expectClean(srv, peer);
  });

  it('PRIORITY naming its own idle stream → GOAWAY PROTOCOL_ERROR (RST_STREAM may not name an idle stream)', async () => {
    const { srv, peer } = await connected();
    peer.send(frame(T.PRIORITY, 0, 1, priorityBlock(1)));
    expect(await peer.goawayCode()).toBe(E.PROTOCOL_ERROR);
    await expectClean(srv);
  });
});

// ---- RFC 9113 §8.1.1, §8.2, §8.3 malformed messages ----------------------------------------

/** Request header lists that are malformed, each with the rule it breaks. */
const MALFORMED_REQUESTS: [string, string[]][] = [
  ['§8.2.1 uppercase field name', [...GOOD, 'X-Upper', 'v']],
  ['§8.2.1 field name with a space', [...GOOD, 'x y', 'v']],
  ['§8.2.1 empty field name', [...GOOD, '', 'v']],
  ['§8.2.1 field value with NUL', [...GOOD, 'x-v', 'a\0b']],
  ['§8.2.1 field value with CR', [...GOOD, 'x-v', 'a\rb']],
  ['§8.2.1 field value with LF', [...GOOD, 'x-v', 'a\nb']],
  ['§8.2.1 field value with leading space', [...GOOD, 'x-v', ' a']],
  ['§8.2.1 field value with trailing tab', [...GOOD, 'x-v', 'a\t']],
  ['§8.2.1 pseudo-header value with LF', [':method', 'POST', ':scheme', 'http', ':path', '/a\n']],
  ['§8.3 unknown pseudo-header', [...GOOD, ':foo', 'bar']],
  ['§8.3 response pseudo-header :status in a request', [':status', '200', ...GOOD]],
  ['§8.3 pseudo-header after a regular field', ['x-a', '1', ...GOOD]],
  ['§8.3 :protocol without extended CONNECT', [...GOOD, ':protocol', 'websocket']],
  ['§8.3.1 missing :method', [':scheme', 'http', ':path', '/p']],
  ['§8.3.1 missing :scheme', [':method', 'POST', ':path', '/p']],
  ['§8.3.1 missing :path', [':method', 'POST', ':scheme', 'http']],
  ['§8.3.1 empty :path', [':method', 'POST', ':scheme', 'http', ':path', '']],
  ['§8.3.1 empty :method', [':method', '', ':scheme', 'http', ':path', '/p']],
  ['§8.3.1 duplicated :path', [...GOOD, ':path', '/again']],
  ['§8.3.1 duplicated :method', [':method', 'POST', ...GOOD]],
  ['§8.2.2 connection', [...GOOD, 'connection', 'close']],
  ['§8.2.2 keep-alive', [...GOOD, 'keep-alive', '5']],
  ['§8.2.2 proxy-connection', [...GOOD, 'proxy-connection', 'x']],
  ['§8.2.2 transfer-encoding', [...GOOD, 'transfer-encoding', 'chunked']],
  ['§8.2.2 upgrade', [...GOOD, 'upgrade', 'h2c']],
  ['§8.2.2 te other than trailers', [...GOOD, 'te', 'gzip']],
  [
    '§8.5 CONNECT with :scheme and :path',
    [':method', 'CONNECT', ':scheme', 'http', ':path', '/', ':authority', 'a:1'],
  ],
  ['§8.5 CONNECT without :authority', [':method', 'CONNECT']],
  ['§8.1.1 content-length not a number', [...GOOD, 'content-length', '1x']],
  ['§8.1.1 content-length twice', [...GOOD, 'content-length', '0', 'content-length', '0']],
  [
    '§8.1.1 content-length above 0 on a request that ends with its headers',
    [...GOOD, 'content-length', '3'],
  ],
];

describe('RFC 9113 §8.1.1, §8.2, §8.3: malformed requests get RST_STREAM PROTOCOL_ERROR and never reach onStream', () => {
  it.each(MALFORMED_REQUESTS)('%s', async (_rule, list) => {
    const { srv, peer } = await connected();
    peer.send(headersOf(1, list, F.END_HEADERS | F.END_STREAM));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams).toHaveLength(0);
    // Only that stream failed: the next request is served.
    peer.send(headers(3, true));
    await served(peer, 3);
    expect(srv.streams.map((s) => s.id)).toEqual([3]);
    await expectClean(srv, peer);
  });

  it('a bad field kept in the HPACK dynamic table fails every request that indexes it later', async () => {
    const { srv, peer } = await connected();
    // x-bad: "a\nb" as a literal with incremental indexing (dynamic index 62), then indexed.
    const bad = Buffer.concat([
      Buffer.from([0x40, 5]),
      Buffer.from('x-bad'),
      Buffer.from([3, 0x61, 0x0a, 0x62]),
    ]);
    const block = (extra: Buffer) => Buffer.concat([encodeHeaderBlock(GOOD), extra]);
    peer.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block(bad)));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    peer.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, block(Buffer.from([0xbe]))));
    expect(await peer.rst(3)).toBe(E.PROTOCOL_ERROR);
    expect(srv.streams).toHaveLength(0);
    peer.send(headers(5, true));
    await served(peer, 5);
    await expectClean(srv, peer);
  });

  it('accepts te: trailers, a matching content-length and a request without :authority', async () => {
    const { srv, peer } = await connected();
    const list = [
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      '/p',
      'te',
      'trailers',
      'content-length',
      '4',
    ];
    peer.send(headersOf(1, list), data(1, 'abcd', true));
    await served(peer, 1);
    expect(Buffer.concat(srv.bodies.get(1)!).toString()).toBe('abcd');
    await expectClean(srv, peer);
  });

  it('§8.5 a well-formed CONNECT is answered 501 and never reaches onStream (no tunnels)', async () => {
    const { srv, peer } = await connected();
    peer.send(headersOf(1, [':method', 'CONNECT', ':authority', 'upstream:443']));
    const h = await peer.waitFor((f) => f.id === 1 && f.type === T.HEADERS);
    expect(h.flags & F.END_STREAM).toBe(F.END_STREAM);
    expect(h.payload.includes(Buffer.from('501'))).toBe(true);
    expect(await peer.rst(1)).toBe(E.NO_ERROR);
    expect(srv.streams).toHaveLength(0);
    await expectClean(srv, peer);
  });

  it('§8.1.1 DATA beyond content-length → RST_STREAM PROTOCOL_ERROR before the handler sees the excess', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(
      headersOf(1, [...GOOD, 'content-length', '3']),
      data(1, 'ab', false),
      data(1, 'cd', false),
    );
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(Buffer.concat(srv.bodies.get(1)!).toString()).toBe('ab');
    expect(srv.closes.get(1)).toEqual([E.PROTOCOL_ERROR]);
    await expectClean(srv, peer);
  });

  it('§8.1.1 END_STREAM before content-length bytes arrived → RST_STREAM PROTOCOL_ERROR (DATA or trailers)', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headersOf(1, [...GOOD, 'content-length', '3']), data(1, 'ab', true));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    peer.send(headersOf(3, [...GOOD, 'content-length', '3']), data(3, 'ab', false), trailers(3));
    expect(await peer.rst(3)).toBe(E.PROTOCOL_ERROR);
    expect(srv.closes.get(1)).toEqual([E.PROTOCOL_ERROR]);
    expect(srv.closes.get(3)).toEqual([E.PROTOCOL_ERROR]);
    await expectClean(srv, peer);
  });

  it('§8.1 request trailers with a pseudo-header or an invalid name → RST_STREAM PROTOCOL_ERROR', async () => {
    const { srv, peer } = await connected(hold);
    peer.send(headers(1, false), trailers(1, [':path', '/x']));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    peer.send(headers(3, false), trailers(3, ['Grpc-Status', '0']));
    expect(await peer.rst(3)).toBe(E.PROTOCOL_ERROR);
    expect(srv.closes.get(1)).toEqual([E.PROTOCOL_ERROR]);
    expect(srv.closes.get(3)).toEqual([E.PROTOCOL_ERROR]);
    await expectClean(srv, peer);
  });
});

describe('RFC 9113 §8.3.2, §8.1: malformed responses fail their stream on the client', () => {
  const cases: [string, string[], string[] | null][] = [
    ['a response without :status', ['content-type', 'application/grpc'], null],
    ['a :status that is not three digits', [':status', '20'], null],
    ['a request pseudo-header in a response', [':status', '200', ':path', '/'], null],
    ['an uppercase field name in a response', [':status', '200', 'Content-Type', 'x'], null],
    ['a connection-specific field in a response', [':status', '200', 'connection', 'close'], null],
    ['a pseudo-header in response trailers', [':status', '200'], [':status', '200']],
  ];
  it.each(cases)('%s → RST_STREAM PROTOCOL_ERROR', async (_name, response, trailerList) => {
    const raw = await rawServer();
    const { client, peer } = await clientWith(raw);
    peer.send(settings());
    const c = call();
    client.request(REQ, Buffer.from('x'), c.handler);
    await peer.waitFor((f) => f.type === T.DATA && f.id === 1 && (f.flags & F.END_STREAM) !== 0);
    peer.send(headersOf(1, response));
    if (trailerList !== null) peer.send(trailers(1, trailerList));
    expect(await peer.rst(1)).toBe(E.PROTOCOL_ERROR);
    expect(await c.closed).toBe(E.PROTOCOL_ERROR);
    expect(c.ends.includes(true)).toBe(false);
    expect(client.streams.size).toBe(0);
  });
});

// ---- RFC 9113 §6.10 CONTINUATION floods ----------------------------------------------------

describe('RFC 9113 §6.10: CONTINUATION frames per header block are capped (CVE-2024-27316)', () => {
  it(`accepts a block in ${MAX_CONTINUATION_FRAMES} CONTINUATION frames`, async () => {
    const { srv, peer } = await connected();
    const block = requestBlock();
    const parts = [frame(T.HEADERS, F.END_STREAM, 1, block)];
    for (let i = 1; i < MAX_CONTINUATION_FRAMES; i++) parts.push(frame(T.CONTINUATION, 0, 1));
    parts.push(frame(T.CONTINUATION, F.END_HEADERS, 1));
    peer.send(...parts);
    await served(peer, 1);
    await expectClean(srv, peer);
  });

  it('empty CONTINUATION frames past the cap → GOAWAY ENHANCE_YOUR_CALM', async () => {
    const { srv, peer } = await connected();
    const closed = connectionError(srv);
    const parts = [frame(T.HEADERS, F.END_STREAM, 1, requestBlock())];
    // Zero bytes each: the header block byte cap never trips.
    for (let i = 0; i < 10 * MAX_CONTINUATION_FRAMES; i++) parts.push(frame(T.CONTINUATION, 0, 1));
    peer.send(...parts);
    expect(await closed).toBe(E.ENHANCE_YOUR_CALM);
    const g = peer.frames.find((f) => f.type === T.GOAWAY);
    if (g !== undefined) expect(g.payload.readUInt32BE(4)).toBe(E.ENHANCE_YOUR_CALM);
    expect(srv.streams).toHaveLength(0);
    await expectClean(srv, peer);
  });
});
