import type { BreakerTable } from '@engram/breaker';
import type { NodeInfo, PlacementTable } from '@engram/ring';

/**
 * Which breaker guards which node, kept in step with the placement table's epoch.
 *
 * Shared breakers (a `BreakerTable` handed in, one per node across threads): the slot is the
 * table's stable `nodeSlot`, chosen by whoever publishes the table. Private breakers (the
 * router's own table): slots by node id, handed out first come; a departed node's slot is
 * reset and reused, so a newcomer never inherits an open breaker. Nodes beyond the capacity
 * get -1: unguarded, never refused.
 */
export class BreakerSlots {
  readonly #table: PlacementTable;
  readonly #breakers: BreakerTable;
  readonly #shared: boolean;
  readonly #privateSlots = new Map<string, number>();
  readonly #freeSlots: number[] = [];
  #nextSlot = 0;
  /** Node of each slot, for naming breaker transitions. */
  readonly #slotNodes = new Map<number, NodeInfo>();
  #epoch = Number.NaN;
  /** Breaker slot (or -1) per node index of the table at `epoch`. */
  #byIndex: Int32Array = new Int32Array(0);

  constructor(table: PlacementTable, breakers: BreakerTable, shared: boolean) {
    this.#table = table;
    this.#breakers = breakers;
    this.#shared = shared;
  }

  /** The table epoch the slots were last synced to. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Slots by node index of the table at `epoch` (synced first). */
  get byIndex(): Int32Array {
    return this.#byIndex;
  }

  /**
   * Recomputes the slots when the table's epoch moved (one compare otherwise). Returns true
   * when it did, so the caller can follow the new membership too.
   */
  sync(): boolean {
    const table = this.#table;
    const epoch = table.epoch;
    if (epoch === this.#epoch) return false;
    this.#epoch = epoch;
    const nodes = table.nodes;
    const slots = new Int32Array(nodes.length);
    if (this.#shared) {
      for (let i = 0; i < nodes.length; i++) slots[i] = this.#sharedSlot(i, nodes[i]!);
    } else {
      for (const [id, slot] of this.#privateSlots) {
        if (table.nodeIndex(id) >= 0) continue;
        this.#privateSlots.delete(id);
        this.#slotNodes.delete(slot);
        this.#freeSlots.push(slot);
      }
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i]!;
        const slot = this.#privateSlot(node);
        if (slot >= 0 && this.#slotNodes.get(slot) !== node) this.#slotNodes.set(slot, node);
        slots[i] = slot;
      }
    }
    this.#byIndex = slots;
    return true;
  }

  /** Breaker slot of a node, or -1 when it has none (then it is never refused). */
  slotOf(node: NodeInfo): number {
    this.sync();
    if (!this.#shared) return this.#privateSlot(node);
    const index = this.#table.nodeIndex(node.id);
    if (index < 0) return -1;
    return this.#byIndex[index] ?? this.#sharedSlot(index, node);
  }

  /** The node a slot was last handed to, for naming a breaker transition. */
  nodeOf(slot: number): NodeInfo | undefined {
    return this.#slotNodes.get(slot);
  }

  #sharedSlot(index: number, node: NodeInfo): number {
    const slot = this.#table.nodeSlot(index);
    if (slot < 0 || slot >= this.#breakers.capacity) return -1;
    if (this.#slotNodes.get(slot) !== node) this.#slotNodes.set(slot, node);
    return slot;
  }

  #privateSlot(node: NodeInfo): number {
    const known = this.#privateSlots.get(node.id);
    if (known !== undefined) return known;
    let slot = this.#freeSlots.pop();
    if (slot !== undefined) {
      this.#breakers.reset(slot);
    } else if (this.#nextSlot < this.#breakers.capacity) {
      slot = this.#nextSlot++;
    } else {
      return -1; // unguarded; asked again once a departed node frees a slot
    }
    this.#privateSlots.set(node.id, slot);
    this.#slotNodes.set(slot, node);
    return slot;
  }
}
