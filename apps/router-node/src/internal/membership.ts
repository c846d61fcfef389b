import { EngramError } from '@engram/common';
import { NodeState } from '@engram/router';
import { type AssignmentConfig, addressKey, type NodeConfig } from './config.js';

/**
 * The cluster membership as the control plane holds it: an immutable value, and commands that
 * give the next value or throw a `MembershipError` with a stable code (nothing changes on
 * error). No I/O, no clock: the control plane applies a result (publishes a table, resets
 * breakers, starts streaming) only after every check passed.
 *
 * A member has a stable slot (shared breaker slot = node-state word = lag row = metrics slot),
 * a health verdict, and an operator lifecycle. With data movement on (`moveData`, the router
 * replicating writes), membership changes move data as Cassandra's bootstrap and decommission
 * do: a node added is `joining` (it gets writes, serves no reads) until its spaces are
 * streamed to it; a node removed or drained is `leaving` (it serves as before) until its spaces
 * are streamed to their new owners, then it is gone or `drained` (a member holding nothing).
 * A pin changed is a pending `move` the same way. Without data movement, changes apply at once
 * and a drained node stays placed but gets no new calls (`draining`).
 */

/**
 * Health verdict of the probes and of passive evidence (calls that succeed). `unknown`: a node
 * never probed (at start, added, re-addressed), routed as down until its first probe passes;
 * it counts for neither side of a partition or a panic (no evidence either way).
 */
export const Health = Object.freeze({ Up: 'up', Down: 'down', Unknown: 'unknown' } as const);
export type Health = (typeof Health)[keyof typeof Health];

/** What an operator asked of a node, and where its data stands. */
export const Lifecycle = Object.freeze({
  /** Serving as placed. */
  Active: 'active',
  /** Placed for writes only until its spaces are streamed to it. */
  Joining: 'joining',
  /** Serving while its spaces stream to their new owners; then removed or drained. */
  Leaving: 'leaving',
  /** A member out of the placement (DrainNode done); undrain makes it join again. */
  Drained: 'drained',
  /** Without data movement: placed, but no new calls while another replica can serve. */
  Draining: 'draining',
} as const);
export type Lifecycle = (typeof Lifecycle)[keyof typeof Lifecycle];

export interface Member {
  readonly node: NodeConfig;
  readonly slot: number;
  readonly health: Health;
  readonly lifecycle: Lifecycle;
  /** A leaving node, once its data is streamed: removed, or drained (a member). */
  readonly leaveTo?: 'removed' | 'drained';
  /**
   * Its ring tokens, chosen by the allocator when it joined (etcd mode with
   * `etcd.tokensPerNode`); absent: tokens hashed from its id (`vnodesPerNode`).
   */
  readonly tokens?: readonly number[];
}

/** A pin being moved: `to` is the new pin, or null to go back to the ring's placement. */
export interface SpaceMove {
  readonly spaceId: string;
  readonly to: AssignmentConfig | null;
}

/** The state a member is routed by (the Router's NodeState, published per node slot). */
export function routingState(m: Member): NodeState {
  if (m.lifecycle === Lifecycle.Draining) return NodeState.Draining;
  return m.health === Health.Up ? NodeState.Up : NodeState.Down;
}

/** The state reported for a member (GetTable, /metrics): as routed, but `unknown` told apart. */
export function reportedState(m: Member): NodeState | typeof Health.Unknown {
  return m.lifecycle !== Lifecycle.Draining && m.health === Health.Unknown
    ? Health.Unknown
    : routingState(m);
}

/** Members placed on the ring (joining and leaving included; drained ones are not). */
export function isPlaced(m: Member): boolean {
  return m.lifecycle !== Lifecycle.Drained;
}

/** Members that will hold a placement once changes in progress complete (not leaving). */
function staysPlaced(m: Member): boolean {
  return isPlaced(m) && m.lifecycle !== Lifecycle.Leaving;
}

/** When a removal is refused for leaving too few nodes (see `Membership.remove`). */
export interface RemoveGuard {
  /** Placed nodes that must remain; undefined: no such check (SIGHUP reload: the file wins). */
  readonly replicationFactor?: number;
  /** Remove even below `replicationFactor`. */
  readonly force?: boolean;
}

