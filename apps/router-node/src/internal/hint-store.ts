import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Clock, InvalidArgumentError, isEngramError } from '@engram/common';
import {
  ACK_SUFFIX,
  HINT_OVERHEAD_BYTES,
  type Hint,
  hintFrameBytes,
  LOG_SUFFIX,
  type StoredHint,
  TMP_SUFFIX,
} from './hint-format.js';
import { type LogEnv, NodeLog } from './hint-log.js';
import { recoverLog } from './hint-recovery.js';
import { HintStoreError } from './hint-store-error.js';

export type { Hint, StoredHint } from './hint-format.js';
export { HINT_STORE_ERROR_CODES, HintStoreError } from './hint-store-error.js';

/** Limits and the wall clock of a `HintStore`; every field is optional. */
export interface HintStoreOptions {
  /**
   * Pending bytes (encoded records) one node may hold; an append past it is dropped and
   * counted. Default 64 MiB. Its log file stays under about twice this plus `compactAtBytes`.
   */
  readonly maxBytesPerNode?: number;
  /** `expire` drops hints older than this. Default 3 h (Cassandra's `max_hint_window`). */
  readonly maxAgeMs?: number;
  /**
   * Largest encoded record (request plus 33 bytes and the ids); a larger hint is dropped and
   * counted. Default 16 MiB; at most `maxBytesPerNode`.
   */
  readonly maxRecordBytes?: number;
  /**
   * A node's log is rewritten without its acknowledged prefix once that prefix is at least
   * this many bytes and at least as large as what is still pending. Default 4 MiB.
   */
  readonly compactAtBytes?: number;
  /** Wall clock in ms since the epoch: `expire()`'s default now. Default `Date.now`. */
  readonly wallClock?: Clock;
}

/** The defaults of `HintStoreOptions`. */
export const HINT_STORE_DEFAULTS = Object.freeze({
  maxBytesPerNode: 64 * 1024 * 1024, // 64 MiB
  maxAgeMs: 3 * 60 * 60 * 1000, // 3 h
  maxRecordBytes: 16 * 1024 * 1024, // 16 MiB
  compactAtBytes: 4 * 1024 * 1024, // 4 MiB
  wallClock: Object.freeze({ now: () => Date.now() }) as Clock,
});

/** A frame's length field is a u32 and a Buffer tops out near there; stay well below. */
const ABSOLUTE_MAX_RECORD_BYTES = 1024 * 1024 * 1024; // 1 GiB

/** Only names this store writes; anything else in the directory is left alone. */
const OWN_FILE = /^[nh]-[0-9a-f]*\.(log|ack)(\.tmp)?$/;
/** Lone surrogates do not survive UTF-8: two such ids would share a file. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** What one node (or the whole store, in `totals`) lost since the store was opened. */
export interface HintDrops {
  /** Appends refused because the node's pending bytes would pass `maxBytesPerNode`. */
  readonly full: number;
  /** Appends refused because the record would pass `maxRecordBytes`. */
  readonly oversize: number;
  /** Hints dropped by `expire`. */
  readonly expired: number;
  /** Bytes cut from torn or corrupt log tails on open (a count of hints cannot be known). */
  readonly corruptBytes: number;
}

/** Pending hints of one node: their number and encoded bytes (what `maxBytesPerNode` bounds). */
export interface HintPending {
  readonly count: number;
  readonly bytes: number;
}

/** Store-wide figures for metrics. */
export interface HintStoreTotals extends HintPending {
  /** Nodes with pending hints. */
  readonly nodes: number;
  readonly dropped: HintDrops;
  /** fdatasync/fsync calls so far (group commit shares one among concurrent appends). */
  readonly syncs: number;
}

type Resolved = Required<HintStoreOptions>;
type MutableDrops = { -readonly [K in keyof HintDrops]: HintDrops[K] };

