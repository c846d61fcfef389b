import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Memory, Tombstone } from '@engram/proto';
import { StorageFailedError } from './errors.js';

/**
 * Frame layout of the append-only log, one frame per record:
 *   [0..4)  payload length, u32 LE
 *   [4..8)  CRC-32 of the payload, u32 LE
 *   [8..)   payload: UTF-8 JSON of a LogRecord
 * A frame whose header or payload is short, whose length exceeds MAX_RECORD_BYTES, or
 * whose checksum or JSON is bad ends the log: it can only be the torn tail of a write that
 * was never acknowledged (acknowledgement waits for fdatasync), so replay truncates there.
 */
const LENGTH_OFFSET = 0;
const CRC_OFFSET = 4;
export const FRAME_HEADER_BYTES = 8;
export const MAX_RECORD_BYTES = 64 * 1024 * 1024; // 64 MiB
export const LOG_FILE_NAME = 'memories.log';

/** A memory as logged: logs written before versions existed have none (replayed as 0). */
export type LoggedMemory = Omit<Memory, 'version'> & { version?: number };

/**
 * One durable change to a space (`s`):
 * - `store`: one Store (its version stamped when the client sent 0);
 * - `apply`: last-write-wins writes of an ApplyEntries, or of a Consolidate (its raised kept
 *   memories and the tombstones `d` of what it merged, all at its version);
 * - `merge`: a Consolidate of a log written before versions; replayed with the rules of then,
 *   never written any more.
 */
export type LogRecord =
  | { t: 'store'; s: string; m: LoggedMemory }
  | { t: 'apply'; s: string; m: Memory[]; d: Tombstone[] }
  | { t: 'merge'; s: string; g: { kept: LoggedMemory; removed: string[] }[] };

export function encodeFrame(record: LogRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record));
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, LENGTH_OFFSET);
  frame.writeUInt32LE(crc32(payload), CRC_OFFSET);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export interface ReplayResult {
  records: LogRecord[];
  /** Bytes of valid frames; the file is truncated to this length. */
  validBytes: number;
  /** Bytes dropped from a torn or corrupt tail. */
  droppedBytes: number;
}

export function decodeFrames(buf: Buffer): ReplayResult {
  const records: LogRecord[] = [];
  let off = 0;
  while (off + FRAME_HEADER_BYTES <= buf.length) {
    const len = buf.readUInt32LE(off + LENGTH_OFFSET);
    if (len > MAX_RECORD_BYTES || off + FRAME_HEADER_BYTES + len > buf.length) break;
    const payload = buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
    if (crc32(payload) !== buf.readUInt32LE(off + CRC_OFFSET)) break;
    let record: LogRecord;
    try {
      record = JSON.parse(payload.toString('utf8')) as LogRecord;
    } catch {
      break;
    }
    records.push(record);
    off += FRAME_HEADER_BYTES + len;
  }
  return { records, validBytes: off, droppedBytes: buf.length - off };
}

interface Pending {
  frame: Buffer;
  apply: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Append-only, fdatasync'ed log with group commit: appends that arrive while a write is in
 * flight are written and synced together in the next batch. Each record's `apply` runs
 * after its batch is durable and in log order, so in-memory state always equals a replay.
 */
export class AppendLog {
  readonly path: string;
  readonly #fh: FileHandle;
  #queue: Pending[] = [];
  #flushing = false;
  #failed: StorageFailedError | undefined;
  #idle: (() => void) | undefined;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /** Reads and repairs (truncates a torn tail of) the log in `dir`, then opens it for appends. */
  static async open(dir: string): Promise<{ log: AppendLog; replay: ReplayResult }> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, LOG_FILE_NAME);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      buf = Buffer.alloc(0);
    }
    const replay = decodeFrames(buf);
    if (replay.droppedBytes > 0) {
      const fd = openSync(path, 'r+');
      try {
        ftruncateSync(fd, replay.validBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    const fh = await open(path, 'a');
    return { log: new AppendLog(path, fh), replay };
  }

  get failed(): boolean {
    return this.#failed !== undefined;
  }

  /** Resolves once the record is on disk and `apply` has run. */
  append(record: LogRecord, apply: () => void): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const frame = encodeFrame(record);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ frame, apply, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      try {
        if (this.#failed !== undefined) throw this.#failed;
        const data =
          batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((p) => p.frame));
        let written = 0;
        while (written < data.length) {
          const { bytesWritten } = await this.#fh.write(data, written);
          written += bytesWritten;
        }
        await this.#fh.datasync();
      } catch (err) {
        // A partial write may have left a torn frame; appending after it would hide later
        // records from replay, so the log refuses all further writes.
        this.#failed ??= new StorageFailedError(`append to ${this.path} failed`, err);
        for (const p of batch) p.reject(this.#failed);
        continue;
      }
      for (const p of batch) {
        p.apply();
        p.resolve();
      }
    }
    this.#flushing = false;
    this.#idle?.();
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    if (this.#flushing) await new Promise<void>((r) => (this.#idle = r));
    await this.#fh.close();
  }
}
