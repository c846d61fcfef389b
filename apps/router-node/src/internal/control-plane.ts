import type { BreakerTable } from '@engram/breaker';
import type { Logger } from 'pino';
import type { AdminTarget, RepairResult, TableView } from './admin.js';
import {
  type NodeConfig,
  type RouterNodeConfig,
  validateAssignment,
  validateNode,
} from './config.js';
import type { NodeDataStatus } from './data-movement.js';
import { ConfigError } from './errors.js';
import { HealthMonitor, type Probe } from './health-monitor.js';
import { type DigestOf, type Location, locateSpace } from './locate.js';
import {
  type Change,
  Health,
  Membership,
  MembershipError,
  type MembershipLimits,
  reportedState,
} from './membership.js';
import type { StreamStatus, TransitionKind } from './streamer.js';
import { isPanic, isPartitioned, type TablePublisher } from './table-publisher.js';
import type { Timers } from './timers.js';
import type { TransitionRecord } from './transition-store.js';

const NO_DATA_STATUS: NodeDataStatus = Object.freeze({
  hintsPending: 0,
  hintBytesPending: 0,
  repairNeeded: false,
});

/** A persisted transition put back onto the membership a restarted router starts with. */
function resumed(m: Membership, r: TransitionRecord, log: Logger): Membership {
  try {
    if (r.kind === 'join') {
      if (m.get(r.subject) !== undefined) return m.rejoin(r.subject).next;
      return r.node === undefined ? m : m.add(r.node).next;
    }
    if (r.kind === 'leave') {
      if (m.get(r.subject) === undefined) return m;
      return (r.leaveTo === 'drained' ? m.drain(r.subject) : m.remove(r.subject)).next;
    }
    if (r.to === null || r.to === undefined) return m.unassign(r.subject).next;
    return m.assign(r.to).next;
  } catch (err) {
    log.warn({ err, kind: r.kind, subject: r.subject }, 'a persisted transition cannot resume');
    return m;
  }
}

export interface ControlPlaneInit {
  readonly config: RouterNodeConfig;
  /** Transitions a previous run of this router left in progress (resumed at start). */
  readonly resume?: readonly TransitionRecord[];
  /** Called after every published change (data movement follows it). */
  readonly onChange?: (membership: Membership) => void;
  /** Per node: hints and repair state, for the table view. */
  readonly dataStatus?: (nodeId: string) => NodeDataStatus;
  readonly streams?: () => readonly StreamStatus[];
  /** Whether the node answered a call within the last `ms` (the data plane's passive words). */
  readonly answeredWithin?: (nodeId: string, ms: number) => boolean;
  /** Anti-entropy (RepairSpace / RepairNode of the admin API). */
  readonly repair?: {
    space(spaceId: string): Promise<RepairResult>;
    node(nodeId: string): void;
  };
  /** What a node holds of a space, asked of the node (the admin API's Locate). */
  readonly digestOf?: DigestOf;
  readonly limits: MembershipLimits;
  readonly publisher: TablePublisher;
  /** The shared breakers: a slot handed to a new node, or a node marked up, is reset. */
  readonly breakers: BreakerTable;
  readonly probe: Probe;
  readonly timers: Timers;
  readonly log: Logger;
}

/**
 * The control plane's state and its one way to change it: a membership command gives the
 * next membership (or a coded error, nothing applied), which is published as the next table
 * epoch and only then becomes current. Health verdicts and admin changes take the same path.
 * I/O comes in through `probe` and `timers`, so all of it runs on fake time in tests.
 */
export class ControlPlane implements AdminTarget {
  readonly #init: ControlPlaneInit;
  readonly #monitor: HealthMonitor;
  #membership: Membership;
  #partitioned = false;
  #panic = false;
  #closed = false;

