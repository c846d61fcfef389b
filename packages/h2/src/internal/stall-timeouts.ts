import type { H2Connection, H2Stream } from './connection.js';

/**
 * The stall timeouts of a server, checked by a sweep (one timer per server, never one per
 * connection or per call, and no clock read per frame):
 *
 * - header: a connection that started something (the preface and first SETTINGS, a frame, a
 *   header block) must finish it within `headerTimeoutMs`. Bytes trickling in are no
 *   progress; only a frame parsed is (a header block counts when it starts, so CONTINUATIONs
 *   do not extend it). Slowloris on headers, frames or the handshake ends here.
 * - body: a request stream must be complete (END_STREAM received) within `bodyTimeoutMs` of
 *   the sweep first seeing it open, extended by one second per `bodyMinBytesPerSecond` bytes
 *   it received (Apache's mod_reqtimeout rule): a large body on a slow link gets the time its
 *   size needs, a body trickled a byte at a time does not.
 * - send: a reply held back by the peer's flow-control window must make progress (its queue
 *   shrinks) within `sendTimeoutMs`, or its stream is reset; and a connection whose socket
 *   has bytes the kernel will not take (the peer does not read TCP, whatever window it
 *   granted) must make progress within it, or the connection is closed. A peer that never
 *   reads would otherwise keep every reply it asked for in memory for as long as it likes.
 *
 * A state is marked when a sweep first sees it, and timed from that mark, so a timeout never
 * fires early; it fires at most two sweep periods late.
 */
export interface StallLimits {
  /** 0 = off. */
  readonly headerTimeoutMs: number;
  /** 0 = off. */
  readonly bodyTimeoutMs: number;
  /** 0 = off. */
  readonly sendTimeoutMs: number;
  /** Bytes per second a request body must keep up to earn time beyond `bodyTimeoutMs`. */
  readonly bodyMinBytesPerSecond: number;
}

/** What a sweep found over its limits, to be acted on. */
export interface StallVerdict {
  /** Stuck mid-read: to be closed. */
  readonly connections: H2Connection[];
  /** Their socket's output stuck (the peer does not read): to be closed. */
  readonly unread: H2Connection[];
  /** Request body overdue. */
  readonly requests: H2Stream[];
  /** Reply stuck behind flow control. */
  readonly replies: H2Stream[];
}

interface Mark {
  since: number;
  /** What progress looks like for the state marked: frames received, or bytes queued. */
  at: number;
  /** For a socket: bytes libuv still holds for the kernel (see `libuvQueued`). */
  queued?: number;
}

/**
 * Bytes of the socket's write in flight that the kernel has not taken yet: Node's own
 * `_handle.writeQueueSize` (no public API says it). It falls while the kernel takes a large
 * write (Node writes everything buffered as one writev, which completes only when the peer has
 * read most of it), so a slow reader is seen making progress before the write completes. -1
 * when the handle does not say.
 */
