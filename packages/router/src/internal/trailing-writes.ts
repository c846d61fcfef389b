/**
 * Replica writes still running after their client was answered, per node, in one router: the
 * memory a replicated write keeps after its answer (its request, its attempt, its stream).
 *
 * Without a bound, a replica slower than the others (W=one; the last replica of a quorum)
 * gathers writes faster than it applies them: the queue, the router's heap and the replica's
 * lag all grow for as long as the load lasts. With `limit`, a write whose replica on a node
 * that already trails `limit` writes waits for that copy before answering: the clients' pace
 * follows the slowest live replica, which is the pace the cluster can sustain anyway.
 */
export class TrailingWrites {
  readonly limit: number;
  readonly #byNode = new Map<string, number>();
  #total = 0;

  /** `limit`: the router's `maxTrailingWrites`, validated with its options. */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** True when `nodeId` trails `limit` writes already: the next write waits for its copy. */
  full(nodeId: string): boolean {
    return (this.#byNode.get(nodeId) ?? 0) >= this.limit;
  }

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
