import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * On-disk format of the hint store, pure (no I/O) so that it is tested byte by byte.
 *
 * Each node has its own append-only log, `<name>.log`, a sequence of frames:
 *   [0..4)  payload length, u32 LE
 *   [4..8)  CRC-32 of the length field and the payload, u32 LE
 *   [8..)   payload; its first byte is the record kind (it doubles as the format version)
 * The first frame is a header (kind 0) holding the node id, so that a file can be claimed by
 * its node even when its name is a hash. Every later frame is a hint (kind 1):
 *   [0]       kind = 1
 *   [1..9)    seq, u64 LE: per node, strictly increasing along the log
 *   [9..17)   createdAtMs, f64 LE
 *   [17..21)  spaceId byte length n, u32 LE
 *   [21..25)  path byte length m, u32 LE
 *   [25..)    spaceId (UTF-8, n bytes), path (UTF-8, m bytes), body (the rest)
 * A frame that is short, whose checksum fails, whose kind is unknown or whose seq does not
 * increase ends the log: only a write that was never acknowledged (appends resolve after
 * fdatasync) can leave one at the tail, so recovery truncates there.
 *
 * Acknowledgement lives beside the log, in `<name>.ack`: two checkpoint slots, each
 *   [0..4)   magic 'EHAK', u32 LE
 *   [4..12)  ackedSeq, u64 LE: every hint with seq <= ackedSeq is acknowledged
 *   [12..16) CRC-32 of [0..12), u32 LE
 * Writes alternate between the slots, which sit in different 512-byte sectors, so a torn
 * write damages at most the slot being written and the other still holds the previous
 * acknowledgement (which had resolved). Readers take the valid slot with the larger ackedSeq.
 * Acknowledging by seq rather than by byte offset is what lets compaction rewrite the log
 * without touching the checkpoint: a stale checkpoint names seqs that are no longer there.
 */
export const FRAME_LENGTH_OFFSET = 0;
export const FRAME_CRC_OFFSET = 4;
export const FRAME_HEADER_BYTES = 8;

export const RECORD_KIND = Object.freeze({ header: 0, hint: 1 } as const);

const HINT_KIND_OFFSET = 0;
const HINT_SEQ_OFFSET = 1;
const HINT_CREATED_OFFSET = 9;
const HINT_SPACE_LENGTH_OFFSET = 17;
const HINT_PATH_LENGTH_OFFSET = 21;
const HINT_FIXED_BYTES = 25;

/** Bytes a hint frame takes beyond its spaceId, path and body. */
export const HINT_OVERHEAD_BYTES = FRAME_HEADER_BYTES + HINT_FIXED_BYTES;

const SLOT_MAGIC_OFFSET = 0;
const SLOT_SEQ_OFFSET = 4;
const SLOT_CRC_OFFSET = 12;
const SLOT_BYTES = 16;
const SLOT_MAGIC = 0x4b414845; // 'EHAK' read as u32 LE
/** Slot i starts at i * CHECKPOINT_SLOT_STRIDE: one sector each. */
export const CHECKPOINT_SLOT_STRIDE = 512;
export const CHECKPOINT_SLOTS = 2;
export const CHECKPOINT_FILE_BYTES = CHECKPOINT_SLOT_STRIDE * CHECKPOINT_SLOTS;

export const LOG_SUFFIX = '.log';
export const ACK_SUFFIX = '.ack';
export const TMP_SUFFIX = '.tmp';
/** Longest hex name kept readable; longer ids are named by hash (NAME_MAX is 255 bytes). */
const MAX_HEX_NAME_CHARS = 200;

/** One hint: the request bytes a replica missed, to replay when it is back. */
export interface Hint {
  /** The replica the request is for; any string. */
  readonly nodeId: string;
  readonly spaceId: string;
  /** gRPC method path, e.g. `/engram.v1.MemoryService/Store`. */
  readonly path: string;
  /**
   * The gRPC message frame(s), exactly as they go to the node. A Uint8Array is enough: a
   * Buffer posted from a worker thread arrives as one.
   */
  readonly body: Uint8Array;
  /** Wall-clock ms since the epoch; `expire` measures age from it. */
  readonly createdAtMs: number;
}

/** A hint read back from the store: `seq` orders a node's hints and names them to `ackThrough`. */
export interface StoredHint extends Hint {
  readonly body: Buffer;
  readonly seq: number;
}

