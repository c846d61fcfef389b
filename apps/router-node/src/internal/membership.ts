import { EngramError } from '@engram/common';
import { NodeState } from '@engram/router';
import type { AssignmentConfig, NodeConfig } from './config.js';

/**
 * The cluster membership as the control plane holds it: an immutable value, and commands that
 * give the next value or throw a `MembershipError` with a stable code (nothing changes on
 * error). No I/O, no clock: the control plane applies a result (publishes a table, resets
 * breakers) only after every check passed.
 *
 * A member has a stable slot (shared breaker slot = node-state word = metrics slot), a health
 * verdict from the probes, and an operator lifecycle. The state the data plane routes by is
 * derived from the two (`routingState`), so a draining node that fails its probes and is
 * undrained comes back as down, not up.
 */

/** Health verdict of the probes (and, later, passive evidence). */
export const Health = Object.freeze({ Up: 'up', Down: 'down' } as const);
export type Health = (typeof Health)[keyof typeof Health];

/** What an operator asked of a node. */
export const Lifecycle = Object.freeze({
  /** Serving as placed. */
  Active: 'active',
  /** No new calls while another replica can serve (DrainNode). */
  Draining: 'draining',
} as const);
export type Lifecycle = (typeof Lifecycle)[keyof typeof Lifecycle];

export interface Member {
  readonly node: NodeConfig;
  readonly slot: number;
  readonly health: Health;
  readonly lifecycle: Lifecycle;
}

/** The state a member is routed by (the Router's NodeState, published per node slot). */
export function routingState(m: Member): NodeState {
  return m.lifecycle === Lifecycle.Draining ? NodeState.Draining : m.health;
}

export const MEMBERSHIP_ERROR_CODES = Object.freeze({
  NotAMember: 'NotAMember',
  AlreadyAMember: 'AlreadyAMember',
  NoSuchAssignment: 'NoSuchAssignment',
  /** The node is pinned by an assignment, is the localNodeId, or is the last node. */
  InUse: 'InUse',
  /** Drain of a draining node, undrain of one that is not. */
  WrongLifecycle: 'WrongLifecycle',
  /** More nodes, or more node slots over the process's life, than the shared layout holds. */
  CapacityExceeded: 'CapacityExceeded',
} as const);
export type MembershipErrorCode =
  (typeof MEMBERSHIP_ERROR_CODES)[keyof typeof MEMBERSHIP_ERROR_CODES];

