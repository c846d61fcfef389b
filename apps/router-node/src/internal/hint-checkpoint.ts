import { type FileHandle, open, unlink } from 'node:fs/promises';
import {
  CHECKPOINT_FILE_BYTES,
  CHECKPOINT_SLOT_STRIDE,
  CHECKPOINT_SLOTS,
  encodeCheckpoint,
} from './hint-format.js';
import { writeFully } from './hint-io.js';

/**
 * A node's `<stem>.ack` (layout in hint-format.ts): created on the first acknowledgement that
 * leaves hints pending, each later one overwrites the slot the last one did not use. The file
 * has its full size from the start, so a slot write never changes its length and fdatasync
 * has no metadata to flush.
 */
export class CheckpointFile {
  readonly #path: string;
  #fh: FileHandle | undefined;
  #nextSlot: number;

  /** `fh` and `nextSlot` of a file recovery found; none for a node without one. */
  constructor(path: string, fh?: FileHandle, nextSlot = 0) {
    this.#path = path;
    this.#fh = fh;
    this.#nextSlot = nextSlot;
  }

  /**
   * Durably records that every hint with seq <= `ackedSeq` is acknowledged. `syncDir` runs
   * when the file is new: until its directory entry is synced, it may vanish in a crash.
   */
  async write(
    ackedSeq: number,
    countSync: () => void,
    syncDir: () => Promise<void>,
  ): Promise<void> {
    const slot = encodeCheckpoint(ackedSeq);
    const at = this.#nextSlot * CHECKPOINT_SLOT_STRIDE;
    const created = this.#fh === undefined;
    if (this.#fh === undefined) {
      const file = Buffer.alloc(CHECKPOINT_FILE_BYTES);
      slot.copy(file, at);
      this.#fh = await open(this.#path, 'w+');
      await writeFully(this.#fh, file, 0);
    } else {
      await writeFully(this.#fh, slot, at);
    }
    await this.#fh.datasync();
    countSync();
    if (created) await syncDir();
    // Only after success: a failed write is retried into the same (possibly torn) slot, and
    // the other one keeps the last acknowledgement that resolved.
    this.#nextSlot = (this.#nextSlot + 1) % CHECKPOINT_SLOTS;
  }

  /** Removes the file (its log is gone, so nothing refers to it). */
  async remove(): Promise<void> {
    if (this.#fh === undefined) return;
    await this.close();
    await unlink(this.#path);
    this.#nextSlot = 0;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
