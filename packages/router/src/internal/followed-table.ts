import type { NodeInfo, NodeRole, Placement, PlacementTable, Ring } from '@engram/ring';

/**
 * A PlacementTable whose ring is replaced as the placement it follows changes (library mode's
 * `EtcdPlacement.table`): each replacement is a new epoch, and a node keeps its slot (its
 * breaker) for as long as it stays in the table, a freed slot going to the next node added.
 * Replacements happen between routing decisions (one thread), so a decision sees one ring.
 */
export class FollowedTable implements PlacementTable {
  #ring: Ring;
  #epoch = 1;
  /** Slot of each node id; slots of nodes gone are reused. */
  readonly #slotOf = new Map<string, number>();
  #free: number[] = [];
  #next = 0;
  /** Slot per node index of the current ring. */
  #slots: number[] = [];

  constructor(ring: Ring) {
    this.#ring = ring;
    this.#assignSlots(ring);
  }

  /** Follows `ring` from now on, as the next epoch. */
  replace(ring: Ring): void {
    this.#ring = ring;
    this.#epoch++;
    this.#assignSlots(ring);
  }

  #assignSlots(ring: Ring): void {
    const ids = new Set(ring.nodes.map((n) => n.id));
    for (const [id, slot] of this.#slotOf) {
      if (ids.has(id)) continue;
      this.#slotOf.delete(id);
      this.#free.push(slot);
    }
    this.#slots = ring.nodes.map((n) => {
      let slot = this.#slotOf.get(n.id);
      if (slot === undefined) {
        slot = this.#free.pop() ?? this.#next++;
        this.#slotOf.set(n.id, slot);
      }
      return slot;
    });
  }

  /** The ring in force. */
  get ring(): Ring {
    return this.#ring;
  }

  get epoch(): number {
    return this.#epoch;
  }
  get nodes(): readonly NodeInfo[] {
    return this.#ring.nodes;
  }
  get replicationFactor(): number {
    return this.#ring.replicationFactor;
  }
  get maxPlacementSize(): number {
    return this.#ring.maxPlacementSize;
  }
  get pending(): boolean {
    return this.#ring.pending;
  }
  lookup(spaceId: string): Placement {
    return this.#ring.lookup(spaceId);
  }
  lookupInto(spaceId: string, out: Uint16Array): number {
    return this.#ring.lookupInto(spaceId, out);
  }
  futureInto(spaceId: string, out: Uint16Array): number {
    return this.#ring.futureInto(spaceId, out);
  }
  pendingInto(spaceId: string, out: Uint16Array): number {
    return this.#ring.pendingInto(spaceId, out);
  }
  lookupFuture(spaceId: string): Placement {
    return this.#ring.lookupFuture(spaceId);
  }
  nodeRole(index: number): NodeRole | undefined {
    return this.#ring.nodeRole(index);
  }
  nodeIndex(nodeId: string): number {
    return this.#ring.nodeIndex(nodeId);
  }
  nodeSlot(index: number): number {
    return this.#slots[index] ?? -1;
  }
}
