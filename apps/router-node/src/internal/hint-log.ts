import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@engram/common';
import { CheckpointFile } from './hint-checkpoint.js';
import {
  ACK_SUFFIX,
  decodeHint,
  decodeHintMeta,
  encodeHeader,
  encodeHint,
  fileStem,
  type Hint,
  LOG_SUFFIX,
  readFrame,
  type StoredHint,
  TMP_SUFFIX,
} from './hint-format.js';
import { copyRange, readFully, writeFully } from './hint-io.js';
import type { IndexEntry, RecoveredLog } from './hint-recovery.js';
import { HintStoreError } from './hint-store-error.js';

/** The index sheds its acknowledged head once that is this long and half of it. */
const INDEX_TRIM_MIN = 1024; // entries

/** What a node log needs from its store. */
export interface LogEnv {
  readonly dir: string;
  /** Compact once the acknowledged prefix passes this and the live suffix (see #dropThrough). */
  readonly compactAtBytes: number;
  /** fsync of the store's directory: makes a create, rename or unlink durable. */
  syncDir(): Promise<void>;
  /** Counts one fdatasync (for metrics and the group-commit test). */
  countSync(): void;
}

interface Queued {
  readonly frame: Buffer;
  readonly seq: number;
  readonly createdAtMs: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * One node's hints: its log file, its checkpoint file and the in-memory index of the hints
 * not yet acknowledged (bodies stay on disk: a down node may collect 64 MiB of them).
 *
 * Every operation that touches the files runs on one promise chain per node, so a flush, an
 * acknowledgement, a compaction and a peek never see each other half done. Group commit falls
 * out of it: appends join the batch that is waiting on the chain, and a batch is taken when its
 * turn comes, so everything appended while the previous sync ran shares the next one.
 *
 * The index changes only after the disk did: a hint is listed once its batch is synced, and is
 * removed once its acknowledgement is. After an I/O error whose effect on disk is unknown (a
 * failed sync, rename or unlink) the node refuses everything with the first error; what is on
 * disk is recovered by the next open. A failed write is rolled back by truncating to the
 * synced size, and only its batch fails.
 */
export class NodeLog {
  readonly nodeId: string;
  readonly #env: LogEnv;
  readonly #logPath: string;
  readonly #checkpoint: CheckpointFile;
  #fh: FileHandle | undefined;
  /** Bytes of the log that are synced (where the next batch is written). */
  #size = 0;
  /** Bytes of the header frame: where the acknowledged prefix starts. */
  #dataStart = 0;
  #entries: IndexEntry[] = [];
  #head = 0;
  #liveBytes = 0;
  #lastDurableSeq = 0;
  #nextSeq = 1;
  #batch: Queued[] | undefined;
  #queuedBytes = 0;
  #failed: HintStoreError | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  /** A node without files yet, or the one `recoverLog` found. */
  constructor(env: LogEnv, nodeId: string, recovered?: RecoveredLog) {
    this.#env = env;
    this.nodeId = nodeId;
    const stem = fileStem(nodeId);
    this.#logPath = join(env.dir, stem + LOG_SUFFIX);
    const files = recovered?.files;
    this.#checkpoint = new CheckpointFile(
      join(env.dir, stem + ACK_SUFFIX),
      files?.ackFh,
      files?.nextSlot,
    );
    if (recovered === undefined) return;
    this.#entries = recovered.entries;
    this.#liveBytes = recovered.liveBytes;
    this.#lastDurableSeq = recovered.lastSeq;
    this.#nextSeq = recovered.lastSeq + 1;
    if (files === undefined) return;
    this.#fh = files.fh;
    this.#size = files.size;
    this.#dataStart = files.dataStart;
  }

  get pendingCount(): number {
    return this.#entries.length - this.#head;
  }

  get pendingBytes(): number {
    return this.#liveBytes;
  }

  /** Pending plus queued bytes: what `maxBytesPerNode` bounds. */
  get committedBytes(): number {
    return this.#liveBytes + this.#queuedBytes;
  }