/**
 * Safe file stem of a node id: `n-<hex of UTF-8>` while that is short, else `h-<sha256>`.
 * Both are [a-z0-9-] only, so no id (`..`, `a/b`, empty) escapes or aliases the directory.
 */
export function fileStem(nodeId: string): string {
  const hex = Buffer.from(nodeId, 'utf8').toString('hex');
  if (hex.length <= MAX_HEX_NAME_CHARS) return `n-${hex}`;
  return `h-${createHash('sha256').update(nodeId, 'utf8').digest('hex')}`;
}

function frameCrc(frame: Buffer, payloadLength: number): number {
  const lengthField = frame.subarray(FRAME_LENGTH_OFFSET, FRAME_LENGTH_OFFSET + 4);
  const payload = frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadLength);
  return crc32(payload, crc32(lengthField));
}

function sealFrame(frame: Buffer): Buffer {
  const payloadLength = frame.length - FRAME_HEADER_BYTES;
  frame.writeUInt32LE(payloadLength, FRAME_LENGTH_OFFSET);
  frame.writeUInt32LE(frameCrc(frame, payloadLength), FRAME_CRC_OFFSET);
  return frame;
}

export function encodeHeader(nodeId: string): Buffer {
  const id = Buffer.from(nodeId, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + id.length);
  frame.writeUInt8(RECORD_KIND.header, FRAME_HEADER_BYTES);
  id.copy(frame, FRAME_HEADER_BYTES + 1);
  return sealFrame(frame);
}

/** Byte length of the frame `encodeHint` would produce, without encoding it. */
export function hintFrameBytes(hint: Hint): number {
  return (
    HINT_OVERHEAD_BYTES +
    Buffer.byteLength(hint.spaceId, 'utf8') +
    Buffer.byteLength(hint.path, 'utf8') +
    hint.body.length
  );
}

export function encodeHint(hint: Hint, seq: number): Buffer {
  const space = Buffer.from(hint.spaceId, 'utf8');
  const path = Buffer.from(hint.path, 'utf8');
  const frame = Buffer.allocUnsafe(
    HINT_OVERHEAD_BYTES + space.length + path.length + hint.body.length,
  );
  const p = FRAME_HEADER_BYTES;
  frame.writeUInt8(RECORD_KIND.hint, p + HINT_KIND_OFFSET);
  frame.writeBigUInt64LE(BigInt(seq), p + HINT_SEQ_OFFSET);
  frame.writeDoubleLE(hint.createdAtMs, p + HINT_CREATED_OFFSET);
  frame.writeUInt32LE(space.length, p + HINT_SPACE_LENGTH_OFFSET);
  frame.writeUInt32LE(path.length, p + HINT_PATH_LENGTH_OFFSET);
  let at = p + HINT_FIXED_BYTES;
  at += space.copy(frame, at);
  at += path.copy(frame, at);
  frame.set(hint.body, at);
  return sealFrame(frame);
}

export type FrameRead =
  | { readonly status: 'ok'; readonly payload: Buffer; readonly frameBytes: number }
  /** Fewer bytes than the frame claims: more may follow (a chunk boundary) or the log is torn. */
  | { readonly status: 'short'; readonly needBytes: number }
  | { readonly status: 'corrupt' };

/**
 * Reads the frame at `offset` of `buf`. `remaining` is how many bytes the log holds from
 * `offset` on (at least what `buf` holds): a length beyond it is corruption, not a short read,
 * so garbage lengths never make the reader allocate more than the file.
 */
export function readFrame(buf: Buffer, offset: number, remaining: number): FrameRead {
  const available = buf.length - offset;
  if (remaining < FRAME_HEADER_BYTES) return { status: 'corrupt' };
  if (available < FRAME_HEADER_BYTES) return { status: 'short', needBytes: FRAME_HEADER_BYTES };
  const length = buf.readUInt32LE(offset + FRAME_LENGTH_OFFSET);
  const frameBytes = FRAME_HEADER_BYTES + length;
  if (length === 0 || frameBytes > remaining) return { status: 'corrupt' };
  if (available < frameBytes) return { status: 'short', needBytes: frameBytes };
  const frame = buf.subarray(offset, offset + frameBytes);
  if (frameCrc(frame, length) !== frame.readUInt32LE(FRAME_CRC_OFFSET)) {
    return { status: 'corrupt' };
  }
  return { status: 'ok', payload: frame.subarray(FRAME_HEADER_BYTES), frameBytes };
}

