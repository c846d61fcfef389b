import type { ConnectionPool } from '@engram/pool';
import { LagTable } from '@engram/router';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { HintStore, StoredHint } from './hint-store.js';
import type { HintRequest } from './replicated.js';
import type { Timers } from './timers.js';
import { FRAME_HEADER_BYTES } from './wire.js';

/** How often pending hints are looked at (replay paces itself within each tick). */
const TICK_MS = 100;
/** Hints older than the max age are dropped this often. */
const EXPIRE_EVERY_MS = 60 * 1000; // 1 min
/** One replayed hint may take this long. */
const REPLAY_TIMEOUT_MS = 10 * 1000; // 10 s
const UNAVAILABLE_CODES: ReadonlySet<number> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
]);

export interface HintManagerInit {
  readonly backend: HintStore;
  readonly lag: LagTable;
  /** The node's slot (lag table row), -1 when it is not a member any more. */
  readonly slotOf: (nodeId: string) => number;
  readonly addressOf: (nodeId: string) => string | undefined;
  /** Hints go to a node only while it is up. */
  readonly isUp: (nodeId: string) => boolean;
  readonly pool: ConnectionPool;
  readonly replayPerSecond: number;
  readonly timers: Timers;
  readonly wallClock: () => number;
  readonly log: Logger;
  /** Hints of the node were dropped (full store, too old): it needs a repair. */
  readonly onDropped: (nodeId: string, count: number) => void;
}

/** Counters of one node's hints, for /metrics. */
export interface HintStats {
  stored: number;
  replayed: number;
  /** Dropped because the node's store was full (`hints.maxBytesPerNode`). */
  droppedFull: number;
  /** Dropped because older than `hints.maxAgeMs`. */
  droppedAge: number;
  /** Hints the node refused as a bad request: replaying cannot help, so they are dropped. */
  refused: number;
}

/**
 * Hinted handoff in the control plane: keeps the writes replicas missed (durably, before the
 * data plane counts the replica as handled), counts each in the shared lag table so reads
 * avoid the node for that space until it has the write, and replays them in order to a node
 * that is up, at most `replayPerSecond`, deleting each after the node acknowledged it.
 *
 * Who writes hints: only the main thread (workers send theirs by message and wait): one writer
 * per file, and replay in the same place that knows node health.
 */
export class HintManager {
  readonly #init: HintManagerInit;
  readonly #stats = new Map<string, HintStats>();
  readonly #replaying = new Set<string>();
  #tick: unknown;
  #expireTimer: unknown;
  #stopped = false;

  private constructor(init: HintManagerInit) {
    this.#init = init;
  }

  static open(init: HintManagerInit): HintManager {
    return new HintManager(init);
  }

  /** Counters per node since this process started (nodes with any hint activity). */
  stats(): ReadonlyMap<string, Readonly<HintStats>> {
    return this.#stats;
  }

