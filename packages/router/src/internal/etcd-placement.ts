import { buildRing } from '@engram/ring';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { InvalidArgumentError } from './errors.js';
import { DEFAULT_ETCD_PREFIX, ringOptionsFromKeys } from './etcd-layout.js';
import {
  DEFAULT_ETCD_REQUEST_TIMEOUT_MS,
  type EtcdEndpoints,
  EtcdPrefix,
  etcdClient,
} from './etcd-prefix.js';
import { FollowedTable } from './followed-table.js';
import { type FollowerStatus, PrefixFollower } from './prefix-follower.js';

export interface EtcdPlacementOptions extends EtcdEndpoints {
  /** The router cluster's prefix (router-node's `etcd.prefix`). Default `/engram/router/`. */
  readonly prefix?: string | undefined;
  /** Told when etcd goes away or comes back, and of a placement it cannot follow. */
  readonly log?: Logger | undefined;
}

/**
 * Library mode: the placement router-nodes in etcd mode share, followed read-only, so a
 * client routing in process (`new Router({ table: placement.table })`) routes by the same
 * table as the routers, revision for revision. The first read waits for a placement; after
 * that, with etcd away, the last one stays in force and `status.connected` says so.
 */
export class EtcdPlacement {
  /** The table to route by: a new epoch for each placement revision followed. */
  readonly table: FollowedTable;
  readonly #client: Etcd3;
  readonly #follower: PrefixFollower;

  private constructor(client: Etcd3, table: FollowedTable, follower: PrefixFollower) {
    this.#client = client;
    this.table = table;
    this.#follower = follower;
  }

  /**
   * Reads the placement under the prefix and follows it. Rejects (closing what it opened)
   * when etcd cannot be read or holds no placement there.
   */
  static async open(options: EtcdPlacementOptions): Promise<EtcdPlacement> {
    const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
    if (typeof prefix !== 'string' || prefix === '') {
      throw new InvalidArgumentError('prefix', prefix, 'a non-empty key prefix');
    }
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new InvalidArgumentError(
        'endpoints',
        options.endpoints,
        'a non-empty list of host:port',
      );
    }
    const client = etcdClient(options);
    try {
      const source = new EtcdPrefix(
        client,
        prefix,
        options.requestTimeoutMs ?? DEFAULT_ETCD_REQUEST_TIMEOUT_MS,
      );
      let table: FollowedTable | null = null;
      const follower = new PrefixFollower({
        source,
        log: options.log,
        onPlacement: (kvs) => {
          const next = ringOptionsFromKeys(prefix, kvs);
          if (next === null) throw new InvalidArgumentError(prefix, null, 'a placement');
          const ring = buildRing(next);
          if (table === null) table = new FollowedTable(ring);
          else table.replace(ring);
        },
      });
      await follower.start();
      if (table === null) {
        await follower.close();
        const why = follower.status.lastError;
        throw new InvalidArgumentError(
          'prefix',
          prefix,
          why === null
            ? 'a prefix holding a placement (none yet)'
            : `a placement that can be followed (${why})`,
        );
      }
      return new EtcdPlacement(client, table, follower);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Whether etcd answers, the revision followed, and why the latest was refused (if it was). */
  get status(): FollowerStatus {
    return this.#follower.status;
  }

  /** The placement revision followed (the `revision` every router-node reports). */
  get revision(): number {
    return this.#follower.status.revision;
  }

  async close(): Promise<void> {
    await this.#follower.close();
    this.#client.close();
  }
}
