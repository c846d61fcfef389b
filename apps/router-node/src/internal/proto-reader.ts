/**
 * The one protobuf reader of the data plane: every place router-node reads or rewrites request
 * bytes (`readSpaceId`, `stampStore`, `stampConsolidate`, `readQuerySpaceIds`) walks them here,
 * in one pass, with the semantics of the decoder the memory nodes run (protobufjs 7, through
 * grpc-js and @grpc/proto-loader), so the router never routes or stamps by a value the node
 * does not see:
 *
 * - a scalar or string field that occurs more than once: the last occurrence wins;
 * - `StoreRequest.memory` more than once: protobuf merges them (the spec: parsing the
 *   concatenation). protobufjs does *not*: it keeps the last one. The two readings differ, so a
 *   Store with several `memory` fields is rewritten into one whose bytes are the occurrences
 *   concatenated (the spec's merge, which every decoder, protobufjs included, reads alike),
 *   and the stamps are decided on that merged view;
 * - the structure is validated against the schema at every level the request has (StoreRequest
 *   → Memory, RecallRequest/QueryRequest → Cue, ConsolidateRequest): a known field with another
 *   wire type, a truncated field, a malformed varint, a group, field number 0 or trailing
 *   bytes are refused with `MalformedMessageError` (INVALID_ARGUMENT naming the field), before
 *   any node is tried, so a client cannot make a node fail and count on its breaker;
 * - unknown fields are skipped as protobufjs's `Reader.skipType` skips them (groups refused).
 *
 * Where protobufjs is laxer than the protocol (it reads a string from a field sent as a
 * varint, a truncated string at the very end, field number 0, groups), the reader refuses:
 * what it accepts, protobufjs decodes to the same values. Where protobufjs reads a varint
 * oddly (a uint32 longer than 5 bytes: it consumes 10 without looking), the reader refuses
 * those too. The property test (`test/proto-reader.test.ts`) checks this against protobufjs.
 *
 * Hot path: the cursor and the scan's findings live in module scope (one thread runs one call
 * at a time through here), no object is allocated per field or per read; the schemas are
 * small typed arrays built once.
 */

import { Buffer } from 'node:buffer';
import { readU32BE, writeU32BE } from '@engram/common';
import { GRPC_STATUS, RouteError } from './errors.js';

/** Why a message was refused: stable, tests and logs match on it. */
export const WIRE_ERROR = Object.freeze({
  /** Not a single uncompressed gRPC message (short, compressed flag, trailing bytes). */
  frame: 'Frame',
  /** A known field sent with another wire type, or wire type 4, 6 or 7. */
  wireType: 'WireType',
  /** A field runs past the end of its message. */
  truncated: 'Truncated',
  /** A varint longer than the decoder reads it, or a tag/length of 2^32 or more. */
  varint: 'Varint',
  /** Field number 0. */
  fieldNumber: 'FieldNumber',
  /** A group (wire type 3): proto3 has none. */
  group: 'Group',
  /** A packed repeated float whose length is not a multiple of 4. */
  packedLength: 'PackedLength',
} as const);
export type WireErrorReason = (typeof WIRE_ERROR)[keyof typeof WIRE_ERROR];

/**
 * A request message the router refuses (INVALID_ARGUMENT): `reason` is stable, `field` the
 * offending field (`StoreRequest.memory.version`) or message, `value` what was found there
 * (the wire type, the length, the offset).
 */
export class MalformedMessageError extends RouteError {
  readonly reason: WireErrorReason;
  readonly field: string;
  readonly value: number;
  constructor(reason: WireErrorReason, field: string, value: number, detail: string) {
    super(
      'InvalidArgument',
      GRPC_STATUS.INVALID_ARGUMENT,
      `malformed request message: ${field}: ${detail}`,
    );
    this.name = 'MalformedMessageError';
    this.reason = reason;
    this.field = field;
    this.value = value;
  }
}

export const FRAME_HEADER_BYTES = 5;

