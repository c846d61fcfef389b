// The data plane's wire reader as of commit 66b10a8, kept verbatim as the baseline of bench/proto-reader.ts.
/**
 * Just enough gRPC/protobuf wire format for a pass-through proxy: no full decode.
 * A unary gRPC body is one frame: 1 byte compressed flag, 4 bytes big-endian length, message.
 */

export const FRAME_HEADER_BYTES = 5;

/** The value of header `name` in a `[name, value, …]` list, or undefined. */
export function headerValue(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}
/** Result of `readSpaceId` when the message has no field 1 string. */
export const NO_SPACE_ID = '';
/** Result of `readSpaceId` for a malformed frame or message. */
export const MALFORMED = null;

/** Varint reader state kept in module scope: avoids allocating a result object per read. */
let pos = 0;

function readVarint(buf: Uint8Array, end: number): number {
  let result = 0;
  let mul = 1;
  while (pos < end) {
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
    if (mul > 2 ** 63) return -1;
  }
  return -1;
}

/**
 * Reads `space_id` (field 1, length-delimited) from the message of a gRPC frame, skipping
 * other fields without decoding them. Returns `NO_SPACE_ID` when the message lacks it and
 * `MALFORMED` for a truncated/compressed frame or bad wire data.
 */
export function readSpaceId(frame: Buffer): string | null {
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 0) return MALFORMED;
  const len = frame.readUInt32BE(1);
  const end = FRAME_HEADER_BYTES + len;
  if (end > frame.length) return MALFORMED;
  pos = FRAME_HEADER_BYTES;
  while (pos < end) {
    const tag = readVarint(frame, end);
    if (tag <= 0) return MALFORMED;
    const wire = tag & 7;
    const field = tag >>> 3;
    switch (wire) {
      case 0:
        if (readVarint(frame, end) < 0) return MALFORMED;
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const n = readVarint(frame, end);
        if (n < 0 || pos + n > end) return MALFORMED;
        // Protobuf lets a later occurrence win, but every serializer writes a scalar field
        // once; stopping at the first keeps large messages from being scanned to the end.
        if (field === 1) return frame.toString('utf8', pos, pos + n);
        pos += n;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return MALFORMED;
    }
  }
  return pos === end ? NO_SPACE_ID : MALFORMED;
}

function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/**
 * Builds the reply frame: `message ++ (field 15 = RoutingInfo)` with a fixed frame length.
 * `servedBy`/`strategy` are passed pre-encoded (UTF-8) so the hot path encodes no strings.
 * Returns null when the reply frame cannot take the field (compressed or malformed).
 */
export function appendRouting(
  frame: Buffer,
  servedBy: Buffer,
  attempts: number,
  fallback: boolean,
  strategy: Buffer,
  epoch: number,
  acknowledged = 0,
  asked = 0,
  degraded = false,
): Buffer | null {
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 0) return null;
  const msgLen = frame.readUInt32BE(1);
  if (FRAME_HEADER_BYTES + msgLen !== frame.length) return null;
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
  const field = 1 + varintLength(inner) + inner;
  const out = Buffer.allocUnsafe(frame.length + field);
  frame.copy(out, 0);
  out.writeUInt32BE(msgLen + field, 1);
  let at = frame.length;
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

/** Formats milliseconds as a `grpc-timeout` value (at most 8 digits, rounded up). */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(1, Math.ceil(ms));
  if (v < 100_000_000) return `${v}m`;
  return `${Math.ceil(v / 1000)}S`;
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
  out.writeUInt32BE(message.length, 1);
  out.set(message, FRAME_HEADER_BYTES);
  return out;
}

/** Field 1 (`id`, length-delimited) tag and a UUID's length: the bytes appended to a Memory. */
const MEMORY_ID_TAG = (1 << 3) | 2;
const UUID_BYTES = 36;
const ID_FIELD_BYTES = 2 + UUID_BYTES;
const STORE_MEMORY_TAG = (2 << 3) | 2;

/**
 * Skips one field's value of wire type `wire` at `pos`; false on bad data. Leaves `pos` after it.
 * For wire type 2 it sets `lenStart` (offset of the bytes) and `lenEnd`.
 */
