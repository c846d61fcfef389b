import { buildRing, type PendingAssignment, type Ring, type TableWriter } from '@engram/ring';
import { type LagTable, NodeState } from '@engram/router';
import {
  C_PARTITIONED,
  N_EJECTED,
  N_FAILURE_RUN,
  N_GEN,
  N_LAST_ANSWER,
  N_STATE,
  N_UP_SINCE,
  NODE_STATE,
  nodeWord,
  slotCount,
} from './layout.js';
import {
  Health,
  isPlaced,
  Lifecycle,
  type Member,
  type Membership,
  routingState,
  type SpaceMove,
} from './membership.js';
import { markReturned } from './slow-start.js';

const tokenIds = new WeakMap<readonly number[], number>();
let nextTokensId = 1;

/** A number per token array (by identity); 0 for none. */
function tokensId(tokens: readonly number[] | undefined): number {
  if (tokens === undefined) return 0;
  let id = tokenIds.get(tokens);
  if (id === undefined) {
    id = nextTokensId++;
    tokenIds.set(tokens, id);
  }
  return id;
}

/** Pins being moved, as the ring takes them (null: back to the ring's placement). */
function pendingPins(moves: readonly SpaceMove[]): PendingAssignment[] {
  return moves.map((m) => (m.to === null ? { spaceId: m.spaceId, primary: null } : m.to));
}

/**
 * Partitioned: fewer than a majority of the members answer their probes. While partitioned
 * the data plane routes LocalOnly (the seed's rule).
 */
export function isPartitioned(membership: Membership): boolean {
  const { total, up } = membership.serving;
  return total > 0 && up < Math.floor(total / 2) + 1;
}

/**
 * Panic: a share of the serving nodes up below `threshold` (e.g. every probe timing out on an
 * overloaded router). Health verdicts are then more likely wrong than the cluster gone, so they
 * are ignored and breakers decide; the partition rules do not apply.
 */
export function isPanic(membership: Membership, threshold: number): boolean {
  const { total, up } = membership.serving;
  return total > 0 && up / total < threshold;
}

/** The state a member is published with (see #storeStates for the panic rule). */
function published(m: Member, panic: boolean): NodeState {
  return panic && m.health === Health.Down ? NodeState.Up : routingState(m);
}

export interface PlacementSettings {
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
}

/**
 * Membership → routing table, as one function: the ring of the members and their pins
 * (rebuilt only when nodes, addresses, zones or pins changed: a build costs ~1 ms per node at
 * 8192 vnodes, and health changes are frequent), then the node-state words and the partition
 * flag, then the table epoch.
 *
 * Ordering (layout.ts): states and the flag are stored before the table's own
 * `Atomics.store` of its new epoch, so a thread that sees epoch E sees states at least as new.
 */
export class TablePublisher {
  readonly #writer: TableWriter;
  readonly #control: Int32Array;
  readonly #settings: PlacementSettings;
  readonly #lag: LagTable | undefined;
  /** The node each slot was last published for, to see a slot go to another node. */
  readonly #holders = new Map<number, string>();
  #ringKey = '';
  #ring: Ring | undefined;
  /** What the last successful publish wrote, to restore when a publish fails. */
  #published: { membership: Membership; partitioned: boolean; panic: boolean } | undefined;

  /** `lag`: the shared lag table, whose row of a slot is cleared when another node takes it. */
  constructor(
    writer: TableWriter,
    control: Int32Array,
    settings: PlacementSettings,
    lag?: LagTable,
  ) {
    this.#writer = writer;
    this.#control = control;
    this.#settings = settings;
    this.#lag = lag;
  }

  get epoch(): number {
    return this.#writer.epoch;
  }