// Field kinds: which wire types a known field may carry.
const K_UNKNOWN = 0;
const K_STRING = 1; // wire 2
const K_MESSAGE = 2; // wire 2, walked with the child schema
const K_UINT32 = 3; // wire 0, read by protobufjs as uint32: at most 5 bytes
const K_VARINT64 = 4; // wire 0, int64/uint64: at most 10 bytes
const K_FLOAT = 5; // wire 5
const K_FLOATS = 6; // repeated float: wire 2 (packed, length % 4 = 0) or 5
const K_STRINGS = 7; // repeated string: wire 2

// Roles: what the scan records about a field.
const R_NONE = 0;
const R_SPACE_ID = 1;
const R_SPACE_IDS = 2;
const R_MEMORY = 3;
const R_MEMORY_ID = 4;
const R_MEMORY_CREATED_AT = 5;
const R_MEMORY_VERSION = 6;
const R_VERSION = 7;

/** A message's known fields, indexed by field number. */
export interface MessageSchema {
  readonly name: string;
  readonly kinds: Uint8Array;
  readonly roles: Uint8Array;
  readonly names: readonly string[];
  readonly children: readonly (MessageSchema | null)[];
}

type FieldSpec = readonly [number, string, number, number?, MessageSchema?];

function schema(name: string, fields: readonly FieldSpec[]): MessageSchema {
  const size = Math.max(0, ...fields.map((f) => f[0])) + 1;
  const kinds = new Uint8Array(size);
  const roles = new Uint8Array(size);
  const names: string[] = Array.from({ length: size }, () => name);
  const children: (MessageSchema | null)[] = Array.from({ length: size }, () => null);
  for (const [n, field, kind, role, child] of fields) {
    kinds[n] = kind;
    roles[n] = role ?? R_NONE;
    names[n] = `${name}.${field}`;
    if (child !== undefined) children[n] = child;
  }
  return Object.freeze({ name, kinds, roles, names, children });
}

function cue(name: string): MessageSchema {
  return schema(name, [
    [1, 'text', K_STRING],
    [2, 'embedding', K_FLOATS],
  ]);
}

/** The request schemas of `protos/engram/v1/memory.proto` (and the health check's). */
export const REQUEST = Object.freeze({
  store: schema('StoreRequest', [
    [1, 'space_id', K_STRING, R_SPACE_ID],
    [
      2,
      'memory',
      K_MESSAGE,
      R_MEMORY,
      schema('StoreRequest.memory', [
        [1, 'id', K_STRING, R_MEMORY_ID],
        [2, 'content', K_STRING],
        [3, 'embedding', K_FLOATS],
        [4, 'confidence', K_FLOAT],
        [5, 'created_at_ms', K_VARINT64, R_MEMORY_CREATED_AT],
        [6, 'version', K_VARINT64, R_MEMORY_VERSION],
      ]),
    ],
  ]),
  recall: schema('RecallRequest', [
    [1, 'space_id', K_STRING, R_SPACE_ID],
    [2, 'cue', K_MESSAGE, R_NONE, cue('RecallRequest.cue')],
    [3, 'limit', K_UINT32],
  ]),
  consolidate: schema('ConsolidateRequest', [
    [1, 'space_id', K_STRING, R_SPACE_ID],
    [2, 'similarity_threshold', K_FLOAT],
    [3, 'version', K_VARINT64, R_VERSION],
  ]),
  query: schema('QueryRequest', [
    [1, 'space_ids', K_STRINGS, R_SPACE_IDS],
    [2, 'cue', K_MESSAGE, R_NONE, cue('QueryRequest.cue')],
    [3, 'limit', K_UINT32],
  ]),
  /** A MemoryService method the router does not know: routed by field 1, the rest skipped. */
  unknown: schema('request', [[1, 'space_id', K_STRING, R_SPACE_ID]]),
  /** grpc.health.v1.HealthCheckRequest. */
  health: schema('HealthCheckRequest', [[1, 'service', K_STRING, R_SPACE_ID]]),
});

// --- Scan state (module scope: one call at a time per thread, nothing allocated per read) ---
/** The cursor. */
let pos = 0;
/** The frame and schema the findings below describe. */
let scannedFrame: Buffer | null = null;
let scannedSchema: MessageSchema | null = null;
/** Last field with role R_SPACE_ID: its bytes. */
let spaceStart = -1;
let spaceEnd = -1;
/** R_SPACE_IDS values, when a caller collects them. */
let spaceIds: string[] | null = null;
/** `memory` occurrences: count, the last one's tag offset and payload, their total sizes. */
let memCount = 0;
let memTagAt = -1;
let memStart = -1;
let memEnd = -1;
let memFieldBytes = 0;
let memPayloadBytes = 0;
/** On the merged memory (last occurrence across every `memory`): id non-empty, non-zero version/created_at. */
let hasId = false;
let hasCreatedAt = false;
let hasVersion = false;
/** ConsolidateRequest.version non-zero (last occurrence). */
let hasTopVersion = false;

