import type { Memory, Tombstone } from '@engram/proto';
import { StorageFailedError } from './errors.js';
import type { AppendLog, LogRecord } from './log.js';
import type { MemoryStore, MergePlan } from './store.js';
import type { VersionStamper } from './versions.js';

/**
 * The store behind its log: each change is appended and fdatasync'ed, then applied to the
 * in-memory store in log order (AppendLog runs `apply` after the sync), so the store always
 * equals a replay of the log and a reply never acknowledges what a crash could lose. Without a
 * log (no data dir) changes apply at once.
 */
export class DurableStore {
  readonly store: MemoryStore;
  readonly stamper: VersionStamper;
  readonly #log: AppendLog | undefined;
  readonly #onStorageFailure: (err: StorageFailedError) => void;
  // Consolidations run one at a time so each plans on the result of the previous one.
  #consolidating: Promise<unknown> = Promise.resolve();

  constructor(
    store: MemoryStore,
    stamper: VersionStamper,
    log: AppendLog | undefined,
    onStorageFailure: (err: StorageFailedError) => void,
  ) {
    this.store = store;
    this.stamper = stamper;
    this.#log = log;
    this.#onStorageFailure = onStorageFailure;
  }

  /**
   * Stores a validated memory that carries its version. A write that loses to what the space
   * holds is not logged: the state that beats it is already durable, and last write wins only
   * ever moves an id forward, so it would lose at replay too. Resolves true when it changed
   * the store.
   */
  put(spaceId: string, memory: Memory): Promise<boolean> {
    if (!this.store.wouldPut(spaceId, memory)) return Promise.resolve(false);
    return this.#write({ t: 'store', s: spaceId, m: memory }, () =>
      this.store.put(spaceId, memory),
    );
  }

  /** Applies validated entries last-write-wins; resolves with how many changed the store. */
  applyEntries(
    spaceId: string,
    memories: readonly Memory[],
    tombstones: readonly Tombstone[],
  ): Promise<number> {
    // Only what would win now is logged (see put).
    const m = memories.filter((x) => this.store.wouldPut(spaceId, x));
    const d = tombstones.filter((x) => this.store.wouldTombstone(spaceId, x.id, x.version));
    if (m.length === 0 && d.length === 0) return Promise.resolve(0);
    return this.#write({ t: 'apply', s: spaceId, m, d }, () =>
      this.store.applyEntries(spaceId, m, d),
    );
  }

  /**
   * Consolidates a space at `version` (0: stamped when its turn comes). Its effect is logged
   * as last-write-wins writes, so a replay, a scan streamed to another replica and a repair
   * all reach the same state.
   */
  consolidate(spaceId: string, threshold: number, version: number): Promise<MergePlan> {
    const run = async () => {
      const plan = this.store.planMerge(
        spaceId,
        threshold,
        version === 0 ? this.stamper.stamp() : version,
      );
      const { memories, tombstones } = plan.writes;
      if (memories.length > 0 || tombstones.length > 0) {
        await this.#write({ t: 'apply', s: spaceId, m: memories, d: tombstones }, () =>
          this.store.applyEntries(spaceId, memories, tombstones),
        );
      }
      return plan;
    };
    const done = this.#consolidating.then(run);
    this.#consolidating = done.catch(() => undefined);
    return done;
  }

  async #write<T>(record: LogRecord, apply: () => T): Promise<T> {
    if (this.#log === undefined) return apply();
    let result: T | undefined;
    try {
      await this.#log.append(record, () => {
        result = apply();
      });
    } catch (err) {
      if (err instanceof StorageFailedError) this.#onStorageFailure(err);
      throw err;
    }
    return result as T;
  }
}

/** Applies the records read from a log, in order, to a fresh store. */
export function replayRecords(store: MemoryStore, records: readonly LogRecord[]): void {
  for (const r of records) {
    switch (r.t) {
      case 'store':
        if (r.m.version === undefined) store.putLegacy(r.s, { ...r.m, version: 0 });
        else store.put(r.s, { ...r.m, version: r.m.version });
        break;
      case 'apply':
        store.applyEntries(r.s, r.m, r.d);
        break;
      case 'merge':
        store.applyLegacyMerge(r.s, r.g);
        break;
    }
  }
}