export const MEMBERSHIP_ERROR_CODES = Object.freeze({
  NotAMember: 'NotAMember',
  AlreadyAMember: 'AlreadyAMember',
  /** Another member has the node's address (compared by `addressKey`); details name it. */
  AddressInUse: 'AddressInUse',
  NoSuchAssignment: 'NoSuchAssignment',
  /** The node is pinned by an assignment, is the localNodeId, or is the last node. */
  InUse: 'InUse',
  /** Drain of a draining node, undrain of one that is not, a change of a node in transit. */
  WrongLifecycle: 'WrongLifecycle',
  /** A removal would leave fewer placed nodes than the replication factor (`force` overrides). */
  BelowReplicationFactor: 'BelowReplicationFactor',
  /** More nodes, or more node slots over the process's life, than the shared layout holds. */
  CapacityExceeded: 'CapacityExceeded',
} as const);
export type MembershipErrorCode =
  (typeof MEMBERSHIP_ERROR_CODES)[keyof typeof MEMBERSHIP_ERROR_CODES];

/**
 * A membership command refused; `field` names the offending input, `value` its value, and
 * `details` what it ran into, for a caller to act on without parsing the message (the member
 * owning an address, the counts behind a refused removal).
 */
export class MembershipError extends EngramError {
  declare readonly code: MembershipErrorCode;
  readonly field: string;
  readonly value: unknown;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    code: MembershipErrorCode,
    field: string,
    value: unknown,
    reason: string,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code, `${field} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'MembershipError';
    this.field = field;
    this.value = value;
    this.details = details;
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

interface State {
  readonly members: ReadonlyMap<string, Member>;
  readonly assignments: readonly AssignmentConfig[];
  readonly moves: readonly SpaceMove[];
  readonly free: readonly number[];
  readonly nextSlot: number;
}

export class Membership {
  readonly #s: State;
  readonly localNodeId: string | null;
  readonly limits: MembershipLimits;
  /** Membership changes move data (joining, leaving, moves) rather than apply at once. */
  readonly moveData: boolean;

  private constructor(
    s: State,
    localNodeId: string | null,
    limits: MembershipLimits,
    moveData: boolean,
  ) {
    this.#s = s;
    this.localNodeId = localNodeId;
    this.limits = limits;
    this.moveData = moveData;
  }

  /** The first membership: every node active, of unknown health until probed, slots 0..n-1. */
  static create(
    nodes: readonly NodeConfig[],
    assignments: readonly AssignmentConfig[],
    localNodeId: string | null,
    limits: MembershipLimits,
    moveData = false,
  ): Membership {
    let m = new Membership(
      { members: new Map(), assignments: [], moves: [], free: [], nextSlot: 0 },
      localNodeId,
      limits,
      false, // the first nodes hold the data: they start active
    );
    for (const node of nodes) m = m.add(node).next;
    m.#checkNodeCount(m.size, 'nodes');
    return new Membership(
      { ...m.#s, assignments: [...assignments] },
      localNodeId,
      limits,
      moveData,
    );
  }

  get size(): number {
    return this.#s.members.size;
  }

  /** Members in the order they joined. */
  get members(): IterableIterator<Member> {
    return this.#s.members.values();
  }

  get nodes(): NodeConfig[] {
    return [...this.#s.members.values()].map((m) => m.node);
  }

  get assignments(): readonly AssignmentConfig[] {
    return this.#s.assignments;
  }

  /** Pins being moved (their data streams before they apply). */
  get moves(): readonly SpaceMove[] {
    return this.#s.moves;
  }

  get(id: string): Member | undefined {
    return this.#s.members.get(id);
  }

  /** Members that count for a partition (placed for reads, probed at least once), and those up. */
  get serving(): { total: number; up: number } {
    let total = 0;
    let up = 0;
    for (const m of this.#s.members.values()) {
      if (m.lifecycle === Lifecycle.Drained || m.lifecycle === Lifecycle.Joining) continue;
      if (m.health === Health.Unknown) continue;
      total++;
      if (m.health === Health.Up) up++;
    }
    return { total, up };
  }

  /** Members whose health is up (draining ones included: they answer). */
  get reachable(): number {
    let n = 0;
    for (const m of this.#s.members.values()) if (m.health === Health.Up) n++;
    return n;
  }

  /** Adds `node` (with its allocated `tokens`, in token mode). */
  add(node: NodeConfig, tokens?: readonly number[]): Change {
    if (this.#s.members.has(node.id)) {
      throw new MembershipError('AlreadyAMember', 'node.id', node.id, 'is already a member');
    }
    this.#checkAddressFree(node, 'node.address');
    this.#checkNodeCount(this.size + 1, 'node.id', node.id);
    const { slot, free, next } = slotFrom(
      this.#s.free,
      this.#s.nextSlot,
      this.limits.maxSlots,
      node.id,
    );
    const lifecycle = this.moveData && this.size > 0 ? Lifecycle.Joining : Lifecycle.Active;
    const members = new Map(this.#s.members);
    members.set(node.id, {
      node,
      slot,
      health: Health.Unknown,
      lifecycle,
      ...(tokens !== undefined ? { tokens: [...tokens] } : {}),
    });
    return this.#change({ members, free, nextSlot: next }, `add ${node.id}`, [slot]);
  }

  /**
   * Removes a node: with data movement an active node leaves first (its spaces stream to their
   * new owners); a joining or drained one, or any without data movement, goes at once. With
   * `replicationFactor`, a removal that would leave fewer placed nodes than that (spaces with
   * fewer replicas than configured) is refused unless `force`.
   */
  remove(id: string, guard: RemoveGuard = {}): Change {
    const m = this.#require(id, 'id');
    if (id === this.localNodeId) throw new MembershipError('InUse', 'id', id, 'is the localNodeId');
    const pins = [...this.#s.assignments, ...this.#s.moves.flatMap((x) => (x.to ? [x.to] : []))];
    const used = pins.find((a) => a.primary === id || a.replicas.includes(id));
    if (used !== undefined) {
      throw new MembershipError('InUse', 'id', id, `is pinned by space ${used.spaceId}`);
    }
    if (this.#placedCount() === 1 && isPlaced(m)) {
      throw new MembershipError('InUse', 'id', id, 'is the last node');
    }
    if (staysPlaced(m)) this.#checkReplicas(m, guard, 'removing');
    if (m.lifecycle === Lifecycle.Leaving) {
      return this.#update({ ...m, leaveTo: 'removed' }, `remove ${id} (after leaving)`);
    }
    if (this.moveData && (m.lifecycle === Lifecycle.Active || m.lifecycle === Lifecycle.Draining)) {
      return this.#update(
        { ...m, lifecycle: Lifecycle.Leaving, leaveTo: 'removed' },
        `leave ${id}`,
      );
    }
    return this.#drop(m, `remove ${id}`);
  }

  /**
   * Refuses (unless `force`) taking `m` out of the placement when fewer placed nodes than the
   * replication factor would remain: its spaces would have fewer replicas than configured.
   */
  #checkReplicas(m: Member, guard: RemoveGuard, doing: 'removing' | 'draining'): void {
    const rf = guard.replicationFactor;
    if (rf === undefined || guard.force === true) return;
    let remaining = 0;
    for (const x of this.#s.members.values()) if (x !== m && staysPlaced(x)) remaining++;
    if (remaining < rf) {
      throw new MembershipError(
        'BelowReplicationFactor',
        'id',
        m.node.id,
        `${doing} it would leave ${remaining} placed node${remaining === 1 ? '' : 's'}, fewer than replicationFactor ${rf}: its spaces would have fewer replicas than configured; set force to ${doing === 'removing' ? 'remove' : 'drain'} it anyway`,
        { remaining, replicationFactor: rf },
      );
    }
  }

  /** Drains a node (its spaces go to others); guarded by the replication factor as `remove` is. */
  drain(id: string, guard: RemoveGuard = {}): Change {
    const m = this.#require(id, 'id');
    // With data movement a drained node leaves the placement; without, it stays placed (its
    // traffic goes elsewhere) and no replica is lost.
    if (this.moveData && staysPlaced(m)) this.#checkReplicas(m, guard, 'draining');
    if (!this.moveData) {
      if (m.lifecycle === Lifecycle.Draining) {
        throw new MembershipError('WrongLifecycle', 'id', id, 'is already draining');
      }
      return this.#update({ ...m, lifecycle: Lifecycle.Draining }, `drain ${id}`);
    }
    if (m.lifecycle === Lifecycle.Joining) {
      return this.#update({ ...m, lifecycle: Lifecycle.Drained }, `drain ${id} (was joining)`);
    }
    if (m.lifecycle !== Lifecycle.Active) {
      throw new MembershipError('WrongLifecycle', 'id', id, `is ${m.lifecycle}`);
    }
    if (this.#placedCount() === 1) throw new MembershipError('InUse', 'id', id, 'is the last node');
    return this.#update({ ...m, lifecycle: Lifecycle.Leaving, leaveTo: 'drained' }, `drain ${id}`);
  }

  undrain(id: string): Change {
    const m = this.#require(id, 'id');
    if (m.lifecycle === Lifecycle.Draining) {
      return this.#update({ ...m, lifecycle: Lifecycle.Active }, `undrain ${id}`);
    }
    if (m.lifecycle === Lifecycle.Drained) {
      const lifecycle = this.moveData ? Lifecycle.Joining : Lifecycle.Active;
      return this.#update({ ...m, lifecycle }, `undrain ${id}`);
    }
    if (m.lifecycle === Lifecycle.Leaving && m.leaveTo === 'drained') {
      return this.#update(settled(m, Lifecycle.Active), `undrain ${id}`);
    }
    throw new MembershipError('WrongLifecycle', 'id', id, 'is not draining');
  }

  /**
   * Puts back a transition a restarted router finds persisted: an active node that was
   * joining joins again (its stream resumes).
   */
  rejoin(id: string): Change {
    const m = this.#require(id, 'id');
    if (!this.moveData || m.lifecycle !== Lifecycle.Active) return this.#change({}, `rejoin ${id}`);
    return this.#update({ ...m, lifecycle: Lifecycle.Joining }, `rejoin ${id}`);
  }

  /** A joining node's spaces are streamed to it: it serves reads from now on. */
  completeJoin(id: string): Change {
    const m = this.#require(id, 'id');
    if (m.lifecycle !== Lifecycle.Joining) {
      throw new MembershipError('WrongLifecycle', 'id', id, 'is not joining');
    }
    return this.#update({ ...m, lifecycle: Lifecycle.Active }, `joined ${id}`);
  }

  /** A leaving node's spaces are streamed to their new owners: it goes (or stays drained). */
  completeLeave(id: string): Change {
    const m = this.#require(id, 'id');
    if (m.lifecycle !== Lifecycle.Leaving) {
      throw new MembershipError('WrongLifecycle', 'id', id, 'is not leaving');
    }
    if (m.leaveTo === 'drained') {
      return this.#update(settled(m, Lifecycle.Drained), `drained ${id}`);
    }
    return this.#drop(m, `left ${id}`);
  }

  /** Pins a space (replacing its pin); with data movement the pin is a move until streamed. */
  assign(a: AssignmentConfig): Change {
    for (const [field, id] of [
      ['assignment.primary', a.primary],
      ...a.replicas.map((r, i) => [`assignment.replicas[${i}]`, r] as const),
    ] as const) {
      const m = this.#s.members.get(id);
      if (m === undefined) throw new MembershipError('NotAMember', field, id, 'is not a member');
      if (m.lifecycle !== Lifecycle.Active && m.lifecycle !== Lifecycle.Draining) {
        throw new MembershipError('WrongLifecycle', field, id, `is ${m.lifecycle}`);
      }
    }
    if (this.moveData)
      return this.#move({ spaceId: a.spaceId, to: a }, `move ${a.spaceId} -> ${a.primary}`);
    const assignments = [...this.#s.assignments.filter((x) => x.spaceId !== a.spaceId), a];
    return this.#change({ assignments }, `assign ${a.spaceId} -> ${a.primary}`);
  }

  unassign(spaceId: string): Change {
    if (!this.#s.assignments.some((a) => a.spaceId === spaceId)) {
      throw new MembershipError('NoSuchAssignment', 'spaceId', spaceId, 'has no assignment');
    }
    if (this.moveData) return this.#move({ spaceId, to: null }, `move ${spaceId} -> ring`);
    const assignments = this.#s.assignments.filter((a) => a.spaceId !== spaceId);
    return this.#change({ assignments }, `unassign ${spaceId}`);
  }

  /** A moved pin's data is streamed: the pin (or the ring placement) applies. */
  completeMove(spaceId: string): Change {
    const move = this.#s.moves.find((x) => x.spaceId === spaceId);
    if (move === undefined) {
      throw new MembershipError('NoSuchAssignment', 'spaceId', spaceId, 'is not being moved');
    }
    const assignments = this.#s.assignments.filter((a) => a.spaceId !== spaceId);
    if (move.to !== null) assignments.push(move.to);
    const moves = this.#s.moves.filter((x) => x.spaceId !== spaceId);
    return this.#change({ assignments, moves }, `moved ${spaceId}`);
  }

  /**
   * Replaces the node list (SIGHUP: the file wins). Members not in `nodes` are removed (they
   * leave first with data movement), new ones are added (they join), a member whose address or
   * zone changed keeps its slot but starts over (unknown until probed, fresh breaker); the others keep their
   * state. Pins must still name members.
   */
  reload(nodes: readonly NodeConfig[]): Change & { added: string[]; removed: string[] } {
    const ids = new Set(nodes.map((n) => n.id));
    for (const a of this.#s.assignments) {
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
    const owners = new Map<string, NodeConfig>();
    for (const node of nodes) {
      const owner = owners.get(addressKey(node.address));
      if (owner !== undefined) throw addressInUse(node, owner, 'nodes');
      owners.set(addressKey(node.address), node);
    }
    const removed = [...this.#s.members.keys()].filter((id) => !ids.has(id));
    const added = nodes.filter((n) => !this.#s.members.has(n.id)).map((n) => n.id);
    let m: Membership = this;
    const fresh: number[] = [];
    for (const node of nodes) {
      const old = m.get(node.id);
      if (old === undefined || (old.node.address === node.address && old.node.zone === node.zone)) {
        continue;
      }
      // Against the nodes going: the list itself is checked above, and without data movement
      // the nodes going are gone before anyone is added; with it they keep their address
      // while they leave.
      if (this.moveData) m.#checkAddressFree(node, 'nodes', (x) => !ids.has(x.node.id));
      const members = new Map(m.#s.members);
      members.set(node.id, { ...old, node, health: Health.Unknown });
      fresh.push(old.slot);
      m = m.#change({ members }, 'reload').next;
    }
    for (const id of removed) {
      const member = m.get(id)!;
      if (member.lifecycle === Lifecycle.Leaving && member.leaveTo === 'removed') continue;
      m = m.remove(id).next;
    }
    for (const node of nodes) {
      if (m.get(node.id) !== undefined) continue;
      const change = m.add(node);
      fresh.push(...change.freshSlots);
      m = change.next;
    }
    return { next: m, reason: 'reload', freshSlots: fresh, added, removed };
  }

  /**
   * The membership an intent describes, reached from this one (many routers following one
   * truth in etcd: the intent was checked by the router that wrote it). A member kept at the
   * same address and zone keeps its slot and health; one re-addressed keeps its slot but starts
   * over (unknown, fresh slot); a new one takes a free slot; one gone frees its slot. The
   * localNodeId may be gone (another router removed that node): this router follows, and has
   * no local copy from then on. Throws a MembershipError (CapacityExceeded) with nothing
   * changed.
   */
  adopt(
    nodes: readonly (NodeConfig & {
      readonly lifecycle: Lifecycle;
      readonly leaveTo?: 'removed' | 'drained';
      readonly tokens?: readonly number[];
    })[],
    assignments: readonly AssignmentConfig[],
    moves: readonly SpaceMove[],
    reason: string,
  ): Change {
    this.#checkNodeCount(nodes.length, 'nodes');
    const wanted = new Set(nodes.map((n) => n.id));
    let free = [...this.#s.free];
    for (const m of this.#s.members.values()) if (!wanted.has(m.node.id)) free.push(m.slot);
    let nextSlot = this.#s.nextSlot;
    const fresh: number[] = [];
    const members = new Map<string, Member>();
    for (const n of nodes) {
      const node: NodeConfig = { id: n.id, address: n.address, zone: n.zone };
      const old = this.#s.members.get(n.id);
      const placed = {
        lifecycle: n.lifecycle,
        ...(n.lifecycle === Lifecycle.Leaving && n.leaveTo !== undefined
          ? { leaveTo: n.leaveTo }
          : {}),
        ...(n.tokens !== undefined ? { tokens: n.tokens } : {}),
      };
      if (old !== undefined) {
        const same = old.node.address === node.address && old.node.zone === node.zone;
        if (!same) fresh.push(old.slot);
        members.set(n.id, {
          node,
          slot: old.slot,
          health: same ? old.health : Health.Unknown,
          ...placed,
        });
        continue;
      }
      const got = slotFrom(free, nextSlot, this.limits.maxSlots, n.id);
      free = got.free;
      nextSlot = got.next;
      fresh.push(got.slot);
      members.set(n.id, { node, slot: got.slot, health: Health.Unknown, ...placed });
    }
    return this.#change(
      { members, free, nextSlot, assignments: [...assignments], moves: [...moves] },
      reason,
      fresh,
    );
  }

  /** A health verdict; the same membership when it changes nothing. */
  setHealth(id: string, health: Health): Membership {
    const m = this.#s.members.get(id);
    if (m === undefined || m.health === health) return this;
    return this.#update({ ...m, health }, `${id} ${health}`).next;
  }

  /** Refuses `node` at an address another member (of those `among` takes) has. */
  #checkAddressFree(
    node: NodeConfig,
    field: string,
    among: (m: Member) => boolean = () => true,
  ): void {
    const key = addressKey(node.address);
    for (const m of this.#s.members.values()) {
      if (m.node.id !== node.id && among(m) && addressKey(m.node.address) === key) {
        throw addressInUse(node, m.node, field);
      }
    }
  }

  #placedCount(): number {
    let n = 0;
    for (const m of this.#s.members.values()) if (isPlaced(m)) n++;
    return n;
  }

  #require(id: string, field: string): Member {
    const m = this.#s.members.get(id);
    if (m === undefined) throw new MembershipError('NotAMember', field, id, 'is not a member');
    return m;
  }

  #drop(m: Member, reason: string): Change {
    const members = new Map(this.#s.members);
    members.delete(m.node.id);
    return this.#change({ members, free: [...this.#s.free, m.slot] }, reason);
  }

  #move(move: SpaceMove, reason: string): Change {
    const moves = [...this.#s.moves.filter((x) => x.spaceId !== move.spaceId), move];
    return this.#change({ moves }, reason);
  }

  #update(m: Member, reason: string): Change {
    const members = new Map(this.#s.members);
    members.set(m.node.id, m);
    return this.#change({ members }, reason);
  }

  #change(patch: Partial<State>, reason: string, freshSlots: readonly number[] = []): Change {
    const next = new Membership(
      { ...this.#s, ...patch },
      this.localNodeId,
      this.limits,
      this.moveData,
    );
    return { next, reason, freshSlots };
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
}

function addressInUse(node: NodeConfig, owner: NodeConfig, field: string): MembershipError {
  const as = owner.address === node.address ? '' : ` (as ${JSON.stringify(owner.address)})`;
  return new MembershipError(
    'AddressInUse',
    field,
    node.address,
    `node ${JSON.stringify(node.id)} cannot have the address of node ${JSON.stringify(owner.id)}${as}: one node per address`,
    { owner: owner.id, ownerAddress: owner.address },
  );
}

/** `m` no longer leaving, in `lifecycle` (its `leaveTo` dropped, the rest kept). */
function settled(m: Member, lifecycle: Lifecycle): Member {
  const { leaveTo: _, ...rest } = m;
  return { ...rest, lifecycle };
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