  /**
   * `slot` is handed to a node (its previous holder, if any, removed): before the epoch that
   * publishes it, nothing of the previous holder may stay on the newcomer. The slot's
   * generation goes up first (layout.ts N_GEN: the old node's attempts still in flight
   * then count nowhere when they end), then its outlier ejection, failure run, last answer
   * and slow-start ramp are cleared.
   */
  handOut(slot: number): void {
    if (slot < 0 || slot >= slotCount(this.#control)) return;
    const control = this.#control;
    Atomics.add(control, nodeWord(slot, N_GEN), 1);
    Atomics.store(control, nodeWord(slot, N_EJECTED), 0);
    Atomics.store(control, nodeWord(slot, N_FAILURE_RUN), 0);
    Atomics.store(control, nodeWord(slot, N_LAST_ANSWER), 0);
    Atomics.store(control, nodeWord(slot, N_UP_SINCE), 0);
  }

  /** The ring of `membership`; throws (ring or capacity errors) without publishing anything. */
  ringFor(membership: Membership): Ring {
    const placed = [...membership.members].filter(isPlaced);
    // Token mode (etcd): every placed member carries the tokens the allocator gave it.
    const tokens = placed.length > 0 && placed.every((m) => m.tokens !== undefined);
    const nodes = placed.map((m) => ({
      id: m.node.id,
      address: m.node.address,
      zone: m.node.zone,
      ...(tokens ? { tokens: m.tokens! } : {}),
    }));
    const joining = placed.filter((m) => m.lifecycle === Lifecycle.Joining).map((m) => m.node.id);
    const leaving = placed.filter((m) => m.lifecycle === Lifecycle.Leaving).map((m) => m.node.id);
    const moves = membership.moves;
    // Tokens go into the key by identity (a member keeps its array until its tokens change):
    // 1000 nodes' tokens are too many to serialise on every health verdict.
    const key = JSON.stringify([
      placed.map((m) => [m.node.id, m.node.address, m.node.zone, tokensId(m.tokens)]),
      membership.assignments,
      joining,
      leaving,
      moves,
    ]);
    if (key === this.#ringKey && this.#ring !== undefined) return this.#ring;
    const ring = buildRing({
      nodes,
      replicationFactor: this.#settings.replicationFactor,
      ...(tokens ? {} : { vnodesPerNode: this.#settings.vnodesPerNode }),
      assignments: membership.assignments,
      joining,
      leaving,
      pendingAssignments: pendingPins(moves),
    });
    this.#ring = ring;
    this.#ringKey = key;
    return ring;
  }

  /** The ring last built (current placements and, while data moves, future ones). */
  get ring(): Ring {
    if (this.#ring === undefined) throw new Error('nothing published yet');
    return this.#ring;
  }

  /**
   * Publishes `membership` as the next epoch; returns the epoch. Throws (ring, capacity) with
   * the previous table and states still in force.
   */
  publish(membership: Membership, partitioned: boolean, panic = false): number {
    const ring = this.ringFor(membership);
    const slots = new Map<string, number>();
    for (const m of membership.members) slots.set(m.node.id, m.slot);
    this.#storeStates(membership, partitioned, panic);
    let epoch: number;
    try {
      epoch = this.#writer.publish(ring, { slots });
    } catch (err) {
      const last = this.#published;
      if (last !== undefined) this.#storeStates(last.membership, last.partitioned, last.panic);
      throw err;
    }
    this.#published = { membership, partitioned, panic };
    this.#clearInherited(membership);
    return epoch;
  }

  /**
   * A slot published for another node than before starts with an empty lag row: what the old
   * node lacked is not the newcomer's (its own lags are counted from its first epoch on).
   * Cleared right after the epoch that publishes the newcomer (a publish that fails must not
   * clear the old node's row); until then, and if a thread still on an older epoch counts one
   * more lag of the old node after the clear, the row only makes reads of that bucket prefer
   * other replicas, never less careful. A node re-addressed keeps its slot and its row (its
   * hints are still owed).
   */
  #clearInherited(membership: Membership): void {
    for (const m of membership.members) {
      const before = this.#holders.get(m.slot);
      if (before !== undefined && before !== m.node.id) this.#lag?.clear(m.slot);
      this.#holders.set(m.slot, m.node.id);
    }
  }

  /**
   * In a panic (too few nodes up to believe the probes), every node is published up: the data
   * plane routes to all of them and the breakers decide (Envoy's panic threshold). A node
   * published up that the last publish had down or draining starts its slow start (a node up
   * for the first time, from `unknown`, does not: at start every node would ramp at once).
   */
  #storeStates(membership: Membership, partitioned: boolean, panic: boolean): void {
    const control = this.#control;
    const last = this.#published;
    for (const m of membership.members) {
      if (m.slot < slotCount(control)) {
        const state = published(m, panic);
        if (state === NodeState.Up && last !== undefined) {
          const before = last.membership.get(m.node.id);
          if (
            before !== undefined &&
            before.slot === m.slot &&
            published(before, last.panic) !== NodeState.Up &&
            (before.health === Health.Down || before.lifecycle === Lifecycle.Draining)
          ) {
            markReturned(control, m.slot);
          }
        }
        Atomics.store(control, nodeWord(m.slot, N_STATE), NODE_STATE[state]);
      }
    }
    Atomics.store(control, C_PARTITIONED, partitioned ? 1 : 0);
  }
}
