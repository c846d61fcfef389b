import type { BreakerTable } from '@engram/breaker';
import type { Logger } from 'pino';
import type { AdminTarget, TableView } from './admin.js';
import {
  type NodeConfig,
  type RouterNodeConfig,
  validateAssignment,
  validateNode,
} from './config.js';
import { ConfigError } from './errors.js';
import { HealthMonitor, type Probe } from './health-monitor.js';
import {
  type Change,
  Health,
  Membership,
  type MembershipLimits,
  routingState,
} from './membership.js';
import { isPartitioned, type TablePublisher } from './table-publisher.js';
import type { Timers } from './timers.js';

export interface ControlPlaneInit {
  readonly config: RouterNodeConfig;
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
      probe: init.probe,
      current: (id) => this.#membership.get(id)?.health,
      onVerdict: (id, health) => this.#onVerdict(id, health),
    });
    const first = Membership.create(cfg.nodes, cfg.assignments, cfg.localNodeId, init.limits);
    this.#membership = first;
    this.#publish(first, 'start');
    for (const m of first.members) this.#monitor.watch(m.node);
  }

  /** Starts health checking (a first round at once). */
  start(): void {
    this.#monitor.start();
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
          state: routingState(x),
          breaker: breakers.state(x.slot),
          slot: x.slot,
        })),
      assignments: [...m.assignments],
    };
  }

  addNode(raw: unknown): number {
    return this.#apply(this.#membership.add(validateNode(raw, 'node')));
  }

  removeNode(id: string): number {
    return this.#apply(this.#membership.remove(id));
  }

  drainNode(id: string, undrain: boolean): number {
    const m = this.#membership;
    return this.#apply(undrain ? m.undrain(id) : m.drain(id));
  }

  assignSpace(raw: unknown): number {
    const ids = new Set(this.#membership.nodes.map((n) => n.id));
    return this.#apply(this.#membership.assign(validateAssignment(raw, 'assignment', ids)));
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
  }

  #publish(next: Membership, reason: string): number {
    const partitioned = isPartitioned(next);
    const epoch = this.#init.publisher.publish(next, partitioned);
    const log = this.#init.log;
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
        nodes: [...next.members].map((m) => `${m.node.id}:${routingState(m)}`),
        partitioned,
        assignments: next.assignments.length,
      },
      `published table epoch ${epoch} (${reason})`,
    );
    return epoch;
  }
}