/**
 * Durable hinted handoff for the control plane: per node, the exact requests a replica missed,
 * replayed in order once it is back and deleted only once it acknowledged them.
 *
 * Layout of `dir` (format in hint-format.ts): per node `<stem>.log`, an append-only log of
 * checksummed frames, and `<stem>.ack`, the seq acknowledged so far; `<stem>.log.tmp` only
 * during a compaction. `stem` is `n-<hex of the UTF-8 id>` (`h-<sha256>` for long ids).
 *
 * One store per directory: the control plane owns it and worker threads reach it by message.
 *
 * Per node, operations run in call order. After a disk error whose outcome is unknown (a
 * failed sync, rename or unlink) that node rejects everything with `HintStoreFailed` until
 * the store is reopened, which recovers what reached the disk; other nodes carry on.
 */
export class HintStore {
  readonly #options: Resolved;
  readonly #env: LogEnv;
  readonly #logs = new Map<string, NodeLog>();
  readonly #drops = new Map<string, MutableDrops>();
  /** Corrupt bytes of files whose header was unreadable: they belong to no known node. */
  #unclaimedCorruptBytes = 0;
  #syncs = 0;
  #closed = false;

  private constructor(dir: string, options: Resolved) {
    this.#options = options;
    this.#env = {
      dir,
      compactAtBytes: options.compactAtBytes,
      countSync: () => {
        this.#syncs++;
      },
      syncDir: async () => {
        const fh = await open(dir, 'r');
        try {
          await fh.sync();
          this.#syncs++;
        } finally {
          await fh.close();
        }
      },
    };
  }

  /**
   * Opens (creating it if needed) the store in `dir` and loads every node's pending hints.
   * A torn or corrupt tail ends that node's log and is truncated (counted in `corruptBytes`);
   * an unreadable checkpoint counts as nothing acknowledged. Rejects with an
   * `InvalidArgumentError` for bad options, a `HintStoreError` when the disk fails.
   */
  static async open(dir: string, options: HintStoreOptions = {}): Promise<HintStore> {
    const store = new HintStore(dir, resolveOptions(options));
    try {
      await mkdir(dir, { recursive: true });
      await store.#load();
    } catch (err) {
      await store.close();
      throw new HintStoreError('HintStoreFailed', `opening hints in ${dir} failed`, undefined, {
        cause: err,
      });
    }
    return store;
  }

  /**
   * Stores `hint` in its node's log: `'stored'` once it is synced to disk (concurrent appends
   * share one sync), `'dropped'` (counted) when the node already holds `maxBytesPerNode` or the
   * record is larger than `maxRecordBytes`. Rejects with a `HintStoreError` when the disk fails.
   */
  async append(hint: Hint): Promise<'stored' | 'dropped'> {
    this.#assertOpen();
    validateHint(hint, this.#logs.has(hint?.nodeId));
    const bytes = hintFrameBytes(hint);
    if (bytes > this.#options.maxRecordBytes) {
      this.#dropsOf(hint.nodeId).oversize++;
      return 'dropped';
    }
    const log = this.#logOf(hint.nodeId);
    if (log.committedBytes + bytes > this.#options.maxBytesPerNode) {
      this.#dropsOf(hint.nodeId).full++;
      return 'dropped';
    }
    await log.append(hint);
    return 'stored';
  }

  /** Up to `max` of the oldest pending hints of `nodeId`, in append order (none: `[]`). */
  async peek(nodeId: string, max: number): Promise<StoredHint[]> {
    this.#assertOpen();
    checkCount('max', max);
    return (await this.#logs.get(checkNodeId(nodeId))?.peek(max)) ?? [];
  }

  /**
   * Durably acknowledges the first `count` pending hints of `nodeId`, counted when earlier
   * calls on that node are done. If `expire` may run during a replay, prefer `ackThrough`: it
   * names the hints by seq, so an expiry in between cannot shift what is acknowledged.
   */
  async ack(nodeId: string, count: number): Promise<void> {
    this.#assertOpen();
    checkCount('count', count);
    const log = this.#logs.get(checkNodeId(nodeId));
    if (log !== undefined) await log.ackCount(count);
    else if (count > 0) throw new InvalidArgumentError('count', count, '0: no hint is pending');
  }

  /** Durably acknowledges every pending hint of `nodeId` with `seq <= seq`. */
  async ackThrough(nodeId: string, seq: number): Promise<void> {
    this.#assertOpen();
    checkCount('seq', seq);
    const log = this.#logs.get(checkNodeId(nodeId));
    if (log !== undefined) await log.ackThrough(seq);
    else if (seq > 0) throw new InvalidArgumentError('seq', seq, '0: no hint was stored');
  }

  /**
   * Durably drops hints created more than `maxAgeMs` before `nowMs` (default: the wall clock)
   * and returns how many per node (only nodes that lost some), so the caller can mark them
   * for repair. A node's hints leave in append order: one whose `createdAtMs` is older than a
   * hint before it waits for that one, delivered late rather than out of order. Nodes whose
   * disk failed are skipped (their appends already reported it).
   */
  async expire(nowMs: number = this.#options.wallClock.now()): Promise<Map<string, number>> {
    this.#assertOpen();
    if (!Number.isFinite(nowMs)) throw new InvalidArgumentError('nowMs', nowMs, 'a finite number');
    const cutoffMs = nowMs - this.#options.maxAgeMs;
    const expired = new Map<string, number>();
    await Promise.all(
      [...this.#logs.values()]
        .filter((log) => log.pendingCount > 0)
        .map(async (log) => {
          const n = await log.expire(cutoffMs).catch((err: unknown) => {
            if (isEngramError(err, 'HintStoreFailed')) return 0;
            throw err;
          });
          if (n === 0) return;
          this.#dropsOf(log.nodeId).expired += n;
          expired.set(log.nodeId, n);
        }),
    );
    return expired;
  }

  /** Pending (stored, unacknowledged) hints of `nodeId`. */
  pending(nodeId: string): HintPending {
    const log = this.#logs.get(nodeId);
    return { count: log?.pendingCount ?? 0, bytes: log?.pendingBytes ?? 0 };
  }

  /** Ids of the nodes with pending hints. */
  nodes(): string[] {
    return [...this.#logs.values()].filter((l) => l.pendingCount > 0).map((l) => l.nodeId);
  }

  /** What `nodeId` lost since the store was opened. */
  dropped(nodeId: string): HintDrops {
    return { ...(this.#drops.get(nodeId) ?? noDrops()) };
  }

  /** Store-wide figures for metrics. */
  totals(): HintStoreTotals {
    const dropped = noDrops();
    dropped.corruptBytes = this.#unclaimedCorruptBytes;
    for (const d of this.#drops.values()) {
      dropped.full += d.full;
      dropped.oversize += d.oversize;
      dropped.expired += d.expired;
      dropped.corruptBytes += d.corruptBytes;
    }
    let count = 0;
    let bytes = 0;
    let nodes = 0;
    for (const log of this.#logs.values()) {
      count += log.pendingCount;
      bytes += log.pendingBytes;
      if (log.pendingCount > 0) nodes++;
    }
    return { nodes, count, bytes, dropped, syncs: this.#syncs };
  }

  /** Lets queued appends and acknowledgements finish, then closes every file. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#logs.values()].map((log) => log.close()));
  }

  async #load(): Promise<void> {
    const names = (await readdir(this.#env.dir)).filter((n) => OWN_FILE.test(n));
    const present = new Set(names);
    let removed = false;
    for (const name of names) {
      if (name.endsWith(TMP_SUFFIX)) {
        // A compaction that did not reach its rename: the log it was copying is intact.
        await unlink(join(this.#env.dir, name));
        removed = true;
      } else if (name.endsWith(ACK_SUFFIX) && !present.has(stemOf(name) + LOG_SUFFIX)) {
        // The log went first; this checkpoint names hints that no longer exist.
        await unlink(join(this.#env.dir, name));
        removed = true;
      }
    }
    // One node at a time: recovery reads a whole log, a chunk at a time.
    for (const name of names.filter((n) => n.endsWith(LOG_SUFFIX))) {
      const stem = stemOf(name);
      const found = await recoverLog(
        this.#env.dir,
        stem,
        present.has(stem + ACK_SUFFIX),
        this.#env.countSync,
      );
      if (found.kind === 'unreadable') {
        this.#unclaimedCorruptBytes += found.corruptBytes;
        removed = true;
        continue;
      }
      const { log } = found;
      this.#logs.set(log.nodeId, new NodeLog(this.#env, log.nodeId, log));
      this.#dropsOf(log.nodeId).corruptBytes += log.corruptBytes;
      if (log.files === undefined) removed = true;
    }
    // Removals are synced before any append, so no checkpoint removed here can come back
    // after a crash and hide hints of a log started afresh at seq 1.
    if (removed) await this.#env.syncDir();
  }

  #logOf(nodeId: string): NodeLog {
    let log = this.#logs.get(nodeId);
    if (log === undefined) {
      log = new NodeLog(this.#env, nodeId);
      this.#logs.set(nodeId, log);
    }
    return log;
  }

  #dropsOf(nodeId: string): MutableDrops {
    let drops = this.#drops.get(nodeId);
    if (drops === undefined) {
      drops = noDrops();
      this.#drops.set(nodeId, drops);
    }
    return drops;
  }

  #assertOpen(): void {
    if (this.#closed) throw new HintStoreError('HintStoreClosed', 'hint store is closed');
  }
}

function noDrops(): MutableDrops {
  return { full: 0, oversize: 0, expired: 0, corruptBytes: 0 };
}

function stemOf(name: string): string {
  return name.slice(0, name.indexOf('.'));
}

function resolveOptions(options: HintStoreOptions): Resolved {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  const o = {
    maxBytesPerNode: options.maxBytesPerNode ?? HINT_STORE_DEFAULTS.maxBytesPerNode,
    maxAgeMs: options.maxAgeMs ?? HINT_STORE_DEFAULTS.maxAgeMs,
    maxRecordBytes: options.maxRecordBytes ?? HINT_STORE_DEFAULTS.maxRecordBytes,
    compactAtBytes: options.compactAtBytes ?? HINT_STORE_DEFAULTS.compactAtBytes,
    wallClock: options.wallClock ?? HINT_STORE_DEFAULTS.wallClock,
  };
  checkInteger('maxBytesPerNode', o.maxBytesPerNode, HINT_OVERHEAD_BYTES, Number.MAX_SAFE_INTEGER);
  checkInteger('maxAgeMs', o.maxAgeMs, 1, Number.MAX_SAFE_INTEGER);
  const maxRecord = Math.min(ABSOLUTE_MAX_RECORD_BYTES, o.maxBytesPerNode);
  checkInteger('maxRecordBytes', o.maxRecordBytes, HINT_OVERHEAD_BYTES, maxRecord);
  checkInteger('compactAtBytes', o.compactAtBytes, 0, Number.MAX_SAFE_INTEGER);
  if (typeof o.wallClock?.now !== 'function') {
    throw new InvalidArgumentError('wallClock', o.wallClock, 'an object with a now() method');
  }
  return Object.freeze(o);
}

function checkInteger(field: string, value: unknown, min: number, max: number): void {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new InvalidArgumentError(field, value, `an integer in [${min}, ${max}]`);
  }
}

function checkCount(field: string, value: unknown): void {
  checkInteger(field, value, 0, Number.MAX_SAFE_INTEGER);
}

function checkNodeId(nodeId: unknown): string {
  if (typeof nodeId !== 'string') throw new InvalidArgumentError('nodeId', nodeId, 'a string');
  return nodeId;
}

function checkText(field: string, value: unknown): void {
  if (typeof value !== 'string' || LONE_SURROGATE.test(value)) {
    throw new InvalidArgumentError(field, value, 'a string without lone surrogates');
  }
}

function validateHint(hint: Hint, knownNode: boolean): void {
  if (typeof hint !== 'object' || hint === null) {
    throw new InvalidArgumentError('hint', hint, 'an object');
  }
  // A node already in the map passed this check when it was first seen.
  if (!knownNode) checkText('hint.nodeId', hint.nodeId);
  checkText('hint.spaceId', hint.spaceId);
  checkText('hint.path', hint.path);
  if (!(hint.body instanceof Uint8Array)) {
    throw new InvalidArgumentError('hint.body', hint.body, 'a Buffer or Uint8Array');
  }
  if (typeof hint.createdAtMs !== 'number' || !Number.isFinite(hint.createdAtMs)) {
    throw new InvalidArgumentError('hint.createdAtMs', hint.createdAtMs, 'a finite number');
  }
}
