import type { BreakerTable } from '@engram/breaker';
import { allocateTokens } from '@engram/ring';
import type { Logger } from 'pino';
import type { AdminTarget, Epoch, RepairResult, TableView } from './admin.js';
import {
  type AssignmentConfig,
  type NodeConfig,
  type RouterNodeConfig,
  validateAssignment,
  validateNode,
} from './config.js';
import { ringTokensPerNode } from './config-validate.js';
import type { NodeDataStatus } from './data-movement.js';
import { ConfigError } from './errors.js';
import { intentOf, type PlacementIntent } from './etcd-keys.js';
import { HealthMonitor, type Probe } from './health-monitor.js';
import { type DigestOf, type Location, locateSpace } from './locate.js';
import {
  type Change,
  Health,
  Lifecycle,
  Membership,
  MembershipError,
  type MembershipLimits,
  reportedState,
} from './membership.js';
import { AbortedError, type PlacementStore } from './placement-store.js';
import { type ProbeStat, ProbeStatsTable } from './probe-stats.js';
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
      const member = m.get(r.subject);
      if (member === undefined) return m;
      // Already there (restored from the state file): nothing to put back.
      if (member.lifecycle === Lifecycle.Leaving && member.leaveTo === r.leaveTo) return m;
      if (member.lifecycle === Lifecycle.Drained && r.leaveTo === 'drained') return m;
      return (r.leaveTo === 'drained' ? m.drain(r.subject) : m.remove(r.subject)).next;
    }
    const to = r.to ?? null;
    const move = m.moves.find((x) => x.spaceId === r.subject);
    if (move !== undefined && samePin(move.to, to)) return m;
    const pin = m.assignments.find((a) => a.spaceId === r.subject) ?? null;
    if (move === undefined && samePin(pin, to)) return m;
    if (to === null) return m.unassign(r.subject).next;
    return m.assign(to).next;
  } catch (err) {
    log.warn({ err, kind: r.kind, subject: r.subject }, 'a persisted transition cannot resume');
    return m;
  }
}

function samePin(a: AssignmentConfig | null, b: AssignmentConfig | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.spaceId === b.spaceId &&
    a.primary === b.primary &&
    a.replicas.length === b.replicas.length &&
    a.replicas.every((r, i) => r === b.replicas[i])
  );
}

/** The health-monitor settings of a config (changed live by a reload). */
function sameHealth(a: RouterNodeConfig['health'], b: RouterNodeConfig['health']): boolean {
  return (
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.unhealthyIntervalMs === b.unhealthyIntervalMs &&
    a.healthyEdgeIntervalMs === b.healthyEdgeIntervalMs &&
    a.healthyThreshold === b.healthyThreshold &&
    a.unhealthyThreshold === b.unhealthyThreshold
  );
}

/** The config file's `nodes` and `assignments` a membership was last given (see admin-state). */
export interface PlacementSeed {
  readonly nodes: readonly NodeConfig[];
  readonly assignments: readonly AssignmentConfig[];
}

/** A placement change computed by `planPlacement`, applied by `applyPlacement`. */
export interface PlacementPlan {
  readonly change: Change;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly from: Membership;
}

/**
 * The membership with `nodes` (when given) as its node list and `assignments` (when given) as
 * its pins: pins not in the list are cleared first (so their nodes may go), then the node list
 * is replaced (Membership.reload), then pins that are new or differ are set. Throws a coded
 * error with nothing changed.
 */
