import { Buffer } from 'node:buffer';
import { writeU32BE } from '@engram/common';
import { encodeHeaderBlock, type H2Stream } from '@engram/h2';
import { type RoutingInfo, RoutingStrategy } from '@engram/router';
import type { Reply } from './forward.js';
import {
  encodeGrpcMessage,
  FRAME_HEADER_BYTES,
  headerSafe,
  headerValue,
  isPlainFrame,
  routingField,
} from './wire.js';

/** `:status 200`, `content-type application/grpc`: the header block of every reply, encoded once. */
export const REPLY_HEADERS = encodeHeaderBlock([
  ':status',
  '200',
  'content-type',
  'application/grpc',
]);
export const OK_TRAILERS: readonly string[] = ['grpc-status', '0'];

/** The start of a trailers-only reply (headers and status in one block). */
function trailersOnly(status: number): string[] {
  return [':status', '200', 'content-type', 'application/grpc', 'grpc-status', String(status)];
}

const STRATEGY_BYTES: ReadonlyMap<string, Buffer> = new Map(
  Object.values(RoutingStrategy).map((s) => [s, Buffer.from(s)]),
);
/** `String(n)` for small attempt counts without a new string per call. */
const SMALL_INTS = Array.from({ length: 16 }, (_, i) => String(i));
function intString(n: number): string {
  return n >= 0 && n < SMALL_INTS.length ? SMALL_INTS[n]! : String(n);
}
/** Query replies join several node ids: bound the caches rather than key every combination. */
const MAX_CACHED_IDS = 4096;

/** A node's trailer passed on to the client: not a pseudo-header, status or RoutingInfo. */
function isPassedTrailer(name: string): boolean {
  return name.charCodeAt(0) !== 58 && name !== 'grpc-status' && !name.startsWith('x-engram-');
}

/** Whether the trailers of `nodeTrailers` passed on are exactly `passed` (no list built). */
function samePassedTrailers(passed: readonly string[], nodeTrailers: readonly string[]): boolean {
  let j = 0;
  for (let i = 0; i < nodeTrailers.length; i += 2) {
    const name = nodeTrailers[i]!;
    if (!isPassedTrailer(name)) continue;
    if (passed[j] !== name || passed[j + 1] !== nodeTrailers[i + 1]) return false;
    j += 2;
  }
  return j === passed.length;
}

/** The parts of a RoutingInfo a cached encoding depends on (its serving node is the cache key). */
interface RoutingKey {
  readonly attempts: number;
  readonly fallback: boolean;
  readonly strategy: string;
  readonly epoch: number;
  readonly acknowledged: number;
  readonly asked: number;
  readonly degraded: boolean;
}

function routingKey(routing: RoutingInfo): RoutingKey {
  return {
    attempts: routing.attempts,
    fallback: routing.fallback,
    strategy: routing.strategy,
    epoch: routing.tableEpoch,
    acknowledged: routing.acknowledged,
    asked: routing.asked,
    degraded: routing.degraded === true,
  };
}

/** Whether `key` was taken from exactly `routing`. */
function sameRouting(key: RoutingKey, routing: RoutingInfo): boolean {
  return (
    key.attempts === routing.attempts &&
    key.fallback === routing.fallback &&
    key.strategy === routing.strategy &&
    key.epoch === routing.tableEpoch &&
    key.acknowledged === routing.acknowledged &&
    key.asked === routing.asked &&
    key.degraded === (routing.degraded === true)
  );
}

/** RoutingInfo as a reply's field 15 and what it was encoded from (`Replies.#routingField`). */
interface RoutingBytes {
  readonly key: RoutingKey;
  readonly field: Buffer;
}

/** An OK reply's trailer block and what it was encoded from (`Replies.#okTrailers`). */
interface TrailerBlock {
  readonly key: RoutingKey;
  readonly nodeTrailers: readonly string[];
  readonly block: Buffer;
}

/**
 * Replies to clients: the node's reply with RoutingInfo appended as field 15 and as trailing
 * metadata (`x-engram-*`), and trailers-only errors. Caches the per-node encodings, so a
 * reply encodes no strings on the hot path.
 */
export class Replies {
  /** UTF-8 node ids for the RoutingInfo field (encoded once per node). */
  readonly #servedByBytes = new Map<string, Buffer>();
  readonly #servedByHeaders = new Map<string, string>();
  /** The last OK trailer block per serving node. */
  readonly #trailers = new Map<string, TrailerBlock>();
  /** The last RoutingInfo field per serving node. */
  readonly #fields = new Map<string, RoutingBytes>();
  /** A reply's new gRPC length prefix and its body parts: copied out by `sendDataParts`. */
  readonly #prefix = Buffer.alloc(FRAME_HEADER_BYTES);
  readonly #parts: Buffer[] = [this.#prefix, this.#prefix, this.#prefix];
  #epochOf = -1;
  #epochValue = '-1';