let lenStart = 0;
function skipValue(buf: Uint8Array, wire: number, end: number): boolean {
  switch (wire) {
    case 0:
      return readVarint(buf, end) >= 0;
    case 1:
      pos += 8;
      return pos <= end;
    case 2: {
      const n = readVarint(buf, end);
      if (n < 0 || pos + n > end) return false;
      lenStart = pos;
      pos += n;
      return true;
    }
    case 5:
      pos += 4;
      return pos <= end;
    default:
      return false;
  }
}

/**
 * Gives the Memory of a StoreRequest frame (`space_id = 1, memory = 2`) an id when it has
 * none, so every attempt and fallback of a Store replays the same id and a node that got it
 * twice overwrites instead of storing a duplicate (what `Router.store` does with a decoded
 * request). No full decode: the top-level fields and the Memory's fields are walked, nothing
 * else. Returns `frame` itself (byte-identical) when the memory already has a non-empty id,
 * when there is no memory, or when the frame is compressed/malformed (the node answers those);
 * otherwise a new frame whose Memory carries field 1 = `newId()` appended after its fields
 * (a later occurrence wins, so even an explicit empty id is replaced), with the Memory's
 * length varint and the gRPC frame length fixed.
 */
export function assignMemoryId(frame: Buffer, newId: () => string): Buffer {
  return stampStore(frame, newId, 0);
}

const MEMORY_CREATED_AT_TAG = 5 << 3; // varint
const MEMORY_VERSION_TAG = 6 << 3; // varint
const CONSOLIDATE_VERSION_TAG = 3 << 3; // varint

/**
 * `assignMemoryId`, and the write's last-write-wins version too: a Memory whose `version`
 * (field 6) is absent or 0 gets `version` appended (when `version` > 0), and one whose
 * `created_at_ms` (field 5) is absent or 0 gets the version's millisecond, in the same rewrite
 * as the id. Every attempt, replica and hint of the Store then carries one id, one version and
 * one creation time (a node stamping "now" itself would make replicas differ), so nodes
 * applying it twice or out of order converge byte for byte. Same rules as `assignMemoryId`
 * otherwise (last occurrence wins; compressed or malformed frames are returned as they are).
 */
export function stampStore(frame: Buffer, newId: () => string, version: number): Buffer {
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 0) return frame;
  const len = frame.readUInt32BE(1);
  const end = FRAME_HEADER_BYTES + len;
  if (end !== frame.length) return frame;
  // The last `memory` occurrence is the one a decoder keeps (it replaces, merges at most).
  let tagAt = -1;
  let memStart = -1;
  let memEnd = -1;
  pos = FRAME_HEADER_BYTES;
  while (pos < end) {
    const at = pos;
    const tag = readVarint(frame, end);
    if (tag <= 0 || !skipValue(frame, tag & 7, end)) return frame;
    if (tag === STORE_MEMORY_TAG) {
      tagAt = at;
      memStart = lenStart;
      memEnd = pos;
    }
  }
  if (pos !== end || tagAt < 0) return frame;
  // Inside the Memory: the last field 1 and the last field 6 decide (proto3: last one wins).
  let hasId = false;
  let hasVersion = false;
  let hasCreatedAt = false;
  pos = memStart;
  while (pos < memEnd) {
    const tag = readVarint(frame, memEnd);
    if (tag === MEMORY_VERSION_TAG || tag === MEMORY_CREATED_AT_TAG) {
      const v = readVarint(frame, memEnd);
      if (v < 0) return frame;
      if (tag === MEMORY_VERSION_TAG) hasVersion = v !== 0;
      else hasCreatedAt = v !== 0;
      continue;
    }
    if (tag <= 0 || !skipValue(frame, tag & 7, memEnd)) return frame;
    if (tag === MEMORY_ID_TAG) hasId = pos > lenStart;
  }
  if (pos !== memEnd) return frame;
  const addVersion = !hasVersion && version > 0;
  const createdAtMs = Math.floor(version / 1000);
  const addCreatedAt = !hasCreatedAt && createdAtMs > 0;
  if (hasId && !addVersion && !addCreatedAt) return frame;
  let id = '';
  if (!hasId) {
    id = newId();
    if (Buffer.byteLength(id) !== UUID_BYTES)
      throw new RangeError(`newId() must return a UUID, got ${JSON.stringify(id)}`);
  }
  const extra =
    (hasId ? 0 : ID_FIELD_BYTES) +
    (addVersion ? 1 + varintLength(version) : 0) +
    (addCreatedAt ? 1 + varintLength(createdAtMs) : 0);
  const memLen = memEnd - memStart;
  const newMemLen = memLen + extra;
  const oldHeader = memStart - tagAt;
  const newHeader = 1 + varintLength(newMemLen);
  const outLen = len + extra + newHeader - oldHeader;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + outLen);
  out[0] = 0;
  out.writeUInt32BE(outLen, 1);
  let w = FRAME_HEADER_BYTES + frame.copy(out, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, tagAt);
  out[w++] = STORE_MEMORY_TAG;
  w = writeVarint(out, w, newMemLen);
  w += frame.copy(out, w, memStart, memEnd);
  if (!hasId) {
    out[w++] = MEMORY_ID_TAG;
    out[w++] = UUID_BYTES;
    w += out.write(id, w, 'latin1');
  }
  if (addCreatedAt) {
    out[w++] = MEMORY_CREATED_AT_TAG;
    w = writeVarint(out, w, createdAtMs);
  }
  if (addVersion) {
    out[w++] = MEMORY_VERSION_TAG;
    w = writeVarint(out, w, version);
  }
  frame.copy(out, w, memEnd, end);
  return out;
}