export function planPlacement(
  m: Membership,
  nodes: readonly NodeConfig[] | null,
  assignments: readonly AssignmentConfig[] | null,
): PlacementPlan {
  let cur = m;
  const fresh: number[] = [];
  const reasons: string[] = [];
  let added: string[] = [];
  let removed: string[] = [];
  if (assignments !== null) {
    const wanted = new Set(assignments.map((a) => a.spaceId));
    for (const a of cur.assignments) {
      if (wanted.has(a.spaceId)) continue;
      if (cur.moves.some((x) => x.spaceId === a.spaceId && x.to === null)) continue;
      cur = cur.unassign(a.spaceId).next;
      reasons.push(`unassign ${a.spaceId}`);
    }
  }
  if (nodes !== null) {
    const change = cur.reload(nodes);
    cur = change.next;
    fresh.push(...change.freshSlots);
    added = change.added;
    removed = change.removed;
    reasons.push('reload nodes');
  }
  if (assignments !== null) {
    const ids = new Set(cur.nodes.map((n) => n.id));
    assignments.forEach((raw, i) => {
      const a = validateAssignment(raw, `assignments[${i}]`, ids);
      const move = cur.moves.find((x) => x.spaceId === a.spaceId);
      const pin =
        move?.to ??
        (move === undefined ? cur.assignments.find((x) => x.spaceId === a.spaceId) : undefined) ??
        null;
      if (samePin(pin, a)) return;
      cur = cur.assign(a).next;
      reasons.push(`assign ${a.spaceId} -> ${a.primary}`);
    });
  }
  return {
    change: {
      next: cur,
      reason: `reload (${reasons.join(', ') || 'no change'})`,
      freshSlots: fresh,
    },
    added,
    removed,
    from: m,
  };
}

export interface ControlPlaneInit {
  readonly config: RouterNodeConfig;
  /**
   * The membership persisted by an earlier run (the state file): when given, it is the truth
   * for nodes, drains and pins, instead of the config's `nodes` and `assignments`.
   */
  readonly restored?: Membership;
  /**
   * Called after every membership change applied (admin, SIGHUP, a transition done; not health
   * verdicts) to persist it. A failure is logged: the change stays in force.
   */
  readonly persist?: (membership: Membership, seed: PlacementSeed) => void;
  /** Transitions a previous run of this router left in progress (resumed at start). */
  readonly resume?: readonly TransitionRecord[];
  /** Called after every published change (data movement follows it). */
  readonly onChange?: (membership: Membership) => void;
  /** Per node: hints and repair state, for the table view. */
  readonly dataStatus?: (nodeId: string) => NodeDataStatus;
  readonly streams?: () => readonly StreamStatus[];
  /** Whether outlier detection has the node ejected now (for the table view). */
  readonly ejected?: (nodeId: string) => boolean;
  /** Whether the node answered a call within the last `ms` (the data plane's passive words). */
  readonly answeredWithin?: (nodeId: string, ms: number) => boolean;
  /**
   * Many routers, one truth (etcd mode): every admin change and transition completion is
   * written here, conditioned on the placement revision it was checked against, and applies
   * once written; changes other routers write come in through `adopt`.
   */
  readonly store?: PlacementStore;
  /** The placement revision `restored` is at (etcd mode). */
  readonly revision?: number;
  /** etcd's side of the table view (etcd mode). */
  readonly etcdStatus?: () => TableView['etcd'];
  /** Anti-entropy (RepairSpace / RepairNode of the admin API). */
  readonly repair?: {
    space(spaceId: string): Promise<RepairResult>;
    node(nodeId: string): void;
  };
  /** What a node holds of a space, asked of the node (the admin API's Locate). */
  readonly digestOf?: DigestOf;
  readonly limits: MembershipLimits;
  readonly publisher: TablePublisher;
  /** The shared breakers: a slot handed to a new node is reset; a node marked up, `recovered`. */
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
  /** The config in force (reload replaces it). */
  #config: RouterNodeConfig;
  #monitor: HealthMonitor;
  #monitorStarted = false;
  #membership: Membership;
  #partitioned = false;
  #panic = false;
  #closed = false;
  /** Probe failures and round trips, kept when a health reload replaces the monitor. */
  readonly #probeStats = new ProbeStatsTable();
  /** etcd mode: the placement revision in force (0 without etcd). */
  #revision: number;
  /** etcd mode: this router's changes, one at a time, each checked against the one before. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(init: ControlPlaneInit) {
    this.#init = init;
    const cfg = init.config;
    this.#config = cfg;
    this.#revision = init.revision ?? 0;
    this.#monitor = this.#newMonitor(cfg.health);
    let first =
      init.restored ??
      Membership.create(
        cfg.nodes,
        cfg.assignments,
        cfg.localNodeId,
        init.limits,
        cfg.router.replicateWrites,
      );
    for (const r of init.resume ?? []) first = resumed(first, r, init.log);
    this.#membership = first;
    this.#publish(first, 'start');
    this.#persist(first);
    for (const m of first.members) this.#monitor.watch(m.node);
  }

  #newMonitor(h: RouterNodeConfig['health']): HealthMonitor {
    const init = this.#init;
    return new HealthMonitor({
      intervalMs: h.intervalMs,
      timeoutMs: h.timeoutMs,
      unhealthyIntervalMs: h.unhealthyIntervalMs,
      healthyEdgeIntervalMs: h.healthyEdgeIntervalMs,
      healthyThreshold: h.healthyThreshold,
      unhealthyThreshold: h.unhealthyThreshold,
      timers: init.timers,
      stats: this.#probeStats,
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
  }

  /**
   * Starts health checking and data movement of changes in progress. Resolves once the first
   * probe round is settled (within `health.timeoutMs`): every node starts unknown (routed as
   * down) and is up from its first passing probe, so a router that waits for this routes its
   * first calls by verdicts rather than by nothing.
   */
  start(): Promise<void> {
    this.#monitorStarted = true;
    const firstRound = this.#monitor.start();
    this.#init.onChange?.(this.#membership);
    return firstRound;
  }

