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
 *   the sweep first seeing it open. A body trickled a byte at a time ends here.
 * - send: a reply held back by the peer's flow-control window must make progress (some of it
 *   sent) within `sendTimeoutMs`. A peer that never reads, or holds its window at zero, would
 *   otherwise keep every reply it asked for in memory for as long as it likes.
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
}

/** What a sweep found over its limits, to be acted on. */
export interface StallVerdict {
  /** Stuck mid-read: to be closed. */
  readonly connections: H2Connection[];
  /** Request body overdue. */
  readonly requests: H2Stream[];
  /** Reply stuck behind flow control. */
  readonly replies: H2Stream[];
}

interface Mark {
  since: number;
  /** What progress looks like for the state marked: frames received, or bytes queued. */
  at: number;
}

const NONE: StallVerdict = Object.freeze({ connections: [], requests: [], replies: [] });

function queuedBytes(s: H2Stream): number {
  let n = 0;
  for (const b of s.queue!) n += b.length;
  return n;
}

export class StallTimeouts {
  readonly #limits: StallLimits;
  readonly #connections = new WeakMap<H2Connection, Mark>();
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
    const requests: H2Stream[] = [];
    const replies: H2Stream[] = [];
    for (const [s] of this.#requests) if (s.closed || s.remoteEnded) this.#requests.delete(s);
    for (const [s] of this.#replies) if (s.closed || s.queue === null) this.#replies.delete(s);
    for (const c of connections) {
      if (headerTimeoutMs > 0) {
        if (!c.isMidRead) this.#connections.delete(c);
        else {
          const mark = this.#connections.get(c);
          if (mark === undefined || mark.at !== c.framesReceived) {
            this.#connections.set(c, { since: now, at: c.framesReceived });
          } else if (now - mark.since >= headerTimeoutMs) {
            late.push(c);
            continue;
          }
        }
      }
      if (bodyTimeoutMs === 0 && sendTimeoutMs === 0) continue;
      for (const s of c.streams.values()) {
        if (!s.remoteEnded) {
          if (bodyTimeoutMs === 0) continue;
          const since = this.#requests.get(s);
          if (since === undefined) this.#requests.set(s, now);
          else if (now - since >= bodyTimeoutMs) {
            this.#requests.delete(s);
            requests.push(s);
          }
        } else if (s.queue !== null && sendTimeoutMs > 0) {
          const queued = queuedBytes(s);
          const mark = this.#replies.get(s);
          if (mark === undefined || mark.at !== queued) {
            this.#replies.set(s, { since: now, at: queued });
          } else if (now - mark.since >= sendTimeoutMs) {
            this.#replies.delete(s);
            replies.push(s);
          }
        }
      }
    }
    return late.length === 0 && requests.length === 0 && replies.length === 0
      ? NONE
      : { connections: late, requests, replies };
  }
}
