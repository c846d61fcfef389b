import type { IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { ETCD_KEYS, isPlacementKey } from './etcd-layout.js';
import type { EtcdPrefix, PrefixSnapshot } from './etcd-prefix.js';

// Follows a placement prefix in etcd: a copy of its keys kept current by the watch, and every
// new placement revision handed on. While etcd is away the copy (and what was built from it)
// stays as it is: static stability. The watch resumes where it stopped, or from a fresh read
// when etcd compacted past it.

export interface PrefixFollowerInit {
  readonly source: EtcdPrefix;
  /**
   * A new placement revision: the keys under the prefix then. Throws when it cannot be
   * followed (reported in `status.lastError`; the follower waits for the next revision).
   */
  readonly onPlacement: (kvs: ReadonlyMap<string, string>, revision: number) => void;
  /**
   * Keys outside the placement changed (router registrations, the election, streaming
   * progress): `changed` names them (every key, after a full read).
   */
  readonly onOther?: (kvs: ReadonlyMap<string, string>, changed: readonly string[]) => void;
  /** etcd went away (the watch broke) or answers again. */
  readonly onConnection?: (up: boolean) => void;
  readonly log?: Logger | undefined;
  /** Delay before reading again after a failed read or a broken watch. Default 500 ms. */
  readonly retryMs?: number | undefined;
}

export interface FollowerStatus {
  /** Whether etcd answers (the watch is connected). */
  readonly connected: boolean;
  /** Revision of the placement followed (0 before the first). */
  readonly revision: number;
  /** Why the latest placement was not followed; null when it was. */
  readonly lastError: string | null;
}

export class PrefixFollower {
  readonly #init: PrefixFollowerInit;
  readonly #kvs = new Map<string, string>();
  readonly #modRevisions = new Map<string, number>();
  #placementRevision = 0;
  #connected = false;
  #lastError: string | null = null;
  #watcher: Watcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(init: PrefixFollowerInit) {
    this.#init = init;
  }

  /** Follows from `snapshot` (a read already made), or from a first read of its own. */
  async start(snapshot?: PrefixSnapshot): Promise<void> {
    const snap = snapshot ?? (await this.#init.source.snapshot());
    this.#load(snap);
    await this.#watchFrom(snap.revision + 1);
  }

  get status(): FollowerStatus {
    return {
      connected: this.#connected,
      revision: this.#placementRevision,
      lastError: this.#lastError,
    };
  }

  /** The keys under the prefix as last seen. */
  get kvs(): ReadonlyMap<string, string> {
    return this.#kvs;
  }

  /** The mod revision of `key` as last seen; undefined when it is not there. */
  modRevision(key: string): number | undefined {
    return this.#modRevisions.get(key);
  }

  #load(snapshot: PrefixSnapshot): void {
    this.#setConnected(true);
    this.#kvs.clear();
    for (const [k, v] of snapshot.kvs) this.#kvs.set(k, v);
    this.#modRevisions.clear();
    for (const [k, r] of snapshot.modRevisions) this.#modRevisions.set(k, r);
    this.#init.onOther?.(this.#kvs, [...this.#kvs.keys()]);
    if (snapshot.placementRevision > this.#placementRevision) {
      this.#follow(snapshot.placementRevision);
    }
  }

  async #watchFrom(revision: number): Promise<void> {
    const log = this.#init.log;
    const watcher = await this.#init.source.watch(revision, {
      data: (res) => this.#onData(res),
      connected: (up, err) => {
        if (!this.#setConnected(up)) return;
        if (!up) {
          log?.warn(
            { event: 'etcd', connected: false, ...(err !== undefined ? { err } : {}) },
            'etcd unreachable: the last placement stays in force',
          );
          return;
        }
        // The resumed watch may skip changes made meanwhile (etcd3 resumes from the revision
        // it saw at reconnect): read the whole prefix again and watch on from that read.
        log?.info({ event: 'etcd', connected: true }, 'etcd reachable again: reading the prefix');
        this.#resync();
      },
      error: (err) => {
        log?.warn({ event: 'etcd-resync', err }, 'etcd watch ended: reading the prefix again');
        this.#resync();
      },
    });
    if (this.#closed) {
      void watcher.cancel().catch(() => undefined);
      return;
    }
    this.#watcher = watcher;
  }

  #onData(res: IWatchResponse): void {
    const prefix = this.#init.source.prefix;
    const marker = `${prefix}${ETCD_KEYS.placement}`;
    let placedAt = 0;
    const other: string[] = [];
    for (const ev of res.events) {
      const key = ev.kv.key.toString();
      if (ev.type === 'Put') {
        this.#kvs.set(key, ev.kv.value.toString());
        this.#modRevisions.set(key, Number(ev.kv.mod_revision));
      } else {
        this.#kvs.delete(key);
        this.#modRevisions.delete(key);
      }
      if (key === marker && ev.type === 'Put') placedAt = Number(ev.kv.mod_revision);
      else if (!isPlacementKey(prefix, key)) other.push(key);
    }
    this.#setConnected(true);
    if (other.length > 0) this.#init.onOther?.(this.#kvs, other);
    if (placedAt > this.#placementRevision) this.#follow(placedAt);
  }

  /** Records whether etcd answers; true when that changed (`onConnection` is told). */
  #setConnected(up: boolean): boolean {
    if (up === this.#connected) return false;
    this.#connected = up;
    this.#init.onConnection?.(up);
    return true;
  }

  /** Hands the placement at `revision` on; one that cannot be followed is reported. */
  #follow(revision: number): void {
    try {
      this.#init.onPlacement(this.#kvs, revision);
      this.#placementRevision = revision;
      this.#lastError = null;
    } catch (err) {
      this.#lastError = `revision ${revision}: ${(err as Error).message}`;
      this.#init.log?.error(
        { event: 'etcd-state-refused', revision, err },
        'the placement in etcd cannot be followed: the last one stays in force',
      );
    }
  }

  /**
   * Reads everything again and watches anew from that read: the watch broke for good
   * (compacted past, cancelled), or came back after an outage.
   */
  #resync(): void {
    if (this.#closed) return;
    const log = this.#init.log;
    const old = this.#watcher;
    this.#watcher = null;
    void old?.cancel().catch(() => undefined);
    const again = async (): Promise<void> => {
      this.#timer = null;
      if (this.#closed) return;
      try {
        const snap = await this.#init.source.snapshot();
        this.#load(snap);
        await this.#watchFrom(snap.revision + 1);
      } catch (e) {
        // Once per outage: the read is retried every retryMs while etcd stays away.
        if (this.#connected) {
          log?.warn(
            { event: 'etcd-resync-failed', err: e },
            'etcd read failed: reading again until it answers',
          );
        }
        this.#setConnected(false);
        this.#timer = setTimeout(() => void again(), this.#init.retryMs ?? 500);
        this.#timer.unref();
      }
    };
    this.#timer = setTimeout(() => void again(), 0);
  }

  /** Stops following; waits for the watch's cancel at most `timeoutMs` (etcd may be away). */
  async close(timeoutMs = 1000): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = null;
    if (w === null) return;
    await Promise.race([
      w.cancel().catch(() => undefined),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }
}
