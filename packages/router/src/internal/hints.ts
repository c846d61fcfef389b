import { InvalidArgumentError } from '@engram/common';
import type { NodeInfo } from '@engram/ring';

/** A write a replica missed, kept to be replayed when the node is back (hinted handoff). */
export interface Hint<R = unknown> {
  readonly node: NodeInfo;
  readonly spaceId: string;
  /** The request as the replica should have received it (same memory id and version). */
  readonly request: R;
  readonly createdAtMs: number;
}

/**
 * Where a Router keeps hints. Replay takes them oldest first per node and acknowledges them
 * once the node applied them. router-node keeps them on disk; library use keeps them in memory
 * by default (`MemoryHintStore`): a process restart loses those, and repair brings the
 * replicas together again.
 */
export interface HintStore<R = unknown> {
  /** Keeps a hint; false when the store refused it (full): the node needs a repair. */
  add(hint: Hint<R>): boolean | Promise<boolean>;
  /** The oldest unacknowledged hints of a node, at most `max`. */
  peek(nodeId: string, max: number): readonly Hint<R>[];
  /** Acknowledges the first `count` hints of a node (they were applied). */
  ack(nodeId: string, count: number): void | Promise<void>;
  /** Hints pending per node id. */
  pending(): ReadonlyMap<string, number>;
}

export const MEMORY_HINT_STORE_DEFAULTS = Object.freeze({
  maxHintsPerNode: 10_000,
});

/** Hints in memory, in order per node, bounded per node (beyond it a hint is refused). */
export class MemoryHintStore<R = unknown> implements HintStore<R> {
  readonly #byNode = new Map<string, Hint<R>[]>();
  readonly #max: number;
  /** Hints refused because a node's queue was full. */
  dropped = 0;

  constructor(options: { maxHintsPerNode?: number } = {}) {
    const max = options.maxHintsPerNode ?? MEMORY_HINT_STORE_DEFAULTS.maxHintsPerNode;
    if (!Number.isInteger(max) || max < 1) {
      throw new InvalidArgumentError('maxHintsPerNode', max, 'a positive integer');
    }
    this.#max = max;
  }

  add(hint: Hint<R>): boolean {
    let queue = this.#byNode.get(hint.node.id);
    if (queue === undefined) {
      queue = [];
      this.#byNode.set(hint.node.id, queue);
    }
    if (queue.length >= this.#max) {
      this.dropped++;
      return false;
    }
    queue.push(hint);
    return true;
  }

  peek(nodeId: string, max: number): readonly Hint<R>[] {
    return this.#byNode.get(nodeId)?.slice(0, max) ?? [];
  }

  ack(nodeId: string, count: number): void {
    const queue = this.#byNode.get(nodeId);
    if (queue === undefined) return;
    queue.splice(0, count);
    if (queue.length === 0) this.#byNode.delete(nodeId);
  }

  pending(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const [id, queue] of this.#byNode) out.set(id, queue.length);
    return out;
  }
}
