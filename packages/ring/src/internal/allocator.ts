/**
 * The token allocator's state: a ring of explicit tokens that nodes join one at a time, each
 * choosing its tokens by looking at the others' (Cassandra's approach, CASSANDRA-7032).
 *
 * Load: a node's owned load is the length of hash space it holds a replica of, under the
 * ring's own replica walk (placement.ts: zone-aware, replication factor). The sum over nodes
 * is `stride × 2^32` whatever the tokens, so minimising the sum of squared loads is
 * minimising their variance; that is the allocator's objective (the mean drops out).
 *
 * A joining node `x` places its tokens greedily, one at a time. Inserting a token into the
 * range in front of ring position `p` (between positions p-1 and p) changes, exactly:
 * - that range: its first `a` (the distance from position p-1 to the new token) gets the
 *   walk that starts at `x`; the rest keeps the walk from `p` (with `x` present);
 * - the ranges whose walk used to run past p-1 (the window, scanned back from p-1): `x` now
 *   comes up in their walk and takes a place, pushing one node out.
 * The loads change by a constant per node plus `a` times a coefficient per node, so the
 * objective is a quadratic in `a`, minimised in closed form and clamped to the range.
 * Candidates are the ranges in front of the tokens of the most loaded nodes (overall and in
 * `x`'s zone): a new token takes load from the nodes it displaces, so it goes where the
 * heaviest ones are. Every candidate is evaluated against the ring without `x`; windows of
 * the tokens chosen in one join may not overlap, so their effects add up exactly, and the
 * tokens are merged into the ring once per join (one pass, not one per token).
 *
 * The first node of a zone, and nodes joining a ring with fewer nodes than the replication
 * factor, change every placement at once (a new zone is taken by every walk): they get
 * evenly spaced tokens, and the loads are recomputed.
 */
import { MAX_TOKEN } from '../limits.js';
import { LoadHeap } from './load-heap.js';

const RING = 2 ** 32;
/** Tokens of a donor evaluated, the ones with the longest stretch of ring in front. */
const DONOR_TOKENS = 3;
/** Candidates that fit, per heap (x's zone, all nodes), before a token stops looking. */
const DONOR_CANDIDATES = 8;
/** Ranges in front of a donor's token evaluated, at most. */
const MAX_STRETCH = 24;
/** Donors per heap a token looks at, at most (when its windows keep meeting this join's). */
const MAX_DONORS = 16;

export interface AllocatorSettings {
  readonly tokensPerNode: number;
  readonly replicationFactor: number;
}

export class TokenAllocator {
  readonly #rf: number;
  #tokens = new Float64Array(0);
  #owners = new Uint32Array(0);
  #count = 0;
  #ids: string[] = [];
  #zoneOf: number[] = [];
  readonly #zoneNumbers = new Map<string, number>();
  #loads = new Float64Array(0);
  // Walk marks (stamps, as in placement.ts).
  #taken = new Uint32Array(0);
  #zoneUsed = new Uint32Array(0);
  #stamp = 0;
  // Per-candidate delta accumulation.
  #constant = new Float64Array(0);
  #slope = new Float64Array(0);
  #deltaStamp = new Uint32Array(0);
  #deltaEpoch = 0;
  #touched: number[] = [];
  // Positions used by this join's tokens (their windows), by join stamp.
  #used = new Uint32Array(0);
  #join = 0;
  readonly #allHeap = new LoadHeap(() => this.#loads);
  readonly #zoneHeaps: LoadHeap[] = [];
  readonly #rowA = new Uint32Array(64);
  readonly #rowB = new Uint32Array(64);

  constructor(settings: AllocatorSettings) {
    this.#rf = settings.replicationFactor;
  }

  get nodeCount(): number {
    return this.#ids.length;
  }