function fail(reason: WireErrorReason, field: string, value: number, detail: string): never {
  scannedFrame = null;
  throw new MalformedMessageError(reason, field, value, detail);
}

/**
 * A tag or a length, as protobufjs's `uint32()` reads it: at most 5 bytes (it skips 5 more
 * blindly after a 5th with the continuation bit, so longer ones are refused) and below 2^32
 * (it would drop the high bits). Over-long encodings of small values are accepted.
 */
function readLength(buf: Buffer, end: number, field: string): number {
  if (pos >= end) fail(WIRE_ERROR.truncated, field, pos, 'truncated varint');
  let b = buf[pos++]!;
  if (b < 0x80) return b;
  let v = b & 0x7f;
  for (let shift = 7; shift <= 28; shift += 7) {
    if (pos >= end) fail(WIRE_ERROR.truncated, field, pos, 'truncated varint');
    b = buf[pos++]!;
    if (shift === 28) {
      if (b > 0x0f) fail(WIRE_ERROR.varint, field, pos - 1, 'varint of 2^32 or more');
      return v + b * 2 ** 28;
    }
    v |= (b & 0x7f) << shift;
    if (b < 0x80) return v;
  }
  return v; // unreachable
}

/** A uint32 field's value: at most 5 bytes (see readLength); high bits dropped as protobufjs does. */
function skipVarint32(buf: Buffer, end: number, field: string): void {
  for (let i = 0; i < 5; i++) {
    if (pos >= end) fail(WIRE_ERROR.truncated, field, pos, 'truncated varint');
    if (buf[pos++]! < 0x80) return;
  }
  fail(WIRE_ERROR.varint, field, pos, 'uint32 varint longer than 5 bytes');
}

/**
 * An int64/uint64 field's value; true when its low 64 bits (all protobufjs keeps: 9 × 7 bits
 * and bit 0 of a 10th byte) are not all zero. More than 10 bytes is refused, as protobufjs does.
 */
function readNonZero64(buf: Buffer, end: number, field: string): boolean {
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) fail(WIRE_ERROR.truncated, field, pos, 'truncated varint');
    const b = buf[pos++]!;
    bits |= i === 9 ? b & 0x01 : b & 0x7f;
    if (b < 0x80) return bits !== 0;
  }
  return fail(WIRE_ERROR.varint, field, pos, 'varint longer than 10 bytes');
}

function wireTypeError(field: string, wire: number, expected: string): never {
  return fail(WIRE_ERROR.wireType, field, wire, `wire type ${wire}, expected ${expected}`);
}

/**
 * Walks one message from `pos` to `end` against `s`, recording what the roles ask; leaves
 * `pos` at `end`. Unknown fields are skipped as protobufjs skips them.
 */