  #statsOf(nodeId: string): HintStats {
    let s = this.#stats.get(nodeId);
    if (s === undefined) {
      s = { stored: 0, replayed: 0, droppedFull: 0, droppedAge: 0, refused: 0 };
      this.#stats.set(nodeId, s);
    }
    return s;
  }

  /**
   * Counts hints kept before a restart in the lag table (their nodes lack those writes until
   * replayed); call once the membership (node slots) is known, before `start`.
   */
  async countPending(): Promise<void> {
    const { backend, lag, slotOf } = this.#init;
    for (const nodeId of backend.nodes()) {
      const slot = slotOf(nodeId);
      for (const h of await backend.peek(nodeId, Number.MAX_SAFE_INTEGER)) {
        lag.add(slot, LagTable.bucketOf(h.spaceId), 1);
      }
    }
  }

  start(): void {
    this.#tick = this.#init.timers.setInterval(() => this.#replayAll(), TICK_MS);
    this.#expireTimer = this.#init.timers.setInterval(() => void this.#expire(), EXPIRE_EVERY_MS);
  }

  async close(): Promise<void> {
    this.#stopped = true;
    this.#init.timers.clearInterval(this.#tick);
    this.#init.timers.clearInterval(this.#expireTimer);
    await this.#init.backend.close();
  }

  /** Keeps a hint (durable when it resolves) and counts it in the lag table. */
  async add(hint: HintRequest): Promise<void> {
    const { backend, lag, slotOf, wallClock, log } = this.#init;
    const result = await backend.append({ ...hint, createdAtMs: wallClock() });
    if (result === 'stored') {
      this.#statsOf(hint.nodeId).stored++;
      lag.add(slotOf(hint.nodeId), LagTable.bucketOf(hint.spaceId), 1);
      return;
    }
    this.#statsOf(hint.nodeId).droppedFull++;
    log.warn(
      { event: 'hint-dropped', node: hint.nodeId, spaceId: hint.spaceId, reason: 'full' },
      `hint for ${hint.nodeId} dropped (store full): the node needs a repair`,
    );
    // The write is missing there all the same: keep reads off the node for that space.
    lag.add(slotOf(hint.nodeId), LagTable.bucketOf(hint.spaceId), 1);
    this.#init.onDropped(hint.nodeId, 1);
  }

  /** Pending hints per node: count and bytes. */
  pending(): Map<string, { count: number; bytes: number }> {
    const out = new Map<string, { count: number; bytes: number }>();
    for (const id of this.#init.backend.nodes()) out.set(id, { ...this.#init.backend.pending(id) });
    return out;
  }

  /** True while hints for the node are pending. */
  hasPending(nodeId: string): boolean {
    return this.#init.backend.pending(nodeId).count > 0;
  }

  #replayAll(): void {
    if (this.#stopped) return;
    for (const nodeId of this.#init.backend.nodes()) {
      if (this.#replaying.has(nodeId) || !this.#init.isUp(nodeId)) continue;
      this.#replaying.add(nodeId);
      void this.#replay(nodeId).finally(() => this.#replaying.delete(nodeId));
    }
  }

  /**
   * One tick's share of a node's hints: sent together on the node's connection, in order
   * (nodes apply them last-write-wins by version, so the order they land in does not matter for
   * the result), acknowledged up to the first that could not be delivered (the rest are tried
   * next tick), with one durable acknowledgement per batch.
   */
  async #replay(nodeId: string): Promise<void> {
    const { backend, lag, slotOf, log } = this.#init;
    const budget = Math.max(1, Math.floor((this.#init.replayPerSecond * TICK_MS) / 1000));
    const batch = await backend.peek(nodeId, budget);
    if (batch.length === 0 || this.#stopped || !this.#init.isUp(nodeId)) return;
    const codes = await Promise.all(batch.map((hint) => this.#send(hint)));
    let done = 0;
    for (; done < batch.length; done++) {
      const code = codes[done]!;
      if (code !== grpc.status.OK && UNAVAILABLE_CODES.has(code)) break; // tried again later
      const hint = batch[done]!;
      if (code !== grpc.status.OK) {
        this.#statsOf(nodeId).refused++;
        log.warn(
          { event: 'hint-refused', node: nodeId, spaceId: hint.spaceId, code },
          `hint for ${nodeId} refused with status ${code}: dropped, the node needs a repair`,
        );
        // Other replicas took this write: the node lacks it all the same.
        this.#init.onDropped(nodeId, 1);
      } else {
        this.#statsOf(nodeId).replayed++;
      }
    }
    if (done === 0) return;
    // By seq, not count: an expiry between peek and here must not move the acknowledgement.
    await backend.ackThrough(nodeId, batch[done - 1]!.seq);
    const slot = slotOf(nodeId);
    for (let i = 0; i < done; i++) lag.add(slot, LagTable.bucketOf(batch[i]!.spaceId), -1);
    if (backend.pending(nodeId).count === 0) {
      log.info({ event: 'hints-replayed', node: nodeId }, `hints for ${nodeId} all replayed`);
    }
  }

  /** Sends one hint's exact bytes; resolves with the node's gRPC status (or UNAVAILABLE). */
  #send(hint: StoredHint): Promise<number> {
    const { pool, addressOf } = this.#init;
    const address = addressOf(hint.nodeId);
    if (address === undefined) return Promise.resolve(grpc.status.UNAVAILABLE);
    let client: grpc.Client;
    try {
      const slot = pool.slotOf(hint.nodeId) >= 0 ? pool.slotOf(hint.nodeId) : -1;
      client = pool.acquireClient(slot >= 0 ? slot : pool.addNode(hint.nodeId, address));
    } catch {
      return Promise.resolve(grpc.status.UNAVAILABLE);
    }
    const message = hint.body.subarray(FRAME_HEADER_BYTES);
    return new Promise((resolve) => {
      client.makeUnaryRequest<Buffer, Buffer>(
        hint.path,
        (b) => b,
        (b) => b,
        message,
        new grpc.Metadata(),
        { deadline: Date.now() + REPLAY_TIMEOUT_MS },
        (err) => resolve(err === null ? grpc.status.OK : (err.code ?? grpc.status.UNAVAILABLE)),
      );
    });
  }

  async #expire(): Promise<void> {
    const dropped = await this.#init.backend.expire(this.#init.wallClock());
    for (const [nodeId, count] of dropped) {
      if (count === 0) continue;
      this.#statsOf(nodeId).droppedAge += count;
      this.#init.log.warn(
        { event: 'hint-dropped', node: nodeId, count, reason: 'age' },
        `${count} hints for ${nodeId} dropped (older than hints.maxAgeMs): the node needs a repair`,
      );
      this.#init.onDropped(nodeId, count);
    }
  }
}
