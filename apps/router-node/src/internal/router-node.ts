import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { formatAddress, systemErrorCode, systemErrorText } from '@engram/common';
import type { PoolCredentials } from '@engram/pool';
import { SharedRetryBudget, systemClock } from '@engram/retry';
import { DEFAULT_TABLE_MAX_BLOB_BYTES, TableWriter } from '@engram/ring';
import { LagTable } from '@engram/router';
import type { Logger } from 'pino';
import { AdminAuth, readAdminToken, startAdminServer, type TableView } from './admin.js';
import { AdminStateStore, differences, startingMembership } from './admin-state.js';
import { ClusterSync } from './cluster-sync.js';
import {
  type NodeConfig,
  nodesProblem,
  type RouterNodeConfig,
  validateAssignment,
} from './config.js';
import { TABLE_MAX_REPLICATION_FACTOR } from './config-caps.js';
import { checkTableTokens, ringTokensPerNode } from './config-validate.js';
import { ControlPlane, type PlacementSeed } from './control-plane.js';
import { DataMovement } from './data-movement.js';
import { DataPlane, type DataPlaneInit } from './data-plane.js';
import { ConfigError, ListenError, RouterNodeError } from './errors.js';
import { EtcdMode, type EtcdStart, routerIdOf, startFromEtcd, withSettings } from './etcd-mode.js';
import { EtcdStore } from './etcd-store.js';
import { GrpcProbe } from './grpc-probe.js';
import {
  C_DRAINING,
  C_HEALTH_DRAINING,
  controlWords,
  createStateBuffer,
  N_LAST_ANSWER,
  nodeWord,
  passiveNow,
  slotCount,
} from './layout.js';
import { LocalCluster } from './local-cluster.js';
import { ReplicaDigests } from './locate.js';
import { Health, type Membership, type MembershipLimits, routingState } from './membership.js';
import {
  type ControlSnapshot,
  clearThreadGauges,
  mainHeap,
  renderMetrics,
  SlotBaselines,
  slotUpstream,
  sumRegions,
  type TransitionCounts,
} from './metrics.js';
import { type HttpRoutes, metricsRoute, startMetricsServer } from './metrics-server.js';
import { OutlierMonitor } from './outlier-monitor.js';
import { liveRoute, type Readiness, readiness, readyRoute } from './probes-http.js';
import { processMetricsText, startProcessMetrics } from './process-metrics.js';
import { configAfter, diffConfig, type ReloadReport, touches } from './reload.js';
import { ReloadMetrics } from './reload-metrics.js';
import { SHUTDOWN_PHASE, Shutdown } from './shutdown.js';
import { startStatusRoutes } from './status-routes.js';
import { TablePublisher } from './table-publisher.js';
import { systemTimers } from './timers.js';
import { WorkerSupervisor } from './worker-supervisor.js';

/** router-node's own version (package.json), for engram_router_build_info. */
const VERSION: string = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;

const NO_TRANSITIONS = Object.freeze({ open: 0, halfOpen: 0, closed: 0 });