  /** Owned load per node index (join order), as fractions of one full ring. */
  loads(): number[] {
    return Array.from(this.#loads.subarray(0, this.#ids.length), (load) => load / RING);
  }

  /** Adds nodes that already hold tokens (validated, distinct), then computes every load. */
  seed(nodes: readonly { id: string; zone: string; tokens: ArrayLike<number> }[]): void {
    let total = 0;
    for (const node of nodes) total += node.tokens.length;
    this.#reserve(nodes.length, total);
    const packed = new Float64Array(total);
    let p = 0;
    for (const node of nodes) {
      const index = this.#addNode(node.id, node.zone);
      for (let k = 0; k < node.tokens.length; k++) packed[p++] = node.tokens[k]! * 65536 + index;
    }
    packed.sort();
    for (let i = 0; i < total; i++) {
      const owner = packed[i]! % 65536;
      this.#owners[i] = owner;
      this.#tokens[i] = (packed[i]! - owner) / 65536;
    }
    this.#count = total;
    this.#recomputeLoads();
    this.#rebuildHeaps(-1);
  }

  /** Chooses `tokensPerNode` tokens for a new node, adds it, and returns them sorted. */
  join(id: string, zone: string, tokensPerNode: number): number[] {
    this.#reserve(this.#ids.length + 1, this.#count + tokensPerNode);
    const zoneExisted = this.#zoneNumbers.has(zone);
    const x = this.#addNode(id, zone);
    let chosen: number[];
    let exact = true;
    if (!zoneExisted || x < this.#rf || this.#count === 0) {
      chosen = this.#evenlySpaced(id, tokensPerNode);
      exact = false;
    } else {
      chosen = [];
      this.#join++;
      const positions = this.#positionsByNode();
      const perToken = this.#target(x) / tokensPerNode;
      for (let k = 0; k < tokensPerNode; k++) {
        this.#ahead = (tokensPerNode - k - 1) * perToken;
        const token = this.#placeOne(x, positions);
        if (token < 0) {
          chosen.push(this.#freeToken(chosen));
          exact = false;
        } else {
          chosen.push(token);
        }
      }
    }
    chosen.sort((a, b) => a - b);
    this.#merge(chosen, x);
    if (exact) {
      this.#heapsOf(x);
    } else {
      this.#recomputeLoads();
      this.#rebuildHeaps(-1);
    }
    return chosen;
  }

  #addNode(id: string, zone: string): number {
    let number = this.#zoneNumbers.get(zone);
    if (number === undefined) {
      number = this.#zoneNumbers.size;
      this.#zoneNumbers.set(zone, number);
    }
    this.#ids.push(id);
    this.#zoneOf.push(number);
    return this.#ids.length - 1;
  }

  #reserve(nodes: number, tokens: number): void {
    if (tokens > this.#tokens.length) {
      const size = Math.max(tokens, this.#tokens.length * 2);
      const grownTokens = new Float64Array(size);
      grownTokens.set(this.#tokens.subarray(0, this.#count));
      const grownOwners = new Uint32Array(size);
      grownOwners.set(this.#owners.subarray(0, this.#count));
      this.#tokens = grownTokens;
      this.#owners = grownOwners;
      this.#used = new Uint32Array(size + 1);
      this.#rowCache = new Uint32Array(size * this.#rf);
      this.#baseCount = new Uint8Array(size);
      this.#baseSteps = new Float64Array(size);
      this.#baseStamp = new Uint32Array(size);
      this.#join = 0;
    }
    if (nodes > this.#loads.length) {
      const size = Math.max(nodes, this.#loads.length * 2, 16);
      const loads = new Float64Array(size);
      loads.set(this.#loads);
      this.#loads = loads;
      this.#taken = new Uint32Array(size);
      this.#zoneUsed = new Uint32Array(size);
      this.#stamp = 0;
      this.#constant = new Float64Array(size);
      this.#slope = new Float64Array(size);
      this.#deltaStamp = new Uint32Array(size);
      this.#deltaEpoch = 0;
    }
  }

  /** Distinct zones among the nodes; the walk's lap 1 rule needs the count. */
  get #zoneCount(): number {
    return this.#zoneNumbers.size;
  }

  get #stride(): number {
    return Math.min(this.#rf, this.#ids.length);
  }

  /** Length of the range in front of position `q` (from the previous token to it). */
  #length(q: number): number {
    if (this.#count === 1) return RING;
    return q === 0
      ? this.#tokens[0]! + RING - this.#tokens[this.#count - 1]!
      : this.#tokens[q]! - this.#tokens[q - 1]!;
  }

  /**
   * The replica walk of placement.ts over the ring with node `x` inserted in front of
   * position `at` (at = -1: nothing inserted), from virtual position `start` (position `at`
   * is `x`, later ones shift by one). Writes the nodes taken to `out`, returns how many, and
   * leaves in `#steps` how many positions the walk visited up to its last take (a walk that
   * needed a second lap reports more than the ring has).
   */
  #walk(start: number, at: number, x: number, out: Uint32Array): number {
    const size = at < 0 ? this.#count : this.#count + 1;
    const stride = this.#stride;
    const zoneCount = this.#zoneCount;
    const stamp = ++this.#stamp;
    if (stamp === 0xffffffff) {
      this.#taken.fill(0);
      this.#zoneUsed.fill(0);
      this.#stamp = 1;
    }
    const taken = this.#taken;
    const zoneUsed = this.#zoneUsed;
    const stampNow = this.#stamp;
    let count = 0;
    let zonesUsed = 0;
    let steps = 0;
    for (let step = 0; step < size && count < stride; step++) {
      let v = start + step;
      if (v >= size) v -= size;
      const node = this.#nodeAt(v, at, x);
      if (taken[node] === stampNow) continue;
      const zone = this.#zoneOf[node]!;
      const fresh = zoneUsed[zone] !== stampNow;
      if (!fresh && zonesUsed < zoneCount) continue;
      taken[node] = stampNow;
      if (fresh) {
        zoneUsed[zone] = stampNow;
        zonesUsed++;
      }
      out[count++] = node;
      steps = step + 1;
    }
    for (let step = 0; step < size && count < stride; step++) {
      let v = start + step;
      if (v >= size) v -= size;
      const node = this.#nodeAt(v, at, x);
      if (taken[node] === stampNow) continue;
      taken[node] = stampNow;
      out[count++] = node;
      steps = size + step + 1;
    }
    this.#steps = steps;
    return count;
  }

  #steps = 0;

  #nodeAt(v: number, at: number, x: number): number {
    if (at < 0 || v < at) return this.#owners[v]!;
    return v === at ? x : this.#owners[v - 1]!;
  }

  /** Adds `weight` × (row `a` minus row `b`) to the candidate's delta, constant or slope. */
  #addRows(
    a: Uint32Array,
    fromA: number,
    countA: number,
    b: Uint32Array,
    fromB: number,
    countB: number,
    weight: number,
    slope: boolean,
  ): void {
    for (let i = fromA; i < fromA + countA; i++) {
      const node = a[i]!;
      let inB = false;
      for (let j = fromB; j < fromB + countB; j++) if (b[j] === node) inB = true;
      if (!inB) this.#bump(node, weight, slope);
    }
    for (let j = fromB; j < fromB + countB; j++) {
      const node = b[j]!;
      let inA = false;
      for (let i = fromA; i < fromA + countA; i++) if (a[i] === node) inA = true;
      if (!inA) this.#bump(node, -weight, slope);
    }
  }

  #bump(node: number, weight: number, slope: boolean): void {
    if (this.#deltaStamp[node] !== this.#deltaEpoch) {
      this.#deltaStamp[node] = this.#deltaEpoch;
      this.#constant[node] = 0;
      this.#slope[node] = 0;
      this.#touched.push(node);
    }
    if (slope) this.#slope[node]! += weight;
    else this.#constant[node]! += weight;
  }

