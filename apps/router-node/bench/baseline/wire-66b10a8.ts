// The data plane's request reader as of commit 66b10a8 (readSpaceId, stampStore and what they
// use, verbatim; the rest of that wire.ts is left out), the baseline of bench/proto-reader.ts.
/**
 * Just enough gRPC/protobuf wire format for a pass-through proxy: no full decode.
 * A unary gRPC body is one frame: 1 byte compressed flag, 4 bytes big-endian length, message.
 */

export const FRAME_HEADER_BYTES = 5;

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

const MEMORY_CREATED_AT_TAG = 5 << 3; // varint
const MEMORY_VERSION_TAG = 6 << 3; // varint

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
