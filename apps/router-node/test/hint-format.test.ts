import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FILE_BYTES,
  CHECKPOINT_SLOT_STRIDE,
  decodeCheckpoint,
  decodeHeader,
  decodeHint,
  decodeHintMeta,
  encodeCheckpoint,
  encodeHeader,
  encodeHint,
  FRAME_HEADER_BYTES,
  fileStem,
  hintFrameBytes,
  readFrame,
} from '../src/internal/hint-format.js';

const hint = {
  nodeId: 'n1',
  spaceId: 'alice/episodic',
  path: '/engram.v1.MemoryService/Store',
  body: Buffer.from([0, 0, 0, 0, 3, 10, 1, 65]),
  createdAtMs: 1_700_000_000_123,
};

function checkpointFile(...slots: (number | undefined)[]): Buffer {
  const file = Buffer.alloc(CHECKPOINT_FILE_BYTES);
  slots.forEach((seq, i) => {
    if (seq !== undefined) encodeCheckpoint(seq).copy(file, i * CHECKPOINT_SLOT_STRIDE);
  });
  return file;
}

describe('hint format', () => {
  it('round-trips a hint and sizes it without encoding', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 2 ** 50 }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        (spaceId, path, body, createdAtMs, seq) => {
          const h = { nodeId: 'x', spaceId, path, body, createdAtMs };
          // lone surrogates are refused by the store before encoding
          fc.pre(Buffer.from(spaceId).toString() === spaceId);
          fc.pre(Buffer.from(path).toString() === path);
          const frame = encodeHint(h, seq);
          expect(frame.length).toBe(hintFrameBytes(h));
          const read = readFrame(frame, 0, frame.length);
          if (read.status !== 'ok') throw new Error(read.status);
          expect(read.frameBytes).toBe(frame.length);
          expect(decodeHintMeta(read.payload)).toEqual({ seq, createdAtMs });
          expect(decodeHint('x', read.payload)).toEqual({ ...h, body: Buffer.from(body), seq });
        },
      ),
    );
  });

  it('finds every single-byte change and every cut of a frame', () => {
    const frame = encodeHint(hint, 7);
    for (let i = 0; i < frame.length; i++) {
      const bad = Buffer.from(frame);
      bad[i]! ^= 0x40;
      expect(readFrame(bad, 0, bad.length).status, `byte ${i}`).toBe('corrupt');
      const cut = frame.subarray(0, i);
      expect(readFrame(cut, 0, cut.length).status, `cut at ${i}`).toBe('corrupt');
    }
  });

  it('asks for more bytes when the frame runs past the buffer but not past the file', () => {
    const frame = encodeHint(hint, 1);
    expect(readFrame(frame.subarray(0, 4), 0, frame.length)).toEqual({
      status: 'short',
      needBytes: FRAME_HEADER_BYTES,
    });
    expect(readFrame(frame.subarray(0, 20), 0, frame.length)).toEqual({
      status: 'short',
      needBytes: frame.length,
    });
  });

  it('keeps the node id in the header, so hashed file names can be claimed', () => {
    for (const id of ['n1', '', '../..', 'ü日本', 'x'.repeat(500)]) {
      const frame = encodeHeader(id);
      const read = readFrame(frame, 0, frame.length);
      if (read.status !== 'ok') throw new Error(read.status);
      expect(decodeHeader(read.payload)).toBe(id);
      expect(decodeHintMeta(read.payload)).toBeUndefined();
    }
  });

  it('names files with [a-z0-9-] only: hex while short, a hash when long', () => {
    expect(fileStem('n1')).toBe('n-6e31');
    expect(fileStem('')).toBe('n-');
    expect(fileStem('../a')).toBe('n-2e2e2f61');
    const long = 'é'.repeat(101);
    expect(fileStem(long)).toBe(`h-${createHash('sha256').update(long).digest('hex')}`);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (id) => {
        expect(fileStem(id)).toMatch(/^(n-[0-9a-f]{0,200}|h-[0-9a-f]{64})$/);
      }),
    );
  });

  it('reads the checkpoint slot with the larger seq and writes the other next', () => {
    expect(decodeCheckpoint(checkpointFile(5, 9))).toEqual({ ackedSeq: 9, nextSlot: 0 });
    expect(decodeCheckpoint(checkpointFile(11, 9))).toEqual({ ackedSeq: 11, nextSlot: 1 });
    expect(decodeCheckpoint(checkpointFile(3))).toEqual({ ackedSeq: 3, nextSlot: 1 });
  });

  it('falls back to the other slot when one is torn, and to 0 when both are', () => {
    const torn = checkpointFile(5, 9);
    torn[CHECKPOINT_SLOT_STRIDE + 6]! ^= 1;
    expect(decodeCheckpoint(torn)).toEqual({ ackedSeq: 5, nextSlot: 1 });
    torn[2]! ^= 1;
    expect(decodeCheckpoint(torn).ackedSeq).toBe(0);
    expect(decodeCheckpoint(Buffer.alloc(0)).ackedSeq).toBe(0);
    expect(decodeCheckpoint(Buffer.alloc(CHECKPOINT_FILE_BYTES)).ackedSeq).toBe(0);
  });
});
