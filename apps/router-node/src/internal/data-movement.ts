import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionPool, type PoolCredentials } from '@engram/pool';
import type { Ring } from '@engram/ring';
import { GrpcReplicaAccess, type LagTable, type SpaceRepair } from '@engram/router';
import type { Logger } from 'pino';
import type { RouterNodeConfig } from './config.js';
import type { DataMetrics } from './data-metrics.js';
import type { ControlChannel } from './data-plane.js';
import { HintManager } from './hint-manager.js';
import { HintStore } from './hint-store.js';
import { Lifecycle, type Membership } from './membership.js';
import { Repairer } from './repairer.js';
import type { HintRequest } from './replicated.js';
import {
  Streamer,
  type StreamProgressStore,
  type StreamStatus,
  type TransitionKind,
} from './streamer.js';
import type { Timers } from './timers.js';
import { type TransitionRecord, TransitionStore } from './transition-store.js';

/** Pause before a node repair that could not reach every space is tried again. */
const REPAIR_RETRY_MS = 1000;

/** Wait before a failed stream of a space is tried again. */
const STREAM_RETRY_MS = 1000; // 1 s
/** Reconnect backoff of the control plane's own connections to the nodes. */
const RECONNECT_MIN_MS = 100; // 100 ms
const RECONNECT_MAX_MS = 1000; // 1 s

export interface DataMovementInit {
  readonly config: RouterNodeConfig;
  readonly upstream: PoolCredentials;
  readonly lag: LagTable;
  readonly timers: Timers;
  readonly log: Logger;
  /** The membership now, and the ring built from it (current and future placements). */
  readonly membership: () => Membership;
  readonly ring: () => Ring;
  /** A transition's data is in place: apply the membership change (rejects: retry later). */
  readonly complete: (kind: TransitionKind, subject: string) => void | Promise<void>;
  /**
   * Whether this router drives streaming and the background repair (etcd mode: the one router
   * elected); default always. Hints and node repairs of this router's own writes go on anyway.
   */
  readonly driving?: () => boolean;
  /** Where streaming progress is kept; default this router's dataDir (transitions.json). */
  readonly progress?: StreamProgressStore;
}

/** Per node, for GetTable and /metrics. */
export interface NodeDataStatus {
  readonly hintsPending: number;
  readonly hintBytesPending: number;
  readonly repairNeeded: boolean;
}

/**
 * Everything that makes data follow placement, in the control plane: the hint store and its
 * replay, anti-entropy repair, and the streaming of membership changes, over one pool of
 * grpc-js connections of its own (never the data plane's). Data planes reach it through
 * `channel` (hints, repairs).
 */
export class DataMovement {
  readonly hints: HintManager;
  readonly repairer: Repairer;
  readonly streamer: Streamer;
  readonly transitions: TransitionStore;
  readonly channel: ControlChannel;
  readonly #pool: ConnectionPool;
  readonly #init: DataMovementInit;
  readonly #repairNeeded = new Set<string>();
  /** Health at the last sync: a node found up again is re-dialled at once. */
  readonly #health = new Map<string, string>();
  readonly #tempDir: string | null;
  #sweepTimer: unknown;
  #started = false;
  /**
   * The config in force (`reconfigure`): the repair rate, stream concurrency, fence and hint
   * replay rate are read from it when used.
   */
  #config: RouterNodeConfig;
  /** After router.deadlineMs is lowered, calls of the old one may still run: fence that long. */
  #fenceFloorMs = 0;

  private constructor(
    init: DataMovementInit,
    pool: ConnectionPool,
    hints: HintManager,
    transitions: TransitionStore,
    tempDir: string | null,
  ) {
    this.#init = init;
    this.#pool = pool;
    this.hints = hints;
    this.transitions = transitions;
    this.#tempDir = tempDir;
    this.#config = init.config;
    const access = new GrpcReplicaAccess(() => pool);
    const isUp = (id: string) => init.membership().get(id)?.health === 'up';
    const self = this;
    this.repairer = new Repairer({
      access,
      table: init.ring,
      isUp,
      timers: init.timers,
      log: init.log,
      get spacesPerSecond() {
        return self.#config.repair.spacesPerSecond;
      },
    });
    this.streamer = new Streamer({
      access,
      table: init.ring,
      isUp,
      listSpaces: (nodes) => this.repairer.listSpaces(nodes, true),
      get concurrency() {
        return self.#config.streaming.concurrency;
      },
      get fenceMs() {
        return self.fenceMs;
      },
      retryMs: STREAM_RETRY_MS,
      // etcd mode: in etcd, so the next driver resumes where this one stopped.
      store: init.progress ?? transitions,
      timers: init.timers,
      log: init.log,
      complete: init.complete,
    });
    this.channel = {
      add: (hint: HintRequest) => this.hints.add(hint),
      repairSpace: async (spaceId: string) => {
        let report: SpaceRepair;
        try {
          report = await this.repairer.repairSpace(spaceId);
        } catch (err) {
          // Could not compare at all: every replica of the space gets a repair of its own.
          const p = init.ring().lookup(spaceId);
          for (const n of [p.primary, ...p.replicas]) this.markRepairNeeded(n.id);
          throw err;
        }
        for (const id of report.unreachable) this.markRepairNeeded(id);
        return report.unreachable.length === 0;
      },
    };
  }

