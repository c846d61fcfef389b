import type { FileHandle } from 'node:fs/promises';
import { readFrame } from './hint-format.js';

/** Bytes read per step when scanning a log; a longer frame is read whole. */
export const SCAN_CHUNK_BYTES = 1024 * 1024; // 1 MiB

/** Writes all of `data` at `position` (a positional write may be short). */
export async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Fills `buf` from `position`; returns how many bytes there were (fewer at end of file). */
export async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Walks the frames of a log of `size` bytes in order, a chunk at a time, and stops at the first
 * one that is short, corrupt, or that `visit` refuses. Returns the bytes of the frames visited
 * and accepted: where the valid log ends. `payload` is only valid during the call.
 */
export async function scanFrames(
  fh: FileHandle,
  size: number,
  visit: (payload: Buffer, offset: number, frameBytes: number) => boolean,
): Promise<number> {
  let buf = Buffer.alloc(0);
  let bufStart = 0;
  let offset = 0;
  while (offset < size) {
    let frame = readFrame(buf, offset - bufStart, size - offset);
    if (frame.status === 'short') {
      const want = Math.min(size - offset, Math.max(SCAN_CHUNK_BYTES, frame.needBytes));
      buf = Buffer.allocUnsafe(want);
      buf = buf.subarray(0, await readFully(fh, buf, offset));
      bufStart = offset;
      frame = readFrame(buf, 0, size - offset);
    }
    if (frame.status !== 'ok' || !visit(frame.payload, offset, frame.frameBytes)) break;
    offset += frame.frameBytes;
  }
  return offset;
}

/** The whole file behind `fh`. */
export async function readAll(fh: FileHandle): Promise<Buffer> {
  const buf = Buffer.allocUnsafe((await fh.stat()).size);
  return buf.subarray(0, await readFully(fh, buf, 0));
}

/** Copies bytes [start, end) of `src` to `dst` at `at`, a chunk at a time. */
export async function copyRange(
  src: FileHandle,
  start: number,
  end: number,
  dst: FileHandle,
  at: number,
): Promise<void> {
  const chunk = Buffer.allocUnsafe(Math.max(1, Math.min(SCAN_CHUNK_BYTES, end - start)));
  for (let pos = start; pos < end; ) {
    const part = chunk.subarray(0, Math.min(chunk.length, end - pos));
    if ((await readFully(src, part, pos)) < part.length) throw new Error('file ends early');
    await writeFully(dst, part, at + pos - start);
    pos += part.length;
  }
}