/** A running router-node. */
export interface RouterNode {
  readonly port: number;
  readonly address: string;
  readonly adminPort: number | null;
  readonly metricsPort: number | null;
  readonly workers: number;
  /** The config in force (a reload replaces the keys it applies). */
  readonly config: RouterNodeConfig;
  /** The child-process cluster of `StartOptions.localCluster`, when one was started. */
  readonly localCluster: LocalCluster | null;
  table(): TableView;
  /** The router's own /metrics families (a scrape appends prom-client's process_* and nodejs_*). */
  metricsText(): string;
  /** Replaces the membership (SIGHUP): adds, removes and re-addresses nodes in one publish. */
  reloadMembership(nodes: readonly NodeConfig[]): number;
  /**
   * Applies a config read again (SIGHUP): every changed key that is reloadable is applied live
   * (control plane, every data-plane thread, admin token, log level), the others are reported
   * `needs-restart` and keep their value. All or nothing: a change that cannot apply (a node
   * list the membership refuses, an unreadable token file) throws, with nothing changed, and
   * counts as a failed reload. The admin token file is read again even when its path is
   * unchanged.
   */
  reload(next: RouterNodeConfig): ReloadReport;
  /** Counts a reload that failed before `reload` (the file could not be read or parsed). */
  reloadFailed(): void;
  /**
   * Replaces the admin bearer token (SIGHUP): `admin.token`, or `admin.tokenFile` read again.
   * Throws a ConfigError (the token in force stays) when the file cannot be read.
   */
  reloadAdminToken(admin: RouterNodeConfig['admin']): void;
  /**
   * True once a shutdown started: health answers NOT_SERVING (the drain window, calls still
   * served), then GOAWAY. For readiness probes.
   */
  readonly draining: boolean;
  /**
   * Shuts down: health NOT_SERVING for `shutdownDrainMs` while still serving, then GOAWAY and
   * stop accepting, in-flight calls finish up to `shutdownGraceMs`, everything stops. A second
   * call joins the first.
   */
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function readPem(path: string | null): Buffer | undefined {
  return path === null ? undefined : readFileSync(path);
}

function upstreamCredentials(cfg: RouterNodeConfig): PoolCredentials {
  const t = cfg.pool.tls;
  if (t === null) return { kind: 'insecure' };
  const ca = readPem(t.ca);
  const cert = readPem(t.cert);
  const key = readPem(t.key);
  return {
    kind: 'tls',
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(t.serverName !== null ? { serverName: t.serverName } : {}),
  };
}

export interface StartOptions {
  /**
   * Start `localCluster.nodes` memory nodes as child processes and route to them (the config
   * must then have no `nodes`). Default false: a config without `nodes` is refused.
   */
  readonly localCluster?: boolean;
}

// Causes that are the host's fault (a name that does not resolve, an address this machine
// does not have), not the port's.
const HOST_CAUSES: ReadonlySet<string> = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EADDRNOTAVAIL',
]);

/**
 * A listener's failure to bind as a `ListenError` naming it, the key to change (`….host` for
 * a host that does not resolve or is not this machine's, else `….port`) and the address.
 * With `onlyListen`, anything that is not a failed `listen` or name lookup (a data-plane
 * thread that died otherwise) is returned unchanged.
 */
function asListenError(
  err: unknown,
  listener: string,
  section: 'listen' | 'admin' | 'metrics',
  endpoint: { readonly host: string; readonly port: number },
  onlyListen = false,
): unknown {
  const syscall = (err as NodeJS.ErrnoException | null)?.syscall;
  if (onlyListen && syscall !== 'listen' && syscall !== 'getaddrinfo') return err;
  // grpc-js says "Name resolution failed for target dns:…", with no code.
  const unresolved = /Name resolution failed/.test(String((err as Error | null)?.message));
  const code = unresolved ? 'ENOTFOUND' : systemErrorCode(err);
  const field = `${section}.${code !== undefined && HOST_CAUSES.has(code) ? 'host' : 'port'}`;
  const { host, port } = endpoint;
  const address = formatAddress(host, port);
  const cause = unresolved ? systemErrorText({ code }) : systemErrorText(err);
  return new ListenError(listener, field, address, cause, { cause: err });
}

/**
 * The membership persisted in `dataDir` (undefined: none, the config seeds it), with the start
 * log saying which source is used and how it differs from the config file. Throws a
 * StateFileError (a bad configuration: exit 2) when the state file cannot be read or used.
 */
