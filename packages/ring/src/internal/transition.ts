/**
 * The three placements of a space while membership changes: *current* (reads, and the
 * writes that count towards acknowledgement), *future* (once the change completes: joining
 * nodes in, leaving nodes out, pending pins in force) and *pending* (future minus current:
 * extra write targets meanwhile). One implementation for `Ring` (its own arrays) and
 * `TableReader` (a published half), so both answer the same; the current placement alone is
 * each one's `lookupInto`, kept apart as the hottest path.
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

/** The future placement: a pending pin, else the current pin, else the future ring walk. */
export function futureInto(t: Transition, spaceId: string, token: number, out: Uint16Array) {
  const pin = futurePin(t, spaceId);
  if (pin !== undefined) return copyInto(pin, pin.length, out);
  const start = startPosition(t.arrays, t.tokenCount, token);
  return start < 0 ? -1 : ringFutureInto(t, start, out);
}

/** Nodes of the future placement missing from the current one, in future order. */
export function pendingInto(t: Transition, spaceId: string, token: number, out: Uint16Array) {
  const [current, future] = t.scratch;
  const nowPin = currentPin(t, spaceId);
  const nextPin = futurePin(t, spaceId);
  // One search for both placements: it is most of a lookup's cost.
  let start = 0;
  if (nowPin === undefined || nextPin === undefined) {
    start = startPosition(t.arrays, t.tokenCount, token);
    if (start < 0) return -1;
  }
  const currentCount =
    nowPin === undefined ? rowInto(t, start, current) : copyInto(nowPin, nowPin.length, current);
  const futureCount =
    nextPin === undefined
      ? ringFutureInto(t, start, future)
      : copyInto(nextPin, nextPin.length, future);
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

// The pin in force now, or undefined: the ring places the space.
function currentPin(t: Transition, spaceId: string): Uint16Array | undefined {
  return t.assignments.size === 0 ? undefined : t.assignments.get(spaceId);
}

// The pin in force once the change completes, or undefined: the ring places the space.
function futurePin(t: Transition, spaceId: string): Uint16Array | undefined {
  if (t.pendingPins.size !== 0) {
    const pin = t.pendingPins.get(spaceId);
    if (pin !== undefined) return pin ?? undefined; // null: back to the ring
  }
  return currentPin(t, spaceId);
}

// The current ring placement: the row at vnode position `start`.
function rowInto(t: Transition, start: number, out: Uint16Array): number {
  const { rows } = t.arrays;
  const stride = t.stride;
  const base = start * stride;
  const n = Math.min(stride, out.length);
  for (let i = 0; i < n; i++) out[i] = Atomics.load(rows, base + i);
  return stride;
}

// The future ring placement from vnode position `start`: the row when no node moves.
function ringFutureInto(t: Transition, start: number, out: Uint16Array): number {
  const walker = t.future;
  if (walker === null) return rowInto(t, start, out);
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
