import { encodeMemory, type Memory } from '@engram/proto';

/**
 * Source of wall-clock time (ms since the Unix epoch), injectable for tests. A wall clock on
 * purpose, unlike `@engram/common`'s monotonic `Clock`: it stamps `created_at_ms`, which
 * clients and other nodes read as a date, and versions, which replicas compare across nodes.
 */
export interface WallClock {
  now(): number;
}

const MICROS_PER_MS = 1000;

/**
 * Stamps the versions of writes that arrive without one (Store or Consolidate with version 0):
 * the wall clock in µs, or one more than the previous stamp when the clock has not moved past
 * it (Date has ms resolution; a clock may step back), so a node's own stamps always increase.
 */
export class VersionStamper {
  readonly #clock: WallClock;
  #last = 0;

  constructor(clock: WallClock) {
    this.#clock = clock;
  }

  stamp(): number {
    this.#last = Math.max(Math.floor(this.#clock.now() * MICROS_PER_MS), this.#last + 1);
    return this.#last;
  }
}

/**
 * Last write wins between two memories of the same id: the higher version, and at equal
 * versions the larger canonical encoding (byte-wise), so every replica picks the same one
 * whatever order the two arrived in. Equal bytes are the same memory: no change.
 */
export function memoryWins(incoming: Memory, current: Memory): boolean {
  if (incoming.version !== current.version) return incoming.version > current.version;
  return Buffer.compare(encodeMemory(incoming), encodeMemory(current)) > 0;
}