function walk(buf: Buffer, end: number, s: MessageSchema): void {
  const kinds = s.kinds;
  while (pos < end) {
    const at = pos;
    const tag = readLength(buf, end, s.name);
    const wire = tag & 7;
    const n = tag >>> 3;
    if (n === 0) fail(WIRE_ERROR.fieldNumber, s.name, at, 'field number 0');
    const kind = n < kinds.length ? kinds[n]! : K_UNKNOWN;
    if (kind === K_UNKNOWN) {
      switch (wire) {
        case 0:
          // Reader.skip(): any length, until a byte without the continuation bit.
          do {
            if (pos >= end) fail(WIRE_ERROR.truncated, s.name, at, 'truncated varint');
          } while (buf[pos++]! >= 0x80);
          break;
        case 1:
          pos += 8;
          if (pos > end) fail(WIRE_ERROR.truncated, s.name, at, `field ${n} truncated`);
          break;
        case 2: {
          const len = readLength(buf, end, s.name);
          pos += len;
          if (pos > end) fail(WIRE_ERROR.truncated, s.name, at, `field ${n} truncated`);
          break;
        }
        case 5:
          pos += 4;
          if (pos > end) fail(WIRE_ERROR.truncated, s.name, at, `field ${n} truncated`);
          break;
        case 3:
          fail(WIRE_ERROR.group, s.name, n, `field ${n} is a group`);
          break;
        default:
          fail(WIRE_ERROR.wireType, s.name, wire, `field ${n}: wire type ${wire}`);
      }
      continue;
    }
    const role = s.roles[n]!;
    switch (kind) {
      case K_STRING:
      case K_STRINGS:
      case K_MESSAGE: {
        if (wire !== 2) wireTypeError(s.names[n]!, wire, '2');
        const len = readLength(buf, end, s.names[n]!);
        const start = pos;
        const stop = start + len;
        if (stop > end)
          fail(WIRE_ERROR.truncated, s.names[n]!, len, `length ${len} runs past the end`);
        if (kind === K_MESSAGE) {
          walk(buf, stop, s.children[n]!);
          if (role === R_MEMORY) {
            memCount++;
            memTagAt = at;
            memStart = start;
            memEnd = stop;
            memFieldBytes += stop - at;
            memPayloadBytes += len;
          }
        } else {
          pos = stop;
          if (role === R_SPACE_ID) {
            spaceStart = start;
            spaceEnd = stop;
          } else if (role === R_SPACE_IDS) {
            if (spaceIds !== null) spaceIds.push(buf.toString('utf8', start, stop));
          } else if (role === R_MEMORY_ID) hasId = len > 0;
        }
        break;
      }
      case K_UINT32:
        if (wire !== 0) wireTypeError(s.names[n]!, wire, '0');
        skipVarint32(buf, end, s.names[n]!);
        break;
      case K_VARINT64: {
        if (wire !== 0) wireTypeError(s.names[n]!, wire, '0');
        const nonZero = readNonZero64(buf, end, s.names[n]!);
        if (role === R_MEMORY_VERSION) hasVersion = nonZero;
        else if (role === R_MEMORY_CREATED_AT) hasCreatedAt = nonZero;
        else if (role === R_VERSION) hasTopVersion = nonZero;
        break;
      }
      case K_FLOAT:
        if (wire !== 5) wireTypeError(s.names[n]!, wire, '5');
        pos += 4;
        if (pos > end) fail(WIRE_ERROR.truncated, s.names[n]!, at, 'truncated float');
        break;
      case K_FLOATS:
        if (wire === 5) {
          pos += 4;
          if (pos > end) fail(WIRE_ERROR.truncated, s.names[n]!, at, 'truncated float');
        } else if (wire === 2) {
          const len = readLength(buf, end, s.names[n]!);
          if (len % 4 !== 0) {
            fail(
              WIRE_ERROR.packedLength,
              s.names[n]!,
              len,
              `packed length ${len} is not a multiple of 4`,
            );
          }
          pos += len;
          if (pos > end)
            fail(WIRE_ERROR.truncated, s.names[n]!, len, `length ${len} runs past the end`);
        } else wireTypeError(s.names[n]!, wire, '2 or 5');
        break;
    }
  }
}

/** Validates `frame` (one uncompressed gRPC message) against `s`, recording its findings. */
function scan(frame: Buffer, s: MessageSchema): void {
  if (scannedFrame === frame && scannedSchema === s) return;
  scannedFrame = null;
  if (frame.length < FRAME_HEADER_BYTES) {
    fail(WIRE_ERROR.frame, s.name, frame.length, `frame of ${frame.length} bytes`);
  }
  if (frame[0] !== 0) fail(WIRE_ERROR.frame, s.name, frame[0]!, 'compressed frame');
  const end = FRAME_HEADER_BYTES + readU32BE(frame, 1);
  if (end !== frame.length) {
    fail(
      WIRE_ERROR.frame,
      s.name,
      frame.length,
      `frame says ${end - FRAME_HEADER_BYTES} bytes, body has ${frame.length - FRAME_HEADER_BYTES}`,
    );
  }
  spaceStart = -1;
  spaceEnd = -1;
  memCount = 0;
  memTagAt = memStart = memEnd = -1;
  memFieldBytes = memPayloadBytes = 0;
  hasId = hasCreatedAt = hasVersion = hasTopVersion = false;
  pos = FRAME_HEADER_BYTES;
  walk(frame, end, s);
  scannedFrame = frame;
  scannedSchema = s;
}