function startingState(
  store: AdminStateStore,
  cfg: RouterNodeConfig,
  limits: MembershipLimits,
  log: Logger,
): Membership | undefined {
  if (cfg.admin.enabled && cfg.dataDir === null) {
    log.warn(
      { event: 'admin-state', source: 'config', persisted: false },
      'dataDir is null: RouterAdmin changes (AddNode, RemoveNode, DrainNode, AssignSpace) are lost on restart',
    );
  }
  const file = store.file;
  if (file === null) return undefined;
  const state = store.load();
  if (state === null) {
    log.info(
      { event: 'admin-state', source: 'config', file },
      `no state file yet: membership and pins from the config file (kept in ${file} from now on)`,
    );
    return undefined;
  }
  const start = startingMembership(state, cfg, limits, cfg.router.replicateWrites, file);
  log.info(
    {
      event: 'admin-state',
      source: start.source,
      file,
      fileWins: start.fileWins,
      ...differences(state, cfg.nodes, cfg.assignments),
    },
    start.source === 'state'
      ? `membership and pins from ${file} (the config file's nodes and assignments are unchanged since it was written)`
      : `membership and pins from ${file}, then the config file's ${start.fileWins.join(' and ')} (changed since it was written)`,
  );
  return start.membership;
}

/**
 * Starts the control plane, the data plane (workers or main thread), admin and metrics.
 * Throws a `ConfigError` for a config it cannot run (no `nodes` without
 * `options.localCluster`, an unreadable token file) and a `ListenError` for a port it cannot
 * bind; either way nothing it started is left running.
 */
export async function startRouterNode(
  config: RouterNodeConfig,
  log: Logger,
  options: StartOptions = {},
): Promise<RouterNode> {
  const refused = nodesProblem(config, options.localCluster === true);
  if (refused !== null) throw refused;
  let localCluster: LocalCluster | null = null;
  let cfg = config;
  if (options.localCluster === true) {
    localCluster = await LocalCluster.start(
      cfg.localCluster.nodes,
      cfg.localCluster.zones,
      cfg.localCluster.dataDir,
    );
    cfg = { ...cfg, nodes: localCluster.configs };
    for (const n of cfg.nodes)
      log.info({ event: 'local-node', ...n }, `started local memory node ${n.id}`);
    const ids = new Set(cfg.nodes.map((n) => n.id));
    cfg.assignments.forEach((a, i) => {
      validateAssignment(a, `assignments[${i}]`, ids);
    });
  }
  try {
    return await start(cfg, log, localCluster);
  } catch (err) {
    await localCluster?.stop();
    throw err;
  }
}