/** The node id of a header payload, or undefined when it is not a header. */
export function decodeHeader(payload: Buffer): string | undefined {
  if (payload.readUInt8(0) !== RECORD_KIND.header) return undefined;
  const id = payload.subarray(1);
  const nodeId = id.toString('utf8');
  // A lone surrogate does not survive UTF-8; such an id is refused by append, so a header
  // that does not round-trip was not written by this code.
  return Buffer.from(nodeId, 'utf8').equals(id) ? nodeId : undefined;
}

/** The seq and createdAtMs of a hint payload (what recovery indexes), or undefined. */
export function decodeHintMeta(payload: Buffer): { seq: number; createdAtMs: number } | undefined {
  if (
    payload.length < HINT_FIXED_BYTES ||
    payload.readUInt8(HINT_KIND_OFFSET) !== RECORD_KIND.hint
  ) {
    return undefined;
  }
  const seq = Number(payload.readBigUInt64LE(HINT_SEQ_OFFSET));
  const spaceLength = payload.readUInt32LE(HINT_SPACE_LENGTH_OFFSET);
  const pathLength = payload.readUInt32LE(HINT_PATH_LENGTH_OFFSET);
  if (HINT_FIXED_BYTES + spaceLength + pathLength > payload.length) return undefined;
  return { seq, createdAtMs: payload.readDoubleLE(HINT_CREATED_OFFSET) };
}

/** A whole hint from a payload that `decodeHintMeta` accepted. The body is copied out. */
export function decodeHint(nodeId: string, payload: Buffer): StoredHint {
  const spaceLength = payload.readUInt32LE(HINT_SPACE_LENGTH_OFFSET);
  const pathLength = payload.readUInt32LE(HINT_PATH_LENGTH_OFFSET);
  const spaceStart = HINT_FIXED_BYTES;
  const pathStart = spaceStart + spaceLength;
  const bodyStart = pathStart + pathLength;
  return {
    nodeId,
    seq: Number(payload.readBigUInt64LE(HINT_SEQ_OFFSET)),
    createdAtMs: payload.readDoubleLE(HINT_CREATED_OFFSET),
    spaceId: payload.toString('utf8', spaceStart, pathStart),
    path: payload.toString('utf8', pathStart, bodyStart),
    body: Buffer.from(payload.subarray(bodyStart)),
  };
}

/** One checkpoint slot, to be written at `slot * CHECKPOINT_SLOT_STRIDE`. */
export function encodeCheckpoint(ackedSeq: number): Buffer {
  const slot = Buffer.alloc(SLOT_BYTES);
  slot.writeUInt32LE(SLOT_MAGIC, SLOT_MAGIC_OFFSET);
  slot.writeBigUInt64LE(BigInt(ackedSeq), SLOT_SEQ_OFFSET);
  slot.writeUInt32LE(crc32(slot.subarray(0, SLOT_CRC_OFFSET)), SLOT_CRC_OFFSET);
  return slot;
}

/**
 * The acknowledged seq of a checkpoint file's bytes and the slot to write next (the other
 * one). No valid slot reads as 0: every hint in the log is delivered again, which is the
 * safe side (nodes apply Stores last-write-wins by version, so a repeat changes nothing).
 */
export function decodeCheckpoint(file: Buffer): { ackedSeq: number; nextSlot: number } {
  let best = { ackedSeq: 0, nextSlot: 0 };
  let found = false;
  for (let i = 0; i < CHECKPOINT_SLOTS; i++) {
    const at = i * CHECKPOINT_SLOT_STRIDE;
    if (file.length < at + SLOT_BYTES) continue;
    const slot = file.subarray(at, at + SLOT_BYTES);
    if (slot.readUInt32LE(SLOT_MAGIC_OFFSET) !== SLOT_MAGIC) continue;
    if (crc32(slot.subarray(0, SLOT_CRC_OFFSET)) !== slot.readUInt32LE(SLOT_CRC_OFFSET)) continue;
    const ackedSeq = Number(slot.readBigUInt64LE(SLOT_SEQ_OFFSET));
    if (!found || ackedSeq > best.ackedSeq) {
      best = { ackedSeq, nextSlot: (i + 1) % CHECKPOINT_SLOTS };
      found = true;
    }
  }
  return best;
}