function libuvQueued(socket: object): number {
  const handle = (socket as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const n = handle?.writeQueueSize;
  return typeof n === 'number' ? n : -1;
}

const NONE: StallVerdict = Object.freeze({
  connections: [],
  unread: [],
  requests: [],
  replies: [],
});

export class StallTimeouts {
  readonly #limits: StallLimits;
  readonly #connections = new WeakMap<H2Connection, Mark>();
  readonly #sockets = new WeakMap<H2Connection, Mark>();
  readonly #requests = new Map<H2Stream, number>();
  readonly #replies = new Map<H2Stream, Mark>();

  constructor(limits: StallLimits) {
    this.#limits = limits;
  }

  /** Sweep period for these limits: a quarter of the shortest one, within 50 ms..1 s; 0 = none. */
  static periodMs(limits: StallLimits): number {
    const on = [limits.headerTimeoutMs, limits.bodyTimeoutMs, limits.sendTimeoutMs].filter(
      (t) => t > 0,
    );
    if (on.length === 0) return 0;
    return Math.min(1000, Math.max(50, Math.floor(Math.min(...on) / 4)));
  }

  /** Marks what is new, and returns what has been stuck for longer than its limit at `now`. */
  sweep(connections: Iterable<H2Connection>, now: number): StallVerdict {
    const { headerTimeoutMs, bodyTimeoutMs, sendTimeoutMs } = this.#limits;
    if (headerTimeoutMs === 0 && bodyTimeoutMs === 0 && sendTimeoutMs === 0) return NONE;
    const late: H2Connection[] = [];
    const unread: H2Connection[] = [];
    const requests: H2Stream[] = [];
    const replies: H2Stream[] = [];
    for (const [s] of this.#requests) if (s.closed || s.remoteEnded) this.#requests.delete(s);
    for (const [s] of this.#replies) if (s.closed || s.queue === null) this.#replies.delete(s);
    for (const c of connections) {
      if (headerTimeoutMs > 0 && this.#stuckReading(c, now, headerTimeoutMs)) {
        late.push(c);
        continue;
      }
      if (sendTimeoutMs > 0 && this.#stuckWriting(c, now, sendTimeoutMs)) {
        unread.push(c);
        continue;
      }
      if (bodyTimeoutMs === 0 && sendTimeoutMs === 0) continue;
      for (const s of c.streams.values()) {
        if (!s.remoteEnded) {
          if (bodyTimeoutMs > 0 && this.#bodyOverdue(s, now, bodyTimeoutMs)) requests.push(s);
        } else if (s.queue !== null && sendTimeoutMs > 0) {
          if (this.#replyStuck(s, now, sendTimeoutMs)) replies.push(s);
        }
      }
    }
    return late.length + unread.length + requests.length + replies.length === 0
      ? NONE
      : { connections: late, unread, requests, replies };
  }

  /** Mid-read with no frame parsed since the mark, for `limitMs`. */
  #stuckReading(c: H2Connection, now: number, limitMs: number): boolean {
    if (!c.isMidRead) {
      this.#connections.delete(c);
      return false;
    }
    const mark = this.#connections.get(c);
    if (mark === undefined || mark.at !== c.framesReceived) {
      this.#connections.set(c, { since: now, at: c.framesReceived });
      return false;
    }
    return now - mark.since >= limitMs;
  }

  /** Output waiting in the socket with none of it taken by the kernel since the mark. */
  #stuckWriting(c: H2Connection, now: number, limitMs: number): boolean {
    const socket = c.socket;
    if (socket.writableLength === 0) {
      this.#sockets.delete(c);
      return false;
    }
    // bytesWritten counts what is still buffered: the difference is what completed writes
    // handed over; the write in flight shows its own progress in libuv's queue.
    const taken = socket.bytesWritten - socket.writableLength;
    const queued = libuvQueued(socket);
    const mark = this.#sockets.get(c);
    if (mark === undefined || mark.at !== taken || mark.queued !== queued) {
      this.#sockets.set(c, { since: now, at: taken, queued });
      return false;
    }
    return now - mark.since >= limitMs;
  }

  #bodyOverdue(s: H2Stream, now: number, limitMs: number): boolean {
    const since = this.#requests.get(s);
    if (since === undefined) {
      this.#requests.set(s, now);
      return false;
    }
    const earned = (s.bytesReceived * 1000) / this.#limits.bodyMinBytesPerSecond;
    if (now - since < limitMs + earned) return false;
    this.#requests.delete(s);
    return true;
  }

  /**
   * A reply's queue has not shrunk below its smallest size since the mark, for `limitMs`
   * (a queue that only grows, a stream writing to a peer that never opens its window, is no
   * progress).
   */
  #replyStuck(s: H2Stream, now: number, limitMs: number): boolean {
    let queued = 0;
    for (const b of s.queue!) queued += b.length;
    const mark = this.#replies.get(s);
    if (mark === undefined || queued < mark.at) {
      this.#replies.set(s, { since: now, at: queued });
      return false;
    }
    if (now - mark.since < limitMs) return false;
    this.#replies.delete(s);
    return true;
  }
}
