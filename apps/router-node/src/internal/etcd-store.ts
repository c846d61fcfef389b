import { readFileSync } from 'node:fs';
import { ETCD_KEYS, etcdKey, type StreamProgress } from '@engram/router';
import { EtcdPrefix, etcdClient, type PrefixSnapshot } from '@engram/router/etcd';
import {
  type Campaign,
  ClientClosedError,
  type Etcd3,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCGenericError,
  GRPCUnavailableError,
  GRPCUnknownError,
  type IKeyValue,
  type Lease,
  type Namespace,
} from 'etcd3';
import type { Logger } from 'pino';
import type { EtcdConfig } from './config.js';
import {
  diffKeys,
  intentKeys,
  type PlacementIntent,
  type PlacementSettings,
  placementKey,
  type RouterRegistration,
  routerKey,
  settingsKey,
} from './etcd-keys.js';
import {
  AbortedError,
  type PlacementStore,
  StoreRefusedError,
  StoreUnavailableError,
} from './placement-store.js';
import type { StreamProgressStore, TransitionKind } from './streamer.js';

// router-node's etcd edge: conditioned transactions, the registration lease and the driver
// election, on the `etcd3` client (grpc-js over etcd's own protos, which it ships), set up as
// @engram/router/etcd sets it up; the prefix's reads and watch are that package's too.
// Everything that decides lives elsewhere (etcd-keys.ts, cluster-sync.ts, the control plane).

/** The keys under the prefix at one revision. */
export type Snapshot = PrefixSnapshot;

/** Keys one seeding transaction writes (etcd's --max-txn-ops is 128 by default). */
const SEED_BATCH = 100;
/** The seeding lock's lease: a seeder that dies frees it this long after. */
const SEED_LOCK_TTL_S = 10;

/**
 * etcd running out of its own time, sent as UNKNOWN: a member that cannot serve a linearizable
 * request yet (just restarted, its raft not ready, an election under way) answers
 * "context deadline exceeded". As transient as UNAVAILABLE (seen on a busy CI machine: a
 * router waiting for etcd took it for a refusal and exited).
 */
const ETCD_OUT_OF_TIME = /context deadline exceeded/;

/**
 * What a failed etcd call means: unreachable (no answer, or none in time: `maybeApplied` for a
 * write whose outcome is unknown), or refused by etcd itself (retrying will not help).
 */
export function storeError(what: string, err: unknown, write = false): Error {
  if (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    err instanceof ClientClosedError ||
    err instanceof EtcdLeaseInvalidError ||
    (err instanceof GRPCUnknownError && ETCD_OUT_OF_TIME.test(err.message))
  ) {
    return new StoreUnavailableError(
      what,
      err,
      write &&
        !(err instanceof GRPCUnavailableError && /No connection established/.test(err.message)),
    );
  }
  const code = (err as { code?: unknown } | null)?.code;
  // etcd3 casts a refusal to its own classes, without a code: refused, not unreachable.
  const denied =
    err instanceof EtcdPermissionDeniedError || err instanceof EtcdAuthenticationFailedError;
  if (typeof code !== 'number' && !(err instanceof GRPCGenericError) && !denied) {
    return new StoreUnavailableError(what, err, write);
  }
  return new StoreRefusedError(what, err);
}

function num(v: string | number | undefined | null): number {
  return v === undefined || v === null ? 0 : Number(v);
}

export class EtcdStore implements PlacementStore {
  readonly prefix: string;
  /** The prefix's reads and watch (shared with library mode's followers). */
  readonly source: EtcdPrefix;
  readonly #client: Etcd3;
  readonly #log: Logger;
  readonly #routerId: string;
  #closed = false;