/**
 * The `space_id` (field 1, last occurrence) of a request frame, after validating the whole
 * message against `s` (default: an unknown method, field 1 only); '' when absent. Throws
 * `MalformedMessageError`. A `stampStore`/`stampConsolidate` of the same frame right after
 * reuses this scan.
 */
export function readSpaceId(frame: Buffer, s: MessageSchema = REQUEST.unknown): string {
  scan(frame, s);
  const spaceId = spaceStart < 0 ? '' : spaceIdOf(frame, spaceStart, spaceEnd);
  // Only a Store or Consolidate is stamped next (reusing this scan); any other request's
  // buffer is let go at once, not kept alive by the module until the next call.
  if (s !== REQUEST.store && s !== REQUEST.consolidate) scannedFrame = null;
  return spaceId;
}

/**
 * The last space ids read, as strings, by their bytes: a direct-mapped cache (slot by an
 * FNV-1a hash of the bytes, the bytes compared before a hit is taken). The same spaces recur
 * call after call, and decoding one (`toString`, a native call and a new string) costs some
 * 100 ns where hashing and comparing ~10 bytes cost ~15. Ids longer than `CACHED_ID_BYTES`
 * are decoded every time. Module scope, as the rest of the reader: one per thread.
 */
const ID_SLOTS = 512; // a power of two
const CACHED_ID_BYTES = 64;
const idBytes = new Uint8Array(ID_SLOTS * CACHED_ID_BYTES);
/** Bytes of the id in each slot; -1: empty. */
const idLengths = new Int16Array(ID_SLOTS).fill(-1);
const idStrings: string[] = new Array<string>(ID_SLOTS).fill('');

