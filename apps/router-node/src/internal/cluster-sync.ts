import { ETCD_KEYS, etcdKey } from '@engram/router';
import { type EtcdPrefix, PrefixFollower, type PrefixSnapshot } from '@engram/router/etcd';
import type { Logger } from 'pino';
import {
  intentFromKeys,
  type PlacementIntent,
  type RouterRegistration,
  routersFromKeys,
} from './etcd-keys.js';
import type { TransitionKind } from './streamer.js';

// A router-node following its cluster's prefix (@engram/router's PrefixFollower): each new
// placement revision goes to the control plane as an intent, and the registered routers are
// kept for `status`.

export interface ClusterSyncInit {
  readonly source: EtcdPrefix;
  /** A new placement (the intent at `revision`); throws when it cannot be followed. */
  readonly adopt: (intent: PlacementIntent, revision: number) => void;
  /** etcd went away or answers again. */
  readonly onConnection?: (up: boolean) => void;
  readonly log: Logger;
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
  readonly #follower: PrefixFollower;
  readonly #prefix: string;
  #routers: readonly RouterRegistration[] = [];

  constructor(init: ClusterSyncInit) {
    const prefix = init.source.prefix;
    this.#prefix = prefix;
    this.#follower = new PrefixFollower({
      source: init.source,
      log: init.log,
      onPlacement: (kvs, revision) => init.adopt(intentFromKeys(prefix, kvs), revision),
      // Streaming progress is written page by page: the routers are listed again only when
      // a registration changed.
      onOther: (kvs, changed) => {
        const routers = etcdKey(prefix, ETCD_KEYS.routers);
        if (changed.some((k) => k.startsWith(routers)))
          this.#routers = routersFromKeys(prefix, kvs);
      },
      ...(init.onConnection !== undefined ? { onConnection: init.onConnection } : {}),
    });
  }

  /** Follows from `snapshot` (the read the router started from), or from a read of its own. */
  start(snapshot?: PrefixSnapshot): Promise<void> {
    return this.#follower.start(snapshot);
  }

  /**
   * Which instance of a transition is under way: the mod revision of the key that describes
   * it (`nodes/<id>` for a join or leave, `moves/<space>` for a pin move), which the change
   * that began it wrote. A node removed and added again, or a drain undone and redone, is a
   * new instance, so progress kept for an earlier one is never trusted; 0 when unknown.
   */
  instanceOf(kind: TransitionKind, subject: string): number {
    const sub = kind === 'pin' ? ETCD_KEYS.moves : ETCD_KEYS.nodes;
    return this.#follower.modRevision(etcdKey(this.#prefix, sub, subject)) ?? 0;
  }

  get status(): SyncStatus {
    return { ...this.#follower.status, routers: this.#routers };
  }

  close(): Promise<void> {
    return this.#follower.close();
  }
}
