/**
 * Last-write-wins versions for writes this process coordinates: microseconds since the Unix
 * epoch (wall clock, since replicas compare versions stamped by different routers), strictly
 * increasing within the thread even when the clock stands still or steps back. Two routers
 * can stamp the same version; nodes then break the tie deterministically (Memory.version).
 */
export class VersionClock {
  #last = 0;
  readonly #nowMs: () => number;

  constructor(nowMs: () => number = Date.now) {
    this.#nowMs = nowMs;
  }

  next(): number {
    const now = Math.floor(this.#nowMs() * 1000);
    this.#last = now > this.#last ? now : this.#last + 1;
    return this.#last;
  }
}
