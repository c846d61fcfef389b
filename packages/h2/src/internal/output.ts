/**
 * Write batching. Frames are written into a per-connection slab and every dirty connection
 * is flushed with one `socket.write` per event-loop turn (from a single `setImmediate` per
 * thread), so 64 calls in flight on one connection cost one syscall per turn, not one per
 * frame. A written region of a slab is never touched again: the slab is only appended to,
 * and a full slab is replaced, never reused, so a pending write can still read its bytes.
 */

export interface Flushable {
  /** Writes whatever the connection has buffered; called once per turn while dirty. */
  flush(): void;
}

const dirty: Flushable[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  // A flush may mark another connection dirty (it cannot mark itself: flush empties it).
  for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
  dirty.length = 0;
}

/** Queues `c` for the next flush turn; the caller keeps its own "already queued" flag. */
export function scheduleFlush(c: Flushable): void {
  dirty.push(c);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}
