/**
 * Replica writes still running after their client was answered, per node, in one router: the
 * memory a replicated write keeps after its answer (its request, its attempt, its stream), and
 * a replica falling behind before it fails (router-node's `engram_router_trailing_writes`).
 *
 * Counted, not capped: a replica slower than the others (W=one; the last of a quorum) gathers
 * up to its write rate × `attemptTimeoutMs` of them, after which they time out into hints. A
 * cap that held answers back instead would make every write wait on a hung replica until its
 * attempts time out and its breaker opens: a writer would stall where it must keep answering.
 */
export class TrailingWrites {
  readonly #byNode = new Map<string, number>();
  #total = 0;

  /** Writes `nodeId` is still running after their answer. */
  of(nodeId: string): number {
    return this.#byNode.get(nodeId) ?? 0;
  }

  /** Writes trailing on every node. */
  get total(): number {
    return this.#total;
  }

  /** One more write on `nodeId` outlives its answer. */
  add(nodeId: string): void {
    this.#byNode.set(nodeId, (this.#byNode.get(nodeId) ?? 0) + 1);
    this.#total++;
  }

  /** A trailing write on `nodeId` is done (a node no write trails is forgotten). */
  remove(nodeId: string): void {
    const n = this.#byNode.get(nodeId);
    if (n === undefined) return;
    if (n <= 1) this.#byNode.delete(nodeId);
    else this.#byNode.set(nodeId, n - 1);
    this.#total--;
  }
}
