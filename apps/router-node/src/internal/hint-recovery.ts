import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ACK_SUFFIX,
  decodeCheckpoint,
  decodeHeader,
  decodeHintMeta,
  fileStem,
  LOG_SUFFIX,
} from './hint-format.js';
import { readAll, scanFrames } from './hint-io.js';

/** Where one pending hint sits in its node's log. */
export interface IndexEntry {
  readonly seq: number;
  /** Changes only when compaction moves the frame. */
  offset: number;
  readonly bytes: number;
  readonly createdAtMs: number;
}

/** The open files of a node log with pending hints. */
export interface LogFiles {
  readonly fh: FileHandle;
  readonly ackFh: FileHandle | undefined;
  /** Valid bytes of the log (after truncation): where the next batch goes. */
  readonly size: number;
  /** Bytes of the header frame. */
  readonly dataStart: number;
  /** Checkpoint slot to write next. */
  readonly nextSlot: number;
}

/** A node log as recovery left it. */
export interface RecoveredLog {
  readonly nodeId: string;
  /** Undefined when nothing was pending: the files were removed. */
  readonly files: LogFiles | undefined;
  /** The pending hints, in log order. */
  readonly entries: IndexEntry[];
  readonly liveBytes: number;
  /** Largest seq seen in the log or the checkpoint; the next append takes a larger one. */
  readonly lastSeq: number;
  /** Bytes cut from a torn or corrupt tail. */
  readonly corruptBytes: number;
}

export type Recovery =
  | { readonly kind: 'log'; readonly log: RecoveredLog }
  /** No valid header: the files were removed; their bytes belong to no known node. */
  | { readonly kind: 'unreadable'; readonly corruptBytes: number };

/**
 * Loads `<stem>.log` (and `<stem>.ack` when `hasAck`). The log ends at its first bad frame
 * (short, failed checksum, unknown kind, seq not increasing) and is truncated there; hints at
 * or below the checkpoint's seq are skipped. Bad content never throws; I/O errors do.
 */
export async function recoverLog(
  dir: string,
  stem: string,
  hasAck: boolean,
  countSync: () => void,
): Promise<Recovery> {
  const logPath = join(dir, stem + LOG_SUFFIX);
  const ackPath = join(dir, stem + ACK_SUFFIX);
  const opened: FileHandle[] = [];
  try {
    const fh = await open(logPath, 'r+');
    opened.push(fh);
    const ackFh = hasAck ? await open(ackPath, 'r+') : undefined;
    if (ackFh !== undefined) opened.push(ackFh);
    const checkpoint = decodeCheckpoint(
      ackFh === undefined ? Buffer.alloc(0) : await readAll(ackFh),
    );
    const size = (await fh.stat()).size;
    let nodeId: string | undefined;
    let dataStart = 0;
    let lastSeq = 0;
    let liveBytes = 0;
    const entries: IndexEntry[] = [];
    const valid = await scanFrames(fh, size, (payload, offset, frameBytes) => {
      if (nodeId === undefined) {
        nodeId = decodeHeader(payload);
        dataStart = frameBytes;
        // A header naming another stem is a file this store did not write under this name.
        if (nodeId !== undefined && fileStem(nodeId) !== stem) nodeId = undefined;
        return nodeId !== undefined;
      }
      const meta = decodeHintMeta(payload);
      if (meta === undefined || meta.seq <= lastSeq) return false;
      lastSeq = meta.seq;
      if (meta.seq > checkpoint.ackedSeq) {
        entries.push({ seq: meta.seq, offset, bytes: frameBytes, createdAtMs: meta.createdAtMs });
        liveBytes += frameBytes;
      }
      return true;
    });
    const recovered = {
      nodeId: nodeId ?? '',
      entries,
      liveBytes,
      lastSeq: Math.max(lastSeq, checkpoint.ackedSeq),
      corruptBytes: size - valid,
    };
    if (nodeId === undefined || entries.length === 0) {
      // No header: nothing here can be claimed. No pending hint: a crash cut short the removal
      // that follows the last acknowledgement. Either way the files go.
      await Promise.all(opened.splice(0).map((f) => f.close()));
      await unlink(logPath);
      if (hasAck) await unlink(ackPath);
      if (nodeId === undefined) return { kind: 'unreadable', corruptBytes: size };
      return { kind: 'log', log: { ...recovered, files: undefined } };
    }
    if (valid < size) {
      await fh.truncate(valid);
      await fh.datasync();
      countSync();
    }
    const files = { fh, ackFh, size: valid, dataStart, nextSlot: checkpoint.nextSlot };
    return { kind: 'log', log: { ...recovered, files } };
  } catch (err) {
    await Promise.all(opened.map((f) => f.close().catch(() => {})));
    throw err;
  }
}