  /**
   * A transition's data is where the new placement wants it: the change applies now (etcd
   * mode: once written, by the one router driving data movement).
   */
  completeTransition(kind: TransitionKind, subject: string): Promise<void> {
    const complete = (m: Membership): Change =>
      kind === 'join'
        ? m.completeJoin(subject)
        : kind === 'leave'
          ? m.completeLeave(subject)
          : m.completeMove(subject);
    // The transition was cancelled or changed meanwhile (e.g. the node was removed), or
    // another router completed it first (etcd mode): nothing to retry.
    const notApplied = (err: unknown): void =>
      this.#init.log.warn({ err, kind, subject }, 'transition done but no longer applicable');
    try {
      const done = this.#change(complete);
      if (typeof done === 'number') return Promise.resolve();
      return done.then(
        () => undefined,
        (err: unknown) => {
          // etcd away, or another router's change first: the streamer tries again.
          const code = (err as { code?: unknown } | null)?.code;
          if (code === 'Unavailable' || code === 'Aborted') throw err;
          notApplied(err);
        },
      );
    } catch (err) {
      notApplied(err);
      return Promise.resolve();
    }
  }

  /**
   * The placement another router wrote (etcd mode), at `revision`: applied and published
   * unless this router already has it (or a later one). Throws a coded error with nothing
   * changed when it cannot apply (over capacity, without the localNodeId).
   */
  adopt(intent: PlacementIntent, revision: number): number {
    if (revision <= this.#revision) return this.epoch;
    const change = this.#membership.adopt(
      intent.nodes,
      intent.assignments,
      intent.moves,
      `etcd revision ${revision}`,
    );
    const before = this.#revision;
    this.#revision = revision;
    let epoch: number;
    try {
      epoch = this.#apply(change);
    } catch (err) {
      this.#revision = before;
      throw err;
    }
    const local = this.#config.localNodeId;
    if (local !== null && change.next.get(local) === undefined) {
      this.#init.log.error(
        { event: 'local-node-removed', node: local, revision },
        `localNodeId ${local} is no longer a member (removed through another router): while partitioned this router has no local copy to route to`,
      );
    }
    return epoch;
  }

  /** etcd mode: the placement revision in force; 0 without etcd. */
  get revision(): number {
    return this.#revision;
  }

  /**
   * Applies the change `make` gives from the current membership: at once, or (etcd mode) once
   * written to etcd conditioned on the revision it was made from. A refused change throws (a
   * rejection in etcd mode: ABORTED when another router's change came first, UNAVAILABLE
   * without etcd), with nothing applied.
   */
  #change(make: (m: Membership) => Change, ifRevision = 0): Epoch {
    const store = this.#init.store;
    if (!Number.isSafeInteger(ifRevision) || ifRevision < 0) {
      throw new ConfigError('ifRevision', ifRevision, 'must be a placement revision, or 0');
    }
    if (store === undefined) {
      if (ifRevision !== 0) {
        throw new ConfigError('ifRevision', ifRevision, 'needs etcd mode (the `etcd` section)');
      }
      return this.#apply(make(this.#membership));
    }
    const run = async (): Promise<number> => {
      const base = this.#membership;
      const baseRevision = this.#revision;
      if (ifRevision !== 0 && ifRevision !== baseRevision) {
        throw new AbortedError(ifRevision, baseRevision, 'ifRevision');
      }
      const change = make(base);
      if (change.next === base) return this.epoch;
      const after = intentOf(change.next);
      const revision = await store.commit(intentOf(base), after, baseRevision, change.reason);
      return this.adopt(after, revision);
    };
    const done = this.#queue.then(run);
    this.#queue = done.catch(() => undefined);
    return done;
  }

  get membership(): Membership {
    return this.#membership;
  }

  /** A node's health probes (failures, last round trip); undefined before its first. */
  probeStats(nodeId: string): ProbeStat | undefined {
    return this.#probeStats.of(nodeId);
  }

  /** Below `health.panicThreshold` (the one in force) of nodes up: verdicts are ignored. */
  get panic(): boolean {
    return this.#panic;
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
    const cfg = this.#config;
    return {
      epoch: this.epoch,
      revision: this.#revision,
      etcd: this.#init.etcdStatus?.() ?? null,
      partitioned: this.#partitioned,
      replicationFactor: Math.min(cfg.replicationFactor, m.size),
      // Token mode: the tokens each node was allocated.
      vnodesPerNode: ringTokensPerNode(cfg),
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
          healthLatencyMs: this.#probeStats.of(x.node.id)?.lastMs ?? 0,
          ejected: this.#init.ejected?.(x.node.id) ?? false,
        })),
      assignments: [...m.assignments],
      pendingAssignments: m.moves.map((x) =>
        x.to === null ? { spaceId: x.spaceId, primary: '', replicas: [] } : x.to,
      ),
      streams: this.#init.streams?.() ?? [],
    };
  }

  addNode(raw: unknown, ifRevision = 0): Epoch {
    const node = validateNode(raw, 'node');
    return this.#change((m) => m.add(node, this.#tokensFor(m, node)), ifRevision);
  }

  /**
   * Token mode (etcd with `etcd.tokensPerNode`): the tokens the allocator gives `node` joining
   * `m`, balancing owned load against every member's tokens (a drained member's too, kept for
   * its return); undefined otherwise. Throws when `m` is not all in token mode (a refusal).
   */
  #tokensFor(m: Membership, node: NodeConfig): number[] | undefined {
    const tokensPerNode = this.#config.etcd?.tokensPerNode ?? 0;
    if (this.#init.store === undefined || tokensPerNode === 0) return undefined;
    const existing = [...m.members].map((x) => {
      if (x.tokens === undefined) {
        throw new MembershipError(
          'WrongLifecycle',
          'node.id',
          node.id,
          `member ${x.node.id} has no allocated tokens: the placement in etcd is not in token mode`,
        );
      }
      return { id: x.node.id, zone: x.node.zone, tokens: x.tokens };
    });
    return allocateTokens(existing, node, {
      tokensPerNode,
      replicationFactor: this.#config.replicationFactor,
    });
  }

  removeNode(id: string, force = false, ifRevision = 0): Epoch {
    const replicationFactor = this.#config.replicationFactor;
    return this.#change((m) => m.remove(id, { replicationFactor, force }), ifRevision);
  }

  drainNode(id: string, undrain: boolean, force = false, ifRevision = 0): Epoch {
    const replicationFactor = this.#config.replicationFactor;
    return this.#change(
      (m) => (undrain ? m.undrain(id) : m.drain(id, { replicationFactor, force })),
      ifRevision,
    );
  }

  assignSpace(raw: unknown, ifRevision = 0): Epoch {
    return this.#change((m) => {
      const ids = new Set(m.nodes.map((n) => n.id));
      return m.assign(validateAssignment(raw, 'assignment', ids));
    }, ifRevision);
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

  unassignSpace(spaceId: unknown, ifRevision = 0): Epoch {
    if (typeof spaceId !== 'string') {
      throw new ConfigError('spaceId', spaceId, 'has no assignment to clear');
    }
    return this.#change((m) => m.unassign(spaceId), ifRevision);
  }

  /** Replaces the node list (SIGHUP): the file wins; pins and drains of kept nodes survive. */
  reloadMembership(nodes: readonly NodeConfig[]): number {
    const plan = this.planPlacement(nodes, null);
    this.#config = { ...this.#config, nodes };
    return this.applyPlacement(plan);
  }

  /**
   * The placement change a reload would make (the file's `nodes` and/or `assignments`, null =
   * unchanged): throws a coded error, nothing changed, when it cannot apply.
   */
  planPlacement(
    nodes: readonly NodeConfig[] | null,
    assignments: readonly AssignmentConfig[] | null,
  ): PlacementPlan {
    return planPlacement(this.#membership, nodes, assignments);
  }

  /** Applies a plan made from the current membership (made in the same tick). */
  applyPlacement(plan: PlacementPlan): number {
    if (plan.from !== this.#membership) {
      throw new Error('planPlacement and applyPlacement must run in the same tick');
    }
    if (plan.added.length > 0 || plan.removed.length > 0) {
      this.#init.log.warn(
        { event: 'reload-membership', removed: plan.removed, added: plan.added },
        'the config file replaces the node list (admin-added nodes not in it are removed)',
      );
    }
    return this.#apply(plan.change);
  }

  /**
   * The reloadable settings the control plane reads, from `next` (the config in force after a
   * reload): health probing (restarted with the new interval, timeout and thresholds; verdicts
   * kept), the panic threshold (read at the next publish), and the config's `nodes` and
   * `assignments` (the seed persisted with the state; the membership itself changes only by
   * `applyPlacement`).
   */
  reconfigure(next: RouterNodeConfig): void {
    const before = this.#config;
    this.#config = next;
    if (!sameHealth(before.health, next.health) && !this.#closed) {
      const old = this.#monitor;
      old.stop();
      this.#monitor = this.#newMonitor(next.health);
      for (const m of this.#membership.members) this.#monitor.watch(m.node);
      if (this.#monitorStarted) void this.#monitor.start();
    }
    if (before.health.panicThreshold !== next.health.panicThreshold) {
      this.#publish(this.#membership, 'health.panicThreshold reloaded');
    }
    this.#persist(this.#membership);
  }

  close(): void {
    this.#closed = true;
    this.#monitor.stop();
  }

  /** Publishes a change (throws with nothing applied), then makes it current. */
  #apply(change: Change): number {
    const next = change.next;
    // Fresh slots start with a closed breaker and clear per-slot words (not ejected, no failure
    // run, no ramp; TablePublisher.handOut), before any thread can route to their node. The
    // generation goes up (handOut) before the reset: slot-breakers.ts relies on that order.
    for (const slot of change.freshSlots) {
      this.#init.publisher.handOut(slot);
      this.#init.breakers.reset(slot);
    }
    const epoch = this.#publish(next, change.reason);
    const before = this.#membership;
    this.#membership = next;
    for (const m of before.members) {
      if (next.get(m.node.id) === undefined) this.#monitor.unwatch(m.node.id);
    }
    for (const m of next.members) this.#monitor.watch(m.node);
    this.#init.onChange?.(next);
    this.#persist(next);
    return epoch;
  }

  /** Persists the membership (and the config placement it was seeded from), when asked to. */
  #persist(m: Membership): void {
    const persist = this.#init.persist;
    if (persist === undefined) return;
    try {
      persist(m, { nodes: this.#config.nodes, assignments: this.#config.assignments });
    } catch (err) {
      this.#init.log.error(
        { event: 'state-persist-failed', err },
        'membership change applied but not persisted: a restart would not keep it',
      );
    }
  }

  #onVerdict(id: string, health: Health): void {
    if (this.#closed) return;
    const member = this.#membership.get(id);
    if (member === undefined) return;
    const log = this.#init.log;
    if (health === Health.Down) {
      log.warn({ event: 'node-down', node: id }, `node ${id} marked down`);
    } else {
      // Half-open (its probes decide), not closed: a node just back proves itself on a few
      // calls before all of them return; a closed breaker forgets failures from the outage.
      this.#init.breakers.recovered(member.slot);
      log.info({ event: 'node-up', node: id }, `node ${id} marked up`);
    }
    const next = this.#membership.setHealth(id, health);
    this.#publish(next, `node ${id} ${health}`);
    this.#membership = next;
    this.#init.onChange?.(next);
  }

  #publish(next: Membership, reason: string): number {
    const panic = isPanic(next, this.#config.health.panicThreshold);
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
