import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import type { PoolCredentials } from '@engram/pool';
import { SharedRetryBudget, systemClock } from '@engram/retry';
import { DEFAULT_TABLE_MAX_BLOB_BYTES, TableWriter } from '@engram/ring';
import { LagTable } from '@engram/router';
import type { Logger } from 'pino';
import { AdminAuth, readAdminToken, startAdminServer, type TableView } from './admin.js';
import { type NodeConfig, type RouterNodeConfig, validateAssignment } from './config.js';
import { TABLE_MAX_REPLICATION_FACTOR } from './config-caps.js';
import { ControlPlane } from './control-plane.js';
import { DataMovement } from './data-movement.js';
import { DataPlane, type DataPlaneInit } from './data-plane.js';
import { GrpcProbe } from './grpc-probe.js';
import {
  C_DRAINING,
  controlWords,
  createStateBuffer,
  M_HEAP,
  M_IN_FLIGHT,
  M_POOL_SESSIONS,
  MAX_NODE_SLOTS,
  metricsRegion,
  P_LAST_ANSWER,
  passiveNow,
} from './layout.js';
import { LocalCluster } from './local-cluster.js';
import { Health, type Membership } from './membership.js';
import {
  type ControlSnapshot,
  mainHeap,
  renderMetrics,
  SlotBaselines,
  slotUpstream,
  sumRegions,
  type TransitionCounts,
} from './metrics.js';
import { type HttpRoutes, metricsRoute, startMetricsServer } from './metrics-server.js';
import { ProbeStats } from './probe-stats.js';
import { liveRoute, type Readiness, readiness, readyRoute } from './probes-http.js';
import { processMetricsText, startProcessMetrics } from './process-metrics.js';
import { isPanic, TablePublisher } from './table-publisher.js';
import { systemTimers } from './timers.js';
import { WorkerSupervisor } from './worker-supervisor.js';

/** router-node's own version (package.json), for engram_router_build_info. */
const VERSION: string = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;

/** Largest cluster the shared table is sized for. */
export const MAX_CLUSTER_NODES = 64;

const NO_TRANSITIONS = Object.freeze({ open: 0, halfOpen: 0, closed: 0 });

