import { hostname } from 'node:os';
import { allocateClusterTokens } from '@engram/ring';
import type { Logger } from 'pino';
import type { EtcdView } from './admin.js';
import { type AdminStateStore, differences } from './admin-state.js';
import type { ClusterSync } from './cluster-sync.js';
import type { EtcdConfig, RouterNodeConfig } from './config.js';
import { CONFIG_SCHEMA } from './config-schema.js';
import { ConfigError } from './errors.js';
import {
  intentFromKeys,
  intentOf,
  type PlacementIntent,
  type PlacementSettings,
  settingsFromKeys,
} from './etcd-keys.js';
import type { DriverElection, EtcdStore, Registration, Snapshot } from './etcd-store.js';
import { Membership, type MembershipLimits } from './membership.js';
import { StoreUnavailableError } from './placement-store.js';

// A router in etcd mode (`etcd` configured): where its first membership comes from, and the
// pieces that keep it one of many: the sync of the prefix, its registration, the driver
// election. Documented in the README ("Many routers: etcd").

/** This router's id among the routers: `etcd.routerId`, or `<hostname>-<pid>`. */
export function routerIdOf(cfg: EtcdConfig): string {
  return cfg.routerId ?? `${hostname()}-${process.pid}`;
}

/** The membership an intent describes, as a router starting from it has it (health unknown). */
export function membershipOf(
  intent: PlacementIntent,
  cfg: RouterNodeConfig,
  limits: MembershipLimits,
): Membership {
  const nodes = intent.nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone }));
  return Membership.create(nodes, [], cfg.localNodeId, limits, cfg.router.replicateWrites).adopt(
    intent.nodes,
    intent.assignments,
    intent.moves,
    'start',
  ).next;
}

/** Where an etcd-mode router starts from. */
export interface EtcdStart {
  readonly membership: Membership;
  readonly revision: number;
  /** The read it started from (null: started from the cached table, etcd unreachable). */
  readonly snapshot: Snapshot | null;
  readonly source: 'etcd' | 'seeded' | 'cache';
  /** The ring's settings every router shares (etcd's; the file's when started from the cache). */
  readonly settings: PlacementSettings;
}

const SETTINGS_LIMITS = {
  replicationFactor: CONFIG_SCHEMA.replicationFactor,
  vnodesPerNode: CONFIG_SCHEMA.vnodesPerNode,
  tokensPerNode: CONFIG_SCHEMA['etcd.tokensPerNode'],
  maxNodes: CONFIG_SCHEMA.maxNodes,
};

function limitsOf(s: PlacementSettings): MembershipLimits {
  return { maxNodes: s.maxNodes, maxSlots: s.maxNodes };
}

const WAIT_MIN_MS = 250;
const WAIT_MAX_MS = 5000;

/**
 * The first membership of a router in etcd mode: the placement under the prefix; or the
 * config file's `nodes` and `assignments` written there first when the prefix is empty; or,
 * with etcd unreachable, the copy of the last placement kept in `dataDir` (the router then
 * routes on it and catches up once etcd answers). With etcd unreachable and no copy it waits,
 * retrying, until etcd answers: a router with no table has nothing to route by.
 */