  constructor(cfg: EtcdConfig, routerId: string, log: Logger) {
    this.prefix = cfg.prefix;
    const pem = (path: string | null) => (path === null ? undefined : readFileSync(path));
    this.#client = etcdClient({
      endpoints: cfg.endpoints,
      ca: pem(cfg.ca),
      cert: pem(cfg.cert),
      key: pem(cfg.key),
      requestTimeoutMs: cfg.requestTimeoutMs,
    });
    this.source = new EtcdPrefix(this.#client, cfg.prefix, cfg.requestTimeoutMs);
    this.#log = log;
    this.#routerId = routerId;
  }

  get routerId(): string {
    return this.#routerId;
  }

  #deadline(): { deadline: number } {
    return this.source.deadline();
  }

  /** Every key under the prefix, at one revision; StoreUnavailableError when unreachable. */
  async snapshot(): Promise<Snapshot> {
    try {
      return await this.source.snapshot();
    } catch (err) {
      throw storeError('read', err);
    }
  }

  /**
   * Writes `intent` as the first placement of an empty prefix; false when another router
   * seeds it (read it again then). A large cluster does not fit one transaction (etcd's
   * --max-txn-ops, 128 by default), so the seeding router first takes a lock (on a lease: a
   * seeder that dies frees it), clears what a dead seeder may have left, writes the keys in
   * batches each conditioned on still holding the lock, and writes the marker last: no router
   * sees a placement until it is whole.
   */
  async seed(intent: PlacementIntent, settings: PlacementSettings): Promise<boolean> {
    const marker = placementKey(this.prefix);
    const lock = etcdKey(this.prefix, ETCD_KEYS.seeding);
    const c = this.#client;
    const lease = c.lease(SEED_LOCK_TTL_S, { autoKeepAlive: true });
    lease.on('lost', () => undefined); // a lost lock fails the next batch's condition
    try {
      const taken = await c
        .if(marker, 'Create', '==', 0)
        .and(lock, 'Create', '==', 0)
        .then(
          c.put(lock).value(this.#routerId).lease(lease.grant()),
          ...[ETCD_KEYS.nodes, ETCD_KEYS.pins, ETCD_KEYS.moves].map((sub) =>
            c.delete().prefix(`${this.prefix}${sub}`),
          ),
        )
        .options(this.#deadline())
        .commit();
      if (!taken.succeeded) return false;
      const keys = [
        ...intentKeys(this.prefix, intent),
        [settingsKey(this.prefix), JSON.stringify(settings)] as const,
      ];
      for (let i = 0; i < keys.length; i += SEED_BATCH) {
        const held = await c
          .if(marker, 'Create', '==', 0)
          .and(lock, 'Value', '==', this.#routerId)
          .then(...keys.slice(i, i + SEED_BATCH).map(([k, v]) => c.put(k).value(v)))
          .options(this.#deadline())
          .commit();
        if (!held.succeeded) return false;
      }
      const done = await c
        .if(marker, 'Create', '==', 0)
        .and(lock, 'Value', '==', this.#routerId)
        .then(c.put(marker).value(this.#marker('seed')), c.delete().key(lock))
        .options(this.#deadline())
        .commit();
      return done.succeeded;
    } catch (err) {
      throw storeError('seed', err);
    } finally {
      await lease.revoke().catch(() => undefined);
    }
  }

  #marker(reason: string): string {
    return JSON.stringify({ by: this.#routerId, reason, at: Date.now() });
  }

  async commit(
    before: PlacementIntent,
    after: PlacementIntent,
    baseRevision: number,
    reason: string,
  ): Promise<number> {
    const { puts, deletes } = diffKeys(
      intentKeys(this.prefix, before),
      intentKeys(this.prefix, after),
    );
    const marker = placementKey(this.prefix);
    let res: Awaited<ReturnType<ReturnType<Etcd3['if']>['commit']>>;
    try {
      res = await this.#client
        .if(marker, 'Mod', '==', baseRevision)
        .then(
          ...puts.map(([k, v]) => this.#client.put(k).value(v)),
          ...deletes.map((k) => this.#client.delete().key(k)),
          this.#client.put(marker).value(this.#marker(reason)),
        )
        .else(this.#client.get(marker))
        .options(this.#deadline())
        .commit();
    } catch (err) {
      throw storeError('transaction', err, true);
    }
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0] as IKeyValue | undefined;
      throw new AbortedError(baseRevision, num(kv?.mod_revision));
    }
    return num(res.header.revision);
  }

  /**
   * Registers this router under the prefix on a lease (gone `ttlMs` after it stops). A lease
   * lost (etcd away past the TTL) is granted again, with the key, once etcd is back.
   */
  register(info: RouterRegistration, ttlMs: number): Registration {
    return new Registration(this.#client, routerKey(this.prefix, info.id), info, ttlMs, this.#log);
  }

  /** Streaming progress under the prefix (the driver's, for the next one to resume). */
  progressStore(instanceOf: (kind: TransitionKind, subject: string) => number): EtcdProgressStore {
    return new EtcdProgressStore(this.#client, this.source, instanceOf);
  }

  /** Campaigns for the data-movement driver; `onChange` hears when this router leads or not. */
  campaign(ttlMs: number, onChange: (leading: boolean) => void): DriverElection {
    // Under the prefix (`<prefix>election/driver/…`), where an etcd role for this cluster
    // reaches, rather than etcd3's default `election/` at the root.
    return new DriverElection(
      this.#client.namespace(this.prefix),
      'driver',
      this.#routerId,
      ttlMs,
      onChange,
      this.#log,
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
    this.#client.close();
  }
}

const RETRY_MS = 500;

/** Waits for `p` to settle (either way), or `ms`, whichever comes first. */
function settleWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
}

function ttlSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * Streaming progress in etcd (`streams/<kind>/<subject>/<instance>/<space>`), written by the
 * driver after each page lands, so the router elected after it resumes each space where it
 * stopped. A page is recorded only once every target has it, and per instance of the
 * transition, so neither a former driver's late write nor a cancelled run's can make a later
 * run skip data.
 */
export class EtcdProgressStore implements StreamProgressStore {
  readonly #client: Etcd3;
  readonly #source: EtcdPrefix;
  readonly #instanceOf: (kind: TransitionKind, subject: string) => number;

  /**
   * `instanceOf` tells which instance of a transition runs now (ClusterSync.instanceOf):
   * progress is kept per instance, so a former driver's late write, or a cancelled run's,
   * lands under an instance no later run reads.
   */
  constructor(
    client: Etcd3,
    source: EtcdPrefix,
    instanceOf: (kind: TransitionKind, subject: string) => number,
  ) {
    this.#client = client;
    this.#source = source;
    this.#instanceOf = instanceOf;
  }

  /** All instances of a transition. */
  #all(kind: TransitionKind, subject: string): string {
    return `${etcdKey(this.#source.prefix, ETCD_KEYS.streams, kind)}/${encodeURIComponent(subject)}/`;
  }

  #base(kind: TransitionKind, subject: string): string {
    return `${this.#all(kind, subject)}${this.#instanceOf(kind, subject)}/`;
  }

  async progress(kind: TransitionKind, subject: string): Promise<Map<string, StreamProgress>> {
    const base = this.#base(kind, subject);
    const kvs = await this.#client.getAll().prefix(base).options(this.#source.deadline()).strings();
    const out = new Map<string, StreamProgress>();
    for (const [key, text] of Object.entries(kvs)) {
      try {
        const p = JSON.parse(text) as StreamProgress;
        if (typeof p.after === 'string' && typeof p.copied === 'number') {
          out.set(decodeURIComponent(key.slice(base.length)), p);
        }
      } catch {
        // Unreadable progress: that space streams from its start again (idempotent).
      }
    }
    return out;
  }

  async save(
    kind: TransitionKind,
    subject: string,
    spaceId: string,
    p: StreamProgress,
  ): Promise<void> {
    const key = `${this.#base(kind, subject)}${encodeURIComponent(spaceId)}`;
    await this.#client.put(key).value(JSON.stringify(p)).options(this.#source.deadline());
  }

  async forget(kind: TransitionKind, subject: string): Promise<void> {
    await this.#client.delete().prefix(this.#all(kind, subject)).options(this.#source.deadline());
  }
}

/** A router's lease-held key, put back after a lost lease. */
export class Registration {
  readonly #client: Etcd3;
  readonly #key: string;
  readonly #value: string;
  readonly #ttlMs: number;
  readonly #log: Logger;
  #lease: Lease | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Lost and not registered again yet: logged once per outage, not once per retry. */
  #lost = false;

  constructor(client: Etcd3, key: string, info: RouterRegistration, ttlMs: number, log: Logger) {
    this.#client = client;
    this.#key = key;
    this.#value = JSON.stringify(info);
    this.#ttlMs = ttlMs;
    this.#log = log;
    this.#grant();
  }

  #grant(): void {
    if (this.#closed) return;
    const lease = this.#client.lease(ttlSeconds(this.#ttlMs), { autoKeepAlive: true });
    this.#lease = lease;
    lease.on('lost', (err) => {
      if (this.#closed || this.#lease !== lease) return;
      if (!this.#lost) {
        this.#lost = true;
        this.#log.warn(
          { event: 'etcd-lease-lost', err },
          'router registration lease lost: registering again once etcd answers',
        );
      }
      this.#retry();
    });
    lease
      .put(this.#key)
      .value(this.#value)
      .then(
        () => {
          this.#lost = false;
          this.#log.info({ event: 'etcd-registered', key: this.#key }, 'registered in etcd');
        },
        () => this.#retry(),
      );
  }

  #retry(): void {
    const old = this.#lease;
    this.#lease = null;
    old?.release();
    if (this.#closed || this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#grant();
    }, RETRY_MS);
    this.#timer.unref();
  }

  /** Revokes the lease (the key goes at once), within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const lease = this.#lease;
    this.#lease = null;
    if (lease === null) return;
    await settleWithin(lease.revoke(), timeoutMs);
  }
}

/**
 * etcd's lease-based election for the one router that drives data movement: campaigning again
 * whenever the campaign fails (its lease lost with etcd away), so some live router leads.
 */
export class DriverElection {
  readonly #client: Namespace;
  readonly #name: string;
  readonly #id: string;
  readonly #ttlMs: number;
  readonly #onChange: (leading: boolean) => void;
  readonly #log: Logger;
  #campaign: Campaign | null = null;
  #leading = false;
  /** Failed and not campaigning successfully since: logged once per outage. */
  #failing = false;
  /** Stood down (cut off from etcd), until `resume`. */
  #down = false;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    client: Namespace,
    name: string,
    id: string,
    ttlMs: number,
    onChange: (leading: boolean) => void,
    log: Logger,
  ) {
    this.#client = client;
    this.#name = name;
    this.#id = id;
    this.#ttlMs = ttlMs;
    this.#onChange = onChange;
    this.#log = log;
    this.#run();
  }

  get leading(): boolean {
    return this.#leading;
  }

  #set(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#log.info(
      { event: 'driver', leading },
      leading
        ? 'this router drives data movement now'
        : 'this router no longer drives data movement',
    );
    this.#onChange(leading);
  }

  #run(): void {
    if (this.#closed || this.#down) return;
    const campaign = this.#client.election(this.#name, ttlSeconds(this.#ttlMs)).campaign(this.#id);
    this.#campaign = campaign;
    campaign.on('elected', () => {
      if (this.#campaign === campaign) this.#set(true);
    });
    // Its key is written: the campaign stands (elected or waiting its turn).
    campaign.getCampaignKey().then(
      () => {
        this.#failing = false;
      },
      () => undefined,
    );
    campaign.on('error', (err) => {
      if (this.#campaign !== campaign) return;
      if (!this.#failing) {
        this.#failing = true;
        this.#log.warn(
          { event: 'driver-campaign-failed', err },
          'driver campaign failed: campaigning again until etcd answers',
        );
      }
      this.#campaign = null;
      this.#set(false);
      void campaign.resign().catch(() => undefined);
      if (this.#closed || this.#timer !== null) return;
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#run();
      }, RETRY_MS);
      this.#timer.unref();
    });
  }

  /**
   * Stops driving now (cut off from etcd: another router may be elected meanwhile) and stays
   * out until `resume`.
   */
  standDown(): void {
    if (this.#closed || this.#down) return;
    this.#down = true;
    this.#log.warn(
      { event: 'driver-stand-down' },
      'cut off from etcd for half the lease TTL: no longer driving data movement',
    );
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const campaign = this.#campaign;
    this.#campaign = null;
    this.#set(false);
    void campaign?.resign().catch(() => undefined);
  }

  /** etcd answers again: campaigns again if it stood down. */
  resume(): void {
    if (this.#closed || !this.#down) return;
    this.#down = false;
    this.#run();
  }

  /** Resigns (another router takes over at once), within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const campaign = this.#campaign;
    this.#campaign = null;
    this.#set(false);
    if (campaign === null) return;
    await settleWithin(campaign.resign(), timeoutMs);
  }
}
