/**
 * The three placements of a space while membership changes: *current* (reads, and the
 * writes that count towards acknowledgement), *future* (once the change completes: joining
 * nodes in, leaving nodes out, pending pins in force) and *pending* (future minus current:
 * extra write targets meanwhile). One implementation for `Ring` (its own arrays) and
 * `TableReader` (a published half), so both answer the same.
 *
 * Each function returns the placement's full size, writes at most `out.length` nodes, and
 * returns -1 when it read torn shared input (a reader retries; a Ring's arrays never are).
 * Rows and owners are read with `Atomics.load` when shared, for layout.ts's ordering argument.
 */
import { type OwnedArrays, startPosition, type Walker, walkInto } from './placement.js';

export interface Transition {
  readonly arrays: OwnedArrays;
  readonly tokenCount: number;
  /** Row width: the current placement's size. */
  readonly stride: number;
  /** Current pins: node indexes, primary first. */
  readonly assignments: ReadonlyMap<string, Uint16Array>;
  /** Future pins; `null`: the space goes back to the ring. */
  readonly pendingPins: ReadonlyMap<string, Uint16Array | null>;
  /** Walks the future ring; null when no node joins or leaves, so the future ring is `rows`. */
  readonly future: Walker | null;
  /** The arrays are a published table's. */
  readonly shared: boolean;
  /** Three scratch arrays of `maxPlacementSize` (current, future, walk). */
  readonly scratch: readonly [Uint16Array, Uint16Array, Uint16Array];
}

/** The current placement: the space's pin, or the row the key's token starts at. */
export function currentInto(t: Transition, spaceId: string, token: number, out: Uint16Array) {
  if (t.assignments.size !== 0) {
    const pin = t.assignments.get(spaceId);
    if (pin !== undefined) return copyInto(pin, pin.length, out);
  }
  return ringCurrentInto(t, token, out);
}

/** The future placement: a pending pin, else the current pin, else the future ring walk. */
export function futureInto(t: Transition, spaceId: string, token: number, out: Uint16Array) {
  if (t.pendingPins.size !== 0) {
    const pin = t.pendingPins.get(spaceId);
    if (pin === null) return ringFutureInto(t, token, out);
    if (pin !== undefined) return copyInto(pin, pin.length, out);
  }
  if (t.assignments.size !== 0) {
    const pin = t.assignments.get(spaceId);
    if (pin !== undefined) return copyInto(pin, pin.length, out);
  }
  return ringFutureInto(t, token, out);
}

/** Nodes of the future placement missing from the current one, in future order. */
export function pendingInto(t: Transition, spaceId: string, token: number, out: Uint16Array) {
  const [current, future] = t.scratch;
  const currentCount = currentInto(t, spaceId, token, current);
  if (currentCount < 0) return -1;
  const futureCount = futureInto(t, spaceId, token, future);
  if (futureCount < 0) return -1;
  let count = 0;
  next: for (let i = 0; i < futureCount; i++) {
    const node = future[i]!;
    for (let j = 0; j < currentCount; j++) if (current[j] === node) continue next;
    if (count < out.length) out[count] = node;
    count++;
  }
  return count;
}

function ringCurrentInto(t: Transition, token: number, out: Uint16Array): number {
  const start = startPosition(t.arrays, t.tokenCount, token);
  if (start < 0) return -1;
  const { rows } = t.arrays;
  const stride = t.stride;
  const base = start * stride;
  const n = Math.min(stride, out.length);
  for (let i = 0; i < n; i++) out[i] = Atomics.load(rows, base + i);
  return stride;
}

function ringFutureInto(t: Transition, token: number, out: Uint16Array): number {
  const walker = t.future;
  if (walker === null) return ringCurrentInto(t, token, out);
  const start = startPosition(t.arrays, t.tokenCount, token);
  if (start < 0) return -1;
  const walked = t.scratch[2];
  const count = walkInto(t.arrays.owners, t.tokenCount, start, walker, walked, 0, t.shared);
  return count < 0 ? -1 : copyInto(walked, count, out);
}

/** Copies up to `out.length` of `count` nodes; returns `count`. */
export function copyInto(source: Uint16Array, count: number, out: Uint16Array): number {
  const n = Math.min(count, out.length);
  for (let i = 0; i < n; i++) out[i] = source[i]!;
  return count;
}