async function start(
  cfg: RouterNodeConfig,
  log: Logger,
  localCluster: LocalCluster | null,
): Promise<RouterNode> {
  // Read before anything starts: an unreadable token file is a bad config, not a late failure.
  const adminAuth = new AdminAuth(cfg.admin.enabled ? readAdminToken(cfg.admin) : null);
  if (cfg.admin.enabled && cfg.admin.token !== null) {
    log.warn(
      { event: 'admin-token-inline' },
      'admin.token is inline (visible in the config file, environment or process list): prefer admin.tokenFile',
    );
  }
  if (adminAuth.enabled && cfg.admin.tls === null && !isLoopback(cfg.admin.host)) {
    log.warn(
      { event: 'admin-token-plaintext', host: cfg.admin.host },
      'the admin bearer token travels in plaintext: set admin.tls',
    );
  }
  // The file's: etcd mode takes etcd's maxNodes (below), so every router holds every node.
  const fileLimits = { maxNodes: cfg.maxNodes, maxSlots: cfg.maxNodes };
  // The local cluster's nodes are new at every start: nothing of them is worth keeping.
  const stateStore = new AdminStateStore(localCluster === null ? cfg.dataDir : null);
  // etcd mode: the placement is etcd's (the state file only caches it, for a start while
  // etcd is unreachable); otherwise this router's own state file.
  const etcdStore = cfg.etcd === null ? null : new EtcdStore(cfg.etcd, routerIdOf(cfg.etcd), log);
  let etcdStart: EtcdStart | null = null;
  if (etcdStore !== null) {
    try {
      etcdStart = await startFromEtcd(etcdStore, cfg, stateStore, fileLimits, log);
    } catch (err) {
      etcdStore.close();
      throw err;
    }
  }
  const etcd =
    etcdStore === null
      ? null
      : new EtcdMode(
          etcdStore,
          new ClusterSync({
            source: etcdStore.source,
            adopt: (intent, revision) => controlPlane!.adopt(intent, revision),
            onConnection: (up) => etcd?.connectionChanged(up, cfg.etcd!.leaseTtlMs),
            log,
          }),
        );
  if (etcdStart !== null) {
    // The placement's settings are etcd's too: every router builds the same ring.
    cfg = withSettings(cfg, etcdStart.settings);
    try {
      checkTableTokens(cfg);
    } catch (err) {
      etcdStore?.close();
      throw err;
    }
  }
  const threads = Math.max(1, cfg.workers);
  // Every per-node structure has cfg.maxNodes slots: a membership never holds more slots than
  // nodes (it reuses freed ones), and the config refused maxNodes × vnodesPerNode over the cap.
  const stateBuffer = createStateBuffer(threads, cfg.maxNodes);
  const control = controlWords(stateBuffer);
  const writer = new TableWriter({
    maxNodes: cfg.maxNodes,
    maxTokens: cfg.maxNodes * ringTokensPerNode(cfg),
    maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
    // Given, not derived from the first table: the cluster may grow to maxNodes, and
    // with all four capacities given the buffer exists before the first publish.
    maxBlobBytes: DEFAULT_TABLE_MAX_BLOB_BYTES,
  });
  const breakers = new BreakerTable({
    capacity: cfg.maxNodes,
    trip: new ConsecutiveFailures(cfg.router.breakerThreshold),
    openTimeoutMs: cfg.router.breakerTimeoutMs,
  });
  // A reload of retryBudget.* replaces it (a budget's shape is fixed): every thread moves over.
  let budget = new SharedRetryBudget({ ...cfg.retryBudget });
  const limits = { maxNodes: cfg.maxNodes, maxSlots: cfg.maxNodes };
  const restored = etcdStart?.membership ?? startingState(stateStore, cfg, limits, log);
  const upstream = upstreamCredentials(cfg);
  const grpcProbe = new GrpcProbe(upstream);
  const lag = new LagTable({ slots: cfg.maxNodes, shared: true });
  const publisher = new TablePublisher(writer, control, cfg, lag);
  // Data movement and the control plane see each other through these two (built just below).
  let controlPlane: ControlPlane | undefined;
  // Outlier detection (started with the control plane's first probe round, below).
  let outlier: OutlierMonitor | undefined;
  const movement = await DataMovement.open(
    {
      config: cfg,
      upstream,
      lag,
      timers: systemTimers,
      log,
      membership: () => controlPlane!.membership,
      ring: () => publisher.ring,
      complete: (kind, subject) => controlPlane?.completeTransition(kind, subject),
      driving: () => etcd === null || etcd.driving,
      ...(etcd !== null
        ? { progress: etcd.store.progressStore((k, s) => etcd.sync.instanceOf(k, s)) }
        : {}),
    },
    (id) => controlPlane?.membership.get(id)?.slot ?? -1,
  );
  // Per-slot counters (attempts, breaker transitions) start from the slot's values when a node
  // takes a reused slot over.
  const upstreamBases = new SlotBaselines<Float64Array>();
  const transitionBases = new SlotBaselines<TransitionCounts>();
  const rebase = (m: Membership): void => {
    const members = [...m.members]
      .filter((x) => x.slot >= 0 && x.slot < cfg.maxNodes)
      .map((x) => ({ id: x.node.id, slot: x.slot }));
    let sums: Float64Array | undefined;
    upstreamBases.sync(members, (slot) => {
      sums ??= sumRegions(stateBuffer);
      return slotUpstream(sums, slot);
    });
    transitionBases.sync(members, (slot) => breakers.transitionsOf(slot));
  };
  const answeredWithin = (nodeId: string, ms: number): boolean => {
    const slot = controlPlane?.membership.get(nodeId)?.slot ?? -1;
    if (slot < 0 || slot >= slotCount(control)) return false;
    const at = Atomics.load(control, nodeWord(slot, N_LAST_ANSWER));
    return at > 0 && passiveNow(control) - at <= ms / 100;
  };
  // Locate asks nodes what they hold on connections of its own (closed with the router).
  const digests = new ReplicaDigests(upstream, cfg.health.timeoutMs);
  try {
    controlPlane = new ControlPlane({
      digestOf: (node, spaceId) => {
        digests.retain(new Set(controlPlane!.membership.nodes.map((n) => n.id)));
        return digests.digest(node, spaceId);
      },
      config: cfg,
      limits,
      ...(restored !== undefined ? { restored } : {}),
      ...(stateStore.file !== null
        ? {
            persist: (m: Membership, seed: PlacementSeed) =>
              stateStore.save(
                m,
                seed,
                etcdStart === null
                  ? undefined
                  : {
                      revision: controlPlane?.revision ?? etcdStart.revision,
                      prefix: cfg.etcd!.prefix,
                      settings: etcdStart.settings,
                    },
              ),
          }
        : {}),
      ...(etcd !== null && etcdStart !== null
        ? {
            store: etcd.store,
            revision: etcdStart.revision,
            etcdStatus: () => etcd.view(),
          }
        : {}),
      publisher,
      breakers,
      probe: grpcProbe,
      timers: systemTimers,
      log,
      // etcd mode: the transitions in progress are in etcd's placement (joining, leaving, moves).
      resume: etcd === null ? movement.persisted : [],
      onChange: (m: Membership) => {
        if (cfg.router.replicateWrites) movement.sync(m);
        rebase(m);
        outlier?.membershipChanged(
          [...m.members].map((x) => ({
            id: x.node.id,
            slot: x.slot,
            up: x.health === Health.Up,
          })),
        );
      },
      ...(cfg.router.replicateWrites
        ? {
            dataStatus: (id: string) => movement.status(id),
            streams: () => movement.streams(),
            repair: {
              space: async (spaceId: string) => {
                const r = await movement.repairer.repairSpace(spaceId);
                return {
                  spaces: 1,
                  differed: r.differed ? 1 : 0,
                  applied: r.applied,
                  unreachable: r.unreachable,
                };
              },
              node: (id: string) => movement.markRepairNeeded(id),
            },
          }
        : {}),
      answeredWithin,
      ejected: (id: string) => outlier?.isEjected(id) ?? false,
    });
  } catch (err) {
    await movement.close();
    await etcd?.close(cfg.health.timeoutMs);
    throw err;
  }
  const plane = controlPlane;

  const ingressTls =
    cfg.tls === null
      ? null
      : {
          cert: readFileSync(cfg.tls.cert),
          key: readFileSync(cfg.tls.key),
          ...(cfg.tls.clientCa !== null ? { ca: readFileSync(cfg.tls.clientCa) } : {}),
        };
  // The config in force: a reload replaces the keys it applies (a worker started later gets it).
  let live = cfg;
  const reloads = new ReloadMetrics(Date.now());
  const planeInit = (thread: number): DataPlaneInit => ({
    thread,
    table: writer.buffer,
    breakers: breakers.buffer,
    budget: budget.buffer,
    state: stateBuffer,
    lag: lag.buffer as SharedArrayBuffer,
    config: live,
    ingressTls,
    upstreamCredentials: upstream,
  });
  let mainPlane: DataPlane | null = null;
  let supervisor: WorkerSupervisor | null = null;
  let port: number;
  try {
    if (cfg.workers === 0) {
      mainPlane = new DataPlane(planeInit(0), log.child({ thread: 0 }), movement.channel);
      port = await mainPlane.listen(cfg.listen);
    } else {
      supervisor = new WorkerSupervisor({
        count: cfg.workers,
        initFor: planeInit,
        listen: cfg.listen,
        youngGenerationMb: cfg.youngGenerationMb,
        clock: systemClock,
        timers: systemTimers,
        log,
        channel: movement.channel,
        onExit: (thread) => {
          // The dead thread's gauges would stay stuck at their last values.
          clearThreadGauges(stateBuffer, thread);
        },
      });
      port = await supervisor.start();
    }
  } catch (err) {
    // The main-thread data plane's timers, observers and pool go too (workers stop themselves).
    await mainPlane?.drain(0);
    plane.close();
    grpcProbe.close();
    await digests.close();
    await movement.close();
    await etcd?.close(cfg.health.timeoutMs);
    throw asListenError(err, 'the data plane', 'listen', cfg.listen, true);
  }
  await movement.start();
  // Nodes start unknown (routed as down) until probed: the first round (at most
  // health.timeoutMs; a refused connection fails at once) is over before this router reports
  // itself started, so its first calls are routed by verdicts.
  await plane.start();
  if (etcd !== null && etcdStart !== null) {
    // Changes other routers make from now on; started from the cache: once etcd answers.
    etcd.follow(etcdStart.snapshot, log);
    if (cfg.router.replicateWrites) {
      // One router streams (and runs the background repair); another takes over, from the
      // placement's transitions in etcd, when its lease ends.
      etcd.elect(etcd.store.campaign(cfg.etcd!.leaseTtlMs, () => movement.sync(plane.membership)));
    }
  }
  // Outlier detection reads the data planes' attempt counters and ejects from then on.
  const outliers = new OutlierMonitor({
    config: cfg.outlier,
    state: stateBuffer,
    members: () =>
      [...plane.membership.members].map((m) => ({
        id: m.node.id,
        slot: m.slot,
        eligible: routingState(m) === 'up',
      })),
    timers: systemTimers,
    log,
  });
  outlier = outliers;
  outliers.start();

  // Tests only (NODE_ENV=test): SIGUSR2 crashes the first live worker, to test restarts.
  const onTestCrash = () => supervisor?.postToFirst({ type: 'test-crash' });
  if (process.env.NODE_ENV === 'test' && supervisor !== null) process.on('SIGUSR2', onTestCrash);

  const since = (t: TransitionCounts, slot: number, id: string): TransitionCounts => {
    const b = transitionBases.of(slot, id);
    return b === undefined
      ? t
      : { open: t.open - b.open, halfOpen: t.halfOpen - b.halfOpen, closed: t.closed - b.closed };
  };
  const liveWorkers = () => (supervisor === null ? 0 : supervisor.live.length);
  const snapshot = (): ControlSnapshot => {
    const members = [...plane.membership.members].sort((a, b) => (a.node.id < b.node.id ? -1 : 1));
    return {
      epoch: plane.epoch,
      partitioned: plane.partitioned,
      nodes: members.map((m) => {
        const placed = m.slot >= 0 && m.slot < cfg.maxNodes;
        const p = plane.probeStats(m.node.id);
        return {
          id: m.node.id,
          slot: m.slot,
          breaker: placed ? breakers.state(m.slot) : 'closed',
          up: m.health === Health.Up,
          lifecycle: m.lifecycle,
          transitions: placed
            ? since(breakers.transitionsOf(m.slot), m.slot, m.node.id)
            : NO_TRANSITIONS,
          upstreamBase: upstreamBases.of(m.slot, m.node.id),
          probeFailures: p?.failures ?? 0,
          probeSeconds: p === undefined ? undefined : p.lastMs / 1000,
        };
      }),
      workers: liveWorkers(),
      workerRestarts: supervisor?.restarts ?? 0,
      data: movement.metrics(),
      build: { version: VERSION, nodeVersion: process.version },
      mainHeap: mainHeap(),
      workerThreads: cfg.workers,
      reload: reloads,
      outlier: outliers.metrics(),
      ...(etcd !== null ? { etcd: { view: etcd.view(), revision: plane.revision } } : {}),
    };
  };
  const metricsText = () => renderMetrics(stateBuffer, snapshot());
  /** A shutdown started (the drain window, or GOAWAY after it): /ready answers 503. */
  const isDraining = (): boolean => shutdown.draining;
  const ready = (): Readiness =>
    readiness({
      published: writer.epoch > 0 && plane.table().nodes.length > 0,
      draining: isDraining(),
      panic: plane.panic, // under the panic threshold in force (reloadable)
      epoch: plane.epoch,
    });
  const closers: (() => Promise<void>)[] = [];
  const shutdown = new Shutdown(
    {
      notServing: () => {
        // Data planes answer health Checks from the word and wait on it to tell their Watches.
        Atomics.store(control, C_HEALTH_DRAINING, 1);
        Atomics.notify(control, C_HEALTH_DRAINING);
      },
      close: async (graceMs) => {
        plane.close();
        outliers.stop();
        process.off('SIGUSR2', onTestCrash);
        Atomics.store(control, C_DRAINING, 1);
        log.info({ event: 'shutdown', graceMs }, 'GOAWAY: calls in flight finish, then stop');
        let left = 0;
        if (mainPlane !== null) left += await mainPlane.drain(graceMs);
        if (supervisor !== null) {
          left += await supervisor.drain(graceMs);
          await supervisor.close();
        }
        for (const close of closers.splice(0).reverse()) await close();
        // Resigns the driver and revokes the registration: other routers see it go at once.
        await etcd?.close(cfg.health.timeoutMs);
        grpcProbe.close();
        await digests.close();
        await movement.close();
        await localCluster?.stop();
        log.info({ event: 'stopped', abandoned: left }, `stopped (${left} calls abandoned)`);
        return left;
      },
    },
    systemTimers,
  );
  const stop = async (drainMs: number): Promise<void> => {
    if (shutdown.phase === SHUTDOWN_PHASE.Serving && drainMs > 0) {
      log.info(
        { event: 'drain', drainMs },
        `draining: health NOT_SERVING, calls still served for ${drainMs} ms, then GOAWAY`,
      );
    }
    await shutdown.run({ drainMs, graceMs: cfg.shutdownGraceMs });
  };
  const handle: RouterNode = {
    port,
    address: formatAddress(cfg.listen.host, port),
    adminPort: null,
    metricsPort: null,
    workers: cfg.workers,
    get config() {
      return live;
    },
    localCluster,
    table: () => plane.table(),
    metricsText,
    reloadMembership: (nodes) => {
      if (etcd !== null) {
        throw new ConfigError(
          'nodes',
          nodes.map((n) => n.id),
          'etcd holds the placement: change it with RouterAdmin (AddNode, RemoveNode)',
        );
      }
      return plane.reloadMembership(nodes);
    },
    reloadAdminToken: (admin) => {
      if (cfg.admin.enabled) adminAuth.set(readAdminToken(admin));
    },
    get draining() {
      return shutdown.draining;
    },
    reload: (file) => {
      try {
        // Past the drain window's start the router is going: nothing is applied any more.
        if (shutdown.phase !== SHUTDOWN_PHASE.Serving) {
          throw new RouterNodeError(
            'Unavailable',
            'shutting down: reload refused, nothing changed',
          );
        }
        // The local cluster came from a file without nodes: that file still has none.
        const next =
          localCluster !== null && file.nodes.length === 0 ? { ...file, nodes: live.nodes } : file;
        const changes = diffConfig(live, next);
        const applied = new Set(changes.filter((c) => c.result === 'applied').map((c) => c.key));
        // Everything that can fail first, nothing changed yet.
        const token = cfg.admin.enabled ? readAdminToken(next.admin) : null;
        // etcd mode: the file's nodes and assignments only seeded etcd; etcd's placement wins.
        const fromFile = etcd === null;
        if (!fromFile && (applied.has('nodes') || applied.has('assignments'))) {
          log.warn(
            { event: 'reload-placement-ignored' },
            "the config file's nodes or assignments changed, but etcd holds the placement: change it with RouterAdmin",
          );
        }
        const nodes = fromFile && applied.has('nodes') ? next.nodes : null;
        const pins = fromFile && applied.has('assignments') ? next.assignments : null;
        if (nodes !== null && nodes.length === 0) {
          throw new ConfigError('nodes', [], 'a running router keeps at least one node');
        }
        const plan = nodes !== null || pins !== null ? plane.planPlacement(nodes, pins) : null;
        const nextBudget = touches(applied, 'retryBudget')
          ? new SharedRetryBudget({ ...next.retryBudget })
          : budget;
        // Then all of it. The placement first (its publish is the one step left that may
        // throw), and before the control plane's config: the state file is written with the
        // new membership first, its new seed second (see admin-state.ts).
        if (plan !== null) plane.applyPlacement(plan);
        const after = configAfter(live, next, changes);
        live = after;
        budget = nextBudget;
        log.level = after.logLevel;
        log.debug({ event: 'reload-apply', keys: [...applied] }, 'applying the reloaded keys');
        plane.reconfigure(after);
        movement.reconfigure(after);
        outliers.reconfigure(after.outlier);
        digests.setTimeout(after.health.timeoutMs);
        if (cfg.admin.enabled) adminAuth.set(token);
        mainPlane?.reconfigure(after, budget.buffer);
        supervisor?.reconfigure({ type: 'config-update', config: after, budget: budget.buffer });
        reloads.success(Date.now());
        return { changes, epoch: plane.epoch };
      } catch (err) {
        reloads.failure();
        throw err;
      }
    },
    reloadFailed: () => reloads.failure(),
    close: () => stop(cfg.shutdownDrainMs),
  };
  try {
    if (cfg.metrics.enabled) {
      startProcessMetrics();
      // The metrics listener's GET routes; each feature adds its own path here.
      const status = startStatusRoutes(
        stateBuffer,
        () => plane.table(),
        () => publisher.ring,
      );
      closers.push(async () => status.stop());
      const routes: HttpRoutes = {
        ...status.routes,
        // The router's families, then process_* and nodejs_* (prom-client, this thread only).
        '/metrics': metricsRoute(async () => `${metricsText()}${await processMetricsText()}`),
        '/ready': readyRoute(ready),
        '/live': liveRoute(() => ({ workers: cfg.workers, live: liveWorkers() })),
      };
      const metrics = await startMetricsServer(cfg.metrics.host, cfg.metrics.port, routes).catch(
        (err: unknown) => {
          throw asListenError(err, 'metrics', 'metrics', cfg.metrics);
        },
      );
      closers.push(() => metrics.close());
      (handle as { metricsPort: number | null }).metricsPort = metrics.port;
    }
    if (cfg.admin.enabled) {
      const admin = await startAdminServer(plane, { ...cfg.admin, auth: adminAuth }, log).catch(
        (err: unknown) => {
          throw asListenError(err, 'RouterAdmin', 'admin', cfg.admin);
        },
      );
      closers.push(() => admin.close());
      (handle as { adminPort: number | null }).adminPort = admin.port;
    }
    if (etcd !== null) {
      etcd.register(
        etcd.store.register(
          {
            id: etcd.store.routerId,
            listen: handle.address,
            admin:
              handle.adminPort === null ? null : formatAddress(cfg.admin.host, handle.adminPort),
            version: VERSION,
            since: Date.now(),
          },
          cfg.etcd!.leaseTtlMs,
        ),
      );
    }
  } catch (err) {
    await stop(0);
    throw err;
  }
  return handle;
}