/** A membership command refused; `field` names the offending input, `value` its value. */
export class MembershipError extends EngramError {
  declare readonly code: MembershipErrorCode;
  readonly field: string;
  readonly value: unknown;
  constructor(code: MembershipErrorCode, field: string, value: unknown, reason: string) {
    super(code, `${field} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'MembershipError';
    this.field = field;
    this.value = value;
  }
}

export interface MembershipLimits {
  /** Most members at once (the shared table's node capacity). */
  readonly maxNodes: number;
  /** Slots over the process's life (the shared node-state and breaker layout). */
  readonly maxSlots: number;
}

/** A command's result: the next membership and what the control plane must do about it. */
export interface Change {
  readonly next: Membership;
  /** For logs and the table-publish line. */
  readonly reason: string;
  /** Slots handed to a node that is new to them: their breakers must be reset. */
  readonly freshSlots: readonly number[];
}

export class Membership {
  readonly #members: ReadonlyMap<string, Member>;
  readonly assignments: readonly AssignmentConfig[];
  readonly localNodeId: string | null;
  readonly limits: MembershipLimits;
  readonly #freeSlots: readonly number[];
  readonly #nextSlot: number;

  private constructor(
    members: ReadonlyMap<string, Member>,
    assignments: readonly AssignmentConfig[],
    localNodeId: string | null,
    limits: MembershipLimits,
    freeSlots: readonly number[],
    nextSlot: number,
  ) {
    this.#members = members;
    this.assignments = assignments;
    this.localNodeId = localNodeId;
    this.limits = limits;
    this.#freeSlots = freeSlots;
    this.#nextSlot = nextSlot;
  }

  /** The first membership: every node up and active, slots 0..n-1. */
  static create(
    nodes: readonly NodeConfig[],
    assignments: readonly AssignmentConfig[],
    localNodeId: string | null,
    limits: MembershipLimits,
  ): Membership {
    const empty = new Membership(new Map(), [], localNodeId, limits, [], 0);
    let m = empty;
    for (const node of nodes) m = m.add(node).next;
    m.#checkNodeCount(m.size, 'nodes');
    return new Membership(m.#members, [...assignments], localNodeId, limits, [], m.#nextSlot);
  }

  get size(): number {
    return this.#members.size;
  }

  /** Members in the order they joined. */
  get members(): IterableIterator<Member> {
    return this.#members.values();
  }

  get nodes(): NodeConfig[] {
    return [...this.#members.values()].map((m) => m.node);
  }

  get(id: string): Member | undefined {
    return this.#members.get(id);
  }

  /** Members whose health is up (draining ones included: they answer). */
  get reachable(): number {
    let n = 0;
    for (const m of this.#members.values()) if (m.health === Health.Up) n++;
    return n;
  }

  add(node: NodeConfig): Change {
    if (this.#members.has(node.id)) {
      throw new MembershipError('AlreadyAMember', 'node.id', node.id, 'is already a member');
    }
    this.#checkNodeCount(this.size + 1, 'node.id', node.id);
    const { slot, free, next } = this.#takeSlot(node.id);
    const members = new Map(this.#members);
    members.set(node.id, { node, slot, health: Health.Up, lifecycle: Lifecycle.Active });
    return {
      next: this.#with(members, this.assignments, free, next),
      reason: `add ${node.id}`,
      freshSlots: [slot],
    };
  }

  remove(id: string): Change {
    const m = this.#require(id, 'id');
    if (id === this.localNodeId) {
      throw new MembershipError('InUse', 'id', id, 'is the localNodeId');
    }
    const used = this.assignments.find((a) => a.primary === id || a.replicas.includes(id));
    if (used !== undefined) {
      throw new MembershipError('InUse', 'id', id, `is pinned by space ${used.spaceId}`);
    }
    if (this.size === 1) throw new MembershipError('InUse', 'id', id, 'is the last node');
    const members = new Map(this.#members);
    members.delete(id);
    return {
      next: this.#with(members, this.assignments, [...this.#freeSlots, m.slot], this.#nextSlot),
      reason: `remove ${id}`,
      freshSlots: [],
    };
  }

  drain(id: string): Change {
    const m = this.#require(id, 'id');
    if (m.lifecycle === Lifecycle.Draining) {
      throw new MembershipError('WrongLifecycle', 'id', id, 'is already draining');
    }
    return this.#update({ ...m, lifecycle: Lifecycle.Draining }, `drain ${id}`);
  }

  undrain(id: string): Change {
    const m = this.#require(id, 'id');
    if (m.lifecycle !== Lifecycle.Draining) {
      throw new MembershipError('WrongLifecycle', 'id', id, 'is not draining');
    }
    return this.#update({ ...m, lifecycle: Lifecycle.Active }, `undrain ${id}`);
  }

  /** Pins a space (replacing its pin); every node it names must be a member. */
  assign(a: AssignmentConfig): Change {
    for (const [field, id] of [
      ['assignment.primary', a.primary],
      ...a.replicas.map((r, i) => [`assignment.replicas[${i}]`, r] as const),
    ] as const) {
      if (!this.#members.has(id)) {
        throw new MembershipError('NotAMember', field, id, 'is not a member');
      }
    }
    const assignments = [...this.assignments.filter((x) => x.spaceId !== a.spaceId), a];
    return {
      next: this.#with(this.#members, assignments, this.#freeSlots, this.#nextSlot),
      reason: `assign ${a.spaceId} -> ${a.primary}`,
      freshSlots: [],
    };
  }

  unassign(spaceId: string): Change {
    if (!this.assignments.some((a) => a.spaceId === spaceId)) {
      throw new MembershipError('NoSuchAssignment', 'spaceId', spaceId, 'has no assignment');
    }
    const assignments = this.assignments.filter((a) => a.spaceId !== spaceId);
    return {
      next: this.#with(this.#members, assignments, this.#freeSlots, this.#nextSlot),
      reason: `unassign ${spaceId}`,
      freshSlots: [],
    };
  }

  /**
   * Replaces the node list (SIGHUP: the file wins). Members not in `nodes` leave, new ones
   * join, a member whose address or zone changed keeps its slot but starts over (up, active,
   * fresh breaker); the others keep their state. Pins must still name members.
   */
  reload(nodes: readonly NodeConfig[]): Change & { added: string[]; removed: string[] } {
    const ids = new Set(nodes.map((n) => n.id));
    for (const a of this.assignments) {
      for (const id of [a.primary, ...a.replicas]) {
        if (!ids.has(id)) {
          throw new MembershipError('InUse', 'nodes', id, `is pinned by space ${a.spaceId}`);
        }
      }
    }
    if (this.localNodeId !== null && !ids.has(this.localNodeId)) {
      throw new MembershipError('InUse', 'nodes', this.localNodeId, 'is the localNodeId');
    }
    this.#checkNodeCount(nodes.length, 'nodes');
    const removed = [...this.#members.keys()].filter((id) => !ids.has(id));
    const added = nodes.filter((n) => !this.#members.has(n.id)).map((n) => n.id);
    let free = [...this.#freeSlots];
    for (const id of removed) free.push(this.#members.get(id)!.slot);
    let nextSlot = this.#nextSlot;
    const members = new Map<string, Member>();
    const fresh: number[] = [];
    for (const node of nodes) {
      const old = this.#members.get(node.id);
      if (old !== undefined && old.node.address === node.address && old.node.zone === node.zone) {
        members.set(node.id, old);
        continue;
      }
      let slot: number;
      if (old !== undefined) slot = old.slot;
      else {
        const taken = slotFrom(free, nextSlot, this.limits.maxSlots, node.id);
        slot = taken.slot;
        free = taken.free;
        nextSlot = taken.next;
      }
      fresh.push(slot);
      members.set(node.id, { node, slot, health: Health.Up, lifecycle: Lifecycle.Active });
    }
    return {
      next: this.#with(members, this.assignments, free, nextSlot),
      reason: 'reload',
      freshSlots: fresh,
      added,
      removed,
    };
  }

  /** A health verdict; the same membership when it changes nothing. */
  setHealth(id: string, health: Health): Membership {
    const m = this.#members.get(id);
    if (m === undefined || m.health === health) return this;
    return this.#update({ ...m, health }, `${id} ${health}`).next;
  }

  #require(id: string, field: string): Member {
    const m = this.#members.get(id);
    if (m === undefined) throw new MembershipError('NotAMember', field, id, 'is not a member');
    return m;
  }

  #update(m: Member, reason: string): Change {
    const members = new Map(this.#members);
    members.set(m.node.id, m);
    return {
      next: this.#with(members, this.assignments, this.#freeSlots, this.#nextSlot),
      reason,
      freshSlots: [],
    };
  }

  #checkNodeCount(count: number, field: string, value: unknown = count): void {
    if (count > this.limits.maxNodes) {
      throw new MembershipError(
        'CapacityExceeded',
        field,
        value,
        `a cluster holds at most ${this.limits.maxNodes} nodes`,
      );
    }
    if (count === 0) throw new MembershipError('InUse', field, [], 'the last node cannot go');
  }

  #takeSlot(id: string): { slot: number; free: readonly number[]; next: number } {
    return slotFrom(this.#freeSlots, this.#nextSlot, this.limits.maxSlots, id);
  }

  #with(
    members: ReadonlyMap<string, Member>,
    assignments: readonly AssignmentConfig[],
    free: readonly number[],
    nextSlot: number,
  ): Membership {
    return new Membership(members, assignments, this.localNodeId, this.limits, free, nextSlot);
  }
}

/** Reuses a freed slot (last freed first) or takes the next unused one. */
function slotFrom(
  free: readonly number[],
  nextSlot: number,
  maxSlots: number,
  id: string,
): { slot: number; free: number[]; next: number } {
  if (free.length > 0) {
    return { slot: free[free.length - 1]!, free: free.slice(0, -1), next: nextSlot };
  }
  if (nextSlot >= maxSlots) {
    throw new MembershipError(
      'CapacityExceeded',
      'node.id',
      id,
      `all ${maxSlots} node slots of this process are used (restart the router to reclaim them)`,
    );
  }
  return { slot: nextSlot, free: [], next: nextSlot + 1 };
}
