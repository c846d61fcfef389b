import { InvalidArgumentError } from '@engram/common';
import { BreakerCore, type BreakerSnapshot, checkCapacity } from './core.js';
import type { BreakerOptions } from './options.js';

export interface BreakerTableOptions extends BreakerOptions {
  /** Number of breakers (node slots 0..capacity-1) in a new table; ignored with `buffer`. */
  readonly capacity?: number | undefined;
  /**
   * The buffer of an existing table (from `table.buffer`, posted to this worker): the new
   * object is a view over the same breakers. Pass the same `halfOpenProbes` and `trip` rules
   * as the creator (checked) and a clock on the same timeline (not checked).
   */
  readonly buffer?: SharedArrayBuffer | undefined;
}

/**
 * One circuit breaker per node slot in a SharedArrayBuffer, used from every thread at once.
 * Create it in one thread with `capacity`, post `table.buffer` to the workers, and build a view
 * there with `new BreakerTable({ buffer, ...sameOptions })`.
 */
export class BreakerTable extends BreakerCore {
  /** The shared memory holding every breaker; post it to workers. */
  readonly buffer: SharedArrayBuffer;

  constructor(options: BreakerTableOptions) {
    const { buffer, capacity } = options;
    if (buffer !== undefined) {
      if (!(buffer instanceof SharedArrayBuffer)) {
        throw new InvalidArgumentError('buffer', buffer, 'a SharedArrayBuffer');
      }
      super({ kind: 'attach', buffer }, options);
      this.buffer = buffer;
    } else {
      if (capacity === undefined) {
        throw new InvalidArgumentError('capacity', capacity, 'given when there is no buffer');
      }
      checkCapacity(capacity);
      const created = new SharedArrayBuffer(BreakerCore.byteLength(capacity, options));
      super({ kind: 'create', buffer: created, capacity }, options);
      this.buffer = created;
    }
  }

  /** Bytes a table of `capacity` breakers with these options occupies. */
  static override byteLength(capacity: number, options: BreakerOptions = {}): number {
    return BreakerCore.byteLength(capacity, options);
  }

  /** Snapshots of every breaker, for the admin API (allocates; not for the hot path). */
  snapshot(): BreakerSnapshot[] {
    const out: BreakerSnapshot[] = [];
    for (let slot = 0; slot < this.capacity; slot++) out.push(this.snapshotOf(slot));
    return out;
  }
}