  constructor(init: ControlPlaneInit) {
    this.#init = init;
    const cfg = init.config;
    const h = cfg.health;
    this.#monitor = new HealthMonitor({
      intervalMs: h.intervalMs,
      timeoutMs: h.timeoutMs,
      healthyThreshold: h.healthyThreshold,
      unhealthyThreshold: h.unhealthyThreshold,
      timers: init.timers,
      probe: {
        // Passive evidence counts with the probe: a node that answered calls lately is up.
        check: async (target, timeoutMs) =>
          (await init.probe.check(target, timeoutMs)) ||
          (init.answeredWithin?.(target.id, 2 * h.intervalMs) ?? false),
        forget: (target) => init.probe.forget(target),
      },
      current: (id) => this.#membership.get(id)?.health,
      onVerdict: (id, health) => this.#onVerdict(id, health),
    });
    let first = Membership.create(
      cfg.nodes,
      cfg.assignments,
      cfg.localNodeId,
      init.limits,
      cfg.router.replicateWrites,
    );
    for (const r of init.resume ?? []) first = resumed(first, r, init.log);
    this.#membership = first;
    this.#publish(first, 'start');
    for (const m of first.members) this.#monitor.watch(m.node);
  }

  /**
   * Starts health checking and data movement of changes in progress. Resolves once the first
   * probe round is settled (within `health.timeoutMs`): every node starts unknown (routed as
   * down) and is up from its first passing probe, so a router that waits for this routes its
   * first calls by verdicts rather than by nothing.
   */
  start(): Promise<void> {
    const firstRound = this.#monitor.start();
    this.#init.onChange?.(this.#membership);
    return firstRound;
  }

  /** A transition's data is where the new placement wants it: the change applies now. */
  completeTransition(kind: TransitionKind, subject: string): void {
    const m = this.#membership;
    try {
      const change =
        kind === 'join'
          ? m.completeJoin(subject)
          : kind === 'leave'
            ? m.completeLeave(subject)
            : m.completeMove(subject);
      this.#apply(change);
    } catch (err) {
      // The transition was cancelled or changed meanwhile (e.g. the node was removed).
      this.#init.log.warn({ err, kind, subject }, 'transition done but no longer applicable');
    }
  }

  get membership(): Membership {
    return this.#membership;
  }

  get partitioned(): boolean {
    return this.#partitioned;
  }

  get epoch(): number {
    return this.#init.publisher.epoch;
  }

  table(): TableView {
    const m = this.#membership;
    const breakers = this.#init.breakers;
    const cfg = this.#init.config;
    return {
      epoch: this.epoch,
      partitioned: this.#partitioned,
      replicationFactor: Math.min(cfg.replicationFactor, m.size),
      vnodesPerNode: cfg.vnodesPerNode,
      localNodeId: cfg.localNodeId,
      nodes: [...m.members]
        .sort((a, b) => (a.node.id < b.node.id ? -1 : 1))
        .map((x) => ({
          id: x.node.id,
          address: x.node.address,
          zone: x.node.zone,
          state: reportedState(x),
          lifecycle: x.lifecycle,
          breaker: breakers.state(x.slot),
          slot: x.slot,
          ...(this.#init.dataStatus?.(x.node.id) ?? NO_DATA_STATUS),
          healthLatencyMs: this.#monitor.latencyMs(x.node.id) ?? 0,
        })),
      assignments: [...m.assignments],
      pendingAssignments: m.moves.map((x) =>
        x.to === null ? { spaceId: x.spaceId, primary: '', replicas: [] } : x.to,
      ),
      streams: this.#init.streams?.() ?? [],
    };
  }

  addNode(raw: unknown): number {
    return this.#apply(this.#membership.add(validateNode(raw, 'node')));
  }

  removeNode(id: string, force = false): number {
    const replicationFactor = this.#init.config.replicationFactor;
    return this.#apply(this.#membership.remove(id, { replicationFactor, force }));
  }

  drainNode(id: string, undrain: boolean, force = false): number {
    const m = this.#membership;
    const replicationFactor = this.#init.config.replicationFactor;
    return this.#apply(undrain ? m.undrain(id) : m.drain(id, { replicationFactor, force }));
  }

  assignSpace(raw: unknown): number {
    const ids = new Set(this.#membership.nodes.map((n) => n.id));
    return this.#apply(this.#membership.assign(validateAssignment(raw, 'assignment', ids)));
  }

  async repairSpace(spaceId: unknown): Promise<RepairResult> {
    if (typeof spaceId !== 'string' || spaceId === '') {
      throw new ConfigError('spaceId', spaceId, 'must be a non-empty string');
    }
    if (this.#init.repair === undefined) {
      throw new ConfigError('spaceId', spaceId, 'repair needs router.replicateWrites');
    }
    return this.#init.repair.space(spaceId);
  }

  repairNode(id: unknown): RepairResult {
    if (typeof id !== 'string' || this.#membership.get(id) === undefined) {
      throw new MembershipError('NotAMember', 'id', id, 'is not a member');
    }
    if (this.#init.repair === undefined) {
      throw new ConfigError('id', id, 'repair needs router.replicateWrites');
    }
    this.#init.repair.node(id);
    return { spaces: 0, differed: 0, applied: 0, unreachable: [] };
  }

  /** Where a space lives, from the table in force, and what each of its nodes holds. */
  locate(spaceId: unknown): Promise<Location> {
    const ring = this.#init.publisher.ringFor(this.#membership);
    const digestOf: DigestOf =
      this.#init.digestOf ?? (() => Promise.reject(new Error('no ReplicaService access')));
    return locateSpace(spaceId, this.table(), ring, digestOf);
  }

  unassignSpace(spaceId: unknown): number {
    if (typeof spaceId !== 'string') {
      throw new ConfigError('spaceId', spaceId, 'has no assignment to clear');
    }
    return this.#apply(this.#membership.unassign(spaceId));
  }

  /** Replaces the node list (SIGHUP): the file wins; pins and drains of kept nodes survive. */
  reloadMembership(nodes: readonly NodeConfig[]): number {
    const change = this.#membership.reload(nodes);
    if (change.added.length > 0 || change.removed.length > 0) {
      this.#init.log.warn(
        { event: 'reload-membership', removed: change.removed, added: change.added },
        'SIGHUP: the config file replaces the node list (admin-added nodes not in it are removed)',
      );
    }
    return this.#apply(change);
  }

  close(): void {
    this.#closed = true;
    this.#monitor.stop();
  }

  /** Publishes a change (throws with nothing applied), then makes it current. */
  #apply(change: Change): number {
    const next = change.next;
    // Fresh slots start with a closed breaker, before any thread can route to their node.
    for (const slot of change.freshSlots) this.#init.breakers.reset(slot);
    const epoch = this.#publish(next, change.reason);
    const before = this.#membership;
    this.#membership = next;
    for (const m of before.members) {
      if (next.get(m.node.id) === undefined) this.#monitor.unwatch(m.node.id);
    }
    for (const m of next.members) this.#monitor.watch(m.node);
    this.#init.onChange?.(next);
    return epoch;
  }

  #onVerdict(id: string, health: Health): void {
    if (this.#closed) return;
    const member = this.#membership.get(id);
    if (member === undefined) return;
    const log = this.#init.log;
    if (health === Health.Down) {
      log.warn({ event: 'node-down', node: id }, `node ${id} marked down`);
    } else {
      this.#init.breakers.reset(member.slot);
      log.info({ event: 'node-up', node: id }, `node ${id} marked up`);
    }
    const next = this.#membership.setHealth(id, health);
    this.#publish(next, `node ${id} ${health}`);
    this.#membership = next;
    this.#init.onChange?.(next);
  }

  #publish(next: Membership, reason: string): number {
    const panic = isPanic(next, this.#init.config.health.panicThreshold);
    const partitioned = !panic && isPartitioned(next);
    const epoch = this.#init.publisher.publish(next, partitioned, panic);
    const log = this.#init.log;
    if (panic !== this.#panic) {
      this.#panic = panic;
      const { up, total } = next.serving;
      log.warn(
        { event: 'panic', panic, up, total },
        panic
          ? `panic: ${up}/${total} nodes up is below health.panicThreshold; routing to every node, breakers decide`
          : `panic over: ${up}/${total} nodes up`,
      );
    }
    if (partitioned !== this.#partitioned) {
      this.#partitioned = partitioned;
      const reachable = next.reachable;
      const total = next.size;
      log.warn(
        { event: 'partition', partitioned, reachable, total },
        partitioned
          ? `partitioned: ${reachable}/${total} nodes reachable, routing LocalOnly`
          : `partition healed: ${reachable}/${total} nodes reachable`,
      );
    }
    log.info(
      {
        event: 'table-publish',
        epoch,
        reason,
        nodes: [...next.members].map((m) => `${m.node.id}:${reportedState(m)}`),
        partitioned,
        assignments: next.assignments.length,
      },
      `published table epoch ${epoch} (${reason})`,
    );
    return epoch;
  }
}
