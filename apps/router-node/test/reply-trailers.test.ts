import { type H2Stream, HpackDecoder } from '@engram/h2';
import type { RoutingInfo } from '@engram/router';
import { describe, expect, it } from 'vitest';
import type { Reply } from '../src/internal/forward.js';
import { Replies } from '../src/internal/reply.js';
import { frameMessage } from '../src/internal/wire.js';

/** A stream that keeps the trailers it is sent, decoded when they came as an encoded block. */
function fakeStream(): { stream: H2Stream; trailers: () => string[]; blocks: Buffer[] } {
  let last: string[] = [];
  const blocks: Buffer[] = [];
  const stream = {
    closed: false,
    sentHeaders: false,
    sendHeaders() {
      this.sentHeaders = true;
    },
    sendData() {},
    sendDataParts() {},
    sendTrailers(t: readonly string[] | Buffer) {
      if (Buffer.isBuffer(t)) {
        blocks.push(t);
        const out: string[] = [];
        new HpackDecoder().decode(t, 0, t.length, out);
        last = out;
      } else last = [...t];
    },
  };
  return { stream: stream as unknown as H2Stream, trailers: () => last, blocks };
}

const ROUTING: RoutingInfo = {
  servedBy: 'n1',
  attempts: 1,
  fallback: false,
  strategy: 'PrimaryWithFallback',
  tableEpoch: 7,
  acknowledged: 0,
  asked: 0,
  degraded: false,
};

function reply(trailers: string[]): Reply {
  return {
    status: 0,
    headers: [':status', '200', 'content-type', 'application/grpc'],
    trailers,
    body: frameMessage(Buffer.from([0x0a, 0x00])),
  };
}

const ROUTING_TRAILERS = [
  'x-engram-served-by',
  'n1',
  'x-engram-attempts',
  '1',
  'x-engram-fallback',
  'false',
  'x-engram-strategy',
  'PrimaryWithFallback',
  'x-engram-epoch',
  '7',
];

describe('Replies: trailers of an OK reply, encoded once and reused', () => {
  it('passes the same trailers on every reply, the block reused while nothing changed', () => {
    const replies = new Replies();
    const nodeTrailers = ['grpc-status', '0', 'grpc-message', 'OK', 'x-engram-epoch', '99'];
    const first = fakeStream();
    replies.respond(first.stream, reply(nodeTrailers), ROUTING);
    const second = fakeStream();
    replies.respond(second.stream, reply([...nodeTrailers]), { ...ROUTING });
    const expected = ['grpc-status', '0', ...ROUTING_TRAILERS, 'grpc-message', 'OK'];
    expect(first.trailers()).toEqual(expected);
    expect(second.trailers()).toEqual(expected);
    expect(second.blocks[0]).toBe(first.blocks[0]);
  });

  it('encodes again when the routing or the node trailers differ, never a stale block', () => {
    const replies = new Replies();
    const base = ['grpc-status', '0', 'grpc-message', 'OK'];
    const cases: [RoutingInfo, string[], string[]][] = [
      [ROUTING, base, ['grpc-message', 'OK']],
      [{ ...ROUTING, attempts: 2 }, base, ['grpc-message', 'OK']],
      [{ ...ROUTING, tableEpoch: 8 }, base, ['grpc-message', 'OK']],
      [{ ...ROUTING, fallback: true }, base, ['grpc-message', 'OK']],
      [ROUTING, ['grpc-status', '0', 'grpc-message', 'fine'], ['grpc-message', 'fine']],
      [
        ROUTING,
        ['grpc-status', '0', 'grpc-message', 'fine', 'x-a', '1'],
        ['grpc-message', 'fine', 'x-a', '1'],
      ],
      [ROUTING, ['grpc-status', '0'], []],
      [{ ...ROUTING, asked: 3, acknowledged: 2, degraded: true }, base, ['grpc-message', 'OK']],
    ];
    for (const [routing, nodeTrailers, passed] of cases) {
      const s = fakeStream();
      replies.respond(s.stream, reply(nodeTrailers), routing);
      const fresh = fakeStream();
      new Replies().respond(fresh.stream, reply(nodeTrailers), routing);
      // What the cache sent is what a Replies that never saw another reply sends.
      expect(s.trailers()).toEqual(fresh.trailers());
      const sent = s.trailers();
      expect(sent.slice(sent.length - passed.length)).toEqual(passed);
      expect(s.trailers()).toContain(String(routing.attempts));
    }
  });
});