/**
 * Gives a ConsolidateRequest frame its `version` (field 3) when it has none (absent or 0, last
 * occurrence wins): the version the node gives what the consolidation writes, so replicas
 * repaired from it converge. Returns the frame itself otherwise, or when malformed/compressed.
 */
export function stampConsolidate(frame: Buffer, version: number): Buffer {
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 0) return frame;
  const len = frame.readUInt32BE(1);
  const end = FRAME_HEADER_BYTES + len;
  if (end !== frame.length) return frame;
  let hasVersion = false;
  pos = FRAME_HEADER_BYTES;
  while (pos < end) {
    const tag = readVarint(frame, end);
    if (tag === CONSOLIDATE_VERSION_TAG) {
      const v = readVarint(frame, end);
      if (v < 0) return frame;
      hasVersion = v !== 0;
      continue;
    }
    if (tag <= 0 || !skipValue(frame, tag & 7, end)) return frame;
  }
  if (pos !== end || hasVersion) return frame;
  const extra = 1 + varintLength(version);
  const out = Buffer.allocUnsafe(frame.length + extra);
  frame.copy(out, 0);
  out.writeUInt32BE(len + extra, 1);
  out[frame.length] = CONSOLIDATE_VERSION_TAG;
  writeVarint(out, frame.length + 1, version);
  return out;
}

/** Octets allowed in an HTTP/2 field name (RFC 9110 token chars, lowercase only: RFC 9113 §8.2). */
const FIELD_NAME_OCTET = (() => {
  const t = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") t[c.charCodeAt(0)] = 1;
  return t;
})();

/** A field name HTTP/2 may carry: non-empty, lowercase token characters. */
export function isValidFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || FIELD_NAME_OCTET[c] !== 1) return false;
  }
  return true;
}

/** A field value HTTP/2 may carry: no NUL, CR or LF, no leading or trailing SP/HTAB (RFC 9113 §8.2.1). */
export function isValidFieldValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  let c = value.charCodeAt(0);
  if (c === 0x20 || c === 0x09) return false;
  c = value.charCodeAt(n - 1);
  if (c === 0x20 || c === 0x09) return false;
  for (let i = 0; i < n; i++) {
    c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0xff) return false;
  }
  return true;
}

/** `s` itself when it is printable ASCII, else percent-encoded: safe as a header value. */
export function headerSafe(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(s);
  }
  return s;
}