  /**
   * Evaluates a token of `x` in the range in front of position `p`: fills the delta
   * (constant + slope × a per touched node) and returns the window's first position (scanned
   * back from p-1), or -1 when the candidate is not allowed (window meets this join's other
   * tokens, or the range has no room).
   */
  #evaluate(p: number, x: number): number {
    const used = this.#used;
    const join = this.#join;
    if (used[p] === join || this.#length(p) < 2) return -1;
    this.#deltaEpoch++;
    if (this.#deltaEpoch === 0xffffffff) {
      this.#deltaStamp.fill(0);
      this.#deltaEpoch = 1;
    }
    this.#touched.length = 0;
    const count = this.#count;
    const cache = this.#rowCache;
    const rowA = this.#rowA;
    const rowB = this.#rowB;
    // The split range: old row, the row from x (slope), the row of its remainder.
    const old = this.#baseRow(p);
    const oldCount = this.#baseCount[p]!;
    const restCount = this.#walk(p + 1, p, x, rowB);
    const length = this.#length(p);
    this.#addRows(rowB, 0, restCount, cache, old, oldCount, length, false);
    const xCount = this.#walk(p, p, x, rowA);
    this.#addRows(rowA, 0, xCount, rowB, 0, restCount, 1, true);
    // The window: ranges whose walk ran past p-1.
    let first = p;
    for (let back = 1; back < count; back++) {
      const q = p - back < 0 ? p - back + count : p - back;
      const was = this.#baseRow(q);
      if (this.#baseSteps[q]! <= back) break;
      if (used[q] === join) return -1;
      const now = this.#walk(q < p ? q : q + 1, p, x, rowB);
      this.#addRows(rowB, 0, now, cache, was, this.#baseCount[q]!, this.#length(q), false);
      first = q;
    }
    return first;
  }

  /**
   * The walk from position `q` of the ring without the joining node, cached for the join
   * (that ring does not change until its tokens are merged): returns the row's offset in
   * `#rowCache`; its size is `#baseCount[q]`, its steps `#baseSteps[q]`.
   */
  #baseRow(q: number): number {
    const stride = this.#rf;
    const offset = q * stride;
    if (this.#baseStamp[q] === this.#join) return offset;
    const count = this.#walk(q, -1, 0, this.#rowC);
    this.#rowCache.set(this.#rowC.subarray(0, count), offset);
    this.#baseCount[q] = count;
    this.#baseSteps[q] = this.#steps;
    this.#baseStamp[q] = this.#join;
    return offset;
  }

  #rowCache = new Uint32Array(0);
  #baseCount = new Uint8Array(0);
  #baseSteps = new Float64Array(0);
  #baseStamp = new Uint32Array(0);
  readonly #rowC = new Uint32Array(64);

  /**
   * The best `a` for the evaluated delta and the objective's change there. The joining node
   * counts with the load its remaining tokens will bring (`#ahead`): a greedy step that saw
   * only its current load would take half a donor's load with its first token.
   */
  #best(length: number, x: number): { a: number; change: number } {
    let quadratic = 0;
    let linear = 0;
    const loads = this.#loads;
    const touched = this.#touched;
    for (let i = 0; i < touched.length; i++) {
      const node = touched[i]!;
      const k = this.#slope[node]!;
      const base = loads[node]! + (node === x ? this.#ahead : 0);
      quadratic += k * k;
      linear += 2 * k * (base + this.#constant[node]!);
    }
    let a = quadratic > 0 ? Math.round(-linear / (2 * quadratic)) : 1;
    a = Math.min(Math.max(a, 1), length - 1);
    let change = 0;
    for (let i = 0; i < touched.length; i++) {
      const node = touched[i]!;
      const base = loads[node]! + (node === x ? this.#ahead : 0);
      const d = this.#constant[node]! + a * this.#slope[node]!;
      change += d * (2 * base + d);
    }
    const result = this.#result;
    result.a = a;
    result.change = change;
    return result;
  }

  readonly #result = { a: 0, change: 0 };

  /** Load the joining node's tokens not yet placed are expected to bring. */
  #ahead = 0;

  /** What a node of `zone` should own once `x` has joined: its zone's load shared out. */
  #target(x: number): number {
    const zone = this.#zoneOf[x]!;
    let total = 0;
    let members = 0;
    for (let n = 0; n <= x; n++) {
      if (this.#zoneOf[n] !== zone) continue;
      total += this.#loads[n]!;
      members++;
    }
    return total / members;
  }

  /** Token positions per node for this join: `start[n]..start[n+1]` in `list`. */
  #positionsByNode(): { start: Uint32Array; list: Uint32Array } {
    const nodes = this.#ids.length;
    const start = new Uint32Array(nodes + 1);
    for (let i = 0; i < this.#count; i++) start[this.#owners[i]! + 1]!++;
    for (let n = 0; n < nodes; n++) start[n + 1]! += start[n]!;
    const fill = start.slice(0, nodes);
    const list = new Uint32Array(this.#count);
    for (let i = 0; i < this.#count; i++) list[fill[this.#owners[i]!]!++] = i;
    return { start, list };
  }

  /** Places one token of `x` by the greedy rule; returns it, or -1 when no candidate fits. */
  #placeOne(x: number, positions: { start: Uint32Array; list: Uint32Array }): number {
    const loads = this.#loads;
    const pick = this.#pick;
    pick.change = Number.POSITIVE_INFINITY;
    pick.p = -1;
    pick.valid = 0;
    // Donors, heaviest first: in x's zone (which a zone-aware walk displaces first), then
    // anywhere. Each heap stops once it has given enough candidates that fit.
    const seen = ++this.#donorEpoch;
    const popped: Array<[LoadHeap, number]> = [];
    // With one zone per replica, a token displaces only nodes of its own zone.
    const heaps = [this.#zoneHeaps[this.#zoneOf[x]!]!];
    if (this.#zoneCount !== this.#stride) heaps.push(this.#allHeap);
    for (const heap of heaps) {
      const wanted = pick.valid + DONOR_CANDIDATES;
      for (let donors = 0; pick.valid < wanted && donors < MAX_DONORS && heap.size > 0; donors++) {
        const donor = heap.pop();
        popped.push([heap, donor]);
        if (this.#donorSeen[donor] === seen) continue;
        this.#donorSeen[donor] = seen;
        const before = pick.valid;
        this.#considerDonor(x, donor, this.#longestStretches(donor, positions, DONOR_TOKENS));
        if (pick.valid === before) {
          // Its best tokens are near this join's others: look further down its list.
          this.#considerDonor(x, donor, this.#longestStretches(donor, positions, 4 * DONOR_TOKENS));
        }
      }
    }
    for (const [heap, donor] of popped) heap.push(donor);
    if (pick.p < 0) {
      // Everything near the heaviest nodes is taken by this join (a small ring): try all.
      for (let p = 0; p < this.#count; p++) this.#consider(x, p);
    }
    if (pick.p < 0) return -1;
    // Re-evaluate the winner to apply its exact delta, and mark its window.
    this.#evaluate(pick.p, x);
    for (const node of this.#touched) {
      loads[node]! += this.#constant[node]! + pick.a * this.#slope[node]!;
      this.#allHeap.update(node);
      this.#zoneHeaps[this.#zoneOf[node]!]!.update(node);
    }
    for (let q = pick.first; ; q = q + 1 === this.#count ? 0 : q + 1) {
      this.#used[q] = this.#join;
      if (q === pick.p) break;
    }
    const previous =
      pick.p === 0 ? this.#tokens[this.#count - 1]! - RING : this.#tokens[pick.p - 1]!;
    const token = previous + pick.a;
    return token < 0 ? token + RING : token;
  }

  /** The best candidate of the token being placed: position, split, window start, change. */
  readonly #pick = { p: -1, a: 0, first: 0, change: 0, valid: 0 };

  /**
   * Considers every range in front of the donor's tokens at `picks` that the donor holds a
   * replica of: the farther back, the less the new token gains beyond its split, so small
   * takes fit too.
   */
  #considerDonor(x: number, donor: number, picks: readonly number[]): void {
    const count = this.#count;
    for (const position of picks) {
      for (let back = 0; back < MAX_STRETCH && back < count; back++) {
        const q = position - back < 0 ? position - back + count : position - back;
        if (back > 0 && !this.#inRow(q, donor)) break;
        this.#consider(x, q);
      }
    }
  }

  #consider(x: number, p: number): void {
    const first = this.#evaluate(p, x);
    if (first < 0) return;
    const pick = this.#pick;
    pick.valid++;
    const { a, change } = this.#best(this.#length(p), x);
    if (change < pick.change) {
      pick.change = change;
      pick.p = p;
      pick.a = a;
      pick.first = first;
    }
  }

  /** Whether `node` is among the replicas of the range in front of position `q`. */
  #inRow(q: number, node: number): boolean {
    const offset = this.#baseRow(q);
    const end = offset + this.#baseCount[q]!;
    for (let i = offset; i < end; i++) if (this.#rowCache[i] === node) return true;
    return false;
  }

  #donorEpoch = 0;
  #donorSeen: number[] = [];

  /** Puts every node but `except` into the heaps, by current load. */
  #rebuildHeaps(except: number): void {
    this.#allHeap.clear();
    for (const heap of this.#zoneHeaps) heap.clear();
    for (let n = 0; n < this.#ids.length; n++) {
      if (n === except) continue;
      this.#heapsOf(n);
    }
  }

  #heapsOf(node: number): void {
    const zone = this.#zoneOf[node]!;
    while (this.#zoneHeaps.length <= zone) this.#zoneHeaps.push(new LoadHeap(() => this.#loads));
    this.#allHeap.push(node);
    this.#zoneHeaps[zone]!.push(node);
  }

  /**
   * The donor's tokens (positions) with the longest stretch of ring in front that it holds:
   * back to the `#rivals`-th earlier token of its zone (other than its own), which is exact
   * for as many zones as replicas (each zone then holds one replica of everything) and
   * unzoned rings, and a fair guess otherwise. At most `limit`, longest first, this join's
   * unused.
   */
  #longestStretches(
    node: number,
    positions: { start: Uint32Array; list: Uint32Array },
    limit: number,
  ): number[] {
    const picks: number[] = [];
    const stretches: number[] = [];
    const count = this.#count;
    const zone = this.#zoneOf[node]!;
    const rivals = this.#rivals;
    for (let i = positions.start[node]!; i < positions.start[node + 1]!; i++) {
      const p = positions.list[i]!;
      if (this.#used[p] === this.#join) continue;
      let seen = 0;
      let back = 1;
      let taken = false;
      for (; back < count && back <= MAX_STRETCH; back++) {
        const q = p - back < 0 ? p - back + count : p - back;
        const owner = this.#owners[q]!;
        if (owner !== node && this.#zoneOf[owner] === zone && ++seen === rivals) break;
        // A token of this join in the stretch already: its windows would meet that one's.
        if (this.#used[q] === this.#join) taken = true;
      }
      if (taken) continue;
      const from = p - back;
      const stretch =
        back >= count
          ? RING
          : this.#tokens[p]! -
            (from < 0 ? this.#tokens[from + count]! - RING : this.#tokens[from]!);
      let at = picks.length;
      while (at > 0 && stretches[at - 1]! < stretch) at--;
      if (at >= limit) continue;
      picks.splice(at, 0, p);
      stretches.splice(at, 0, stretch);
      if (picks.length > limit) {
        picks.pop();
        stretches.pop();
      }
    }
    return picks;
  }

  /**
   * Tokens of a node's own zone that bound the stretch it replicates in front of its token:
   * 1 when zones are at least replicas (one replica per zone), else the replicas that
   * share zones (replicas - zones + 1; an unzoned ring: the replication factor).
   */
  get #rivals(): number {
    return Math.max(1, this.#stride - this.#zoneCount + 1);
  }

  /** `count` evenly spaced tokens, offset by a hash of the id, avoiding tokens in use. */
  #evenlySpaced(id: string, count: number): number[] {
    let offset = 0;
    for (let i = 0; i < id.length; i++) offset = (Math.imul(offset, 31) + id.charCodeAt(i)) >>> 0;
    const step = RING / count;
    offset %= Math.floor(step);
    const out: number[] = [];
    for (let k = 0; k < count; k++) {
      out.push(this.#freeNear(Math.floor(offset + k * step), out));
    }
    return out;
  }

  /** A free token for when no candidate fits: the middle of the longest range (tiny rings). */
  #freeToken(chosen: readonly number[]): number {
    let best = 0;
    for (let p = 1; p < this.#count; p++) if (this.#length(p) > this.#length(best)) best = p;
    const previous = best === 0 ? this.#tokens[this.#count - 1]! - RING : this.#tokens[best - 1]!;
    let token = Math.floor(previous + this.#length(best) / 2);
    if (token < 0) token += RING;
    return this.#freeNear(token, chosen);
  }

  /** `token`, or the next value up (wrapping) that neither the ring nor `chosen` holds. */
  #freeNear(token: number, chosen: readonly number[]): number {
    let t = token;
    while (this.#holds(t) || chosen.includes(t)) t = t === MAX_TOKEN ? 0 : t + 1;
    return t;
  }

  #holds(token: number): boolean {
    let lo = 0;
    let hi = this.#count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#tokens[mid]! < token) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.#count && this.#tokens[lo] === token;
  }

  /** Merges sorted `tokens` of node `x` into the ring, from the end (one pass, in place). */
  #merge(tokens: readonly number[], x: number): void {
    let i = this.#count - 1;
    let j = tokens.length - 1;
    let to = this.#count + tokens.length - 1;
    const ring = this.#tokens;
    const owners = this.#owners;
    while (j >= 0) {
      if (i >= 0 && ring[i]! > tokens[j]!) {
        ring[to] = ring[i]!;
        owners[to--] = owners[i--]!;
      } else {
        ring[to] = tokens[j]!;
        owners[to--] = x;
        j--;
      }
    }
    this.#count += tokens.length;
  }

  #recomputeLoads(): void {
    const loads = this.#loads;
    loads.fill(0);
    const row = this.#rowA;
    for (let q = 0; q < this.#count; q++) {
      const length = this.#length(q);
      const taken = this.#walk(q, -1, 0, row);
      for (let i = 0; i < taken; i++) loads[row[i]!]! += length;
    }
  }
}