  /** Queues `hint` for the next group commit; resolves once it is synced. */
  append(hint: Hint): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const seq = this.#nextSeq++;
    const frame = encodeHint(hint, seq);
    return new Promise<void>((resolve, reject) => {
      if (this.#batch === undefined) {
        this.#batch = [];
        // Not #run: a batch must be settled (rejected) even when the node failed meanwhile.
        void this.#chain(() => this.#flush());
      }
      this.#batch.push({ frame, seq, createdAtMs: hint.createdAtMs, resolve, reject });
      this.#queuedBytes += frame.length;
    });
  }

  /** The oldest `max` pending hints, in append order, read from disk. */
  peek(max: number): Promise<StoredHint[]> {
    return this.#run(() => this.#peek(max));
  }

  /** Acknowledges the first `count` pending hints (counted when the chain reaches it). */
  ackCount(count: number): Promise<number> {
    return this.#run(() => {
      if (count === 0) return 0;
      const last = this.#entries[this.#head + count - 1];
      if (last === undefined) {
        throw new InvalidArgumentError(
          'count',
          count,
          `an integer in [0, ${this.pendingCount}] (the pending hints)`,
        );
      }
      return this.#dropThrough(last.seq);
    });
  }

  /** Acknowledges every pending hint with `seq <= through`; returns how many there were. */
  ackThrough(through: number): Promise<number> {
    return this.#run(() => {
      if (through > this.#lastDurableSeq) {
        throw new InvalidArgumentError(
          'seq',
          through,
          `at most ${this.#lastDurableSeq} (the last stored hint)`,
        );
      }
      return this.#dropThrough(through);
    });
  }

  /** Drops the oldest hints created before `cutoffMs` (a prefix: see `HintStore.expire`). */
  expire(cutoffMs: number): Promise<number> {
    return this.#run(() => {
      let i = this.#head;
      while (i < this.#entries.length && this.#entries[i]!.createdAtMs < cutoffMs) i++;
      if (i === this.#head) return 0;
      return this.#dropThrough(this.#entries[i - 1]!.seq);
    });
  }

  /**
   * Waits for queued work, then closes the files. Close errors are ignored: everything
   * acknowledged was synced before, so closing cannot lose it.
   */
  close(): Promise<void> {
    return this.#chain(async () => {
      const fh = this.#fh;
      this.#fh = undefined;
      await Promise.all([fh?.close(), this.#checkpoint.close()].map((p) => p?.catch(() => {})));
    });
  }

  #chain<T>(task: () => T | Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  #run<T>(task: () => T | Promise<T>): Promise<T> {
    return this.#chain(() => {
      if (this.#failed !== undefined) throw this.#failed;
      return task();
    });
  }

  #fail(op: string, cause: unknown): HintStoreError {
    this.#failed ??= new HintStoreError(
      'HintStoreFailed',
      `${op} of the hints of node ${JSON.stringify(this.nodeId)} failed`,
      this.nodeId,
      { cause },
    );
    return this.#failed;
  }

  async #flush(): Promise<void> {
    const batch = this.#batch!;
    this.#batch = undefined;
    const batchBytes = batch.reduce((n, q) => n + q.frame.length, 0);
    this.#queuedBytes -= batchBytes;
    if (this.#failed !== undefined) {
      for (const q of batch) q.reject(this.#failed);
      return;
    }
    const created = this.#fh === undefined;
    const frames = batch.map((q) => q.frame);
    if (created) frames.unshift(encodeHeader(this.nodeId));
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    const start = created ? 0 : this.#size;
    try {
      // 'w+' only ever replaces a file this log removed itself (recovery loaded the rest).
      this.#fh ??= await open(this.#logPath, 'w+');
      await writeFully(this.#fh, data, start);
    } catch (err) {
      const error = await this.#rollBack(err, created);
      for (const q of batch) q.reject(error);
      return;
    }
    try {
      await this.#fh.datasync();
      this.#env.countSync();
      if (created) await this.#env.syncDir();
    } catch (err) {
      const error = this.#fail('sync', err);
      for (const q of batch) q.reject(error);
      return;
    }
    if (created) {
      this.#dataStart = data.length - batchBytes;
      this.#size = this.#dataStart;
    }
    for (const q of batch) {
      this.#entries.push({
        seq: q.seq,
        offset: this.#size,
        bytes: q.frame.length,
        createdAtMs: q.createdAtMs,
      });
      this.#size += q.frame.length;
      this.#liveBytes += q.frame.length;
      this.#lastDurableSeq = q.seq;
    }
    for (const q of batch) q.resolve();
  }

  /** After a failed write: cut the log back to its synced size so later frames stay readable. */
  async #rollBack(cause: unknown, created: boolean): Promise<HintStoreError> {
    const error = new HintStoreError(
      'HintStoreFailed',
      `append to the hints of node ${JSON.stringify(this.nodeId)} failed`,
      this.nodeId,
      { cause },
    );
    try {
      if (created) {
        await this.#fh?.close();
        this.#fh = undefined;
        await unlink(this.#logPath).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
      } else {
        await this.#fh!.truncate(this.#size);
      }
    } catch (err) {
      return this.#fail('roll-back of an append', err);
    }
    return error;
  }

  async #peek(max: number): Promise<StoredHint[]> {
    const n = Math.min(max, this.pendingCount);
    if (n === 0) return [];
    const first = this.#entries[this.#head]!;
    const last = this.#entries[this.#head + n - 1]!;
    const buf = Buffer.allocUnsafe(last.offset + last.bytes - first.offset);
    try {
      await readFully(this.#fh!, buf, first.offset);
    } catch (err) {
      throw this.#fail('read', err);
    }
    const hints: StoredHint[] = [];
    for (let i = 0; i < n; i++) {
      const entry = this.#entries[this.#head + i]!;
      const at = entry.offset - first.offset;
      const frame = readFrame(buf, at, entry.bytes);
      const meta = frame.status === 'ok' ? decodeHintMeta(frame.payload) : undefined;
      if (frame.status !== 'ok' || meta?.seq !== entry.seq) {
        // Bits changed on disk after they were synced and checked: the disk is failing.
        throw this.#fail('read', new Error(`hint ${entry.seq} no longer matches its checksum`));
      }
      hints.push(decodeHint(this.nodeId, frame.payload));
    }
    return hints;
  }

  /**
   * Durably acknowledges every pending hint with seq <= `through`, then forgets them. The
   * cheapest durable form wins: removing the files when nothing is left, compacting when the
   * acknowledged prefix has grown past both `compactAtBytes` and the live suffix (so copying
   * costs no more than what it frees), else one checkpoint slot.
   */
  async #dropThrough(through: number): Promise<number> {
    let newHead = this.#head;
    let freed = 0;
    while (newHead < this.#entries.length && this.#entries[newHead]!.seq <= through) {
      freed += this.#entries[newHead]!.bytes;
      newHead++;
    }
    const count = newHead - this.#head;
    if (count === 0) return 0;
    const prefixAfter = (this.#entries[newHead]?.offset ?? this.#size) - this.#dataStart;
    try {
      if (newHead === this.#entries.length && this.#batch === undefined) {
        await this.#removeFiles();
        this.#entries = [];
        this.#head = 0;
      } else if (
        prefixAfter >= this.#env.compactAtBytes &&
        prefixAfter >= this.#liveBytes - freed
      ) {
        await this.#compact(newHead);
      } else {
        const seq = this.#entries[newHead - 1]!.seq;
        await this.#checkpoint.write(seq, this.#env.countSync, this.#env.syncDir);
        this.#head = newHead;
        if (this.#head >= INDEX_TRIM_MIN && this.#head * 2 >= this.#entries.length) {
          this.#entries = this.#entries.slice(this.#head);
          this.#head = 0;
        }
      }
    } catch (err) {
      throw this.#fail('acknowledgement', err);
    }
    this.#liveBytes -= freed;
    return count;
  }

  async #removeFiles(): Promise<void> {
    await unlink(this.#logPath);
    // Synced before the checkpoint goes: a crash in between must not leave the log without it.
    await this.#env.syncDir();
    await this.#fh!.close();
    this.#fh = undefined;
    this.#size = 0;
    await this.#checkpoint.remove();
  }

  /**
   * Copies the header and the hints from `newHead` on to `<stem>.log.tmp`, syncs it and
   * renames it over the log. A crash before the rename leaves the old log (and the old
   * checkpoint, so these hints come again: the acknowledgement had not resolved); after it,
   * the new log holds only hints past every checkpoint, so the old one still reads right.
   */
  async #compact(newHead: number): Promise<void> {
    const from = this.#entries[newHead]?.offset ?? this.#size;
    const tmpPath = this.#logPath + TMP_SUFFIX;
    const header = encodeHeader(this.nodeId);
    const out = await open(tmpPath, 'w');
    try {
      await writeFully(out, header, 0);
      await copyRange(this.#fh!, from, this.#size, out, header.length);
      await out.datasync();
      this.#env.countSync();
    } finally {
      await out.close();
    }
    await rename(tmpPath, this.#logPath);
    await this.#env.syncDir();
    const fh = await open(this.#logPath, 'r+');
    await this.#fh!.close();
    this.#fh = fh;
    const shift = from - header.length;
    this.#entries = this.#entries.slice(newHead);
    for (const entry of this.#entries) entry.offset -= shift;
    this.#head = 0;
    this.#size -= shift;
    this.#dataStart = header.length;
  }
}