  /** Passes a node's reply to the client, RoutingInfo added. */
  respond(stream: H2Stream, r: Reply, routing: RoutingInfo): void {
    if (stream.closed || stream.sentHeaders) return;
    if (r.status !== 0 || r.body.length === 0) {
      // Pass the node's error through as a trailers-only reply.
      const out = trailersOnly(r.status);
      this.pushRoutingHeaders(out, routing);
      const msg = headerValue(r.trailers, 'grpc-message');
      if (msg !== undefined) out.push('grpc-message', msg);
      stream.sendHeaders(out, true);
      return;
    }
    // Every reply body is uncompressed by now (forward.ts inflates a compressed one), so the
    // node's grpc-encoding is not passed on.
    stream.sendHeaders(REPLY_HEADERS, false);
    const body = r.body;
    if (isPlainFrame(body)) {
      // The message with RoutingInfo appended as field 15, under a new length prefix: written
      // as one DATA frame from its parts, no joined copy (see H2Stream.sendDataParts).
      const field = this.#routingField(routing);
      const prefix = this.#prefix;
      prefix[0] = 0;
      writeU32BE(prefix, 1, body.length - FRAME_HEADER_BYTES + field.length);
      const parts = this.#parts;
      parts[1] = body.subarray(FRAME_HEADER_BYTES);
      parts[2] = field;
      stream.sendDataParts(parts, false);
      parts[1] = prefix; // let go of the reply
    } else {
      stream.sendData(body, false);
    }
    stream.sendTrailers(this.#okTrailers(routing, r.trailers));
  }

  /** RoutingInfo as field 15, encoded once and reused while the same node answers alike. */
  #routingField(routing: RoutingInfo): Buffer {
    const cached = this.#fields.get(routing.servedBy);
    if (cached !== undefined && sameRouting(cached.key, routing)) return cached.field;
    const field = routingField(
      this.#servedBy(routing.servedBy),
      routing.attempts,
      routing.fallback,
      STRATEGY_BYTES.get(routing.strategy) ?? Buffer.from(routing.strategy),
      routing.tableEpoch,
      routing.acknowledged,
      routing.asked,
      routing.degraded,
    );
    if (this.#fields.size >= MAX_CACHED_IDS) this.#fields.clear();
    this.#fields.set(routing.servedBy, { key: routingKey(routing), field });
    return field;
  }

  /**
   * The trailers of an OK reply (RoutingInfo, then the node's own trailers), encoded once and
   * reused while the same node answers with the same routing and trailers: the common case
   * costs no list and no encoding. (`encodeHeaderBlock` never touches the dynamic table, so a
   * block is valid on every connection.)
   */
  #okTrailers(routing: RoutingInfo, nodeTrailers: readonly string[]): Buffer {
    const cached = this.#trailers.get(routing.servedBy);
    if (
      cached !== undefined &&
      sameRouting(cached.key, routing) &&
      samePassedTrailers(cached.nodeTrailers, nodeTrailers)
    ) {
      return cached.block;
    }
    const t = ['grpc-status', '0'];
    this.pushRoutingHeaders(t, routing);
    const passed: string[] = [];
    for (let i = 0; i < nodeTrailers.length; i += 2) {
      const name = nodeTrailers[i]!;
      if (!isPassedTrailer(name)) continue;
      t.push(name, nodeTrailers[i + 1]!);
      passed.push(name, nodeTrailers[i + 1]!);
    }
    const block = encodeHeaderBlock(t);
    if (this.#trailers.size >= MAX_CACHED_IDS) this.#trailers.clear();
    this.#trailers.set(routing.servedBy, { key: routingKey(routing), nodeTrailers: passed, block });
    return block;
  }

  /** A reply the router built itself (one framed message, RoutingInfo already inside). */
  sendMessage(stream: H2Stream, framed: Buffer, routing: RoutingInfo): void {
    if (stream.closed || stream.sentHeaders) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    stream.sendData(framed, false);
    const t = ['grpc-status', '0'];
    this.pushRoutingHeaders(t, routing);
    stream.sendTrailers(t);
  }

  /** A trailers-only error reply (`extra`: more `[name, value, …]` pairs). */
  fail(stream: H2Stream, status: number, message: string, extra?: readonly string[]): void {
    if (stream.closed || stream.localEnded || stream.sentHeaders) return;
    const out = trailersOnly(status);
    out.push('grpc-message', encodeGrpcMessage(message));
    if (extra !== undefined) for (const v of extra) out.push(v);
    stream.sendHeaders(out, true);
  }

  /** The table epoch as a header value, rebuilt only when the epoch changes. */
  epochString(epoch: number): string {
    if (epoch !== this.#epochOf) {
      this.#epochOf = epoch;
      this.#epochValue = String(epoch);
    }
    return this.#epochValue;
  }

  /** RoutingInfo as trailing metadata, appended to a `[name, value, …]` list. */
  pushRoutingHeaders(out: string[], routing: RoutingInfo): void {
    out.push(
      'x-engram-served-by',
      this.#servedByHeader(routing.servedBy),
      'x-engram-attempts',
      intString(routing.attempts),
      'x-engram-fallback',
      routing.fallback ? 'true' : 'false',
      'x-engram-strategy',
      routing.strategy,
      'x-engram-epoch',
      this.epochString(routing.tableEpoch),
    );
    if (routing.asked > 0) {
      out.push(
        'x-engram-acknowledged',
        intString(routing.acknowledged),
        'x-engram-asked',
        intString(routing.asked),
      );
    }
    if (routing.degraded) out.push('x-engram-degraded', 'true');
  }

  /** A node id as a header value (percent-encoded unless printable ASCII), cached. */
  #servedByHeader(id: string): string {
    let h = this.#servedByHeaders.get(id);
    if (h === undefined) {
      h = headerSafe(id);
      if (this.#servedByHeaders.size >= MAX_CACHED_IDS) this.#servedByHeaders.clear();
      this.#servedByHeaders.set(id, h);
    }
    return h;
  }

  #servedBy(id: string): Buffer {
    let b = this.#servedByBytes.get(id);
    if (b === undefined) {
      b = Buffer.from(id);
      if (this.#servedByBytes.size >= MAX_CACHED_IDS) this.#servedByBytes.clear();
      this.#servedByBytes.set(id, b);
    }
    return b;
  }
}