/** `frame.toString('utf8', start, end)`, from the cache when the same bytes were read lately. */
function spaceIdOf(frame: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > CACHED_ID_BYTES) return frame.toString('utf8', start, end);
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ frame[i]!, 0x01000193);
  const slot = (h >>> 0) & (ID_SLOTS - 1);
  const at = slot * CACHED_ID_BYTES;
  if (idLengths[slot] === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (idBytes[at + i] !== frame[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return idStrings[slot]!;
  }
  const id = frame.toString('utf8', start, end);
  idBytes.set(frame.subarray(start, end), at);
  idLengths[slot] = n;
  idStrings[slot] = id;
  return id;
}

/** QueryRequest's `space_ids`, in wire order (duplicates kept), after validating it. */
export function readQuerySpaceIds(frame: Buffer): string[] {
  const out: string[] = [];
  scannedFrame = null;
  spaceIds = out;
  try {
    scan(frame, REQUEST.query);
  } finally {
    spaceIds = null;
    scannedFrame = null;
  }
  return out;
}

/** Bytes of `v` as a protobuf varint. */
export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` as a protobuf varint at `at`; returns the offset after it. */
export function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

const MEMORY_ID_TAG = (1 << 3) | 2;
const UUID_BYTES = 36;
const ID_FIELD_BYTES = 2 + UUID_BYTES;
const STORE_MEMORY_TAG = (2 << 3) | 2;
const MEMORY_CREATED_AT_TAG = 5 << 3;
const MEMORY_VERSION_TAG = 6 << 3;
const CONSOLIDATE_VERSION_TAG = 3 << 3;

/**
 * Gives a StoreRequest's Memory what a write needs to converge on every replica, in its wire
 * bytes: `id` = `newId()` when the merged memory has none (or an empty one), `version` when
 * absent or 0, `created_at_ms` = the version's millisecond when absent or 0, appended after
 * the memory's fields (a later occurrence wins). Every attempt, replica and hint then carries
 * one id, one version and one creation time. A memory sent more than once becomes one (see the
 * top of this file); with one memory that lacks nothing, or none, `frame` itself is returned.
 * Throws `MalformedMessageError` for a message the node would not read as the router does.
 */
export function stampStore(frame: Buffer, newId: () => string, version: number): Buffer {
  scan(frame, REQUEST.store);
  if (memCount === 0) return frame;
  const addId = !hasId;
  const addVersion = !hasVersion && version > 0;
  const createdAtMs = Math.floor(version / 1000);
  const addCreatedAt = !hasCreatedAt && createdAtMs > 0;
  if (memCount === 1 && !addId && !addVersion && !addCreatedAt) return frame;
  let id = '';
  if (addId) {
    id = newId();
    if (Buffer.byteLength(id) !== UUID_BYTES)
      throw new RangeError(`newId() must return a UUID, got ${JSON.stringify(id)}`);
  }
  const extra =
    (addId ? ID_FIELD_BYTES : 0) +
    (addVersion ? 1 + varintLength(version) : 0) +
    (addCreatedAt ? 1 + varintLength(createdAtMs) : 0);
  const end = frame.length;
  const newMemLen = memPayloadBytes + extra;
  const outLen = end - FRAME_HEADER_BYTES - memFieldBytes + 1 + varintLength(newMemLen) + newMemLen;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + outLen);
  out[0] = 0;
  writeU32BE(out, 1, outLen);
  let w: number;
  if (memCount === 1) {
    // The memory stays where it was; its tag and length are rewritten (minimally encoded).
    w = FRAME_HEADER_BYTES + frame.copy(out, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, memTagAt);
    out[w++] = STORE_MEMORY_TAG;
    w = writeVarint(out, w, newMemLen);
    w += frame.copy(out, w, memStart, memEnd);
    w = writeStamps(out, w, id, addCreatedAt, createdAtMs, addVersion, version);
    frame.copy(out, w, memEnd, end);
  } else {
    // Several memories: every other field in order, then one memory holding them all.
    w = copyMerged(frame, out, FRAME_HEADER_BYTES, newMemLen);
    writeStamps(out, w, id, addCreatedAt, createdAtMs, addVersion, version);
  }
  scannedFrame = null;
  return out;
}

function writeStamps(
  out: Buffer,
  w: number,
  id: string,
  addCreatedAt: boolean,
  createdAtMs: number,
  addVersion: boolean,
  version: number,
): number {
  if (id !== '') {
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
  return w;
}

/**
 * Copies a validated StoreRequest's fields other than `memory` to `out` at `w`, then one
 * `memory` field of length `memLen` whose payload starts with the memories' payloads in wire
 * order; returns where the payload's remainder (the stamps) goes.
 */
function copyMerged(frame: Buffer, out: Buffer, w: number, memLen: number): number {
  const end = frame.length;
  let m = w + (end - FRAME_HEADER_BYTES - memFieldBytes);
  out[m++] = STORE_MEMORY_TAG;
  m = writeVarint(out, m, memLen);
  pos = FRAME_HEADER_BYTES;
  while (pos < end) {
    const at = pos;
    const tag = readLength(frame, end, '');
    const wire = tag & 7;
    if (wire === 2) {
      const len = readLength(frame, end, '');
      if (tag === STORE_MEMORY_TAG) {
        m += frame.copy(out, m, pos, pos + len);
        pos += len;
        continue;
      }
      pos += len;
    } else if (wire === 0) {
      while (frame[pos++]! >= 0x80);
    } else pos += wire === 1 ? 8 : 4;
    w += frame.copy(out, w, at, pos);
  }
  return m;
}

/**
 * Gives a ConsolidateRequest its `version` (field 3) when it has none (absent or 0, last
 * occurrence): the version the node writes the consolidation's merges and tombstones with, so
 * replicas repaired from it converge. Returns `frame` itself when it has one. Throws
 * `MalformedMessageError` like `readSpaceId`.
 */
export function stampConsolidate(frame: Buffer, version: number): Buffer {
  scan(frame, REQUEST.consolidate);
  if (hasTopVersion || version <= 0) return frame;
  const len = frame.length - FRAME_HEADER_BYTES;
  const extra = 1 + varintLength(version);
  const out = Buffer.allocUnsafe(frame.length + extra);
  frame.copy(out, 0);
  out[0] = 0;
  writeU32BE(out, 1, len + extra);
  out[frame.length] = CONSOLIDATE_VERSION_TAG;
  writeVarint(out, frame.length + 1, version);
  scannedFrame = null;
  return out;
}
