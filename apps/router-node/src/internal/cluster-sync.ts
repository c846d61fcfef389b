import type { IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import {
  intentFromKeys,
  isPlacementKey,
  type PlacementIntent,
  placementKey,
  type RouterRegistration,
  routersFromKeys,
} from './etcd-keys.js';
import type { EtcdStore, Snapshot } from './etcd-store.js';

// Follows a router cluster's prefix in etcd: a copy of its keys kept current by the watch,
// and every new placement revision handed to the control plane. While etcd is away the copy
// and the table in force stay as they are (static stability); the watch resumes where it
// stopped, or from a fresh read when etcd compacted past it.

export interface ClusterSyncInit {
  readonly store: EtcdStore;
  /** A new placement (the intent at `revision`); throws when it cannot be followed. */
  readonly adopt: (intent: PlacementIntent, revision: number) => void;
  readonly log: Logger;
  /** Delay before reading again after a failed read or a broken watch. */
  readonly retryMs?: number;
}

/** What `status` and /metrics say of etcd. */
export interface SyncStatus {
  readonly connected: boolean;
  /** Revision of the placement in force (0 before the first). */
  readonly revision: number;
  /** Why the last placement seen in etcd was not followed; null when it was. */
  readonly lastError: string | null;
  readonly routers: readonly RouterRegistration[];
}

export class ClusterSync {
  readonly #init: ClusterSyncInit;
  readonly #kvs = new Map<string, string>();
  #revision = 0;
  #placementRevision = 0;
  #connected = false;
  #lastError: string | null = null;
  #routers: readonly RouterRegistration[] = [];
  #watcher: Watcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(init: ClusterSyncInit) {
    this.#init = init;
  }

  /** Follows from `snapshot` (the read the router started from). */
  async start(snapshot: Snapshot): Promise<void> {
    this.#load(snapshot);
    await this.#watchFrom(snapshot.revision + 1);
  }

  get status(): SyncStatus {
    return {
      connected: this.#connected,
      revision: this.#placementRevision,
      lastError: this.#lastError,
      routers: this.#routers,
    };
  }

  #load(snapshot: Snapshot): void {
    this.#kvs.clear();
    for (const [k, v] of snapshot.kvs) this.#kvs.set(k, v);
    this.#revision = snapshot.revision;
    this.#connected = true;
    this.#routers = routersFromKeys(this.#init.store.prefix, this.#kvs);
    if (snapshot.placementRevision > this.#placementRevision) {
      this.#follow(snapshot.placementRevision);
    }
  }

  async #watchFrom(revision: number): Promise<void> {
    const watcher = await this.#init.store.watch(revision, {
      data: (res) => this.#onData(res),
      connected: (up, err) => {
        if (up === this.#connected) return;
        this.#connected = up;
        this.#init.log.warn(
          { event: 'etcd', connected: up, ...(err !== undefined ? { err } : {}) },
          up
            ? 'etcd reachable again: following its changes'
            : 'etcd unreachable: routing on the last table, admin changes refused',
        );
      },
      error: (err) => this.#resync(err),
    });
    if (this.#closed) {
      void watcher.cancel();
      return;
    }
    this.#watcher = watcher;
  }

  #onData(res: IWatchResponse): void {
    const prefix = this.#init.store.prefix;
    const marker = placementKey(prefix);
    let placedAt = 0;
    let routers = false;
    for (const ev of res.events) {
      const key = ev.kv.key.toString();
      if (ev.type === 'Put') this.#kvs.set(key, ev.kv.value.toString());
      else this.#kvs.delete(key);
      if (key === marker && ev.type === 'Put') placedAt = Number(ev.kv.mod_revision);
      else if (!isPlacementKey(prefix, key)) routers = true;
    }
    this.#revision = Math.max(this.#revision, Number(res.header.revision));
    this.#connected = true;
    if (routers) this.#routers = routersFromKeys(prefix, this.#kvs);
    if (placedAt > this.#placementRevision) this.#follow(placedAt);
  }

  /** Hands the placement at `revision` over; a bad one is reported and the table kept. */
  #follow(revision: number): void {
    try {
      this.#init.adopt(intentFromKeys(this.#init.store.prefix, this.#kvs), revision);
      this.#placementRevision = revision;
      this.#lastError = null;
    } catch (err) {
      this.#lastError = `revision ${revision}: ${(err as Error).message}`;
      this.#init.log.error(
        { event: 'etcd-state-refused', revision, err },
        'the placement in etcd cannot be followed: routing on the last table',
      );
    }
  }

  /** The control plane applied a change it wrote itself (revision known from its commit). */
  committed(revision: number): void {
    if (revision > this.#placementRevision) this.#placementRevision = revision;
  }

  /** The watch broke for good (compacted past, cancelled): read everything again, watch anew. */
  #resync(err: Error): void {
    if (this.#closed) return;
    this.#init.log.warn(
      { event: 'etcd-resync', err },
      'etcd watch ended: reading the prefix again',
    );
    const old = this.#watcher;
    this.#watcher = null;
    void old?.cancel().catch(() => undefined);
    const again = async (): Promise<void> => {
      this.#timer = null;
      if (this.#closed) return;
      try {
        const snap = await this.#init.store.snapshot();
        this.#load(snap);
        await this.#watchFrom(snap.revision + 1);
      } catch (e) {
        // Once per outage: the read is retried every retryMs while etcd stays away.
        if (this.#connected) {
          this.#init.log.warn(
            { event: 'etcd-resync-failed', err: e },
            'etcd read failed: reading again until it answers',
          );
        }
        this.#connected = false;
        this.#timer = setTimeout(() => void again(), this.#init.retryMs ?? 500);
        this.#timer.unref();
      }
    };
    this.#timer = setTimeout(() => void again(), 0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = null;
    await w?.cancel().catch(() => undefined);
  }
}