  /**
   * Opens the hint store (in `dataDir`, or a temporary directory removed on close without
   * one: hints then do not survive a restart) and the transitions in progress.
   */
  static async open(init: DataMovementInit, slotOf: (id: string) => number): Promise<DataMovement> {
    const cfg = init.config;
    const tempDir = cfg.dataDir === null ? mkdtempSync(join(tmpdir(), 'engram-router-')) : null;
    const dir = cfg.dataDir ?? tempDir!;
    // grpc-js backs off reconnecting up to 2 minutes by default: a node back from a restart
    // would wait that long for its hints. Reconnect within a second instead (one pool, a few
    // connections: the extra dials cost nothing), and at once when health marks a node up.
    const pool = new ConnectionPool({
      credentials: init.upstream,
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': RECONNECT_MIN_MS,
        'grpc.min_reconnect_backoff_ms': RECONNECT_MIN_MS,
        'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
      },
    });
    const store = await HintStore.open(join(dir, 'hints'), {
      maxBytesPerNode: cfg.hints.maxBytesPerNode,
      maxAgeMs: cfg.hints.maxAgeMs,
    });
    const transitions = await TransitionStore.open(cfg.dataDir);
    let movement: DataMovement | undefined;
    const hints = HintManager.open({
      backend: store,
      lag: init.lag,
      slotOf,
      addressOf: (id) => init.membership().get(id)?.node.address,
      isUp: (id) => {
        const m = init.membership().get(id);
        return m !== undefined && m.health === 'up' && m.lifecycle !== Lifecycle.Drained;
      },
      pool,
      get replayPerSecond() {
        return (movement === undefined ? cfg : movement.#config).hints.replayPerSecond;
      },
      timers: init.timers,
      wallClock: Date.now,
      log: init.log,
      onDropped: (id) => movement?.markRepairNeeded(id),
    });
    movement = new DataMovement(init, pool, hints, transitions, tempDir);
    return movement;
  }

  /** Transitions persisted by an earlier run of this router (to resume). */
  get persisted(): readonly TransitionRecord[] {
    return this.transitions.records;
  }

  async start(): Promise<void> {
    await this.hints.countPending();
    this.hints.start();
    this.#started = true;
    this.#startSweep(this.#config.repair.intervalMs);
  }

  /**
   * The reloadable settings of data movement, from the config in force after a reload: hint
   * replay rate, repair rate and interval (the sweep restarts), stream concurrency and fence
   * (router.deadlineMs; a lowered one keeps fencing the old length for as long, so writes of
   * calls started under it end before their spaces stream). Used from the next tick, stream or
   * sweep on.
   */
  reconfigure(next: RouterNodeConfig): void {
    const before = this.#config;
    this.#config = next;
    if (next.router.deadlineMs < before.router.deadlineMs) {
      const floor = Math.max(before.router.deadlineMs, this.#fenceFloorMs);
      this.#fenceFloorMs = floor;
      this.#init.timers.setTimeout(() => {
        if (this.#fenceFloorMs === floor) this.#fenceFloorMs = 0;
      }, floor);
    }
    if (this.#started && next.repair.intervalMs !== before.repair.intervalMs) {
      this.#init.timers.clearInterval(this.#sweepTimer);
      this.#sweepTimer = undefined;
      this.#startSweep(next.repair.intervalMs);
    }
  }