export async function startFromEtcd(
  store: EtcdStore,
  cfg: RouterNodeConfig,
  cache: AdminStateStore,
  limits: MembershipLimits,
  log: Logger,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<EtcdStart> {
  let wait = WAIT_MIN_MS;
  /** The seed (tokens allocated once, however many tries it takes). */
  let seeding: PlacementIntent | undefined;
  for (let attempt = 1; ; attempt++) {
    let snap: Snapshot;
    try {
      snap = await store.snapshot();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      const cached = cache.load();
      // A copy of this prefix's placement only: one of another cluster's must not be routed by.
      if (
        cached !== null &&
        cached.revision !== undefined &&
        cached.prefix === store.prefix &&
        cached.settings !== undefined
      ) {
        log.warn(
          {
            event: 'etcd-start',
            source: 'cache',
            file: cache.file,
            revision: cached.revision,
            err,
          },
          `etcd unreachable: routing on the placement of revision ${cached.revision} kept in ${cache.file} until it answers`,
        );
        return {
          membership: membershipOf(cached, cfg, limitsOf(cached.settings)),
          revision: cached.revision,
          snapshot: null,
          source: 'cache',
          settings: cached.settings,
        };
      }
      log.warn(
        { event: 'etcd-start', source: 'waiting', attempt, endpoints: cfg.etcd?.endpoints, err },
        'etcd unreachable and no cached placement in dataDir: waiting for etcd',
      );
      await sleep(wait);
      wait = Math.min(WAIT_MAX_MS, wait * 2);
      continue;
    }
    if (snap.placementRevision === 0) {
      if (cfg.nodes.length === 0) {
        throw new ConfigError(
          'nodes',
          [],
          `etcd prefix ${store.prefix} holds no placement yet: list the nodes in the config file to seed it`,
        );
      }
      const seedOf = Membership.create(
        cfg.nodes,
        cfg.assignments,
        cfg.localNodeId,
        limits,
        cfg.router.replicateWrites,
      );
      const settings = settingsOf(cfg);
      seeding ??= withTokens(intentOf(seedOf), settings);
      let seeded = false;
      try {
        seeded = await store.seed(seeding, settings);
      } catch (err) {
        // Refused by etcd itself (permissions, limits): no retry helps. Exit with it.
        if (!(err instanceof StoreUnavailableError)) throw err;
      }
      if (seeded) {
        log.info(
          { event: 'etcd-start', source: 'seeded', prefix: store.prefix },
          `etcd prefix ${store.prefix} was empty: seeded with the config file's nodes and assignments`,
        );
      } else {
        // Another router seeds it now (or etcd went away): read again in a while.
        log.info(
          { event: 'etcd-start', source: 'waiting-for-seed', attempt },
          'another router is seeding the etcd prefix (or etcd went away): reading it again',
        );
        await sleep(wait);
        wait = Math.min(WAIT_MAX_MS, wait * 2);
      }
      continue; // read what is there now (ours, or a router that seeded first)
    }
    const intent = intentFromKeys(store.prefix, snap.kvs);
    const settings = settingsFromKeys(store.prefix, snap.kvs, SETTINGS_LIMITS) ?? settingsOf(cfg);
    const mine = settingsOf(cfg);
    if (
      settings.replicationFactor !== mine.replicationFactor ||
      settings.vnodesPerNode !== mine.vnodesPerNode ||
      settings.tokensPerNode !== mine.tokensPerNode ||
      settings.maxNodes !== mine.maxNodes
    ) {
      log.warn(
        { event: 'etcd-start', etcd: settings, file: mine },
        "the config file's replicationFactor, vnodesPerNode, etcd.tokensPerNode or maxNodes differ from etcd's: etcd's apply, so every router builds the same ring and holds every node",
      );
    }
    const diff = differences(
      { version: 1, ...intent, seed: { nodes: [], assignments: [] } },
      cfg.nodes,
      cfg.assignments,
    );
    if (
      cfg.nodes.length > 0 &&
      (diff.notInFile.length > 0 ||
        diff.onlyInFile.length > 0 ||
        diff.changed.length > 0 ||
        diff.pinsDiffer)
    ) {
      log.warn(
        { event: 'etcd-start', source: 'etcd', revision: snap.placementRevision, ...diff },
        "the config file's nodes or assignments differ from etcd's: etcd wins (the file only seeds an empty prefix)",
      );
    }
    return {
      membership: membershipOf(intent, cfg, limitsOf(settings)),
      revision: snap.placementRevision,
      snapshot: snap,
      source: 'etcd',
      settings,
    };
  }
}

/**
 * The seed's nodes with the allocator's tokens (token mode), as if they joined one at a time
 * in the file's order.
 */
function withTokens(intent: PlacementIntent, s: PlacementSettings): PlacementIntent {
  if (s.tokensPerNode === 0) return intent;
  const allocated = allocateClusterTokens(
    intent.nodes.map((n) => ({ id: n.id, zone: n.zone })),
    { tokensPerNode: s.tokensPerNode, replicationFactor: s.replicationFactor },
  );
  return {
    ...intent,
    nodes: intent.nodes.map((n, i) => ({ ...n, tokens: allocated[i]!.tokens })),
  };
}

function settingsOf(cfg: RouterNodeConfig): PlacementSettings {
  return {
    replicationFactor: cfg.replicationFactor,
    vnodesPerNode: cfg.vnodesPerNode,
    tokensPerNode: cfg.etcd?.tokensPerNode ?? 0,
    maxNodes: cfg.maxNodes,
  };
}

/**
 * The config a router runs with in etcd mode: the cluster's ring settings (etcd's) in place of
 * its file's.
 */
export function withSettings(cfg: RouterNodeConfig, s: PlacementSettings): RouterNodeConfig {
  return {
    ...cfg,
    replicationFactor: s.replicationFactor,
    vnodesPerNode: s.vnodesPerNode,
    maxNodes: s.maxNodes,
    ...(cfg.etcd !== null ? { etcd: { ...cfg.etcd, tokensPerNode: s.tokensPerNode } } : {}),
  };
}

/** The running pieces of etcd mode, and what `status` says of them. */
export class EtcdMode {
  readonly store: EtcdStore;
  readonly sync: ClusterSync;
  #registration: Registration | null = null;
  #election: DriverElection | null = null;
  #standDown: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(store: EtcdStore, sync: ClusterSync) {
    this.store = store;
    this.sync = sync;
  }

  /**
   * Follows the prefix: from `snapshot`, or (started from the cache) from a first read once
   * etcd answers, retried meanwhile.
   */
  follow(snapshot: Snapshot | null, log: Logger, retryMs = 500): void {
    if (snapshot !== null) {
      void this.sync.start(snapshot).catch((err: unknown) => {
        log.error({ event: 'etcd-watch-failed', err }, 'etcd watch could not start');
      });
      return;
    }
    const again = async (): Promise<void> => {
      if (this.#closed) return;
      try {
        await this.sync.start(await this.store.snapshot());
        log.info({ event: 'etcd', connected: true }, 'etcd reachable: following its changes');
      } catch {
        setTimeout(() => void again(), retryMs).unref();
      }
    };
    void again();
  }

  register(registration: Registration): void {
    this.#registration = registration;
  }

  elect(election: DriverElection): void {
    this.#election = election;
  }

  get driving(): boolean {
    return this.#election?.leading ?? false;
  }

  /**
   * etcd went away or came back. A driver cut off from etcd for half its lease's TTL stops
   * driving (its lease may lapse and another router be elected: etcd3 would tell it only after
   * twice the TTL) and campaigns again once etcd answers.
   */
  connectionChanged(up: boolean, ttlMs: number): void {
    if (this.#standDown !== null) clearTimeout(this.#standDown);
    this.#standDown = null;
    if (up) {
      this.#election?.resume();
      return;
    }
    this.#standDown = setTimeout(() => {
      this.#standDown = null;
      this.#election?.standDown();
    }, ttlMs / 2);
    this.#standDown.unref();
  }

  view(): EtcdView {
    const s = this.sync.status;
    return {
      connected: s.connected,
      lastError: s.lastError,
      routerId: this.store.routerId,
      routers: s.routers.map((r) => ({ id: r.id, listen: r.listen, admin: r.admin })),
      driving: this.driving,
    };
  }

  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#standDown !== null) clearTimeout(this.#standDown);
    await this.#election?.close(timeoutMs);
    await this.#registration?.close(timeoutMs);
    await this.sync.close();
    this.store.close();
  }
}
