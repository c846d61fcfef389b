/**
 * Just enough gRPC/protobuf wire format for a pass-through proxy: no full decode.
 * A unary gRPC body is one frame: 1 byte compressed flag, 4 bytes big-endian length, message.
 * Request bytes are read by `proto-reader.ts` (re-exported here); this file frames messages,
 * appends RoutingInfo to replies and handles headers.
 */

import { Buffer } from 'node:buffer';
import { readU32BE, writeU32BE } from '@engram/common';
import { FRAME_HEADER_BYTES, stampStore, varintLength, writeVarint } from './proto-reader.js';

export {
  FRAME_HEADER_BYTES,
  MalformedMessageError,
  type MessageSchema,
  REQUEST,
  readQuerySpaceIds,
  readSpaceId,
  stampConsolidate,
  stampStore,
  WIRE_ERROR,
} from './proto-reader.js';

/** The value of header `name` in a `[name, value, …]` list, or undefined. */
export function headerValue(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}
/**
 * Whether `frame` is one uncompressed gRPC message, whole (flag 0, its length prefix matching
 * its size): a reply RoutingInfo can be appended to.
 */
export function isPlainFrame(frame: Buffer): boolean {
  return (
    frame.length >= FRAME_HEADER_BYTES &&
    frame[0] === 0 &&
    FRAME_HEADER_BYTES + readU32BE(frame, 1) === frame.length
  );
}

/**
 * RoutingInfo as protobuf field 15 of a reply message (tag, length, body), to append after the
 * message's own bytes. `servedBy`/`strategy` are passed pre-encoded (UTF-8) so no string is
 * encoded here.
 */
export function routingField(
  servedBy: Buffer,
  attempts: number,
  fallback: boolean,
  strategy: Buffer,
  epoch: number,
  acknowledged = 0,
  asked = 0,
  degraded = false,
): Buffer {
  // RoutingInfo body: 1 served_by, 2 attempts, 3 fallback, 4 strategy, 5 table_epoch,
  // 6 acknowledged, 7 asked, 8 degraded.
  let inner = 0;
  if (servedBy.length > 0) inner += 1 + varintLength(servedBy.length) + servedBy.length;
  if (attempts > 0) inner += 1 + varintLength(attempts);
  if (fallback) inner += 2;
  if (strategy.length > 0) inner += 1 + varintLength(strategy.length) + strategy.length;
  if (epoch > 0) inner += 1 + varintLength(epoch);
  if (acknowledged > 0) inner += 1 + varintLength(acknowledged);
  if (asked > 0) inner += 1 + varintLength(asked);
  if (degraded) inner += 2;
  const out = Buffer.allocUnsafe(1 + varintLength(inner) + inner);
  let at = 0;
  out[at++] = (15 << 3) | 2;
  at = writeVarint(out, at, inner);
  if (servedBy.length > 0) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, servedBy.length);
    at += servedBy.copy(out, at);
  }
  if (attempts > 0) {
    out[at++] = 2 << 3;
    at = writeVarint(out, at, attempts);
  }
  if (fallback) {
    out[at++] = 3 << 3;
    out[at++] = 1;
  }
  if (strategy.length > 0) {
    out[at++] = (4 << 3) | 2;
    at = writeVarint(out, at, strategy.length);
    at += strategy.copy(out, at);
  }
  if (epoch > 0) {
    out[at++] = 5 << 3;
    at = writeVarint(out, at, epoch);
  }
  if (acknowledged > 0) {
    out[at++] = 6 << 3;
    at = writeVarint(out, at, acknowledged);
  }
  if (asked > 0) {
    out[at++] = 7 << 3;
    at = writeVarint(out, at, asked);
  }
  if (degraded) {
    out[at++] = 8 << 3;
    out[at++] = 1;
  }
  return out;
}

/**
 * Builds the reply frame: `message ++ (field 15 = RoutingInfo)` with a fixed frame length.
 * `servedBy`/`strategy` are passed pre-encoded (UTF-8) so the hot path encodes no strings.
 * Returns null when the reply frame cannot take the field (compressed or malformed).
 */
export function appendRouting(
  frame: Buffer,
  ...routing: Parameters<typeof routingField>
): Buffer | null {
  if (!isPlainFrame(frame)) return null;
  const field = routingField(...routing);
  const out = Buffer.allocUnsafe(frame.length + field.length);
  frame.copy(out, 0);
  writeU32BE(out, 1, frame.length - FRAME_HEADER_BYTES + field.length);
  field.copy(out, frame.length);
  return out;
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** Parses a `grpc-timeout` header (`100m`, `5S`…) to milliseconds; undefined when absent/bad. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined;
  const unit = TIMEOUT_UNIT_MS[value[value.length - 1]!];
  const amount = Number(value.slice(0, -1));
  if (unit === undefined || !Number.isInteger(amount) || amount < 0) return undefined;
  return amount * unit;
}

/** The last `formatGrpcTimeout` result and its rounded milliseconds. */
let lastTimeoutMs = -1;
let lastTimeout = '';

/** Formats milliseconds as a `grpc-timeout` value (at most 8 digits, rounded up). */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(1, Math.ceil(ms));
  // Most attempts send the same value (the attempt timeout): the last string is reused.
  if (v === lastTimeoutMs) return lastTimeout;
  const s = v < 100_000_000 ? `${v}m` : `${Math.ceil(v / 1000)}S`;
  lastTimeoutMs = v;
  lastTimeout = s;
  return s;
}

const GRPC_MESSAGE_PLAIN = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * Percent-encodes a `grpc-message` value as the gRPC HTTP/2 spec says: the UTF-8 bytes outside
 * %x20-%x7E, and `%` itself, become `%XX`; everything else stays as it is. (Not
 * `encodeURIComponent`: that also encodes `:`, `,`, `;`…, which clients decoding by the spec,
 * grpc-js's `decodeURI` among them, then show as `%3A`.)
 */
export function encodeGrpcMessage(message: string): string {
  if (GRPC_MESSAGE_PLAIN.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Length-prefixes a serialized message into a gRPC frame. */
export function frameMessage(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  out[0] = 0;
  writeU32BE(out, 1, message.length);
  out.set(message, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Gives the Memory of a StoreRequest frame an id when it has none (`stampStore` without a
 * version): kept for callers of the public API.
 */
export function assignMemoryId(frame: Buffer, newId: () => string): Buffer {
  return stampStore(frame, newId, 0);
}

/** `s` itself when it is printable ASCII, else percent-encoded: safe as a header value. */
export function headerSafe(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(s);
  }
  return s;
}