  /** How long a transition waits before streaming: writes under the old table end meanwhile. */
  get fenceMs(): number {
    return Math.max(this.#config.router.deadlineMs, this.#fenceFloorMs);
  }

  #startSweep(every: number): void {
    if (every > 0) {
      this.#sweepTimer = this.#init.timers.setInterval(() => {
        if (this.#init.driving?.() === false) return;
        void this.repairer.sweep().catch((err: unknown) => {
          this.#init.log.warn({ err }, 'background repair failed');
        });
      }, every);
    }
  }

  /** Follows a new membership: starts and cancels streams, repairs nodes that need it. */
  sync(membership: Membership): void {
    const driving = this.#init.driving?.() !== false;
    const wanted: { kind: TransitionKind; subject: string }[] = [];
    for (const m of membership.members) {
      const was = this.#health.get(m.node.id);
      this.#health.set(m.node.id, m.health);
      // Down or never probed (unknown) before: the pool may be waiting out a reconnect backoff.
      if (m.health === 'up' && was !== undefined && was !== 'up')
        this.#pool.reconnectNow(m.node.id);
      if (!driving) {
        // Another router streams; this one only keeps its own hints and repairs.
      } else if (m.lifecycle === Lifecycle.Joining) {
        wanted.push({ kind: 'join', subject: m.node.id });
        this.transitions.begin({ kind: 'join', subject: m.node.id, node: m.node });
      } else if (m.lifecycle === Lifecycle.Leaving) {
        wanted.push({ kind: 'leave', subject: m.node.id });
        this.transitions.begin({
          kind: 'leave',
          subject: m.node.id,
          ...(m.leaveTo !== undefined ? { leaveTo: m.leaveTo } : {}),
        });
      }
      if (this.#repairNeeded.has(m.node.id) && m.health === 'up') this.#repairNode(m.node.id);
    }
    for (const move of driving ? membership.moves : []) {
      wanted.push({ kind: 'pin', subject: move.spaceId });
      this.transitions.begin({ kind: 'pin', subject: move.spaceId, to: move.to });
    }
    if (driving) this.streamer.sync(wanted);
    else this.streamer.release();
  }

  /** Hints of the node were dropped: it gets a whole-node repair once it is up. */
  markRepairNeeded(nodeId: string): void {
    this.#repairNeeded.add(nodeId);
    const m = this.#init.membership().get(nodeId);
    if (m?.health === 'up') this.#repairNode(nodeId);
  }

  #repairing = new Set<string>();

  #repairNode(nodeId: string): void {
    if (this.#repairing.has(nodeId)) return;
    this.#repairing.add(nodeId);
    void this.repairer
      .repairNode(nodeId)
      .then(({ failed }) => {
        if (failed > 0) {
          this.#retryRepair(nodeId);
          return;
        }
        this.#repairNeeded.delete(nodeId);
        this.#init.log.info({ event: 'repair-node', node: nodeId }, `node ${nodeId} repaired`);
      })
      .catch((err: unknown) => this.#init.log.warn({ err, node: nodeId }, 'node repair failed'))
      .finally(() => this.#repairing.delete(nodeId));
  }

  /**
   * A node repair that could not reach every space is tried again after a pause, while the
   * node still needs it and is up: a node just marked up may not be reachable by every
   * connection yet, and no membership change may come to try again.
   */
  #retryRepair(nodeId: string): void {
    if (this.#retries.has(nodeId) || !this.#started) return;
    const timer = this.#init.timers.setTimeout(() => {
      this.#retries.delete(nodeId);
      if (!this.#started || !this.#repairNeeded.has(nodeId)) return;
      if (this.#init.membership().get(nodeId)?.health === 'up') this.#repairNode(nodeId);
    }, REPAIR_RETRY_MS);
    this.#retries.set(nodeId, timer);
  }

  readonly #retries = new Map<string, unknown>();

  status(nodeId: string): NodeDataStatus {
    const p = this.hints.pending().get(nodeId);
    return {
      hintsPending: p?.count ?? 0,
      hintBytesPending: p?.bytes ?? 0,
      repairNeeded: this.#repairNeeded.has(nodeId),
    };
  }

  streams(): StreamStatus[] {
    return this.streamer.status();
  }

  /** Hints, repair and streaming for /metrics. */
  metrics(): DataMetrics {
    return {
      nodes: [...this.#init.membership().members].map((m) => m.node.id),
      pending: this.hints.pending(),
      hintStats: this.hints.stats(),
      repairNeeded: (id) => this.#repairNeeded.has(id),
      repair: this.repairer.stats,
      streams: this.streamer.status(),
      streamTotals: this.streamer.totals,
    };
  }

  async close(): Promise<void> {
    // A reload after this must not start a sweep over the closed pool (reconfigure checks it).
    this.#started = false;
    this.streamer.stop();
    this.repairer.stop();
    this.#init.timers.clearInterval(this.#sweepTimer);
    for (const timer of this.#retries.values()) this.#init.timers.clearTimeout(timer);
    this.#retries.clear();
    await this.hints.close();
    await this.#pool.close();
    if (this.#tempDir !== null) rmSync(this.#tempDir, { recursive: true, force: true });
  }
}