/** A running router-node. */
export interface RouterNode {
  readonly port: number;
  readonly address: string;
  readonly adminPort: number | null;
  readonly metricsPort: number | null;
  readonly workers: number;
  readonly config: RouterNodeConfig;
  /** The zero-config child-process cluster, when one was started. */
  readonly localCluster: LocalCluster | null;
  table(): TableView;
  /** The router's own /metrics families (a scrape appends prom-client's process_* and nodejs_*). */
  metricsText(): string;
  /** Replaces the membership (SIGHUP): adds, removes and re-addresses nodes in one publish. */
  reloadMembership(nodes: readonly NodeConfig[]): number;
  /**
   * Replaces the admin bearer token (SIGHUP): `admin.token`, or `admin.tokenFile` read again.
   * Throws a ConfigError (the token in force stays) when the file cannot be read.
   */
  reloadAdminToken(admin: RouterNodeConfig['admin']): void;
  /** Stops accepting, drains in-flight calls up to the grace period, stops everything. */
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

/** Starts the control plane, the data plane (workers or main thread), admin and metrics. */
export async function startRouterNode(config: RouterNodeConfig, log: Logger): Promise<RouterNode> {
  let localCluster: LocalCluster | null = null;
  let cfg = config;
  if (cfg.nodes.length === 0) {
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
  const threads = Math.max(1, cfg.workers);
  const stateBuffer = createStateBuffer(threads);
  const control = controlWords(stateBuffer);
  const writer = new TableWriter({
    maxNodes: MAX_CLUSTER_NODES,
    maxTokens: Math.min(1 << 22, MAX_CLUSTER_NODES * cfg.vnodesPerNode),
    maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
    // Given, not derived from the first table: the cluster may grow to MAX_CLUSTER_NODES, and
    // with all four capacities given the buffer exists before the first publish.
    maxBlobBytes: DEFAULT_TABLE_MAX_BLOB_BYTES,
  });
  const breakers = new BreakerTable({
    capacity: MAX_NODE_SLOTS,
    trip: new ConsecutiveFailures(cfg.router.breakerThreshold),
    openTimeoutMs: cfg.router.breakerTimeoutMs,
  });
  const budget = new SharedRetryBudget({ ...cfg.retryBudget });
  const upstream = upstreamCredentials(cfg);
  const grpcProbe = new GrpcProbe(upstream);
  // Counts failures and times each probe for /metrics; the health monitor sees the same results.
  const probe = new ProbeStats(grpcProbe);
  const lag = new LagTable({ slots: MAX_NODE_SLOTS, shared: true });
  const publisher = new TablePublisher(writer, control, cfg);
  // Data movement and the control plane see each other through these two (built just below).
  let controlPlane: ControlPlane | undefined;
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
    },
    (id) => controlPlane?.membership.get(id)?.slot ?? -1,
  );
  // Per-slot counters (attempts, breaker transitions) start from the slot's values when a node
  // takes a reused slot over.
  const upstreamBases = new SlotBaselines<Float64Array>();
  const transitionBases = new SlotBaselines<TransitionCounts>();
  const rebase = (m: Membership): void => {
    const members = [...m.members]
      .filter((x) => x.slot >= 0 && x.slot < MAX_NODE_SLOTS)
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
    if (slot < 0 || slot >= MAX_NODE_SLOTS) return false;
    const at = Atomics.load(control, P_LAST_ANSWER + slot);
    return at > 0 && passiveNow(control) - at <= ms / 100;
  };
  try {
    controlPlane = new ControlPlane({
      config: cfg,
      limits: { maxNodes: MAX_CLUSTER_NODES, maxSlots: MAX_NODE_SLOTS },
      publisher,
      breakers,
      probe,
      timers: systemTimers,
      log,
      resume: movement.persisted,
      onChange: (m: Membership) => {
        if (cfg.router.replicateWrites) movement.sync(m);
        rebase(m);
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
    });
  } catch (err) {
    await movement.close();
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
  const planeInit = (thread: number): DataPlaneInit => ({
    thread,
    table: writer.buffer,
    breakers: breakers.buffer,
    budget: budget.buffer,
    state: stateBuffer,
    lag: lag.buffer as SharedArrayBuffer,
    config: cfg,
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
          const region = metricsRegion(stateBuffer, thread);
          region[M_IN_FLIGHT] = 0;
          region.fill(0, M_POOL_SESSIONS, M_POOL_SESSIONS + MAX_NODE_SLOTS);
          region.fill(0, M_HEAP, M_HEAP + 3);
        },
      });
      port = await supervisor.start();
    }
  } catch (err) {
    plane.close();
    grpcProbe.close();
    await movement.close();
    throw err;
  }
  await movement.start();
  // Nodes start unknown (routed as down) until probed: the first round (at most
  // health.timeoutMs; a refused connection fails at once) is over before this router reports
  // itself started, so its first calls are routed by verdicts.
  await plane.start();

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
        const placed = m.slot >= 0 && m.slot < MAX_NODE_SLOTS;
        const p = probe.of(m.node.id);
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
          probeSeconds: p?.lastSeconds,
        };
      }),
      workers: liveWorkers(),
      workerRestarts: supervisor?.restarts ?? 0,
      data: movement.metrics(),
      build: { version: VERSION, nodeVersion: process.version },
      mainHeap: mainHeap(),
      workerThreads: cfg.workers,
    };
  };
  const metricsText = () => renderMetrics(stateBuffer, snapshot());
  /**
   * The router is shutting down (no new calls taken). The one accessor /ready reads; a drain
   * phase that starts earlier than close() sets what this reads.
   */
  const isDraining = (): boolean => Atomics.load(control, C_DRAINING) === 1;
  const ready = (): Readiness =>
    readiness({
      published: writer.epoch > 0 && plane.table().nodes.length > 0,
      draining: isDraining(),
      panic: isPanic(plane.membership, cfg.health.panicThreshold),
      epoch: plane.epoch,
    });
  const closers: (() => Promise<void>)[] = [];
  let closed = false;
  const handle: RouterNode = {
    port,
    address: `${cfg.listen.host.includes(':') ? `[${cfg.listen.host}]` : cfg.listen.host}:${port}`,
    adminPort: null,
    metricsPort: null,
    workers: cfg.workers,
    config: cfg,
    localCluster,
    table: () => plane.table(),
    metricsText,
    reloadMembership: (nodes) => plane.reloadMembership(nodes),
    reloadAdminToken: (admin) => {
      if (cfg.admin.enabled) adminAuth.set(readAdminToken(admin));
    },
    close: async () => {
      if (closed) return;
      closed = true;
      plane.close();
      process.off('SIGUSR2', onTestCrash);
      Atomics.store(control, C_DRAINING, 1);
      log.info({ event: 'shutdown', graceMs: cfg.shutdownGraceMs }, 'draining');
      let left = 0;
      if (mainPlane !== null) left += await mainPlane.drain(cfg.shutdownGraceMs);
      if (supervisor !== null) {
        left += await supervisor.drain(cfg.shutdownGraceMs);
        await supervisor.close();
      }
      for (const close of closers.splice(0).reverse()) await close();
      grpcProbe.close();
      await movement.close();
      await localCluster?.stop();
      log.info({ event: 'stopped', abandoned: left }, `stopped (${left} calls abandoned)`);
    },
  };
  try {
    if (cfg.metrics.enabled) {
      startProcessMetrics();
      // The metrics listener's GET routes; each feature adds its own path here.
      const routes: HttpRoutes = {
        // The router's families, then process_* and nodejs_* (prom-client, this thread only).
        '/metrics': metricsRoute(async () => `${metricsText()}${await processMetricsText()}`),
        '/ready': readyRoute(ready),
        '/live': liveRoute(() => ({ workers: cfg.workers, live: liveWorkers() })),
      };
      const metrics = await startMetricsServer(cfg.metrics.host, cfg.metrics.port, routes);
      closers.push(() => metrics.close());
      (handle as { metricsPort: number | null }).metricsPort = metrics.port;
    }
    if (cfg.admin.enabled) {
      const admin = await startAdminServer(plane, { ...cfg.admin, auth: adminAuth }, log);
      closers.push(() => admin.close());
      (handle as { adminPort: number | null }).adminPort = admin.port;
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}
